"""Reports: evaluation runs side by side (markdown table + bar chart) and training curves from log.jsonl.

A run directory is what `e2wm eval` writes (metrics.json); a training directory is what `e2wm train`
writes (log.jsonl; with `--eval-every`, its rows at the evaluated steps also hold the forgetting curve,
eval_ppl and eval_accuracy). Charts are PNGs saved next to the markdown and linked from it.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from e2wm.benchmark import label as task_label
from e2wm.errors import InputError
from e2wm.eval.metrics import headline
from e2wm.files import read_jsonl, write_atomic

PPL = "ppl"
METRIC_NAMES = {"accuracy": "accuracy", "rougeL": "ROUGE-L F1", "lcs": "LCS ratio", "perplexity": "perplexity"}
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


@dataclass
class TrainLog:
    """One training run's log.jsonl: a row per optimiser step."""

    label: str
    path: Path
    rows: list[dict]

    def last(self, key: str) -> float | None:
        """The value of key in the last row that has it (eval fields are only in the evaluated steps' rows)."""
        return next((row[key] for row in reversed(self.rows) if key in row), None)


def labels_for(paths: list[Path]) -> list[str]:
    """Short distinct labels: the folder names, or the last two path parts where folder names repeat."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(Path(*p.parts[-2:])) for p in paths]


def load_run(path: Path, label: str) -> Run:
    file = path / "metrics.json"
    if not path.is_dir():
        raise InputError(f"{path}: no such run directory")
    if not file.is_file():
        raise InputError(f"{path}: no metrics.json (not an `e2wm eval` run, or the run has not finished)")
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{file}:{error.lineno}: bad JSON ({error.msg})") from None
    if not isinstance(metrics, dict) or not metrics:
        raise InputError(f"{file}: expected a non-empty mapping of task names to metrics")
    for task, result in metrics.items():
        try:
            headline(result)
        except (KeyError, TypeError):
            raise InputError(f"{file}: task '{task}' has no accuracy, rougeL, lcs or perplexity") from None
    return Run(label, path, metrics)


def load_train_log(path: Path, label: str) -> TrainLog:
    file = path / "log.jsonl"
    if not file.is_file():
        raise InputError(f"{path}: no log.jsonl (not an `e2wm train` directory)")
    rows = read_jsonl(file)
    if not rows:
        raise InputError(f"{file}: empty (no optimiser step logged yet)")
    for number, row in enumerate(rows, start=1):
        missing = [key for key in ("step", "loss", "ce", "ewc") if key not in row]
        if missing:
            raise InputError(f"{file}:{number}: field '{missing[0]}' is missing")
    return TrainLog(label, path, rows)


def relative_change(value: float, base: float) -> float | None:
    """(value - base) / base, or None where base is 0."""
    return None if base == 0 else (value - base) / base


def format_change(change: float | None) -> str:
    return "n/a" if change is None else f"{change * 100:+.1f}%"


def tasks_of(runs: list[Run]) -> list[str]:
    """Every task (perplexity apart) in the order first met, runs taken in order."""
    seen: dict[str, None] = {}
    for run in runs:
        for task in run.metrics:
            if task != PPL:
                seen.setdefault(task)
    return list(seen)


def mean_score(run: Run, tasks: list[str]) -> float | None:
    """Mean headline score over tasks, if the run has all of them."""
    scores = [run.score(t) for t in tasks]
    return None if not tasks or None in scores else sum(s[1] for s in scores) / len(scores)


def comparison_table(runs: list[Run]) -> str:
    """Markdown: a row per task, a column per run, and each later run's change relative to the first."""
    base = runs[0]
    header = ["task", "metric", "n", base.label]
    for run in runs[1:]:
        header += [run.label, f"Δ vs {base.label}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]

    def row(name: str, metric: str, n: str, values: list[float | None]) -> str:
        cells = [name, metric, n, "—" if values[0] is None else f"{values[0]:.4f}"]
        for value in values[1:]:
            cells.append("—" if value is None else f"{value:.4f}")
            change = None if value is None or values[0] is None else relative_change(value, values[0])
            cells.append("—" if value is None or values[0] is None else format_change(change))
        return "| " + " | ".join(cells) + " |"

    tasks = tasks_of(runs)
    for task in tasks:
        scores = [run.score(task) for run in runs]
        metric = next(s[0] for s in scores if s)
        sizes = sorted({str(run.metrics[task].get("n", "")) for run in runs if task in run.metrics})
        lines.append(row(task, METRIC_NAMES[metric], "/".join(sizes), [s[1] if s else None for s in scores]))
    if len(tasks) > 1:
        lines.append(row("**mean**", "unweighted", "", [mean_score(run, tasks) for run in runs]))
    if any(PPL in run.metrics for run in runs):
        values = [run.metrics[PPL]["perplexity"] if PPL in run.metrics else None for run in runs]
        tokens = sorted({str(run.metrics[PPL].get("tokens", "")) for run in runs if PPL in run.metrics})
        lines.append(row("perplexity (lower is better)", "exp(mean NLL)", "/".join(tokens) + " tok", values))
    return "\n".join(lines)


def chart_order(runs: list[Run]) -> list[tuple[str, str]]:
    """(task, metric) for the chart: tasks grouped by metric (accuracy, ROUGE-L, LCS), table order within."""
    pairs = [(task, next(run.score(task)[0] for run in runs if task in run.metrics)) for task in tasks_of(runs)]
    order = list(METRIC_NAMES)
    return sorted(pairs, key=lambda pair: order.index(pair[1]))


def score_chart(runs: list[Run], file: Path) -> None:
    """Grouped bars of every task's score by run on a 0-1 axis; perplexity in its own panel on the right."""
    plt = pyplot()
    pairs = chart_order(runs)
    tasks = [task for task, _ in pairs]
    has_ppl = any(PPL in run.metrics for run in runs)
    width_ratios = [max(len(tasks), 1) * len(runs), 1.6 * len(runs)] if has_ppl else [1]
    figure, axes = plt.subplots(
        1, len(width_ratios), figsize=(2.5 + 0.32 * len(runs) * len(tasks) + (2.4 if has_ppl else 0), 5.6),
        gridspec_kw={"width_ratios": width_ratios}, squeeze=False,
    )
    axes = axes[0]
    colors = plt.get_cmap("tab10").colors
    bar = 0.8 / len(runs)
    ax = axes[0]
    start, group = 0, 0
    for index, (_, metric) in enumerate(pairs):  # a caption per metric, every other group shaded
        if index + 1 == len(pairs) or pairs[index + 1][1] != metric:
            if group % 2:
                ax.axvspan(start - 0.5, index + 0.5, color="0.94", zorder=0)
            ax.text((start + index) / 2, 1.1, METRIC_NAMES[metric], ha="center", va="center", fontsize=9,
                    style="italic", color="0.3")
            start, group = index + 1, group + 1
    for i, run in enumerate(runs):
        xs = [t + (i - (len(runs) - 1) / 2) * bar for t in range(len(tasks))]
        heights = [(run.score(t) or (None, math.nan))[1] for t in tasks]
        ax.bar(xs, heights, bar, label=run.label, color=colors[i % 10], edgecolor="white", linewidth=0.5)
        if len(runs) * len(tasks) <= 40:
            for x, h in zip(xs, heights):
                if not math.isnan(h):
                    ax.text(x, h + 0.01, f"{h:.2f}", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels([task_label(t) for t in tasks], rotation=35, ha="right", fontsize=9)
    ax.set_xlim(-0.5, len(tasks) - 0.5)
    ax.set_ylim(0, 1.16)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("score (0-1, higher is better)")
    ax.set_title("E2WM tasks")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if has_ppl:
        ax = axes[1]
        values = [run.metrics[PPL]["perplexity"] if PPL in run.metrics else math.nan for run in runs]
        ax.bar(range(len(runs)), values, 0.7, color=[colors[i % 10] for i in range(len(runs))])
        for x, v in enumerate(values):
            if not math.isnan(v):
                ax.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([run.label for run in runs], rotation=35, ha="right", fontsize=9)
        ax.set_ylabel("perplexity (exp of mean token NLL)")
        ax.set_title("general text\n(lower is better)")
        top = max((v for v in values if not math.isnan(v)), default=1.0)
        ax.set_ylim(0, top * 1.15)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=min(len(runs), 5), title="run",
                  fontsize=9, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.88))
    save_figure(figure, file)


def train_chart(logs: list[TrainLog], file: Path) -> None:
    """Three panels over optimiser steps: total loss, cross-entropy on ref tokens, and the EWC penalty."""
    plt = pyplot()
    panels = [("loss", "total loss = CE + λ·EWC"), ("ce", "cross-entropy (nats / ref token)"),
              ("ewc", "EWC penalty Σ F·ΔW² (before λ)")]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    window = max(max(len(log.rows) for log in logs) // 10, 1)
    for ax, (key, title) in zip(axes, panels):
        for i, log in enumerate(logs):
            steps, values = [row["step"] for row in log.rows], [row[key] for row in log.rows]
            if window > 1 and key != "ewc":  # every step faint, the moving average bold
                ax.plot(steps, values, color=f"C{i % 10}", alpha=0.3, linewidth=0.8)
                ax.plot(steps, moving_average(values, window), color=f"C{i % 10}", linewidth=1.8, label=log.label)
            else:
                ax.plot(steps, values, color=f"C{i % 10}", linewidth=1.4, label=log.label)
        ax.set_title(title, pad=14)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
        if key == "ewc" and any(row["ewc"] > 0 for log in logs for row in log.rows):
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes[0].set_ylabel("nats per ref token")
    axes[1].set_ylabel("nats per ref token")
    axes[2].set_ylabel("Σ F·ΔW² over adapted matrices")
    axes[0].legend(title="run", fontsize=8)
    if window > 1:
        figure.text(0.5, 0.01, f"faint: every step; bold: mean of the last {window} steps", ha="center",
                    fontsize=8, color="0.35")
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(figure, file)


def curve_keys(logs: list[TrainLog]) -> list[str]:
    """The forgetting-curve fields (eval_ppl, eval_accuracy, in that order) that some log's rows have."""
    return [key for key in CURVE if any(key in row for log in logs for row in log.rows)]


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
                ax.plot(steps, values, color=f"C{i % 10}", marker="o", markersize=3, linewidth=1.4, label=log.label)
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
    figure.savefig(staging, dpi=120)
    plt.close(figure)
    staging.replace(file)


def train_table(logs: list[TrainLog]) -> str:
    """A row per run: steps, first and last loss and CE, last EWC and lr, then the last value of each
    curve_keys field (— for a run that has none)."""
    keys = curve_keys(logs)
    lines = ["| run | steps | first loss | last loss | first CE | last CE | last EWC | last lr |"
             + "".join(f" last {key} |" for key in keys), "|---|" + "---:|" * (7 + len(keys))]
    for log in logs:
        first, last = log.rows[0], log.rows[-1]
        curve = "".join(" — |" if log.last(key) is None else f" {log.last(key):.4f} |" for key in keys)
        lines.append(f"| {log.label} | {last['step']} | {first['loss']:.4f} | {last['loss']:.4f} | "
                     f"{first['ce']:.4f} | {last['ce']:.4f} | {last['ewc']:.3g} | {last.get('lr', math.nan):.2e} |"
                     + curve)
    return "\n".join(lines)


def write_report(runs: list[Path], train_logs: list[Path], out: Path, title: str = "E2WM report") -> str:
    """Write out (markdown) and its PNG charts; returns the markdown. InputError on a bad run directory."""
    if not runs and not train_logs:
        raise InputError("give run directories (from `e2wm eval`), --train-log directories, or both")
    if out.suffix != ".md":
        raise InputError(f"--out {out}: the report is markdown; give a file name ending in .md")
    loaded = [load_run(p, label) for p, label in zip(runs, labels_for(runs))]
    logs = [load_train_log(p, label) for p, label in zip(train_logs, labels_for(train_logs))]
    parts = [f"# {title}", ""]
    if loaded:
        chart = out.with_name(out.stem + ".png")
        score_chart(loaded, chart)
        parts += [
            "## Evaluation", "",
            "Runs: " + ", ".join(f"`{r.label}` ({r.path})" for r in loaded) + ". "
            f"Δ is the relative change against `{loaded[0].label}`; for perplexity lower is better.", "",
            comparison_table(loaded), "",
            f"![Scores by task and run]({chart.name})", "",
        ]
    if logs:
        chart = out.with_name(out.stem + "-train.png")
        train_chart(logs, chart)
        parts += ["## Training", "", train_table(logs), "", f"![Training curves]({chart.name})", ""]
        if curve_keys(logs):
            chart = out.with_name(out.stem + "-eval.png")
            curve_chart(logs, chart)
            parts += ["Held out during training (`e2wm train --eval-every`): perplexity on general text, whose rise "
                      "is the forgetting, and the accuracy on the dev file.", "",
                      f"![Held-out curves]({chart.name})", ""]
    text = "\n".join(parts)
    write_atomic(out, text)
    return text

