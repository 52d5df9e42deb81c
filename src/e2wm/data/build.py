"""Building the training and evaluation files from experience records: the components of recipes.build.

The recipe writes DIR/train_{plan_gen,act_recog,count,obj_move}.jsonl ({"input", "ref"} per line, the released
E2WM format), the evaluation files of the records kept out of training (`heldout`) in DIR/heldout/:
count, obj_move and obj_move_path.jsonl (`--eval-episodes`), plan_gen, plan_gen_confusing and act_recog.jsonl
(`--eval-programs`), plan_gen_unseen, plan_gen_unseen_confusing and act_recog_unseen.jsonl
(`--holdout-activities`), and DIR/stats.json. Every answer is re-derived from its record before it is written;
records that contradict themselves are skipped and counted. The output is fixed by the seed and the set of
records (not their order in the files, which parallel collection does not fix).
"""

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tqdm import tqdm

from e2wm.data import act_recog, counting, heldout, object_path, plan_gen
from e2wm.data.balance import COUNT_SHARES, PATH_SHARES, TRAIN_COUNT_SHARES, Declined, Quota
from e2wm.data.fewshot import Block, Format, assemble, choose_holdout, pick_shots, unique
from e2wm.data.records import Episode, Inconsistent, PlanRecord
from e2wm.data.replay import Trajectory, replay
from e2wm.data.stats import distribution, lengths
from e2wm.errors import InputError

HELDOUT_DIR = "heldout"
SHOTS = {"count": 5, "obj_move": 2, "obj_move_path": 2, "plan_gen": 2, "act_recog": 2}  # the released eval files
ROOM_SHARES = dict.fromkeys(object_path.OPTIONS, 1)  # obj_move answers: every option alike (the released file's
# 67 answers are 6 to 15 per room)


@dataclass
class OutputFile:
    """One output file: its lines, what was skipped on the way, and the answer tallies for stats.json."""

    path: str  # relative to the output folder
    lines: list[dict]
    skipped: Counter = field(default_factory=Counter)
    answers: dict[str, dict[str, int]] = field(default_factory=dict)
    answer_field: str = "ref"

    @property
    def evaluation(self) -> bool:
        return self.path.startswith(HELDOUT_DIR + "/")


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


def evaluation_file(task: str, queries: list[Block], shots: list[Block] | None, fmt: Format, skipped: Counter,
                    options: list[str] | None = None, tally: str = "answer") -> OutputFile:
    """heldout/<task>.jsonl: the distinct queries after the same shots; options make it multiple choice. The
    stats tally each item's label (its answer, plan length or path length) under the name tally."""
    made = heldout.lines(queries, shots, fmt, skipped, options)
    field_name = "ref" if options is None else "answer"
    labels = {(q.source, q.answer): q.label for q in queries}
    tallied = distribution([labels[line["source"], line[field_name]] for line in made])
    return OutputFile(f"{HELDOUT_DIR}/{task}.jsonl", made, skipped, {tally: tallied}, field_name)


def plan_tasks(records: list[PlanRecord], shots: dict[str, int], seed: int, holdout: int,
               eval_programs: int = 0, excluded: frozenset[str] = frozenset()) -> tuple[list[OutputFile], dict]:
    """plan_gen and act_recog training files, the seen-activity evaluation files when eval_programs > 0 and the
    unseen-activity ones when holdout > 0. The records of excluded programs are left out of every file, before
    anything else (activities, splits, shots, the confusing questions' distractor objects); the report counts
    them as `excluded`."""
    report = {"records": len(records), "excluded": 0, "failed": 0, "inconsistent": Counter()}
    good = []
    for record in records:
        if record.program in excluded:
            report["excluded"] += 1
            continue
        if not record.success:
            report["failed"] += 1
            continue
        try:
            plan_gen.verify(record)
        except Inconsistent as reason:
            report["inconsistent"][str(reason)] += 1
            continue
        good.append(record)
    good.sort(key=lambda r: r.program)  # the files do not depend on the order the collector's workers wrote in
    activities = sorted({plan_gen.activity_name(r) for r in good})
    if holdout and holdout >= len(activities):
        raise InputError(f"--holdout-activities {holdout}: the plans have {len(activities)} activities with a "
                         "verified plan; at least one must stay in training")
    held = choose_holdout(activities, holdout, seed)
    seen = [r for r in good if plan_gen.activity_name(r) not in held]
    unseen = [r for r in good if plan_gen.activity_name(r) in held]
    evaluated = heldout.choose_programs(seen, plan_gen.activity_name, eval_programs, seed)
    train = [r for r in seen if r.program not in evaluated]
    report.update(used=len(train), heldout={"activities": sorted(held), "programs": len(unseen)},
                  evaluation={"programs": sorted(evaluated)})

    files = [
        training_file("plan_gen", [plan_gen.block(r) for r in train], plan_gen.PLAN_GEN, shots["plan_gen"], seed,
                      {"plan_steps": "label", "activity": "group"}),
        training_file("act_recog", [act_recog.block(r) for r in train], act_recog.ACT_RECOG, shots["act_recog"],
                      seed, {"activity": "label"}),
    ]
    pool = plan_gen.object_pool(good)
    if evaluated:
        files += plan_evaluation([r for r in seen if r.program in evaluated], "", train, activities, pool, seed)
    if held:
        files += plan_evaluation(unseen, "_unseen", train, activities, pool, seed)
    return files, report


def plan_evaluation(records: list[PlanRecord], variant: str, train: list[PlanRecord], activities: list[str],
                    pool: list[str], seed: int) -> list[OutputFile]:
    """plan_gen<variant>, plan_gen<variant>_confusing (generation) and act_recog<variant> (4 options) of records
    kept out of training whose question and plan no training example tells (a plan trained under another
    question is a memorised answer); shots from the training programs."""
    known_questions = {plan_gen.block(r).prompt for r in train}
    known_plans = {plan_gen.plan_english(r) for r in train}
    skipped = {name: Counter() for name in ("plan", "confusing", "act")}
    fresh = heldout.keep_new(records, known_questions, lambda r: plan_gen.block(r).prompt, skipped["plan"])
    fresh = heldout.keep_new(fresh, known_plans, plan_gen.plan_english, skipped["plan"])  # a trained answer too
    questions = {(b.prompt, b.answer): r for r in fresh if (b := plan_gen.block(r))}
    skipped["plan"].update(duplicate=len(fresh) - len(questions))
    fresh = list(questions.values())
    skipped["confusing"].update(skipped["plan"])
    name = f"plan_gen{variant}"
    rng = random.Random(f"{seed}/{name}/shots")
    candidates = list({plan_gen.block(r).prompt: r for r in train}.values())
    shot_records = heldout.fixed_shots(candidates, SHOTS["plan_gen"], rng, plan_gen.activity_name,
                                       lambda r: len(plan_gen.block(r).shot()))
    shots = None if shot_records is None else [plan_gen.block(r) for r in shot_records]
    confusing_shots = None if shot_records is None else [plan_gen.confusing_block(r, pool, rng) for r in shot_records]
    confusing = [plan_gen.confusing_block(r, pool, random.Random(f"{seed}/{name}_confusing/{r.program}"))
                 for r in fresh]
    files = [
        evaluation_file(name, [plan_gen.block(r) for r in fresh], shots, plan_gen.PLAN_GEN, skipped["plan"],
                        tally="plan_steps"),
        evaluation_file(f"{name}_confusing", confusing, confusing_shots, plan_gen.PLAN_GEN, skipped["confusing"],
                        tally="plan_steps"),
    ]
    fresh = heldout.keep_new(records, known_plans, plan_gen.plan_english, skipped["act"])
    queries, duplicates = unique([act_recog.qa_block(r) for r in fresh])
    skipped["act"].update(duplicate=duplicates)
    shot_pool, _ = unique([act_recog.qa_block(r) for r in train])
    task = f"act_recog{variant}"
    chosen = with_shots(queries, shot_pool, SHOTS["act_recog"], seed, task, skipped["act"])
    lines = [act_recog.qa_example(s, q, activities, random.Random(f"{seed}/{task}/options/{q.source}"))
             for q, s in chosen]
    files.append(OutputFile(f"{HELDOUT_DIR}/{task}.jsonl", lines, skipped["act"],
                            {"answer": distribution([q.label for q, _ in chosen])}, answer_field="answer"))
    return files


def ask(trajectories: list[Trajectory], task: str, seed: int, make: Callable) -> tuple[list, Counter]:
    """make(trajectory, rng) for each trajectory, rng seeded by seed, task and episode; the episodes that give
    no question, are declined by a quota (`balance`) or contradict themselves are counted."""
    made, skipped = [], Counter()
    for trajectory in trajectories:
        try:
            question = make(trajectory, random.Random(f"{seed}/{task}/{trajectory.episode.key}"))
        except Inconsistent as reason:
            skipped[f"inconsistent: {reason}"] += 1
            continue
        except Declined as answer:
            skipped[f"balance: answer {answer} at its share"] += 1
            continue
        if question is None:
            skipped["no_question"] += 1
        else:
            made.append(question)
    return made, skipped


def story_tasks(episodes: list[Episode], shots: dict[str, int], seed: int, max_steps: int | None = None,
                eval_episodes: int = 0, option_form: bool = False) -> tuple[list[OutputFile], dict]:
    """count and obj_move training files from the episodes that replay consistently, and with eval_episodes > 0
    the count, obj_move and obj_move_path evaluation files of that many other episodes. option_form: the training
    files answer as the evaluation files ask (count: the digit; obj_move: where the object was before or after a
    room) instead of the released sentences and paths."""
    report = {"episodes": len(episodes), "inconsistent": Counter()}
    trajectories = []
    for episode in tqdm(episodes, desc="stories", unit="episode", disable=None):
        try:
            trajectories.append(replay(episode, max_steps))
        except Inconsistent as reason:
            report["inconsistent"][str(reason)] += 1
    trajectories.sort(key=lambda t: t.episode.key)  # independent of the order the collector's workers wrote in
    evaluated = heldout.choose_episodes([t.episode.key for t in trajectories], eval_episodes, seed)
    train = [t for t in trajectories if t.episode.key not in evaluated]
    report.update(used=len(train), evaluation={"episodes": len(evaluated)})

    count_quota, room_quota = Quota(TRAIN_COUNT_SHARES, capped=("0",)), Quota(ROOM_SHARES)
    counts, count_skipped = ask(train, "count", seed, lambda t, rng: counting.question(t, rng, count_quota))
    paths, path_skipped = ask(train, "obj_move", seed, object_path.path_question)
    wheres, where_skipped = ([], Counter()) if not (option_form or evaluated) else ask(
        train, "obj_move_where", seed, lambda t, rng: object_path.where_question(t, rng, room_quota))
    moves, move_skipped = (wheres, where_skipped) if option_form else (paths, path_skipped)
    files = [
        training_file("count", [q.block(digits=option_form) for q in counts],
                      counting.COUNT_QA if option_form else counting.COUNT, shots["count"], seed, {"items": "label"},
                      count_skipped),
        training_file("obj_move", [q.block() for q in moves], object_path.OBJ_MOVE, shots["obj_move"], seed,
                      {"answer" if option_form else "rooms": "label"}, move_skipped),
    ]
    if evaluated:
        files += story_evaluation([t for t in trajectories if t.episode.key in evaluated], counts, paths, wheres, seed)
    return files, report


def story_evaluation(trajectories: list[Trajectory], counts: list[counting.CountQuestion],
                     paths: list[object_path.PathQuestion], wheres: list[object_path.WhereQuestion],
                     seed: int) -> list[OutputFile]:
    """count (5 options), obj_move (6 rooms) and obj_move_path (generation) of episodes kept out of training,
    their answers balanced towards the released files' (`balance`); shots from the training episodes' questions."""
    count_quota, room_quota = Quota(COUNT_SHARES, capped=("0",)), Quota(ROOM_SHARES)
    path_quota = Quota(PATH_SHARES)
    asked = {
        "count": ask(trajectories, "count", seed, lambda t, rng: counting.question(t, rng, count_quota)),
        "obj_move": ask(trajectories, "obj_move", seed, lambda t, rng: object_path.where_question(t, rng, room_quota)),
        "obj_move_path": ask(trajectories, "obj_move_path", seed,
                             lambda t, rng: object_path.path_question(t, rng, path_quota)),
    }
    known = {"count": {q.story for q in counts}, "moves": {q.story for q in [*paths, *wheres]}}
    for task, (questions, skipped) in asked.items():
        asked[task] = (heldout.keep_new(questions, known["count" if task == "count" else "moves"],
                                        lambda q: q.story, skipped), skipped)
    pools = {"count": [q.block(digits=True) for q in counts], "obj_move": [q.block("is") for q in wheres],
             "obj_move_path": [b for q in paths if (b := q.block()).label in PATH_SHARES]}
    shots = {task: heldout.fixed_shots(unique(pool)[0], SHOTS[task], random.Random(f"{seed}/{task}/shots"),
                                       lambda b: b.label, lambda b: len(b.shot()))
             for task, pool in pools.items()}
    (count, count_skipped), (where, where_skipped), (path, path_skipped) = asked.values()
    return [
        evaluation_file("count", [q.block(digits=True) for q in count], shots["count"], counting.COUNT_QA,
                        count_skipped, counting.OPTIONS),
        evaluation_file("obj_move", [q.block() for q in where], shots["obj_move"], object_path.OBJ_MOVE,
                        where_skipped, object_path.OPTIONS),
        evaluation_file("obj_move_path", [q.block() for q in path], shots["obj_move_path"], object_path.OBJ_MOVE,
                        path_skipped, tally="rooms"),
    ]


def file_stats(file: OutputFile, tokenizer) -> dict:
    """stats.json's entry of one file: examples, what was skipped, lengths (characters, tokens) and answers."""
    return {
        "examples": len(file.lines),
        "skipped": dict(file.skipped),
        "input": lengths(file.lines, "input", tokenizer),
        file.answer_field: lengths(file.lines, file.answer_field, tokenizer),
        "answers": file.answers,
    }
