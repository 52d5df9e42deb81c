"""Reports: evaluation runs side by side (markdown table + bar chart) and training curves from log.jsonl.

A run directory is what `e2wm eval` writes (metrics.json, predictions/); a training directory is what
`e2wm train` writes (log.jsonl; with `--eval-every`, its rows at the evaluated steps also hold the
forgetting curve, eval_ppl and eval_accuracy). Every later run is compared with the first item by item
(e2wm.eval.compare): each change comes with its 95% paired bootstrap interval and the p of a paired
permutation test, and a change is called a gain or a loss only when p < 0.05, else noise. Runs of EAI's action
sequencing also get the "Embodied Agent Interface" section (e2wm.eval.eai_report): the runs among the shipped LLMs'
leaderboard. Charts are PNGs saved next to the markdown and linked from it.
"""

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median as statistics_median

from e2wm.benchmark import label as task_label
from e2wm.errors import InputError
from e2wm.eval.compare import PPL, Comparison, compare, is_ppl
from e2wm.eval.config import RESAMPLES, SEED
from e2wm.eval.eai_report import TASK as EAI_TASK
from e2wm.eval.eai_report import check_eai, eai_section
from e2wm.eval.header import entry, eval_run_line, json_object, train_log_line
from e2wm.eval.metrics import METRICS, families, headline
from e2wm.eval.secondary import Secondary, compare_secondary
from e2wm.eval.statistics import (
    ALPHA,
    LEVEL,
    MIN_ITEMS,
    PSI,
    SD_DIFFERENCE,
    Interval,
    Paired,
    detectable_difference,
    mean_over_tasks,
    min_items_for_verdict,
    score_interval,
)
from e2wm.files import at, parse_json, read_jsonl, require, write_atomic, writing
from e2wm.methods import REGULARISERS

CURVE = {  # log.jsonl's held-out fields (train --eval-every): (panel title, y-axis label)
    "eval_ppl": ("general-text perplexity (lower is better)", "exp(mean token NLL)"),
    "eval_accuracy": ("dev accuracy (higher is better)", "accuracy"),
}


@dataclass
class Run:
    """One evaluated run: its label and its metrics.json ({task: result})."""

    label: str
    path: Path
    metrics: dict[str, dict]

    def score(self, task: str) -> tuple[str, float] | None:
        return headline(self.metrics[task]) if task in self.metrics else None

    def stderr(self, task: str) -> float | None:
        """The standard error of the task's headline score, when eval recorded one."""
        score = self.score(task)
        return None if score is None else self.metrics[task].get(f"{score[0]}_stderr")

    def counted(self, task: str) -> int | None:
        """The items the task's score is over: those its judge counted (EAI's `eai_counted`), else every item
        scored (`n`); None when the run lacks the task or records neither."""
        result = self.metrics.get(task, {})
        return result.get("eai_counted", result.get("n"))

    def interval(self, task: str) -> tuple[float, float] | None:
        """The 95% interval of the task's headline score (`score_interval`); None when the run lacks the task."""
        return score_interval(self.metrics[task]) if task in self.metrics else None


@dataclass
class TrainLog:
    """One training run's log.jsonl: a row per optimiser step."""

    label: str
    path: Path
    rows: list[dict]

    def last(self, key: str) -> float | None:
        """The value of key in the last row that has it (eval fields are only in the evaluated steps' rows)."""
        return next((row[key] for row in reversed(self.rows) if key in row), None)


@dataclass
class FamilyMean:
    """The unweighted mean over the tasks of one metric family (`metrics.families`), per later run against the first."""

    name: str  # a family of metrics.METRICS
    kind: str  # of its tasks: QA or generation
    tasks: list[str]
    changes: list[Interval | None]  # per later run; None when the run or the first lacks one of the tasks


def labels_for(paths: list[Path]) -> list[str]:
    """Short distinct labels: the folder names; where they repeat, the path parts that differ (the parts every path
    shares at its start and at its end dropped: runs/study/lora/eval and runs/study/ewc/eval give lora and ewc);
    else the last two parts."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    parts = [p.parts for p in paths]
    shortest = min(len(p) for p in parts)
    lead = next((i for i in range(shortest) if len({p[i] for p in parts}) > 1), shortest)
    tail = next((i for i in range(shortest - lead) if len({p[-1 - i] for p in parts}) > 1), shortest - lead)
    differing = [str(Path(*p[lead:len(p) - tail])) if len(p) - tail > lead else "" for p in parts]
    if all(differing) and len(set(differing)) == len(differing):
        return differing
    return [str(Path(*p.parts[-2:])) for p in paths]


@dataclass(frozen=True)
class RunStyle:
    """How run i of a report looks in each of its charts: tab10's colour i % 10 and, from the 11th run on, another
    marker, bar hatch and line style (the 11th run shares the first's colour, not its look)."""

    color: tuple  # RGB, 0-1
    marker: str  # the frontier chart's
    hatch: str  # the score chart's bars
    linestyle: str  # the training charts' curves


MARKERS, HATCHES, LINESTYLES = ("o", "^", "D", "v"), ("", "//", "..", "xx"), ("-", "--", ":", "-.")


def run_style(i: int) -> RunStyle:
    """Run i's RunStyle (i from 0, the report's order)."""
    turn = i // 10 % len(MARKERS)
    return RunStyle(pyplot().get_cmap("tab10").colors[i % 10], MARKERS[turn], HATCHES[turn], LINESTYLES[turn])


def load_run(path: Path, label: str) -> Run:
    file = path / "metrics.json"
    if not path.is_dir():
        raise InputError(f"{path}: no such run directory")
    if not file.is_file():
        raise InputError(f"{path}: no metrics.json (not an `e2wm eval` run, or the run has not finished)")
    metrics = parse_json(file.read_bytes().decode("utf-8-sig", errors="replace"), file)  # bad bytes: bad JSON
    if not isinstance(metrics, dict) or not metrics:
        raise InputError(f"{file}: expected a non-empty mapping of task names to metrics")
    for task, result in metrics.items():
        check_result(file, task, result)
    return Run(label, path, metrics)


NUMBERS = ("n", "n_original", "texts", "tokens", "majority", "chance")  # optional numbers of a result the report reads


def is_number(value) -> bool:
    """A finite int or float (not a bool), as metrics.json holds its numbers."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_result(file: Path, task: str, result) -> None:
    """InputError `FILE: task 'T': FIELD must be ...` for a task's result in metrics.json that the report could not
    read (docs/formats.md): not an object; no metric of `METRICS` (a perplexity set, `ppl` or `ppl:<label>`, needs its
    perplexity), or
    one that is not a finite number (null: a judge that counted none of the items, as EAI's evaluator for a --limit
    subset of tasks it does not count: such a run has no score to compare, and is refused); an optional number
    (`NUMBERS`, `<metric>_stderr`) of another type; a `<metric>_ci95` that is not null or two finite numbers;
    `majority` without `chance` and an accuracy; EAI's fields (`eai_report.check_eai`)."""
    if not isinstance(result, dict):
        raise InputError(f"{file}: task '{task}' must be an object of metrics, got {type(result).__name__}")
    try:
        name, value = headline(result)
    except KeyError:
        raise InputError(f"{file}: task '{task}' has no {', '.join(METRICS)}") from None
    if is_ppl(task) and name != "perplexity":
        raise InputError(f"{file}: task '{task}' (the perplexity) has no perplexity")
    if value is None and METRICS[name].score is not None:
        raise InputError(f"{file}: task '{task}': {name} is null: the judge counted none of its {result.get('n', '?')} "
                         "items, so the run has no score to report; evaluate more items (a larger --limit)")
    if not is_number(value):
        raise InputError(f"{file}: task '{task}': {name} must be a finite number, got {value!r}")
    low, high = METRICS[name].bounds  # a fraction, or exp(mean NLL) >= 1
    if not low <= value <= high:
        bounds = f"at least {low:g}" if math.isinf(high) else f"between {low:g} and {high:g}"
        raise InputError(f"{file}: task '{task}': {name} must be {bounds}, got {value!r}")
    for key in (*NUMBERS, f"{name}_stderr"):
        if key in result and not is_number(result[key]) and not (key.endswith("_stderr") and result[key] is None):
            raise InputError(f"{file}: task '{task}': {key} must be a finite number, got {result[key]!r}")
        if key in result and is_number(result[key]) and result[key] < 0:
            raise InputError(f"{file}: task '{task}': {key} must not be negative, got {result[key]!r}")
    interval = result.get(f"{name}_ci95")
    if interval is not None and not (isinstance(interval, list) and len(interval) == 2 and all(map(is_number,
                                                                                                    interval))):
        raise InputError(f"{file}: task '{task}': {name}_ci95 must be [low, high] (finite numbers) or null, got "
                         f"{interval!r}")
    if "majority" in result and not ("chance" in result and name == "accuracy"):
        raise InputError(f"{file}: task '{task}': majority needs chance and an accuracy beside it")
    if task == EAI_TASK:
        check_eai(file, task, result)


def load_train_log(path: Path, label: str) -> TrainLog:
    """The log.jsonl of the `e2wm train` run in path, its rows checked (InputError naming the file, line and field).
    A run whose config.json records no Fisher has no `ewc` in its rows (logs before 2026-12-06 wrote 0 there, which
    would read as no drift)."""
    file = path / "log.jsonl"
    if not file.is_file():
        raise InputError(f"{path}: no log.jsonl (not an `e2wm train` directory)")
    rows = read_jsonl(file)
    if not rows:
        raise InputError(f"{file}: empty (no optimiser step logged yet)")
    for number, row in enumerate(rows, start=1):
        require(row, "step", int, file, number)
        for key in ("loss", "ce"):
            require(row, key, (int, float), file, number)
        for key in LOGGED_NUMBERS:  # optional, but plotted or tabulated when present
            if key in row:
                require(row, key, (int, float), file, number)
        if "task_ce" in row:
            for task, value in require(row, "task_ce", dict, file, number).items():
                if not isinstance(value, (int, float)):
                    raise InputError(f"{at(file, number, f'task_ce.{task}')} must be a number, got "
                                     f"{type(value).__name__}")
    recorded = json_object(path / "config.json")
    if recorded is not None and not entry(entry(recorded, "options", dict, {}), "fisher"):
        rows = [{key: value for key, value in row.items() if key != "ewc"} for row in rows]
    return TrainLog(label, path, rows)


# optional numbers of log.jsonl; each regulariser's value is present when the run used or measured it
LOGGED_NUMBERS = ("lr", "grad_norm", "seconds", "tokens_per_s", "mfu", *REGULARISERS, *CURVE)


def visible(text: str) -> str:
    """text with line breaks and tabs written as \\n, \\r and \\t, so that it stays on one line."""
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def cell(text: str) -> str:
    """`visible`, with '|' escaped: text that stays one cell of a markdown table."""
    return visible(text).replace("|", "\\|")


def quiet_glyphs(draw):
    """Run a chart function without matplotlib's 'Glyph ... missing from font(s)' warnings: answers in a script
    the font lacks (CJK with the default DejaVu Sans) are drawn as boxes, which docs/statistics.md says."""
    @functools.wraps(draw)
    def quietly(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
            return draw(*args, **kwargs)

    return quietly


def format_p(p: float) -> str:
    """A p-value to 3 significant digits (0.25, 0.0312, 0.000999)."""
    return f"{p:.3g}"


def format_change(change: float) -> str:
    """A relative change as a signed percentage, to 0.1% or, below 1%, to 0.01% ("-0.04%", not "-0.0%"); +∞ for
    an unbounded one."""
    if math.isinf(change):
        return "+∞"
    return f"{change * 100:+.2f}%" if abs(change) < 0.01 else f"{change * 100:+.1f}%"


def format_interval(value: Interval, percent: bool = False) -> str:
    """'+0.2500 [+0.0625, +0.4375]' (or in percent) for an estimate and its interval."""
    form = format_change if percent else (lambda x: f"{x:+.4f}")
    return f"{form(value.estimate)} [{form(value.low)}, {form(value.high)}]"


def verdict(pair: Paired, metric: str = "accuracy") -> str:
    """The verdict cell: 'noise' when the permutation test's p is not below ALPHA ('no change' when every item
    is alike), else 'gain' or 'loss' (for a metric where lower is better, as perplexity: 'higher, worse' or
    'lower, better') with the relative change and its interval."""
    difference = pair.difference
    if difference.verdict in ("noise", "no change"):
        return difference.verdict
    if not METRICS[metric].higher_is_better:
        word = "higher, worse" if difference.verdict == "gain" else "lower, better"
    else:
        word = difference.verdict
    relative = pair.relative
    return word if relative is None else f"{word} {format_interval(relative, percent=True)}"


def tasks_of(runs: list[Run]) -> list[str]:
    """Every task (the perplexity sets apart) in the order first met, runs taken in order."""
    seen: dict[str, None] = {}
    for run in runs:
        for task in run.metrics:
            if not is_ppl(task):
                seen.setdefault(task)
    return list(seen)


def ppl_sets(runs: list[Run]) -> list[str]:
    """Every perplexity set (`ppl`, the first --ppl-data file's, then `ppl:<label>`) in the order first met."""
    seen: dict[str, None] = {}
    for run in runs:
        for task in run.metrics:
            if is_ppl(task):
                seen.setdefault(task)
    return sorted(seen, key=lambda task: task != PPL)


def mean_score(run: Run, tasks: list[str]) -> float | None:
    """Mean headline score over tasks, if the run has all of them."""
    scores = [run.score(t) for t in tasks]
    return None if not tasks or None in scores else sum(s[1] for s in scores) / len(scores)


def metric_of(runs: list[Run], task: str) -> str:
    """The task's headline metric, from the first run that has it."""
    return next(run.score(task)[0] for run in runs if task in run.metrics)


def family_means(runs: list[Run], found: list[Comparison], resamples: int, seed: int) -> list[FamilyMean]:
    """Per metric family with two tasks or more, the mean of its tasks' differences with the stratified bootstrap
    interval and permutation p of `statistics.mean_over_tasks`, for each later run that shares all of them with
    the first. Accuracy and ROUGE-L/LCS are never averaged together: their scales differ."""
    tasks = tasks_of(runs)
    means = []
    for name, (metrics, kind) in families().items():
        members = [task for task in tasks if metric_of(runs, task) in metrics]
        if len(members) < 2:
            continue
        changes = [mean_over_tasks([comparison.tasks[task] for task in members], resamples, seed)
                   if all(task in comparison.tasks for task in members) else None for comparison in found]
        means.append(FamilyMean(name, kind, members, changes))
    return means


def comparisons(runs: list[Run], resamples: int, seed: int) -> list[Comparison]:
    """Each later run against the first (`compare`), in order.

    Raises:
        InputError: two runs scored different items of a task, or a later run shares no task (perplexity sets
            included) with the first.
    """
    base, tasks = runs[0], tasks_of(runs)
    found = []
    for run in runs[1:]:
        shared = [task for task in tasks if task in base.metrics and task in run.metrics]
        perplexity = [task for task in ppl_sets(runs) if task in base.metrics and task in run.metrics]
        if not shared and not perplexity:
            raise InputError(f"{base.path} ({', '.join(base.metrics)}) and {run.path} ({', '.join(run.metrics)}) "
                             "share no task: there is nothing to compare item by item")
        if EAI_TASK in shared and base.metrics[EAI_TASK]["eai_form"] != run.metrics[EAI_TASK]["eai_form"]:
            raise InputError(f"{base.path} and {run.path} answered EAI's tasks in different prompt forms (--eai-form "
                             f"{base.metrics[EAI_TASK]['eai_form']} and {run.metrics[EAI_TASK]['eai_form']}): a report "
                             "pairs runs item by item over the same prompts; report each form's runs apart")
        found.append(compare(base.path, run.path, shared, len(shared) == len(tasks), perplexity, resamples, seed))
    return found


def run_warnings(runs: list[Run]) -> list[str]:
    """Warnings about the runs given: a directory given twice (the first again: a run compared with itself),
    and tasks that a later run or the first lacks (no Δ for them, and no means over tasks)."""
    lines, seen = [], {}
    for run in runs:
        first = seen.setdefault(run.path.resolve(), run)
        if first is runs[0] and run is not first:
            lines.append(f"`{run.label}` ({run.path}) is the first run again: it is compared with itself, so every "
                         "change is 0 by construction")
        elif first is not run:
            lines.append(f"{run.path} is given twice (`{first.label}` and `{run.label}`)")
    base, tasks = runs[0], tasks_of(runs)
    for run in runs[1:]:
        lacking = [(label, [t for t in tasks if t not in r.metrics]) for label, r in ((run.label, run),
                                                                                      (base.label, base))]
        lacking = [f"`{label}` lacks {', '.join(missing)}" for label, missing in lacking if missing]
        if lacking:
            lines.append(f"{'; '.join(lacking)}: those tasks have no Δ against `{base.label}`, and the means over "
                         f"tasks that include them and the mean relative gain of `{run.label}` are not given (they "
                         "need each of their tasks in both runs)")
    return lines


def interval_cells(value: Interval | None, percent: bool = False) -> list[str]:
    """[estimate [95% CI], verdict, p] of a mean over tasks, or three dashes."""
    return ["—"] * 3 if value is None else [format_interval(value, percent), value.verdict, format_p(value.p)]


def change_cells(pair: Paired | None, word) -> list[str]:
    """[Δ [95% CI], word(pair) (`verdict`), p] of a task or the perplexity, or three dashes."""
    if pair is None:
        return ["—"] * 3
    return [format_interval(pair.difference), word(pair), format_p(pair.p)]


def score_cell(run: Run, task: str) -> str:
    """'0.5000 [0.3520, 0.6480]' for an accuracy or another 0/1 metric (EAI's task success) with its Wilson
    interval, '0.3000 ± 0.0100' for a score with its standard error, '—' when the run lacks the task."""
    score = run.score(task)
    if score is None:
        return "—"
    if METRICS[score[0]].binary and run.metrics[task].get(f"{score[0]}_ci95"):
        return "{:.4f} [{:.4f}, {:.4f}]".format(score[1], *run.metrics[task][f"{score[0]}_ci95"])
    stderr = run.stderr(task)
    return f"{score[1]:.4f}" + ("" if stderr is None else f" ± {stderr:.4f}")


def comparison_table(runs: list[Run], found: list[Comparison], means: list[FamilyMean]) -> str:
    """Markdown: a row per task, then the unweighted mean of each metric family (`family_means`), the mean relative
    gain over every task (the paper's headline) and the perplexity (n: its texts, the unit of its bootstrap and
    test; a row per perplexity set, `ppl_sets`); per run its score (`score_cell`), and per later run the difference
    from the first with its 95% paired
    bootstrap interval, the verdict (noise, or gain / loss with the relative change) and the permutation test's
    p."""
    base = runs[0]
    lines = table_header(runs)
    tasks = tasks_of(runs)
    for task in tasks:
        metric = metric_of(runs, task)
        cells = [cell(task), METRICS[metric].label, sizes_cell(runs, task), score_cell(base, task)]
        for run, comparison in zip(runs[1:], found):
            pair = comparison.tasks.get(task)
            cells += [score_cell(run, task), *change_cells(pair, functools.partial(verdict, metric=metric))]
        lines.append("| " + " | ".join(cells) + " |")
    for mean in means:
        cells = [f"**mean {mean.name}**", f"unweighted, {len(mean.tasks)} {mean.kind} tasks", "",
                 fmt(mean_score(base, mean.tasks))]
        for run, change in zip(runs[1:], mean.changes):
            cells += [fmt(mean_score(run, mean.tasks) if change else None), *interval_cells(change)]
        lines.append("| " + " | ".join(cells) + " |")
    if len(tasks) > 1:
        cells = ["**mean relative gain**", "mean of the tasks' relative changes (the paper's headline)", "", ""]
        for comparison in found:
            cells += ["", *interval_cells(comparison.headline, percent=True)]
        lines.append("| " + " | ".join(cells) + " |")
    for task in ppl_sets(runs):
        texts = sorted({str(run.metrics[task].get("texts", "")) for run in runs if task in run.metrics})
        tokens = sorted({str(run.metrics[task].get("tokens", "")) for run in runs if task in run.metrics})
        cells = [f"{ppl_name(task)} (lower is better)", f"exp(mean NLL), {'/'.join(tokens)} tokens", "/".join(texts),
                 fmt(base.metrics.get(task, {}).get("perplexity"))]
        for run, comparison in zip(runs[1:], found):
            pair = comparison.perplexities.get(task)
            cells += [fmt(run.metrics.get(task, {}).get("perplexity")),
                      *change_cells(pair, functools.partial(verdict, metric="perplexity"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ppl_name(task: str) -> str:
    """A perplexity set as tables and sentences name it: 'perplexity' for the first --ppl-data file's (`ppl`),
    'perplexity ppl:<label>' for a further one's."""
    return "perplexity" if task == PPL else f"perplexity {cell(task)}"


def table_header(runs: list[Run]) -> list[str]:
    """The two header lines of a comparison table: task, metric, n, the first run, and per later run its score, its
    difference from the first with the 95% interval, the verdict and p."""
    base = runs[0]
    header = ["task", "metric", "n", cell(base.label)]
    for run in runs[1:]:
        header += [cell(run.label), f"Δ {cell(run.label)} − {cell(base.label)} [95% CI]", "verdict", "p"]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]


def secondary_table(runs: list[Run], found: list[Secondary]) -> str:
    """Markdown: a row per task and secondary metric (`eval.secondary`): the items paired, the first run's mean
    over them, and per later run its mean, the difference with its 95% paired interval, the verdict and p."""
    lines = table_header(runs)
    for row in found:
        first = next(pair for pair in row.pairs if pair is not None)
        sizes = "/".join(sorted({str(len(pair.base)) for pair in row.pairs if pair is not None}))
        cells = [cell(row.task), METRICS[row.metric].label, sizes, fmt(first.base_mean)]
        for pair in row.pairs:
            cells += [fmt(None if pair is None else pair.other_mean),
                      *change_cells(pair, functools.partial(verdict, metric=row.metric))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def sizes_cell(runs: list[Run], task: str) -> str:
    """The n cell: the items scored ('40', '40/20' when runs differ), or those a judge counted of them ('8 counted
    of 12'), over the runs that have the task."""
    sizes = sorted({(run.counted(task), run.metrics[task].get("n")) for run in runs if task in run.metrics},
                   key=str)
    return "/".join("" if n is None else str(n) if counted == n else f"{counted} counted of {n}"
                    for counted, n in sizes)


def below_baseline(run: Run, task: str) -> bool:
    """The run's accuracy on a QA task is not above the better of its chance and majority baselines."""
    result = run.metrics.get(task, {})
    return "majority" in result and result["accuracy"] <= max(result["majority"], result["chance"])


def detectable(n: int, metric: str) -> str:
    """What n items of a task can show, from n and the metric alone (never from the items that changed): none
    below `min_items_for_verdict` items, else the `detectable_difference` at 80% power."""
    if n < min_items_for_verdict():
        return (f"at {n} items no change can be told from noise, however large: the paired test's smallest "
                f"two-sided p is 2 / 2^{n} = {format_p(2 / 2**n)}")
    assumed = (f"{PSI:.0%} of items changing correctness" if METRICS[metric].binary
               else f"a per-item SD of the differences of {SD_DIFFERENCE}")
    return (f"at {n} items a change of about ±{detectable_difference(n, metric):.2f} would be found 80% of the "
            f"time (two-sided {ALPHA:.0%}, assuming {assumed})")


def conclusion(task: str, n: int, pair: Paired, base: Run, other: Run) -> str:
    """One sentence: what the change of one task supports at its number of items."""
    change, half = pair.difference, (pair.difference.high - pair.difference.low) / 2
    items = f"{n} item" + ("" if n == 1 else "s")
    span = f"{change.estimate:+.3f} (95% CI {change.low:+.3f} to {change.high:+.3f})"
    if change.verdict == "no change":
        text = f"**{task}** ({items}): both runs score every item alike, so there is no change to speak of"
    elif change.verdict == "noise":
        text = (f"**{task}** ({items}): the change {span} has p = {format_p(change.p)} in the paired permutation "
                f"test, so it may well be chance and no gain or loss can be claimed; "
                f"{detectable(n, base.score(task)[0])}")
    else:
        direction = "higher" if change.verdict == "gain" else "lower"
        text = (f"**{task}** ({items}): `{other.label}` scores {direction} by {abs(change.estimate):.3f} (95% CI "
                f"{change.low:+.3f} to {change.high:+.3f}); the paired permutation test gives p = "
                f"{format_p(change.p)} < {ALPHA:.2f}, so this is unlikely to be chance on these items, though its "
                f"size is known only to about ±{half:.2f}")
    stuck = [run.label for run in (base, other) if below_baseline(run, task)]
    if stuck:  # name the better baseline: a run above chance but not above majority is not "above neither"
        result = base.metrics[task]
        best, second = ("majority", "chance") if result["majority"] >= result["chance"] else ("chance", "majority")
        text += (f"; {' and '.join(f'`{label}`' for label in stuck)} {'is' if len(stuck) == 1 else 'are'} not above "
                 f"the {best} baseline ({result[best]:.3f}; {second} {result[second]:.3f})")
    return text + "."


def conclusions(runs: list[Run], found: list[Comparison], means: list[FamilyMean]) -> list[str]:
    """The section's lines: per later run a sentence per task, the family means, the mean relative gain and each
    perplexity set, and the note on testing many tasks at once."""
    base, lines = runs[0], []
    for index, (run, comparison) in enumerate(zip(runs[1:], found)):
        if len(runs) > 2:
            lines += [f"`{run.label}` against `{base.label}`:", ""]
        for task, pair in comparison.tasks.items():
            lines.append("- " + conclusion(task, len(pair.base), pair, base, run))
        for mean in means:
            change = mean.changes[index]
            if change is not None:
                lines.append(f"- **mean {mean.name}** over the {len(mean.tasks)} {mean.kind} tasks "
                             f"({', '.join(mean.tasks)}): {format_interval(change)}, {change.verdict} "
                             f"(p = {format_p(change.p)}).")
        if comparison.headline is not None:
            left_out = (f"; {', '.join(comparison.headline_left_out)} left out: a base score of 0 has no relative "
                        "change") if comparison.headline_left_out else ""
            gain = comparison.headline
            lines.append(f"- **mean relative gain** over every task (the paper's headline; relative changes are "
                         f"unit-free, so accuracies and ROUGE-L/LCS mix here{left_out}): "
                         f"{format_interval(gain, percent=True)}, {gain.verdict} (p = {format_p(gain.p)}).")
        for task in ppl_sets(runs):
            pair, note = comparison.perplexities.get(task), comparison.ppl_notes.get(task)
            if pair is not None:
                lines.append(f"- **{ppl_name(task)}** ({len(pair.base)} texts): {format_interval(pair.difference)}, "
                             f"{verdict(pair, 'perplexity')} (p = {format_p(pair.p)}).")
            elif note:
                lines.append(f"- **{ppl_name(task)}**: {note}.")
        lines.append("")
    count = len(found[0].tasks) if found else 0
    if count > 1:
        lines += [f"{count} tasks are tested at once: when nothing changed, each is called a gain or a loss with "
                  f"chance {ALPHA:.0%} at most, so the expected number of tasks called so by chance alone is up to "
                  f"{count * ALPHA:.2f} of the {count}; a single task's gain is weak evidence on its own.", ""]
    return lines


def small_tasks(runs: list[Run]) -> list[str]:
    """'task (n)' for every task some run scored on fewer than MIN_ITEMS items, and 'ppl (n texts)' for a
    perplexity set on fewer than MIN_ITEMS texts (the unit of its bootstrap and test)."""
    found = {}
    for run in runs:
        for task in tasks_of([run]):
            n = run.counted(task)
            if n is not None and n < MIN_ITEMS:
                found.setdefault(task, f"{n}")
        for task in ppl_sets([run]):
            texts = run.metrics[task].get("texts")
            if texts is not None and texts < MIN_ITEMS:
                found.setdefault(task, f"{texts} texts")
    return [f"{task} ({n})" for task, n in found.items()]


def chart_order(runs: list[Run]) -> list[tuple[str, str]]:
    """(task, metric) for the chart: tasks grouped by metric (accuracy, ROUGE-L, LCS), table order within."""
    pairs = [(task, metric_of(runs, task)) for task in tasks_of(runs)]
    order = list(METRICS)
    return sorted(pairs, key=lambda pair: order.index(pair[1]))


def draw_baselines(ax, runs: list[Run], tasks: list[str]) -> None:
    """Per QA task, its chance (dotted) and majority (dashed) baselines across the task's group of bars, from
    the first run that has them."""
    labelled = False
    for t, task in enumerate(tasks):
        result = next((run.metrics[task] for run in runs if "majority" in run.metrics.get(task, {})), None)
        if result is None:
            continue
        for key, style in (("chance", ":"), ("majority", "--")):
            ax.hlines(result[key], t - 0.45, t + 0.45, colors="0.15", linestyles=style, linewidth=1.2, zorder=3,
                      label=None if labelled else f"{key} baseline")
        labelled = True


@quiet_glyphs
def score_chart(runs: list[Run], file: Path) -> None:
    """Grouped bars of every task's score by run on a 0-1 axis, with 95% error bars (`Run.interval`: Wilson for
    an accuracy, ± 1.96 stderr otherwise) and the QA tasks' chance and majority baselines; each perplexity set in
    its own panel on the right, with its 95% interval."""
    plt = pyplot()
    pairs = chart_order(runs)
    tasks = [task for task, _ in pairs]
    sets = ppl_sets(runs)
    width_ratios = [max(len(tasks), 1) * len(runs)] + [1.6 * len(runs)] * len(sets) if sets else [1]
    figure, axes = plt.subplots(
        1, len(width_ratios), figsize=(2.5 + 0.32 * len(runs) * len(tasks) + 2.4 * len(sets), 5.6),
        gridspec_kw={"width_ratios": width_ratios}, squeeze=False,
    )
    axes = axes[0]
    bar = 0.8 / len(runs)
    ax = axes[0]
    start, group = 0, 0
    for index, (_, metric) in enumerate(pairs):  # a caption per metric, every other group shaded
        if index + 1 == len(pairs) or pairs[index + 1][1] != metric:
            if group % 2:
                ax.axvspan(start - 0.5, index + 0.5, color="0.94", zorder=0)
            ax.text((start + index) / 2, 1.1, METRICS[metric].label, ha="center", va="center", fontsize=9,
                    style="italic", color="0.3")
            start, group = index + 1, group + 1
    for i, run in enumerate(runs):
        xs = [t + (i - (len(runs) - 1) / 2) * bar for t in range(len(tasks))]
        heights = [(run.score(t) or (None, math.nan))[1] for t in tasks]
        spans = [run.interval(t) or (h, h) for t, h in zip(tasks, heights)]
        errors = [[max(h - low, 0) for h, (low, _) in zip(heights, spans)],
                  [max(high - h, 0) for h, (_, high) in zip(heights, spans)]]  # (2, tasks): below, above
        ax.bar(xs, heights, bar, yerr=errors, label=run.label, color=run_style(i).color, hatch=run_style(i).hatch,
               edgecolor="white", linewidth=0.5, error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.25"})
        if len(runs) * len(tasks) <= 40:
            for x, h, e in zip(xs, heights, errors[1]):
                if not math.isnan(h):
                    ax.text(x, min(h + e, 1.0) + 0.01, f"{h:.2f}", ha="center", va="bottom", fontsize=7, rotation=90)
    draw_baselines(ax, runs, tasks)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([task_label(t) for t in tasks], rotation=35, ha="right", fontsize=9)
    ax.set_xlim(-0.5, len(tasks) - 0.5)
    ax.set_ylim(0, 1.16)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("score (0-1, higher is better; bars: 95% interval)")
    ax.set_title("E2WM tasks")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for ax, task in zip(axes[1:], sets):
        values = [run.metrics[task]["perplexity"] if task in run.metrics else math.nan for run in runs]
        intervals = [run.metrics.get(task, {}).get("perplexity_ci95") or [v, v] for run, v in zip(runs, values)]
        yerr = [[max(v - low, 0) for v, (low, _) in zip(values, intervals)],
                [max(high - v, 0) for v, (_, high) in zip(values, intervals)]]
        bars = ax.bar(range(len(runs)), values, 0.7, yerr=yerr, edgecolor="white",
                      error_kw={"elinewidth": 0.8, "capsize": 3, "ecolor": "0.25"})
        for i, patch in enumerate(bars.patches):
            patch.set_facecolor(run_style(i).color)
            patch.set_hatch(run_style(i).hatch)
        for x, v in enumerate(values):
            if not math.isnan(v):
                ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([run.label for run in runs], rotation=35, ha="right", fontsize=9)
        ax.set_ylabel("perplexity (exp of mean token NLL)")
        ax.set_title("general text" + ("" if task == PPL else f" {task}") + "\n(lower is better)")
        top = max((high for (_, high), v in zip(intervals, values) if not math.isnan(v)), default=1.0)
        ax.set_ylim(0, top * 1.15)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=min(len(runs) + 2, 6),
                  fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.88))
    save_figure(figure, file)


def task_names(logs: list[TrainLog]) -> list[str]:
    """The training files' labels in the logs' task_ce windows (train --log-every), in order of appearance."""
    return list(dict.fromkeys(name for log in logs for row in log.rows for name in row.get("task_ce", {})))


@quiet_glyphs
def train_chart(logs: list[TrainLog], file: Path) -> None:
    """Panels over optimiser steps: total loss, cross-entropy on ref tokens, then each regulariser of REGULARISERS
    that a run logged (its value before its weight; a run without it draws no line there), and
    each training file's CE per logging window when the logs have it (task_ce)."""
    plt = pyplot()
    panels = [("loss", "total loss = CE term + Σ weight·regulariser", "nats per ref token"),
              ("ce", "cross-entropy (nats / ref token)", "nats per ref token")]
    titles = {"ewc": ("EWC penalty Σ F·ΔW² (before λ)", "Σ F·ΔW² over adapted matrices"),
              "kl": ("KL anchor (before its weight)", "nats per token"),
              "replay": ("replay: general-text NLL (before its weight)", "nats per token")}
    panels += [(key, *titles[key]) for key in REGULARISERS if any(key in row for log in logs for row in log.rows)]
    tasks = task_names(logs)
    count = len(panels) + bool(tasks)
    figure, axes = plt.subplots(1, count, figsize=(14 + 4.7 * (count - 3), 4.2))
    window = max(max(len(log.rows) for log in logs) // 10, 1)
    for ax, (key, title, unit) in zip(axes, panels):
        for i, log in enumerate(logs):
            points = [(row["step"], row[key]) for row in log.rows if key in row]
            if not points:
                continue
            steps, values = (list(part) for part in zip(*points))
            style = run_style(i)
            if window > 1 and key != "ewc":  # every step faint, the moving average bold
                ax.plot(steps, values, color=style.color, linestyle=style.linestyle, alpha=0.3, linewidth=0.8)
                ax.plot(steps, moving_average(values, window), color=style.color, linestyle=style.linestyle,
                        linewidth=1.8, label=log.label)
            else:
                ax.plot(steps, values, color=style.color, linestyle=style.linestyle, linewidth=1.4, label=log.label)
        ax.set_title(title, pad=14)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        if key == "ewc" and any(row.get("ewc", 0) > 0 for log in logs for row in log.rows):
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes[0].legend(title="run", fontsize=8)
    if tasks:
        task_panel(axes[len(panels)], logs, tasks)
    if window > 1:
        figure.text(0.5, 0.01, f"faint: every step; bold: mean of the last {window} steps", ha="center",
                    fontsize=8, color="0.35")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(figure, file)


def task_panel(ax, logs: list[TrainLog], tasks: list[str]) -> None:
    """Each training file's CE at the end of each logging window: a colour per file, a line style per run."""
    styles = ["-", "--", ":", "-."]
    for i, log in enumerate(logs):
        for j, task in enumerate(tasks):
            points = [(row["step"], row["task_ce"][task]) for row in log.rows if task in row.get("task_ce", {})]
            if points:
                steps, values = zip(*points)
                name = task if len(logs) == 1 else f"{log.label}: {task}"
                ax.plot(steps, values, color=f"C{j % 10}", linestyle=styles[i % len(styles)], marker="o",
                        markersize=2.5, linewidth=1.4, label=name)
    ax.set_title("CE per training file (window means)", pad=14)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("nats per ref token")
    ax.grid(alpha=0.3)
    ax.legend(title="file", fontsize=8)


def curve_keys(logs: list[TrainLog]) -> list[str]:
    """The forgetting-curve fields (eval_ppl, eval_accuracy, in that order) that some log's rows have."""
    return [key for key in CURVE if any(key in row for log in logs for row in log.rows)]


@quiet_glyphs
def curve_chart(logs: list[TrainLog], file: Path) -> None:
    """A panel per curve_keys field against the optimiser step, a line per run (its evaluated steps only);
    run i has the colour it has in train_chart."""
    plt = pyplot()
    keys = curve_keys(logs)
    figure, axes = plt.subplots(1, len(keys), figsize=(6 * len(keys), 4.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for i, log in enumerate(logs):
            points = [(row["step"], row[key]) for row in log.rows if key in row]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, color=run_style(i).color, linestyle=run_style(i).linestyle, marker="o",
                        markersize=3, linewidth=1.4, label=log.label)
        title, ylabel = CURVE[key]
        ax.set_title(title, pad=14)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(title="run", fontsize=8)
    figure.tight_layout()
    save_figure(figure, file)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def moving_average(values: list[float], window: int) -> list[float]:
    """Mean of each value and the (up to) window - 1 before it."""
    return [sum(values[max(0, i - window + 1) : i + 1]) / (i + 1 - max(0, i - window + 1)) for i in range(len(values))]


def save_figure(figure, file: Path) -> None:
    """Save a PNG atomically (via a temporary name in the same folder) and free the figure."""
    import matplotlib.pyplot as plt

    file.parent.mkdir(parents=True, exist_ok=True)
    staging = file.with_name(f".{file.name}.tmp.png")
    try:
        with writing(file):  # a full disk: OSError naming the file
            figure.savefig(staging, dpi=120)
        staging.replace(file)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    finally:
        plt.close(figure)


def train_table(logs: list[TrainLog]) -> str:
    """A row per run: steps, first and last loss and CE, last EWC (— for a run without a Fisher) and lr, then the
    last value of each other regulariser of REGULARISERS that a run used (KL anchor, replay; each, as EWC, to 3
    significant digits: `fmt_value`) and of each curve_keys field (— for a run that has none);
    with logs that time their steps, the median tokens per second and MFU over the steps and the last window's CE
    per training file."""
    regularisers = [key for key in REGULARISERS if key != "ewc" and any(key in row for log in logs for row in log.rows)]
    curves = curve_keys(logs)
    timed = any("tokens_per_s" in row for log in logs for row in log.rows)
    extra = ["median tokens/s", "median MFU", "last CE per file"] if timed else []
    lines = ["| run | steps | first loss | last loss | first CE | last CE | last EWC | last lr |"
             + "".join(f" last {key} |" for key in regularisers + curves) + "".join(f" {name} |" for name in extra),
             "|---|" + "---:|" * (7 + len(regularisers) + len(curves) + len(extra))]
    for log in logs:
        first, last = log.rows[0], log.rows[-1]
        curve = "".join(f" {fmt_value(log.last(key))} |" for key in regularisers)
        curve += "".join(" — |" if log.last(key) is None else f" {log.last(key):.4f} |" for key in curves)
        if timed:
            rates, mfus = ([row[key] for row in log.rows if key in row] for key in ("tokens_per_s", "mfu"))
            files = log.last("task_ce") or {}
            curve += (f" {fmt_median(rates, '.1f')} | {fmt_median(mfus, '.2%')} | "
                      f"{', '.join(f'{cell(name)} {value:.4f}' for name, value in files.items()) or '—'} |")
        lines.append(f"| {log.label} | {last['step']} | {first['loss']:.4f} | {last['loss']:.4f} | "
                     f"{first['ce']:.4f} | {last['ce']:.4f} | {fmt_value(last.get('ewc'))} | "
                     f"{last.get('lr', math.nan):.2e} |"
                     + curve)
    return "\n".join(lines)


def fmt_value(value: float | None) -> str:
    """A logged value to 3 significant digits, — when the row has none."""
    return "—" if value is None else f"{value:.3g}"


def fmt_median(values: list[float], spec: str) -> str:
    """The median of values formatted by spec, — for none."""
    return format(statistics_median(values), spec) if values else "—"


def evaluation_section(runs: list[Run], chart: Path, resamples: int, seed: int, found: list[Comparison],
                       means: list[FamilyMean]) -> list[str]:
    """The report's evaluation part: how to read it, the warnings, the table, the chart and what can be concluded;
    found and means: each later run's comparison with the first (`comparisons`) and the family means
    (`family_means`)."""
    parts = ["## Evaluation", "",
             f"Scores: an accuracy (and EAI's task success) with its {LEVEL:.0%} Wilson interval [low, high], ROUGE-L "
             "and LCS ± their bootstrap standard error, each as its own `e2wm eval` computed it (with that run's "
             "--seed and --bootstrap-resamples); EAI's task success is over the tasks its evaluator counts (n: "
             "counted of scored), and so are its Δ and test. "
             f"Δ is the difference from `{runs[0].label}` over the same items with its "
             f"{LEVEL:.0%} paired bootstrap interval ({resamples} resamples, seed {seed}); p is the two-sided p of a "
             "paired permutation test (the two runs' scores swapped per item: all 2^d ways when d items differ, "
             f"d <= 20, else {resamples} random swaps). A change is a gain or a loss only when p < {ALPHA:.2f}, "
             "else noise; the verdict gives the relative change only for gains and losses. Means over tasks are "
             "taken within a metric family only (accuracy over the QA tasks; ROUGE-L and LCS over the generation "
             "tasks); the mean relative gain averages the tasks' relative changes. For perplexity lower is better. "
             "See docs/statistics.md.", ""]
    for warning in run_warnings(runs):
        parts += [f"**Warning: {warning}.**", ""]
    small = small_tasks(runs)
    if small:
        parts += [f"**Warning: fewer than {MIN_ITEMS} items in {', '.join(small)}: at this size the intervals are "
                  "rough and only large changes can be told from noise.**", ""]
    parts += [comparison_table(runs, found, means), "", f"![Scores by task and run]({chart.name})", ""]
    secondary = compare_secondary([run.path for run in runs], [run.metrics for run in runs], resamples, seed)
    if secondary:
        parts += ["### Beside the main metric", "",
                  "Each task's other metrics, compared with the same paired interval and test over the items that "
                  "both runs give a value: plans run in VirtualHome from their program's initial graph (steps "
                  "executed, goal facts reached, whole plan executable; items without a known program have none) "
                  "and EAI's executability over its counted tasks.", "", secondary_table(runs, secondary), ""]
    if found:
        parts += ["### What these numbers support", "", *conclusions(runs, found, means)]
    return parts


# A section after the evaluation's: from the loaded runs, each later run's comparison with the first and the family
# means, its markdown lines and the drawing of its chart (None for none), drawn once every check has passed
Section = Callable[[list[Run], list[Comparison], list[FamilyMean]], tuple[list[str], Callable[[], None] | None]]


CHARTS = ("score", "train", "eval", "frontier")  # the charts a report may draw beside it


def chart_file(out: Path, chart: str) -> Path:
    """Where chart (one of CHARTS) of the report out is drawn: <report>.png (the scores), else <report>-<chart>.png."""
    return out.with_name(out.stem + ("" if chart == "score" else f"-{chart}") + ".png")


def write_report(runs: list[Path], train_logs: list[Path], out: Path, title: str = "E2WM report",
                 resamples: int = RESAMPLES, seed: int = SEED, eai_leaderboard: Path | None = None,
                 sections: tuple[Section, ...] = ()) -> str:
    """Write out (markdown) and its PNG charts; returns the markdown.

    resamples, seed: of the paired bootstrap intervals. eai_leaderboard: the folder of the EAI leaderboard's cache
    (`eai_report.eai_section`; scored there first when missing, about 16 minutes), or None to leave the leaderboard
    out of the EAI section (written when a run has EAI's task). sections: more sections after the evaluation's
    (the recipe's learning-against-forgetting frontier, `eval.frontier`), each called before the EAI section and
    its chart drawn after every other check. InputError on a bad run directory, or when two
    runs scored different items of a task (or from a section); RunError when EAI's evaluator fails on the
    leaderboard.
    """
    if not runs and not train_logs:
        raise InputError("give run directories (from `e2wm eval`), --train-log directories, or both")
    if out.suffix != ".md":
        raise InputError(f"--out {out}: the report is markdown; give a file name ending in .md")
    loaded = [load_run(p, label) for p, label in zip(runs, labels_for(runs))]
    logs = [load_train_log(p, label) for p, label in zip(train_logs, labels_for(train_logs))]
    parts = [f"# {title}", "", "## Runs", ""]
    parts += [eval_run_line(run.path, run.label, run.metrics) for run in loaded]
    parts += [train_log_line(log.path, log.label) for log in logs] + [""]
    if loaded:
        chart = chart_file(out, "score")
        found = comparisons(loaded, resamples, seed)  # before any chart: it checks the items
        means = family_means(loaded, found, resamples, seed)
        section = evaluation_section(loaded, chart, resamples, seed, found, means)
        drawings = []
        for extra in sections:
            lines, draw = extra(loaded, found, means)
            section += lines
            drawings += [draw] if draw else []
        section += eai_section([(run.label, run.path, run.metrics) for run in loaded], eai_leaderboard)
        score_chart(loaded, chart)
        for draw in drawings:
            draw()
        parts += section
    if logs:
        chart = chart_file(out, "train")
        train_chart(logs, chart)
        parts += ["## Training", "", train_table(logs), "", f"![Training curves]({chart.name})", ""]
        if curve_keys(logs):
            chart = chart_file(out, "eval")
            curve_chart(logs, chart)
            parts += ["Held out during training (`e2wm train --eval-every`): perplexity on general text, whose rise "
                      "is the forgetting, and the accuracy on the dev file.", "",
                      f"![Held-out curves]({chart.name})", ""]
    text = "\n".join(parts)
    write_atomic(out, text)
    return text
