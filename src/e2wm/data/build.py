"""Building the training files from experience records: the components of recipes.build.

The recipe writes DIR/train_{plan_gen,act_recog,count,obj_move}.jsonl ({"input", "ref"} per line, the released
E2WM format), with K > 0 also DIR/heldout/plan_gen_unseen.jsonl (generation, {"input", "ref"}) and
DIR/heldout/act_recog_unseen.jsonl (multiple choice, {"input", "answer_list", "answer"}) on activities
that never appear in training, and DIR/stats.json. Every answer is re-derived from its record before it
is written; records that contradict themselves are skipped and counted. The output is fixed by the seed.
"""

import random
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from e2wm.data import act_recog, counting, object_path, plan_gen
from e2wm.data.fewshot import Block, Format, assemble, choose_holdout, pick_shots, unique
from e2wm.data.records import Episode, Inconsistent, PlanRecord
from e2wm.data.replay import replay
from e2wm.data.stats import distribution, lengths
from e2wm.errors import InputError

HELDOUT_DIR = "heldout"


@dataclass
class OutputFile:
    """One output file: its lines, what was skipped on the way, and the answer tallies for stats.json."""

    path: str  # relative to the output folder
    lines: list[dict]
    skipped: Counter = field(default_factory=Counter)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)
    answer_field: str = "ref"


def with_shots(queries: list[Block], pool: list[Block], k: int, seed: int, task: str,
               skipped: Counter) -> list[tuple[Block, list[Block]]]:
    """Each query with k shots from the pool (other sources), drawn by a Random seeded per query."""
    result = []
    for query in queries:
        shots = pick_shots(pool, query, k, random.Random(f"{seed}/{task}/{query.source}"))
        if shots is None:
            skipped["too_few_shots"] += 1
        else:
            result.append((query, shots))
    return result


def training_file(name: str, blocks: list[Block], fmt: Format, k: int, seed: int, tallies: dict[str, str],
                  skipped: Counter | None = None) -> OutputFile:
    """train_<name>.jsonl from distinct blocks; tallies maps a stats.json name to a Block attribute."""
    pool, duplicates = unique(blocks)
    skipped = skipped if skipped is not None else Counter()
    skipped.update(duplicate=duplicates)
    chosen = with_shots(pool, pool, k, seed, name, skipped)
    answers = {tally: distribution([getattr(q, attr) for q, _ in chosen]) for tally, attr in tallies.items()}
    return OutputFile(f"train_{name}.jsonl", [assemble(fmt, s, q) for q, s in chosen], skipped, answers)


def plan_tasks(records: list[PlanRecord], shots: dict[str, int], seed: int,
               holdout: int) -> tuple[list[OutputFile], dict]:
    """plan_gen and act_recog training files, plus the unseen-activity files when holdout > 0."""
    report = {"records": len(records), "failed": 0, "inconsistent": Counter()}
    good = []
    for record in records:
        if not record.success:
            report["failed"] += 1
            continue
        try:
            plan_gen.verify(record)
        except Inconsistent as reason:
            report["inconsistent"][str(reason)] += 1
            continue
        good.append(record)
    activities = sorted({plan_gen.activity_name(r) for r in good})
    if holdout and holdout >= len(activities):
        raise InputError(f"--holdout-activities {holdout}: the plans have {len(activities)} activities with a "
                         "verified plan; at least one must stay in training")
    held = choose_holdout(activities, holdout, seed)
    train = [r for r in good if plan_gen.activity_name(r) not in held]
    unseen = [r for r in good if plan_gen.activity_name(r) in held]
    report.update(used=len(train), heldout={"activities": sorted(held), "programs": len(unseen)})

    files = [
        training_file("plan_gen", [plan_gen.block(r) for r in train], plan_gen.PLAN_GEN, shots["plan_gen"], seed,
                      {"plan_steps": "label", "activity": "group"}),
        training_file("act_recog", [act_recog.block(r) for r in train], act_recog.ACT_RECOG, shots["act_recog"],
                      seed, {"activity": "label"}),
    ]
    if held:
        files += unseen_files(unseen, train, activities, shots, seed)
    return files, report


def unseen_files(unseen: list[PlanRecord], train: list[PlanRecord], activities: list[str], shots: dict[str, int],
                 seed: int) -> list[OutputFile]:
    """Held-out plan generation ({"input", "ref"}) and activity recognition QA, shots from training programs."""
    queries, duplicates = unique([plan_gen.block(r) for r in unseen])
    pool, _ = unique([plan_gen.block(r) for r in train])
    skipped = Counter(duplicate=duplicates)
    chosen = with_shots(queries, pool, shots["plan_gen"], seed, "plan_gen_unseen", skipped)
    lines = [assemble(plan_gen.PLAN_GEN, s, q) for q, s in chosen]
    generation = OutputFile(f"{HELDOUT_DIR}/plan_gen_unseen.jsonl", lines, skipped,
                          {"activity": distribution([q.group for q, _ in chosen])})
    queries, duplicates = unique([act_recog.qa_block(r) for r in unseen])
    pool, _ = unique([act_recog.qa_block(r) for r in train])
    skipped = Counter(duplicate=duplicates)
    chosen = with_shots(queries, pool, shots["act_recog"], seed, "act_recog_unseen", skipped)
    lines = [act_recog.qa_example(s, q, activities, random.Random(f"{seed}/act_recog_unseen/options/{q.source}"))
             for q, s in chosen]
    choice = OutputFile(f"{HELDOUT_DIR}/act_recog_unseen.jsonl", lines, skipped,
                      {"activity": distribution([q.label for q, _ in chosen])}, answer_field="answer")
    return [generation, choice]


def story_tasks(episodes: list[Episode], shots: dict[str, int], seed: int,
                max_steps: int | None = None) -> tuple[list[OutputFile], dict]:
    """count and obj_move training files from the episodes that replay consistently."""
    report = {"episodes": len(episodes), "inconsistent": Counter()}
    blocks = {"count": [], "obj_move": []}
    skipped = {"count": Counter(), "obj_move": Counter()}
    for episode in tqdm(episodes, desc="stories", unit="episode", disable=None):
        try:
            trajectory = replay(episode, max_steps)
        except Inconsistent as reason:
            report["inconsistent"][str(reason)] += 1
            continue
        for task, module in (("count", counting), ("obj_move", object_path)):
            try:
                block = module.block(trajectory, random.Random(f"{seed}/{task}/{episode.key}"))
            except Inconsistent as reason:
                skipped[task][f"inconsistent: {reason}"] += 1
                continue
            if block is None:
                skipped[task]["no_question"] += 1
            else:
                blocks[task].append(block)
    report["used"] = len(episodes) - sum(report["inconsistent"].values())
    files = [
        training_file("count", blocks["count"], counting.COUNT, shots["count"], seed, {"items": "label"},
                      skipped["count"]),
        training_file("obj_move", blocks["obj_move"], object_path.OBJ_MOVE, shots["obj_move"], seed,
                      {"rooms": "label"}, skipped["obj_move"]),
    ]
    return files, report


def file_stats(file: OutputFile, tokenizer) -> dict:
    """stats.json's entry of one file: examples, what was skipped, lengths (characters, tokens) and answers."""
    return {
        "examples": len(file.lines),
        "skipped": dict(file.skipped),
        "input": lengths(file.lines, "input", tokenizer),
        file.answer_field: lengths(file.lines, file.answer_field, tokenizer),
        "answers": file.answers,
    }
