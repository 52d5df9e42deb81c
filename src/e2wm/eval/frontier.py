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
The first run is a point like the others, at (0, 0): it dominates a later run with no gain and some drift, or a
loss and no less drift, and is itself off the frontier when a later run gains without drifting more, or drifts
less without losing. The recipe adds the section to the report (`report.write_report`'s sections) and draws
`<report>-frontier.png` beside the other charts.
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
    run_style,
    save_figure,
)
from e2wm.eval.statistics import LEVEL, Interval


@dataclass(frozen=True)
class Point:
    """One run in one family: drift (a fraction: 0.05 is +5% perplexity) and gain (score units) against the first
    run, each with its 95% interval; index: the run's position among the report's runs (its colour in the
    charts)."""

    label: str
    index: int
    drift: Interval
    gain: Interval


@dataclass
class Family:
    """One metric family's frontier: its points, the first run's (`reference`) first, and the later runs left
    out, with why; per point the indices of the points that dominate it (`dominators`, derived from the points)."""

    name: str  # the family's name (accuracy, ROUGE-L / LCS)
    kind: str  # what its tasks are called: QA, generation
    points: list[Point]  # points[REFERENCE]: the first run at (0, 0); then the later runs with both measures
    left_out: list[str] = field(default_factory=list)

    @property
    def later(self) -> list[Point]:
        """The later runs' points: the first run's left out."""
        return self.points[REFERENCE + 1 :]

    @property
    def dominators(self) -> list[list[int]]:
        """Per point, what dominates it (`dominated_by`): [] on the frontier."""
        return dominated_by(self.points)

    def on_frontier(self, i: int) -> bool:
        return not self.dominators[i]

    def dominated(self, i: int) -> list[int]:
        """The indices of the points that point i dominates."""
        return [j for j, found in enumerate(self.dominators) if i in found]


REFERENCE = 0  # in Family.points: the first run


def reference(label: str) -> Point:
    """The first run's point: no drift and no gain against itself, intervals [0, 0] and p 1; index 0, its colour."""
    zero = Interval(0.0, 0.0, 0.0, 1.0)
    return Point(label, 0, zero, zero)


def dominates(a: Point, b: Point) -> bool:
    """a's gain >= b's and a's drift <= b's, one of them strictly (on the estimates)."""
    return (a.gain.estimate >= b.gain.estimate and a.drift.estimate <= b.drift.estimate
            and (a.gain.estimate > b.gain.estimate or a.drift.estimate < b.drift.estimate))


def dominated_by(points: list[Point]) -> list[list[int]]:
    """Per point, the indices (in order) of the points that dominate it (`dominates`); [] for a point on the
    frontier. Equal points dominate neither each other nor a third point the other does not."""
    return [[j for j, other in enumerate(points) if j != i and dominates(other, point)]
            for i, point in enumerate(points)]


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
    """Per family mean of the report, the first run's point (`reference`) and the later runs that have both a drift
    on the perplexity set task and the family's mean Δ against the first run, with the dominance among them; the
    others left out with the reason."""
    base, out = runs[0], []
    for mean in means:
        family = Family(mean.name, mean.kind, [reference(base.label)])
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
    """A family's heading, its table (run, drift [CI], gain [CI], on frontier, dominated by; the first run's row
    first, at 0 as the reference) and a sentence per frontier run, the first run too, naming the runs it
    dominates; or, with fewer than two later runs, why there is no frontier."""
    lines = [f"### mean {family.name} ({family.kind} tasks)", ""]
    if len(family.later) < 2:
        lines += [f"Fewer than two runs have both a drift on {task} and a mean {family.name} against the first run "
                  f"({len(family.later)}), so there is no frontier to draw.", ""]
    else:
        lines += [f"| run | drift on {cell(task)} [{LEVEL:.0%} CI] | gain: mean {cell(family.name)} Δ [{LEVEL:.0%} CI] "
                  "| on frontier | dominated by |", "|---|---:|---:|---|---|"]
        for i, point in enumerate(family.points):
            by = ", ".join(cell(family.points[j].label) for j in family.dominators[i]) or "—"
            drift, gain = (("0 (reference)",) * 2 if i == REFERENCE else
                           (format_interval(point.drift, percent=True), format_interval(point.gain)))
            lines.append(f"| {cell(point.label)} | {drift} | {gain} | {'yes' if family.on_frontier(i) else 'no'} | "
                         f"{by} |")
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
              f"the intervals say how far each point can be trusted). `{base}` is a point too, at (0, 0): on the "
              "frontier unless a later run dominates it.", ""]
    panels = families(runs, found, means, task)
    for family in panels:
        lines += family_lines(family, task)
    drawn = [family for family in panels if len(family.later) >= 2]
    if not drawn:
        return lines, None
    lines += [f"![Learning against forgetting]({chart.name})", ""]
    return lines, lambda: frontier_chart(drawn, task, chart, len(runs))


MARKER_SIZE = 7  # the chart's markers, in points
SYMLOG_BEYOND = 20.0  # the drift axis turns symmetric-logarithmic when an interval reaches beyond ±this many %
DRIFT_LINEAR = 1.0  # ... and is then linear within ±this many %, logarithmic beyond
# where a label may sit, tried in turn: (x, y) from its marker in points, and its horizontal alignment there
LABEL_OFFSETS = ((5, 5, "left"), (5, -11, "left"), (-5, 5, "right"), (-5, -11, "right"), (0, 8, "center"),
                 (0, -16, "center"))


@quiet_glyphs
def frontier_chart(found: list[Family], task: str, file: Path, runs: int) -> None:
    """A panel per family: each run's (drift %, gain) with both 95% intervals as error bars and its label (placed
    off the other markers: `label_points`), filled on the frontier and hollow off it (the legend says so), the
    first run a square at (0, 0), the frontier as a step line through its runs (the best gain at each drift); run i
    has its `report.run_style` (the colour of the score chart). Where an interval reaches beyond ±SYMLOG_BEYOND %
    the drift axis is symmetric-logarithmic, linear within ±DRIFT_LINEAR %: a few runs that drift far (+30%,
    +60%) leave the many near 0 room to be told apart. A panel grows with the report's runs (their number)
    beyond 8."""
    plt = pyplot()
    from matplotlib.ticker import SymmetricalLogLocator

    grow = 1 + max(runs - 8, 0) / 16
    figure, axes = plt.subplots(1, len(found), figsize=(6 * grow * len(found), 4.8 * grow), squeeze=False)
    for ax, family in zip(axes[0], found):
        base = family.points[REFERENCE].label
        ax.axhline(0, color="0.6", linewidth=0.8, zorder=0)
        ax.axvline(0, color="0.6", linewidth=0.8, zorder=0)
        for i, point in enumerate(family.points):
            x, y, style = 100 * point.drift.estimate, point.gain.estimate, run_style(point.index)
            face = style.color if family.on_frontier(i) else "white"
            if i == REFERENCE:  # no interval to draw: the first run against itself
                ax.plot([x], [y], marker="s", color=style.color, markerfacecolor=face, markersize=MARKER_SIZE,
                        linestyle="none", label=f"{base} (the first run, at 0, 0)", zorder=3)
                continue
            xerr = [[max(x - 100 * point.drift.low, 0)], [max(100 * point.drift.high - x, 0)]]  # (2, 1): below, above
            yerr = [[max(y - point.gain.low, 0)], [max(point.gain.high - y, 0)]]
            ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt=style.marker, color=style.color, ecolor=style.color,
                        elinewidth=1, capsize=3, markerfacecolor=face, markersize=MARKER_SIZE)
        ahead = sorted((p for i, p in enumerate(family.points) if family.on_frontier(i)),
                       key=lambda p: (p.drift.estimate, p.gain.estimate))
        xs = [100 * p.drift.estimate for p in ahead]
        ys = [p.gain.estimate for p in ahead]
        right = max(100 * p.drift.high for p in family.points)
        ax.step([*xs, max(right, xs[-1])], [*ys, ys[-1]], where="post", color="0.3", linestyle="--", linewidth=1.2,
                label="frontier")
        for face, meaning in (("0.35", "filled: on the frontier"), ("white", "hollow: dominated (off it)")):
            ax.plot([], [], marker="o", color="0.35", markerfacecolor=face, markersize=MARKER_SIZE, linestyle="none",
                    label=meaning)  # legend entries only: no data
        ax.set_title(f"mean {family.name} ({family.kind} tasks)")
        reach = max(abs(100 * end) for point in family.points for end in (point.drift.low, point.drift.high))
        logarithmic = reach > SYMLOG_BEYOND
        ax.set_xlabel(f"drift: perplexity on {task} vs {base} (%, lower is better)"
                      + (f"\nlogarithmic beyond ±{DRIFT_LINEAR:g}%" if logarithmic else ""))
        ax.set_ylabel(f"gain: mean {family.name} Δ vs {base}")
        if logarithmic:
            ax.set_xscale("symlog", linthresh=DRIFT_LINEAR)
            ax.xaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=DRIFT_LINEAR, subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(lambda value, _: f"{value:+.3g}%" if value else "0%")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    figure.tight_layout()  # the labels are placed in the final layout's pixels
    for ax, family in zip(axes[0], found):
        label_points(ax, [(p.label, 100 * p.drift.estimate, p.gain.estimate, run_style(p.index).color)
                          for p in family.points])
    save_figure(figure, file)


def label_points(ax, points: list[tuple[str, float, float, tuple]]) -> None:
    """Label each (label, x, y, colour) marker of ax at the first of LABEL_OFFSETS where the text covers no other
    marker nor a label placed before it and stays inside the axes, else where it has the fewest such clashes (the
    first of those). Measured in display pixels by the figure's renderer, so ax's limits and layout must be final
    (after tight_layout); a marker counts as a square of MARKER_SIZE plus a point of margin."""
    from matplotlib.transforms import Bbox

    figure = ax.get_figure()
    renderer = figure.canvas.get_renderer()
    ax.autoscale_view()  # settle the (lazily) autoscaled limits before data turn into pixels
    half = (MARKER_SIZE / 2 + 1) * figure.dpi / 72
    markers = [Bbox.from_extents(cx - half, cy - half, cx + half, cy + half)
               for cx, cy in ax.transData.transform([(x, y) for _, x, y, _ in points])]
    frame, placed = ax.get_window_extent(renderer), []

    def clashes(text, offset: tuple[float, float, str], own: int) -> int:
        """Put text at offset; the markers (but its own) and placed labels it covers, plus 1 if it leaves ax."""
        dx, dy, align = offset
        text.xyann = (dx, dy)
        text.set_horizontalalignment(align)
        box = text.get_window_extent(renderer)
        inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        return (sum(box.overlaps(marker) for j, marker in enumerate(markers) if j != own)
                + sum(box.overlaps(other) for other in placed) + (not inside))

    for i, (label, x, y, color) in enumerate(points):
        text = ax.annotate(label, (x, y), textcoords="offset points", xytext=LABEL_OFFSETS[0][:2], fontsize=8,
                           color=color)
        clashes(text, min(LABEL_OFFSETS, key=lambda offset: clashes(text, offset, i)), i)
        placed.append(text.get_window_extent(renderer))
