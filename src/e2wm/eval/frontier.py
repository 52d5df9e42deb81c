"""Learning against forgetting: per metric family, each later run of a report as a point (drift, gain) against the
first run, and the runs on the frontier.

gain: the embodied gain, the family's unweighted mean Δ over its tasks against the first run with its 95% paired
interval and permutation p (`report.family_means`, the very numbers of the report's **mean <family>** row).
drift: the relative change of the run's perplexity on one general text (`--drift-on`, default `ppl`, the first
--ppl-data file) against the first run's, over the same texts, with its 95% paired bootstrap interval
(`statistics.Paired.relative` of the report's perplexity pairing: the interval the table's verdict gives); positive
is forgetting.
A run is on the frontier of a family when no other run has a gain at least as high and a drift at least as low, one
of them strictly (Pareto dominance on the point estimates; the intervals say how far each point can be trusted).
The first run is the reference at (0, 0): a later run that it dominates (no gain and some drift, or a loss and no
less drift) is not on the frontier, and its row says so. The recipe adds the section to the report
(`report.write_report`'s sections) and draws `<report>-frontier.png` beside the other charts.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from e2wm.errors import InputError
from e2wm.eval.compare import PPL, PPL_PREFIX, Comparison
from e2wm.eval.report import (
    FamilyMean,
    Run,
    cell,
    format_interval,
    ppl_sets,
    pyplot,
    quiet_glyphs,
    save_figure,
)
from e2wm.eval.statistics import LEVEL, Interval


@dataclass(frozen=True)
class Point:
    """One later run in one family: drift (a fraction: 0.05 is +5% perplexity) and gain (score units), each with
    its 95% interval; index: the run's position among the report's runs (its colour in the charts)."""

    label: str
    index: int
    drift: Interval
    gain: Interval


@dataclass
class Family:
    """One metric family's frontier: its points and the later runs left out, with why; per point the indices of
    the points that dominate it (`dominators`, derived from the points)."""

    name: str  # the family's name (accuracy, ROUGE-L / LCS)
    kind: str  # what its tasks are called: QA, generation
    points: list[Point]
    left_out: list[str] = field(default_factory=list)
    base: str = "the first run"  # the reference's label; BASE in dominators stands for it

    @property
    def dominators(self) -> list[list[int]]:
        """Per point, what dominates it (`dominated_by`): [] on the frontier."""
        return dominated_by(self.points)

    def on_frontier(self, i: int) -> bool:
        return not self.dominators[i]

    def dominated(self, i: int) -> list[int]:
        """The indices of the points that point i dominates."""
        return [j for j, found in enumerate(self.dominators) if i in found]

    def label(self, j: int) -> str:
        """The label of dominators' entry j: a point's, or the first run's for BASE."""
        return self.base if j == BASE else self.points[j].label


BASE = -1  # in Family.dominators: the first run, at (0, 0)


def beats(gain: float, drift: float, b: Point) -> bool:
    """(gain, drift) has a gain >= b's and a drift <= b's, one of them strictly (on the estimates)."""
    return (gain >= b.gain.estimate and drift <= b.drift.estimate
            and (gain > b.gain.estimate or drift < b.drift.estimate))


def dominates(a: Point, b: Point) -> bool:
    """a's gain >= b's and a's drift <= b's, one of them strictly (on the estimates)."""
    return beats(a.gain.estimate, a.drift.estimate, b)


def dominated_by(points: list[Point]) -> list[list[int]]:
    """Per point, the indices (in order) of what dominates it: BASE first when the first run at (0, 0) does
    (`beats`), then the other points (`dominates`); [] for a point on the frontier. Equal points dominate neither
    each other nor a third point the other does not."""
    others = [[j for j, other in enumerate(points) if j != i and dominates(other, point)]
              for i, point in enumerate(points)]
    return [[BASE] * beats(0.0, 0.0, point) + found for point, found in zip(points, others)]


def drift_set(runs: list[Run], drift_on: str) -> str | None:
    """The perplexity set of the first run that drift_on names: a set's task name (`ppl`, `ppl:<label>`) or a
    further set's label alone; None when the first run has no perplexity set and drift_on is the default `ppl`
    (the section then says there is no drift).

    Raises:
        InputError: --drift-on names no perplexity set of the first run, listing those it has.
    """
    available = ppl_sets(runs[:1])
    for name in (drift_on, PPL_PREFIX + drift_on):
        if name in available:
            return name
    if not available and drift_on == PPL:
        return None
    have = ", ".join(available) or "none (evaluate it with --ppl-data)"
    raise InputError(f"--drift-on {drift_on}: the first run {runs[0].path} has no perplexity set of that name; its "
                     f"sets: {have}")


def families(runs: list[Run], found: list[Comparison], means: list[FamilyMean], task: str) -> list[Family]:
    """Per family mean of the report, the later runs that have both a drift on the perplexity set task and the
    family's mean Δ against the first run, with the dominance among them; the others left out with the reason."""
    base, out = runs[0], []
    for mean in means:
        family = Family(mean.name, mean.kind, [], base=base.label)
        for index, (run, comparison, gain) in enumerate(zip(runs[1:], found, mean.changes), start=1):
            pair = comparison.perplexities.get(task)  # its relative change is defined: a perplexity is at least 1
            if pair is None:  # the first run has the set (`drift_set`): this run lacks it, or the pairing failed
                why = comparison.ppl_notes.get(task) or f"it has no {task}"
                family.left_out.append(f"`{run.label}` (no drift on {task}: {why})")
            elif gain is None:
                family.left_out.append(f"`{run.label}` (no mean {mean.name}: it or `{base.label}` lacks one of "
                                       f"{', '.join(mean.tasks)})")
            else:
                family.points.append(Point(run.label, index, pair.relative, gain))
        out.append(family)
    return out


def family_lines(family: Family, task: str) -> list[str]:
    """A family's heading, its table (run, drift [CI], gain [CI], on frontier, dominated by) and a sentence per
    frontier run naming the runs it dominates; or, with fewer than two points, why there is no frontier."""
    lines = [f"### mean {family.name} ({family.kind} tasks)", ""]
    if len(family.points) < 2:
        lines += [f"Fewer than two runs have both a drift on {task} and a mean {family.name} against the first run "
                  f"({len(family.points)}), so there is no frontier to draw.", ""]
    else:
        lines += [f"| run | drift on {cell(task)} [{LEVEL:.0%} CI] | gain: mean {cell(family.name)} Δ [{LEVEL:.0%} CI] "
                  "| on frontier | dominated by |", "|---|---:|---:|---|---|"]
        for i, point in enumerate(family.points):
            by = ", ".join(cell(family.label(j)) for j in family.dominators[i]) or "—"
            lines.append(f"| {cell(point.label)} | {format_interval(point.drift, percent=True)} | "
                         f"{format_interval(point.gain)} | {'yes' if family.on_frontier(i) else 'no'} | {by} |")
        lines.append("")
        for i, point in enumerate(family.points):
            if family.on_frontier(i):
                beaten = family.dominated(i)
                named = ", ".join(f"`{family.points[j].label}`" for j in beaten) if beaten else "no other run"
                lines.append(f"- `{point.label}` dominates {named}.")
        lines.append("")
    if family.left_out:
        lines += [f"Left out: {'; '.join(family.left_out)}.", ""]
    return lines


def frontier_section(runs: list[Run], found: list[Comparison], means: list[FamilyMean], drift_on: str,
                     chart: Path) -> tuple[list[str], Callable[[], None] | None]:
    """The report's `## Learning against forgetting` section and the drawing of chart (None when no family has two
    points); no section for a single run. A `report.Section` once drift_on and chart are bound.

    Raises:
        InputError: drift_on names no perplexity set of the first run (`drift_set`), with one run too.
    """
    task = drift_set(runs, drift_on)
    if not found:
        return [], None
    base = runs[0].label
    lines = ["## Learning against forgetting", ""]
    if task is None:
        return lines + [f"No drift to set against the gains: `{base}` has no perplexity on general text (evaluate "
                        "the runs with `e2wm eval --ppl-data FILE`).", ""], None
    if not means:
        return lines + ["No gain to set against the drift: no metric family has a mean over two tasks or more "
                        "in these runs (the table gives a family's mean only then).", ""], None
    lines += [f"Per metric family, each later run's embodied gain, the family's mean Δ against `{base}` (its "
              f"**mean** row in the table above, with its {LEVEL:.0%} paired interval), against its drift: the "
              f"relative change of its perplexity on {task} against `{base}`'s over the same texts, with its "
              f"{LEVEL:.0%} paired bootstrap "
              "interval (positive: forgetting; `--drift-on` picks the set). A run is on the frontier when no other "
              "run has a gain at least as high and a drift at least as low, one of them strictly (on the estimates; "
              f"the intervals say how far each point can be trusted). `{base}` is at (0, 0).", ""]
    panels = families(runs, found, means, task)
    for family in panels:
        lines += family_lines(family, task)
    drawn = [family for family in panels if len(family.points) >= 2]
    if not drawn:
        return lines, None
    lines += [f"![Learning against forgetting]({chart.name})", ""]
    return lines, lambda: frontier_chart(drawn, base, task, chart)


@quiet_glyphs
def frontier_chart(found: list[Family], base: str, task: str, file: Path) -> None:
    """A panel per family: each run's (drift %, gain) with both 95% intervals as error bars and its label, filled on
    the frontier and hollow off it, the frontier as a step line (the best gain at each drift), the first run at
    (0, 0); run i has the colour it has in the report's score chart."""
    plt = pyplot()
    colors = plt.get_cmap("tab10").colors
    figure, axes = plt.subplots(1, len(found), figsize=(6 * len(found), 4.8), squeeze=False)
    for ax, family in zip(axes[0], found):
        ax.axhline(0, color="0.6", linewidth=0.8, zorder=0)
        ax.axvline(0, color="0.6", linewidth=0.8, zorder=0)
        ax.plot([0], [0], marker="s", color="0.15", linestyle="none", label=f"{base} (the first run)")
        ax.annotate(base, (0, 0), textcoords="offset points", xytext=(5, -11), fontsize=8, color="0.15")
        for i, point in enumerate(family.points):
            x, y, color = 100 * point.drift.estimate, point.gain.estimate, colors[point.index % 10]
            xerr = [[max(x - 100 * point.drift.low, 0)], [max(100 * point.drift.high - x, 0)]]  # (2, 1): below, above
            yerr = [[max(y - point.gain.low, 0)], [max(point.gain.high - y, 0)]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color=color, ecolor=color, elinewidth=1, capsize=3,
                        markerfacecolor=color if family.on_frontier(i) else "white", markersize=7)
            ax.annotate(point.label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8, color=color)
        ahead = sorted((p for i, p in enumerate(family.points) if family.on_frontier(i)),
                       key=lambda p: (p.drift.estimate, p.gain.estimate))
        if ahead:
            xs = [100 * p.drift.estimate for p in ahead]
            ys = [p.gain.estimate for p in ahead]
            right = max(100 * p.drift.high for p in family.points)
            ax.step([*xs, max(right, xs[-1])], [*ys, ys[-1]], where="post", color="0.3", linestyle="--",
                    linewidth=1.2, label="frontier")
        ax.set_title(f"mean {family.name} ({family.kind} tasks)")
        ax.set_xlabel(f"drift: perplexity on {task} vs {base} (%, lower is better)")
        ax.set_ylabel(f"gain: mean {family.name} Δ vs {base}")
        ax.xaxis.set_major_formatter(lambda value, _: f"{value:+g}%")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    figure.tight_layout()
    save_figure(figure, file)
