"""Build recipe: experience records -> the four E2WM training files, held-out files and stats.json.

    from e2wm import BuildConfig, build
    stats = build(BuildConfig(plans="plans.jsonl", explore="explore.jsonl", out="build"))

Writes OUT/train_{plan_gen,act_recog,count,obj_move}.jsonl ({"input", "ref"} per line, the released
E2WM format), with holdout_activities K > 0 also OUT/heldout/plan_gen_unseen.jsonl (generation,
{"input", "ref"}) and OUT/heldout/act_recog_unseen.jsonl (multiple choice, {"input", "answer_list",
"answer"}) on activities that never appear in training, and OUT/stats.json. Every answer is re-derived
from its record before it is written; records that contradict themselves are skipped and counted. The
output is fixed by the seed.
"""

import logging
from collections import Counter

from e2wm.benchmark import TASKS, TRAINING_TASKS
from e2wm.config import result_settings
from e2wm.data.build import file_stats, plan_tasks, story_tasks
from e2wm.data.config import BuildConfig
from e2wm.data.records import read_episodes, read_plans
from e2wm.errors import InputError
from e2wm.files import output_folder, write_json, write_jsonl

logger = logging.getLogger(__name__)


def build(config: BuildConfig, tokenizer=None) -> dict:
    """Build every file into config.out and return the stats (also written to OUT/stats.json).

    tokenizer (else the one config.tokenizer names, if any) adds token-length percentiles to the stats.
    Raises InputError naming file, line and field on a bad record, for an input file without records, and when
    no file got any example (nothing is written then; an output file without examples among others is a warning).
    """
    if tokenizer is None and config.tokenizer:
        from e2wm.models import load_tokenizer

        tokenizer = load_tokenizer(config.tokenizer, "--tokenizer")
    out = output_folder(config.out)
    shots = {task: TASKS[task].shots if config.shots is None else config.shots for task in TRAINING_TASKS}
    files, inputs = [], {}
    if config.plans is not None:
        made, report = plan_tasks(records(read_plans, config.plans), shots, config.seed, config.holdout_activities)
        files += made
        inputs["plans"] = {"file": str(config.plans), **report}
    if config.explore is not None:
        made, report = story_tasks(records(read_episodes, config.explore), shots, config.seed, config.story_steps)
        files += made
        inputs["explore"] = {"file": str(config.explore), **report}
    if files and not any(file.lines for file in files):
        skipped = sum((file.skipped for file in files), Counter())
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.most_common() if n) or "none"
        raise InputError(f"--out {out}: no example was built from the records (skipped: {reasons}); nothing written")
    for file in files:
        write_jsonl(out / file.path, file.lines)
    stats = {
        "config": {**result_settings(config), "shots": shots},
        "inputs": inputs,
        "files": {file.path: file_stats(file, tokenizer) for file in files},
    }
    write_json(out / "stats.json", stats)
    for file in files:
        if not file.lines:
            reasons = ", ".join(f"{n} {why}" for why, n in file.skipped.most_common()) or "no records for it"
            logger.warning("%s has no examples (%s); more programs or episodes give more", out / file.path, reasons)
    return stats


def records(read, path: str) -> list:
    """Every record of an experience file (read_plans or read_episodes); InputError when it holds none."""
    found = list(read(path))
    if not found:
        raise InputError(f"{path}: empty file (no records)")
    return found
