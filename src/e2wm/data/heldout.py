"""Evaluation files from records kept out of training: which records, the shots, and the lines.

`e2wm build` keeps out of its training files the exploration episodes of `--eval-episodes N`, the programs of
`--eval-programs M` (of activities that stay in training: the "seen" files) and every program of the
`--holdout-activities K` activities (the "unseen" files), and writes questions about them in the released
benchmark's evaluation formats: `{"input", "answer_list", "answer"}` (multiple choice) or `{"input", "ref"}`
(generation), plus `source`, the record the item was made from (an episode's key or a program id; the
evaluation ignores it). Shots come from training records only, and as in the released files they are the same
for every item of a file (except activity recognition, whose released items each have their own). A question
whose text a training example also tells (two records can tell the same story or plan) is left out.
"""

import random
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from e2wm.data.fewshot import Block, Format, unique
from e2wm.data.records import PlanRecord
from e2wm.errors import InputError

T = TypeVar("T")


def choose_episodes(keys: list[str], n: int, seed: int) -> set[str]:
    """n distinct episode keys (of those given), fixed by the seed; InputError when none would stay in training."""
    distinct = sorted(set(keys))
    if n and n >= len(distinct):
        raise InputError(f"--eval-episodes {n}: {len(distinct)} episodes replay consistently; at least one must "
                         "stay in training")
    return set(random.Random(f"{seed}/eval-episodes").sample(distinct, n))


def choose_programs(records: list[PlanRecord], activity: Callable[[PlanRecord], str], n: int, seed: int) -> set[str]:
    """n program ids taken in turn from each activity (in a seeded order), each activity keeping at least one program
    in training; InputError when the activities cannot spare n."""
    programs: dict[str, list[str]] = {}
    for record in records:
        ids = programs.setdefault(activity(record), [])
        if record.program not in ids:
            ids.append(record.program)
    rng = random.Random(f"{seed}/eval-programs")
    spare = []
    for name in sorted(programs):
        ids = sorted(programs[name])
        rng.shuffle(ids)
        spare.append(ids[1:])  # the first stays in training
    if n > sum(map(len, spare)):
        raise InputError(f"--eval-programs {n}: the plans' {len(programs)} activities can spare "
                         f"{sum(map(len, spare))} programs (each keeps one in training)")
    chosen: list[str] = []
    while len(chosen) < n:
        chosen += [ids.pop() for ids in spare if ids][: n - len(chosen)]
    return set(chosen)


def keep_new(questions: list[T], known: set[str], text: Callable[[T], str], skipped: Counter) -> list[T]:
    """The questions whose text (a story, a plan question) no training example tells; the others are counted in
    skipped as 'in_training'."""
    kept = [q for q in questions if text(q) not in known]
    skipped.update(in_training=len(questions) - len(kept))
    return kept


def fixed_shots(pool: list[T], k: int, rng: random.Random, key: Callable[[T], str],
                size: Callable[[T], int]) -> list[T] | None:
    """k shots for every item of a file: one of each of k keys (answers, activities) where the pool has that many,
    each among the shortest quarter of its key's examples (shots make every item longer), in a random order; None
    when the pool has fewer than k."""
    if len(pool) < k:
        return None
    groups: dict[str, list[T]] = {}
    for item in sorted(pool, key=size):
        groups.setdefault(key(item), []).append(item)
    names = sorted(groups)
    chosen = [rng.choice(groups[name][: max(1, len(groups[name]) // 4)])
              for name in rng.sample(names, min(k, len(names)))]
    rest = [item for item in sorted(pool, key=size) if item not in chosen]
    chosen += rest[: k - len(chosen)]
    rng.shuffle(chosen)
    return chosen


def lines(queries: list[Block], shots: list[Block] | None, fmt: Format, skipped: Counter,
          options: list[str] | None = None) -> list[dict]:
    """The file's lines: the shots with their answers, then each distinct query; with options a multiple-choice
    line ({"input", "answer_list", "answer", "source"}), else a generation line ({"input", "ref", "source"})."""
    queries, duplicates = unique(queries)
    skipped.update(duplicate=duplicates)
    if shots is None:
        skipped.update(too_few_shots=len(queries))
        return []
    made = []
    for query in queries:
        text = fmt.header + fmt.separator.join([s.shot() for s in shots] + [query.prompt])
        if options is None:
            made.append({"input": text, "ref": query.answer, "source": query.source})
        elif query.answer in options:
            made.append({"input": text, "answer_list": options, "answer": query.answer, "source": query.source})
        else:
            skipped["answer_not_an_option"] += 1
    return made
