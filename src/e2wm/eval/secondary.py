"""The report's metrics beside each task's main one, compared item by item: a plan file's execution metrics
(steps executed, goal facts reached, whole plan executable: `e2wm.eval.execution`) and EAI's executability.

A task's secondary metrics are the entries of `metrics.METRICS` that both runs' results hold beside the task's
headline metric. Their per-item values are the prediction rows' fields of the same name; an item is paired when
both runs give it a value and their judge counted it (`score` not null): items without a known program have no
execution values, EAI's uncounted tasks no score. Each difference comes with the paired bootstrap interval and
permutation test of `statistics.paired_bootstrap`, as the main table's.
"""

from dataclasses import dataclass
from pathlib import Path

from e2wm.errors import InputError
from e2wm.eval.compare import existing_predictions
from e2wm.eval.metrics import METRICS, headline
from e2wm.eval.statistics import Paired, paired_bootstrap
from e2wm.files import at, iter_jsonl


@dataclass
class Secondary:
    """One secondary metric of a task against the first run: per later run its paired comparison (None when the
    run lacks it or no item has a value in both runs)."""

    task: str
    metric: str
    pairs: list[Paired | None]


def item_values(run: Path, task: str, metrics: list[str]) -> dict[str, list[float | None]]:
    """Per metric, per prediction row of the task (the file read once), the metric's value (a bool as 0/1), None
    where the row has none or its judge did not count it.

    Raises:
        InputError: the predictions file is missing, or a value is neither a number, a bool nor null (file, line,
            field).
    """
    file = existing_predictions(run, task)
    values: dict[str, list[float | None]] = {metric: [] for metric in metrics}
    for line, row in iter_jsonl(file):
        for metric in metrics:
            value = row.get(metric)
            if value is not None and not isinstance(value, (int, float)):
                raise InputError(f"{at(file, line, metric)} must be a number, true/false or null, got {value!r}")
            values[metric].append(None if value is None or row.get("score", 0) is None else float(value))
    return values


def secondary_metrics(result: dict) -> list[str]:
    """The metrics of `METRICS` in a task's result other than its headline, in table order."""
    main = headline(result)[0]
    return [name for name in METRICS if name != main and name in result]


def compare_secondary(paths: list[Path], metrics: list[dict[str, dict]], resamples: int,
                      seed: int) -> list[Secondary]:
    """Every secondary metric of the first run's tasks (`secondary_metrics`) that a later run also has, paired
    against the first over the items both give a value.

    Args:
        paths, metrics: the runs' directories and metrics.json contents, the first the baseline (the runs scored
            the same items of a shared task: `compare.same_items`, checked by the main table first).
        resamples, seed: of the paired bootstrap, the stream named '<task>/<metric>'.
    Raises:
        InputError: a missing or bad predictions file (`item_values`).
    """
    found = []
    for task, result in metrics[0].items():
        names = secondary_metrics(result)
        later = [(path, item_values(path, task, names)) if set(names) & set(other.get(task, {})) else (path, None)
                 for path, other in zip(paths[1:], metrics[1:])]
        if not names or all(values is None for _, values in later):
            continue
        base = item_values(paths[0], task, names)
        for metric in names:
            pairs: list[Paired | None] = []
            for (_, values), other in zip(later, metrics[1:]):
                kept = ([(b, o) for b, o in zip(base[metric], values[metric]) if b is not None and o is not None]
                        if values is not None and metric in other.get(task, {}) else [])
                pairs.append(paired_bootstrap([b for b, _ in kept], [o for _, o in kept], resamples, seed,
                                              f"{task}/{metric}") if kept else None)
            if any(pairs):
                found.append(Secondary(task, metric, pairs))
    return found
