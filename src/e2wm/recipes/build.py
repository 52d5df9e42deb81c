"""Build recipe: experience records -> the four E2WM training files, evaluation files and stats.json.

    from e2wm import BuildConfig, build
    stats = build(BuildConfig(plans="plans.jsonl", explore="explore.jsonl", out="build", eval_episodes=60))

Writes OUT/train_{plan_gen,act_recog,count,obj_move}.jsonl ({"input", "ref"} per line, the released E2WM
format), the evaluation files of the records kept out of training in OUT/heldout/ (`e2wm.data.heldout`:
count, obj_move and obj_move_path with eval_episodes; plan_gen, plan_gen_confusing and act_recog with
eval_programs; plan_gen_unseen, plan_gen_unseen_confusing and act_recog_unseen with holdout_activities), and
OUT/stats.json, which also records each evaluation file's chance and majority baselines, and what
exclude_programs kept out of every file (`e2wm.data.exclude`; e.g. ["eai"]: the 342 programs of the Embodied
Agent Interface's tasks, so that a model trained on the files can be judged on them). Every answer is
re-derived from its record before it is written; records that contradict themselves are skipped and counted.
The output is fixed by the seed.
"""

import logging
import random
from collections import Counter
from pathlib import Path

from e2wm.benchmark import TASKS, TRAINING_TASKS
from e2wm.config import result_settings
from e2wm.data.build import HELDOUT_DIR, OutputFile, file_stats, plan_tasks, story_tasks
from e2wm.data.config import BuildConfig
from e2wm.data.exclude import Exclusion, known_programs, resolve
from e2wm.data.records import PlanRecord, read_episodes, read_plans
from e2wm.errors import InputError
from e2wm.eval.items import GenItem
from e2wm.eval.metrics import METRICS
from e2wm.eval.statistics import chance_baseline, majority_baseline
from e2wm.files import output_folder, write_json, write_jsonl
from e2wm.locks import output_lock

logger = logging.getLogger(__name__)
DRAWS = 10  # other items' references per item for a generation file's chance baseline
# the files each input can make (without .jsonl), for `remove_stale`
FROM_PLANS = ["train_plan_gen", "train_act_recog"] + [
    f"{HELDOUT_DIR}/{name}" for name in ("plan_gen", "plan_gen_confusing", "act_recog", "plan_gen_unseen",
                                         "plan_gen_unseen_confusing", "act_recog_unseen")]
FROM_EXPLORE = ["train_count", "train_obj_move"] + [
    f"{HELDOUT_DIR}/{name}" for name in ("count", "obj_move", "obj_move_path")]


def build(config: BuildConfig, tokenizer=None) -> dict:
    """Build every file into config.out and return the stats (also written to OUT/stats.json).

    tokenizer (else the one config.tokenizer names, if any) adds token-length percentiles to the stats.
    Files an earlier build made in config.out from the same inputs that this build does not write are deleted
    (`remove_stale`).
    Raises InputError naming file, line and field on a bad record, for an input file without records, when more
    records are asked for evaluation than can be spared, for an --exclude-programs value that names no known program
    or that leaves no plan record, and when no file got any example (nothing is written then;
    an output file without examples among others is a warning).
    """
    if tokenizer is None and config.tokenizer:
        from e2wm.models import load_tokenizer

        tokenizer = load_tokenizer(config.tokenizer, "--tokenizer")
    out = output_folder(config.out)
    with output_lock(out):  # one writer: a second build into this --out is refused
        shots = {task: TASKS[task].shots if config.shots is None else config.shots for task in TRAINING_TASKS}
        files, inputs = [], {}
        excluded = None
        if config.plans is not None:
            plans = records(read_plans, config.plans)
            exclusion = exclude_programs(config, plans)
            made, report = plan_tasks(plans, shots, config.seed, config.holdout_activities, config.eval_programs,
                                      frozenset() if exclusion is None else exclusion.ids)
            files += made
            inputs["plans"] = {"file": str(config.plans), **report}
            excluded = None if exclusion is None else exclusion.summary(r.program for r in plans)
        if config.explore is not None:
            made, report = story_tasks(records(read_episodes, config.explore), shots, config.seed, config.story_steps,
                                       config.eval_episodes, config.answer_form == "option")
            files += made
            inputs["explore"] = {"file": str(config.explore), **report}
        if files and not any(file.lines for file in files):
            skipped = sum((file.skipped for file in files), Counter())
            reasons = ", ".join(f"{n} {why}" for why, n in skipped.most_common() if n) or "none"
            raise InputError(f"--out {out}: no example was built from the records (skipped: {reasons}); nothing "
                             "written")
        for file in files:
            write_jsonl(out / file.path, file.lines)
        remove_stale(out, {file.path for file in files}, config.plans is not None, config.explore is not None)
        entries = {file.path: file_stats(file, tokenizer) for file in files}
        for file in files:
            if file.evaluation and file.lines:
                entries[file.path]["baselines"] = baselines(file, config.seed)
        stats = {"config": {**result_settings(config), "shots": shots}, "inputs": inputs,
                 "excluded_programs": excluded, "files": entries}
        write_json(out / "stats.json", stats)
        for file in files:
            if not file.lines:
                reasons = ", ".join(f"{n} {why}" for why, n in file.skipped.most_common()) or "no records for it"
                logger.warning("%s has no examples (%s); more programs or episodes give more", out / file.path, reasons)
        return stats


def remove_stale(out: Path, written: set[str], plans: bool, explore: bool) -> None:
    """Delete the files an earlier build made into out from the same kind of input (plans, explore) that this build
    does not write (an evaluation file of an option now 0): they came from another split, so an evaluation file left
    behind would hold records that are now in training, and `e2wm eval --data OUT/heldout` would score it."""
    names = (FROM_PLANS if plans else []) + (FROM_EXPLORE if explore else [])
    for name in (f"{stem}.jsonl" for stem in names):
        path = out / name
        if name not in written and path.is_file():
            path.unlink()
            logger.warning("%s: removed (written by an earlier build of another split)", path)


def exclude_programs(config: BuildConfig, plans: list[PlanRecord]) -> Exclusion | None:
    """The programs `--exclude-programs` keeps out (None without it), their ids checked against the programs the
    plans came from and the records (`data.exclude`); InputError when it would leave no plan record."""
    if config.exclude_programs is None:
        return None
    programs = [record.program for record in plans]
    exclusion = resolve(config.exclude_programs, known_programs(config.plans, programs))
    if all(program in exclusion.ids for program in programs):
        raise InputError(f"--exclude-programs {' '.join(config.exclude_programs)}: every one of the {len(plans)} "
                         f"plan records in {config.plans} is of an excluded program; nothing is left to build from")
    logger.info("--exclude-programs %s: %d programs kept out of every file (%d plan records)", exclusion.source,
                len(exclusion.ids), sum(program in exclusion.ids for program in programs))
    return exclusion


def records(read, path: str) -> list:
    """Every record of an experience file (read_plans or read_episodes); InputError when it holds none."""
    found = list(read(path))
    if not found:
        raise InputError(f"{path}: empty file (no records)")
    return found


def baselines(file: OutputFile, seed: int) -> dict:
    """An evaluation file's baselines in its task's metric (e2wm.benchmark), as `e2wm eval` reports them for QA:
    chance (an option picked at random: the mean of 1 / options) and majority (always the most frequent answer,
    which it names). For generation, majority is the score of always answering the most frequent reference, and
    chance the mean score of answering each item with another item's reference (DRAWS seeded draws per item)."""
    lines = file.lines
    if file.answer_field == "answer":
        answer, majority = majority_baseline([line["answer"] for line in lines])
        chance = chance_baseline([len(line["answer_list"]) for line in lines])
        return {"metric": "accuracy", "chance": chance, "majority": majority, "majority_answer": answer}
    metric = TASKS[Path(file.path).stem].metric
    refs = [line["ref"] for line in lines]
    answer, _ = majority_baseline(refs)
    rng = random.Random(f"{seed}/{file.path}/chance")
    others = [(rng.choice(refs[:i] + refs[i + 1:]), ref) for i, ref in enumerate(refs) if len(refs) > 1
              for _ in range(DRAWS)]

    def score(pairs: list[tuple[str, str]]) -> float | None:
        scored = METRICS[metric].score([GenItem("", ref) for _, ref in pairs], [p for p, _ in pairs], None)
        values = scored.per_item[metric]
        return sum(values) / len(values) if values else None  # one item: no other item's reference to answer

    return {"metric": metric, "chance": score(others), "majority": score([(answer, ref) for ref in refs]),
            "majority_answer": answer}
