"""Two evaluation runs compared item by item: paired bootstrap intervals per task, over tasks, for perplexity.

A run directory is what `e2wm eval` writes; the per-item scores come from its predictions/<task>.jsonl
(multiple choice: 1 where the prediction is the answer, else 0; generation: the row's `score`, its ROUGE-L
or LCS) and the perplexity's per-text NLL from predictions/ppl.jsonl. Two runs are compared only over the
same items: the same indices with the same gold answers (or references), else InputError naming the file.
The statistics are e2wm.eval.statistics'; docs/statistics.md says what they mean.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e2wm.errors import InputError, at
from e2wm.eval.statistics import Interval, Paired, mean_over_tasks, paired_bootstrap, ratio_samples, resample_indices
from e2wm.files import iter_jsonl, require

PPL = "ppl"


def predictions_file(run: Path, task: str) -> Path:
    return run / "predictions" / f"{task}.jsonl"


def item_scores(run: Path, task: str) -> tuple[list[tuple], list[float]]:
    """(per item its identity (index, gold answer or reference), per item its score in [0, 1]) from the run's
    predictions/<task>.jsonl.

    Raises:
        InputError: the file is missing, or a row lacks a field (a generation row without `score` was written
            by an `e2wm eval` older than per-item scores: re-run it).
    """
    file = predictions_file(run, task)
    if not file.is_file():
        raise InputError(f"{file}: missing; the report compares runs item by item from their predictions "
                         f"(re-run `e2wm eval` into {run})")
    keys, scores = [], []
    for line, row in iter_jsonl(file):
        index = require(row, "index", int, file, line)
        if "answer" in row:
            keys.append((index, row["answer"]))
            scores.append(float(require(row, "prediction", str, file, line) == row["answer"]))
            continue
        if "score" not in row:
            raise InputError(f"{at(file, line, 'score')} is missing (written before e2wm eval kept per-item "
                             f"scores): re-run `e2wm eval` into {run}")
        keys.append((index, require(row, "ref", str, file, line)))
        scores.append(float(require(row, "score", (int, float), file, line)))
    return keys, scores


def same_items(task: str, base: Path, other: Path, base_keys: list[tuple], other_keys: list[tuple]) -> None:
    """InputError naming both files when the runs scored different items (count, order or gold answers)."""
    if base_keys == other_keys:
        return
    shorter = min(len(base_keys), len(other_keys))
    first = next((i for i, (a, b) in enumerate(zip(base_keys, other_keys)) if a != b), shorter)
    raise InputError(
        f"task {task}: {predictions_file(base, task)} ({len(base_keys)} items) and {predictions_file(other, task)} "
        f"({len(other_keys)} items) scored different items (they first differ at row {first + 1}); runs are "
        "compared item by item: evaluate both on the same --data with the same --limit")


@dataclass
class Comparison:
    """A later run against the base run: per task the paired resamples, the means over tasks, the perplexity."""

    tasks: dict[str, Paired]  # the tasks both runs scored
    mean: Interval | None  # unweighted mean over tasks of the differences (None unless both have every task)
    headline: Interval | None  # the paper's headline: the mean over tasks of the relative gains
    headline_left_out: list[str]  # tasks whose base score is 0 (no relative gain), left out of the headline
    ppl: Paired | None  # perplexities (exp of the mean token NLL) resampled over the same texts
    ppl_note: str | None  # why there is no perplexity interval, when both runs have a perplexity but no pairing


def ppl_rows(run: Path) -> list[dict] | None:
    """The run's predictions/ppl.jsonl rows (index, sha256, nll, tokens), or None when it has none."""
    file = predictions_file(run, PPL)
    if not file.is_file():
        return None
    rows = []
    for line, row in iter_jsonl(file):
        rows.append({"key": (require(row, "index", int, file, line), require(row, "sha256", str, file, line)),
                     "nll": require(row, "nll", (int, float), file, line),
                     "tokens": require(row, "tokens", int, file, line)})
    return rows


def paired_perplexity(base: Path, other: Path, resamples: int, seed: int) -> tuple[Paired | None, str | None]:
    """Both runs' perplexity over the same resamples of texts, or (None, the reason) when they cannot be paired."""
    rows = [ppl_rows(base), ppl_rows(other)]
    if None in rows:
        missing = base if rows[0] is None else other
        return None, f"no interval: {predictions_file(missing, PPL)} is missing (re-run `e2wm eval` with --ppl-data)"
    if [r["key"] for r in rows[0]] != [r["key"] for r in rows[1]]:
        return None, "no interval: the runs scored different texts (other --ppl-data, --ppl-mode or --ppl-texts)"
    indices = resample_indices(len(rows[0]), resamples, seed, PPL)  # (R, texts)
    samples = [np.exp(ratio_samples([r["nll"] for r in run], [r["tokens"] for r in run], indices)) for run in rows]
    means = [float(np.exp(sum(r["nll"] for r in run) / sum(r["tokens"] for r in run))) for run in rows]
    return Paired(means[0], means[1], samples[0], samples[1]), None


def compare(base: Path, other: Path, tasks: list[str], complete: bool, perplexity: bool, resamples: int,
            seed: int) -> Comparison:
    """Compare other against base with paired bootstrap intervals.

    Args:
        base, other: `e2wm eval` run directories.
        tasks: the tasks both runs scored, in the report's order.
        complete: tasks is every task of the report (the means over tasks are given only then).
        perplexity: both runs have a perplexity in their metrics.json.
        resamples, seed: of the bootstrap (each task resampled with its own stream, see `resample_indices`).
    Raises:
        InputError: a predictions file is missing or bad, or the runs scored different items of a task.
    """
    pairs: dict[str, Paired] = {}
    for task in tasks:
        (base_keys, base_scores), (other_keys, other_scores) = item_scores(base, task), item_scores(other, task)
        same_items(task, base, other, base_keys, other_keys)
        pairs[task] = paired_bootstrap(base_scores, other_scores, resamples, seed, task)
    overall = complete and len(pairs) > 1
    mean = mean_over_tasks(list(pairs.values())) if overall else None
    left_out = [task for task, pair in pairs.items() if pair.base_mean == 0]
    relative = [pair for pair in pairs.values() if pair.base_mean > 0]
    headline = mean_over_tasks(relative, relative=True) if overall and relative else None
    ppl, note = paired_perplexity(base, other, resamples, seed) if perplexity else (None, None)
    return Comparison(pairs, mean, headline, left_out, ppl, note)
