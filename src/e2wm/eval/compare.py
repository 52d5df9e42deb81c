"""Two evaluation runs compared item by item: paired intervals and permutation tests per task, over tasks, for
perplexity.

A run directory is what `e2wm eval` writes; the per-item scores come from its predictions/<task>.jsonl
(multiple choice: 1 where the prediction is the answer, else 0; generation: the row's `score`, its ROUGE-L
or LCS, or EAI's task success, null for a task EAI's evaluator does not count) and each perplexity set's per-text
NLL from predictions/<set>.jsonl (`ppl`, the first --ppl-data file; `ppl:<label>`, each further one). Two runs
are compared only over the same items: the same indices with the same gold answers (or references) and, where
both runs recorded them, the same digests of each item's input (and options), and the same items left uncounted
by a judge (those are left out of the pairing), else InputError naming the files. The statistics are
e2wm.eval.statistics'; docs/statistics.md says what they mean.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2wm.errors import InputError, at
from e2wm.eval.statistics import Interval, Paired, mean_over_tasks, paired_bootstrap, perplexity_of
from e2wm.files import iter_jsonl, require

PPL = "ppl"  # the task name of the perplexity on the first --ppl-data file
PPL_PREFIX = "ppl:"  # the task name of each further file's: ppl:<label>, the label the file's stem


def is_ppl(task: str) -> bool:
    """The task is a perplexity set (`ppl` or `ppl:<label>`), not an E2WM task."""
    return task == PPL or task.startswith(PPL_PREFIX)


def ppl_task_names(files: Sequence[str]) -> list[str]:
    """The task name of each --ppl-data file, in order: `ppl` for the first (as before several files were taken),
    `ppl:<stem>` for each further one (`general/wiki.jsonl` -> `ppl:wiki`)."""
    return [PPL if i == 0 else PPL_PREFIX + Path(file).stem for i, file in enumerate(files)]


def ppl_tasks(files: Sequence[str]) -> list[tuple[str, str]]:
    """(task name, file) of each --ppl-data file (`ppl_task_names`).

    Raises:
        InputError: two further files whose labels (stems) are the same, naming both files.
    """
    seen: dict[str, str] = {}
    for task, file in zip(ppl_task_names(files), files):
        if task in seen:
            label = task.removeprefix(PPL_PREFIX)
            raise InputError(f"--ppl-data {seen[task]} and {file} have the same label '{label}' (task {task}: a "
                             "further file's label is its name without the extension); rename one")
        seen[task] = file
    return list(zip(ppl_task_names(files), files))


def predictions_file(run: Path, task: str) -> Path:
    return run / "predictions" / f"{task}.jsonl"


def existing_predictions(run: Path, task: str, use: str = "compares runs item by item from their predictions") -> Path:
    """The run's predictions/<task>.jsonl; InputError naming it when it is missing (use: what the report does with
    it, for the message)."""
    file = predictions_file(run, task)
    if not file.is_file():
        raise InputError(f"{file}: missing; the report {use} (re-run `e2wm eval` into {run})")
    return file


@dataclass
class ItemScores:
    """One run's rows of a task: per item its identity, its digest (None for runs written before digests) and
    its score in [0, 1] (None for an item its judge does not count: EAI's tasks whose gold program fails the
    evaluator's own check)."""

    keys: list[tuple]  # (index, gold answer or reference)
    digests: list[str | None]  # the row's `sha256` of the item's input (and options)
    scores: list[float | None]

    def counted(self) -> list[float]:
        """The scores of the counted items, in row order."""
        return [score for score in self.scores if score is not None]


def item_scores(run: Path, task: str) -> ItemScores:
    """The run's rows of predictions/<task>.jsonl.

    Raises:
        InputError: the file is missing, or a row lacks a field (a generation row without `score` was written
            by an `e2wm eval` older than per-item scores: re-run it).
    """
    file = existing_predictions(run, task)
    found = ItemScores([], [], [])
    for line, row in iter_jsonl(file):
        index = require(row, "index", int, file, line)
        found.digests.append(require(row, "sha256", str, file, line) if "sha256" in row else None)
        if "answer" in row:
            found.keys.append((index, row["answer"]))
            found.scores.append(float(require(row, "prediction", str, file, line) == row["answer"]))
            continue
        if "score" not in row:
            raise InputError(f"{at(file, line, 'score')} is missing (written before e2wm eval kept per-item "
                             f"scores): re-run `e2wm eval` into {run}")
        found.keys.append((index, require(row, "ref", str, file, line)))
        found.scores.append(None if row["score"] is None else float(require(row, "score", (int, float), file, line)))
    return found


def same_items(task: str, base: Path, other: Path, base_items: ItemScores, other_items: ItemScores) -> None:
    """InputError naming both files when the runs scored different items: another count, order or gold answers,
    or, where both runs recorded digests, another input or options under the same index."""
    files = (f"{predictions_file(base, task)} ({len(base_items.keys)} items) and {predictions_file(other, task)} "
             f"({len(other_items.keys)} items)")
    advice = "runs are compared item by item: evaluate both on the same --data with the same --limit"
    if base_items.keys != other_items.keys:
        shorter = min(len(base_items.keys), len(other_items.keys))
        first = next((i for i, (a, b) in enumerate(zip(base_items.keys, other_items.keys)) if a != b), shorter)
        raise InputError(f"task {task}: {files} scored different items (they first differ at row {first + 1}); "
                         f"{advice}")
    if None in base_items.digests or None in other_items.digests:
        return  # a run from before digests: the indices and gold answers are all there is to check
    first = next((i for i, (a, b) in enumerate(zip(base_items.digests, other_items.digests)) if a != b), None)
    if first is not None:
        raise InputError(f"task {task}: {files} scored different items: at index {base_items.keys[first][0]} "
                         f"(row {first + 1}) the digests of the item's input and options differ (`sha256`), so the "
                         f"files differ under the same name; {advice}")


def same_counted(task: str, base: Path, other: Path, base_items: ItemScores, other_items: ItemScores) -> None:
    """InputError naming both files when the judge counted an item in one run and not in the other (`score`
    null in one row only): the items left out of the pairing must be the same in both runs. EAI's evaluator counts
    the tasks whose gold program passes its own check, the same tasks for every output at the same hash seed and
    package version (`eai_hash_seed`, `eai_version` in metrics.json)."""
    for row, (a, b) in enumerate(zip(base_items.scores, other_items.scores), start=1):
        if (a is None) != (b is None):
            counted, uncounted = (base, other) if b is None else (other, base)
            raise InputError(f"task {task}: {predictions_file(base, task)} and {predictions_file(other, task)}: the "
                             f"item at index {base_items.keys[row - 1][0]} (row {row}) is counted in {counted} and "
                             f"not in {uncounted} (`score` null), so the runs were judged differently (another "
                             "hash seed or package version of the judge?); compare runs judged alike")


@dataclass
class Comparison:
    """A later run against the base run: per task the paired statistics, the means over tasks, the perplexities."""

    tasks: dict[str, Paired]  # the tasks both runs scored
    mean: Interval | None  # unweighted mean over tasks of the differences (None unless both have every task)
    headline: Interval | None  # the paper's headline: the mean over tasks of the relative gains
    headline_left_out: list[str]  # tasks whose base score is 0 (no relative gain), left out of the headline
    # per perplexity set both runs have (`ppl`, `ppl:<label>`): the perplexities (exp of the mean token NLL) over the
    # same texts, or why there is no interval (a note) when they cannot be paired
    perplexities: dict[str, Paired] = field(default_factory=dict)
    ppl_notes: dict[str, str] = field(default_factory=dict)

    @property
    def ppl(self) -> Paired | None:
        """The first --ppl-data file's pairing (`ppl`)."""
        return self.perplexities.get(PPL)

    @property
    def ppl_note(self) -> str | None:
        """Why the first --ppl-data file's perplexities have no interval, when both runs have one."""
        return self.ppl_notes.get(PPL)


def ppl_rows(run: Path, task: str = PPL) -> list[dict] | None:
    """The run's predictions/<task>.jsonl rows of a perplexity set (index, sha256, nll, tokens), or None when it has
    none."""
    file = predictions_file(run, task)
    if not file.is_file():
        return None
    rows = []
    for line, row in iter_jsonl(file):
        rows.append({"key": (require(row, "index", int, file, line), require(row, "sha256", str, file, line)),
                     "nll": require(row, "nll", (int, float), file, line),
                     "tokens": require(row, "tokens", int, file, line)})
    return rows


def paired_perplexity(base: Path, other: Path, resamples: int, seed: int,
                      task: str = PPL) -> tuple[Paired | None, str | None]:
    """Both runs' perplexity of one set over the same texts (bootstrap and permutation test over texts, the stream
    named by the set), or (None, the reason) when they cannot be paired."""
    rows = [ppl_rows(base, task), ppl_rows(other, task)]
    if None in rows:
        missing = base if rows[0] is None else other
        return None, f"no interval: {predictions_file(missing, task)} is missing (re-run `e2wm eval` with --ppl-data)"
    if [r["key"] for r in rows[0]] != [r["key"] for r in rows[1]]:
        return None, "no interval: the runs scored different texts (other --ppl-data, --ppl-mode or --ppl-texts)"
    values = [[(r["nll"], r["tokens"]) for r in run] for run in rows]  # (texts, 2) each
    return paired_bootstrap(values[0], values[1], resamples, seed, task, perplexity_of), None


def compare(base: Path, other: Path, tasks: list[str], complete: bool, perplexity: bool | Sequence[str],
            resamples: int, seed: int) -> Comparison:
    """Compare other against base with paired bootstrap intervals and permutation tests.

    Args:
        base, other: `e2wm eval` run directories.
        tasks: the tasks both runs scored, in the report's order.
        complete: tasks is every task of the report (the means over tasks are given only then).
        perplexity: the perplexity sets both runs have in their metrics.json (`ppl`, `ppl:<label>`); True: `ppl`
            alone, False: none.
        resamples, seed: of the bootstrap and of a Monte Carlo permutation test (each task and perplexity set
            with its own streams, see `resample_indices` and `swap_deltas`).
    Raises:
        InputError: a predictions file is missing or bad, or the runs scored different items of a task, or a judge
            counted different items of it (`same_counted`).
    """
    pairs: dict[str, Paired] = {}
    for task in tasks:
        base_items, other_items = item_scores(base, task), item_scores(other, task)
        same_items(task, base, other, base_items, other_items)
        same_counted(task, base, other, base_items, other_items)
        pairs[task] = paired_bootstrap(base_items.counted(), other_items.counted(), resamples, seed, task)
    overall = complete and len(pairs) > 1
    mean = mean_over_tasks(list(pairs.values()), resamples, seed) if overall else None
    left_out = [task for task, pair in pairs.items() if pair.base_mean == 0]
    relative = [pair for pair in pairs.values() if pair.base_mean > 0]
    headline = mean_over_tasks(relative, resamples, seed, relative=True) if overall and relative else None
    sets = [PPL] if perplexity is True else [] if perplexity is False else list(perplexity)
    found = Comparison(pairs, mean, headline, left_out)
    for task in sets:
        pair, note = paired_perplexity(base, other, resamples, seed, task)
        if pair is None:
            found.ppl_notes[task] = note
        else:
            found.perplexities[task] = pair
    return found
