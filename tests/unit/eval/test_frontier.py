"""The learning-against-forgetting frontier: Pareto dominance on hand-made points (ties, equal points, a run dominated
by two, the first run at (0, 0) dominating and dominated), the choice of the drift's perplexity set, runs left out and
the section's lines."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from e2wm.errors import InputError
from e2wm.eval.compare import Comparison
from e2wm.eval.frontier import (
    REFERENCE,
    Family,
    Point,
    dominated_by,
    dominates,
    drift_set,
    families,
    family_lines,
    reference,
)
from e2wm.eval.report import FamilyMean, Run
from e2wm.eval.statistics import Interval


def point(label: str, drift: float, gain: float) -> Point:
    """A run at (drift, gain), each with an interval of ±0.01 around it and p = 0.01."""
    return Point(label, 1, Interval(drift, drift - 0.01, drift + 0.01, 0.01), Interval(gain, gain - 0.01, gain + 0.01,
                                                                                         0.01))


def labels(points: list[Point], indices: list[int]) -> list[str]:
    return [points[i].label for i in indices]


def test_dominance_needs_one_strict_improvement():
    a = point("a", 0.02, 0.10)
    assert dominates(point("less drift", 0.01, 0.10), a)  # same gain, less drift
    assert dominates(point("more gain", 0.02, 0.11), a)  # same drift, more gain
    assert dominates(point("both", 0.0, 0.2), a)
    assert not dominates(point("same", 0.02, 0.10), a)  # equal: neither is better
    assert not dominates(point("trade-off", 0.01, 0.05), a) and not dominates(a, point("trade-off", 0.01, 0.05))
    assert not dominates(a, a)


def test_a_run_dominated_by_two_and_a_trade_off_frontier():
    points = [reference("base"), point("lora", 0.08, 0.30), point("ewc", 0.01, 0.20), point("worse", 0.09, 0.15),
              point("tradeoff", 0.04, 0.25), point("tied-gain", 0.10, 0.30)]
    found = dominated_by(points)
    assert [labels(points, by) for by in found] == [[], [], [], ["lora", "ewc", "tradeoff"], [], ["lora"]]
    family = Family("accuracy", "QA", points)
    assert family.dominators == found
    assert [p.label for i, p in enumerate(points) if family.on_frontier(i)] == ["base", "lora", "ewc", "tradeoff"]
    assert labels(points, family.dominated(1)) == ["worse", "tied-gain"]  # lora: tied-gain has its gain, more drift
    assert labels(points, family.dominated(2)) == ["worse"]
    assert family.dominated(3) == [] and family.dominated(REFERENCE) == []  # every later run drifts: base beats none


def test_equal_points_are_both_on_the_frontier_and_share_what_they_dominate():
    points = [point("a", 0.03, 0.2), point("b", 0.03, 0.2), point("c", 0.05, 0.1)]
    found = dominated_by(points)
    assert found == [[], [], [0, 1]]
    family = Family("accuracy", "QA", [reference("base"), *points])
    lines = family_lines(family, "ppl")
    assert "- `a` dominates `c`." in lines and "- `b` dominates `c`." in lines
    assert "| base | 0 (reference) | 0 (reference) | yes | — |" in lines and "- `base` dominates no other run." in lines
    assert "| c | +5.0% [+4.0%, +6.0%] | +0.1000 [+0.0900, +0.1100] | no | a, b |" in lines
    assert "| a | +3.0% [+2.0%, +4.0%] | +0.2000 [+0.1900, +0.2100] | yes | — |" in lines


def test_the_first_run_is_a_point_at_zero_like_the_others():
    """The first run sits at (0, 0): a run with no gain and some drift, or a loss and drift, is dominated by it; a
    loss with less drift is a trade-off; on the frontier, its sentence says what it dominates."""
    points = [reference("base"), point("flat", 0.0004, 0.0), point("loss", 0.01, -0.05), point("gain", 0.02, 0.1),
              point("kept", -0.01, -0.05)]
    assert dominated_by(points) == [[], [REFERENCE], [REFERENCE, 1, 4], [], []]  # flat and kept beat loss too
    family = Family("accuracy", "QA", points)
    lines = family_lines(family, "ppl")
    assert "| flat | +0.04% [-0.96%, +1.0%] | +0.0000 [-0.0100, +0.0100] | no | base |" in lines
    assert lines[4] == "| base | 0 (reference) | 0 (reference) | yes | — |"  # its row first
    assert [family.on_frontier(i) for i in range(5)] == [True, False, False, True, True]
    assert "- `base` dominates `flat`, `loss`." in lines and "- `kept` dominates `loss`." in lines
    assert [p.label for p in family.later] == ["flat", "loss", "gain", "kept"]


def test_a_run_that_gains_with_less_drift_takes_the_first_run_off_the_frontier():
    """Negative drift (less perplexity than the first run) with a gain dominates the first run: its row says so, it
    gets no sentence, and the run that dominates it names it (the real study's ewc-0.5 on prose)."""
    family = Family("accuracy", "QA", [reference("base"), point("ewc", -0.007, 0.03), point("lora", 0.1, 0.02)])
    assert family.dominators == [[1], [], [1]]
    lines = family_lines(family, "ppl")
    assert "| base | 0 (reference) | 0 (reference) | no | ewc |" in lines
    assert "- `ewc` dominates `base`, `lora`." in lines and not any(line.startswith("- `base`") for line in lines)


def test_a_frontier_run_that_dominates_nobody_says_so():
    points = [point("a", 0.01, 0.1), point("b", 0.02, 0.2)]
    lines = family_lines(Family("ROUGE-L / LCS", "generation", [reference("base"), *points]), "ppl:human")
    assert lines[0] == "### mean ROUGE-L / LCS (generation tasks)"
    assert lines[2] == ("| run | drift on ppl:human [95% CI] | gain: mean ROUGE-L / LCS Δ [95% CI] | on frontier | "
                        "dominated by |")
    assert "- `a` dominates no other run." in lines and "- `b` dominates no other run." in lines


def test_fewer_than_two_points_say_why_and_give_no_table():
    lines = family_lines(Family("accuracy", "QA", [reference("base"), point("a", 0.01, 0.1)],
                                ["`b` (no drift on ppl: x)"]), "ppl")
    text = "\n".join(lines)
    assert "Fewer than two runs have both a drift on ppl and a mean accuracy against the first run (1)" in text
    assert "| run |" not in text and "Left out: `b` (no drift on ppl: x)." in text


def run(label: str, metrics: dict) -> Run:
    return Run(label, Path("runs") / label, metrics)


PPL_RESULT = {"perplexity": 10.0}


def test_drift_on_names_a_set_or_a_label_and_lists_the_sets_when_absent():
    runs = [run("base", {"count": {}, "ppl": PPL_RESULT, "ppl:human": PPL_RESULT}), run("tuned", {})]
    assert drift_set(runs, "ppl") == "ppl"
    assert drift_set(runs, "ppl:human") == drift_set(runs, "human") == "ppl:human"
    with pytest.raises(InputError, match=r"^--drift-on wiki: the first run runs/base has no perplexity set of that "
                                         r"name; its sets: ppl, ppl:human$"):
        drift_set(runs, "wiki")
    bare = [run("base", {"count": {}}), run("tuned", {"ppl": PPL_RESULT})]  # only the first run's sets count
    assert drift_set(bare, "ppl") is None  # the default, with nothing to measure: the section says so
    with pytest.raises(InputError, match=r"its sets: none \(evaluate it with --ppl-data\)"):
        drift_set(bare, "human")


def test_runs_without_a_drift_or_a_family_mean_are_left_out_with_the_reason():
    def paired(relative):
        return SimpleNamespace(relative=relative)  # what families reads of a statistics.Paired

    drift = Interval(0.05, 0.03, 0.07, 0.01)
    gain = Interval(0.1, 0.05, 0.15, 0.02)
    runs = [run(name, {}) for name in ("base", "a", "b", "c", "d")]
    found = [Comparison({}, None, None, [], {"ppl": paired(drift)}),
             Comparison({}, None, None, [], {}, {"ppl": "no interval: the runs scored different texts"}),
             Comparison({}, None, None, [], {}),
             Comparison({}, None, None, [], {"ppl": paired(drift)})]
    means = [FamilyMean("accuracy", "QA", ["count", "act_recog"], [gain, gain, gain, None])]
    [family] = families(runs, found, means, "ppl")
    zero = Interval(0.0, 0.0, 0.0, 1.0)
    assert [(p.label, p.index, p.drift, p.gain) for p in family.points] == [("base", 0, zero, zero),
                                                                            ("a", 1, drift, gain)]
    assert family.left_out == [
        "`b` (no drift on ppl: no interval: the runs scored different texts)",
        "`c` (no drift on ppl: it has no ppl)",
        "`d` (no mean accuracy: it or `base` lacks one of count, act_recog)"]


@pytest.mark.parametrize(("far", "scale", "ticks"), [(0.56, "symlog", ["-1%", "0%", "+1%", "+10%"]),
                                                      (0.08, "linear", ["0%", "+2%", "+4%", "+6%", "+8%"])])
def test_the_drift_axis_turns_logarithmic_only_for_a_run_that_drifts_far(far, scale, ticks, tmp_path, monkeypatch):
    import e2wm.eval.frontier as frontier

    drawn = []
    monkeypatch.setattr(frontier, "save_figure", lambda figure, file: drawn.append(figure))
    points = [reference("base"), point("lora", 0.10 if far > 0.2 else 0.05, 0.30), point("ewc", -0.007, 0.28),
              point("osf", far, 0.35), point("kl", 0.0004, 0.2)]
    frontier.frontier_chart([Family("accuracy", "QA", points)], "ppl:prose", tmp_path / "f.png", 5)
    ax = drawn[0].axes[0]
    assert ax.get_xscale() == scale
    shown = [tick.get_text() for tick in ax.get_xticklabels() if tick.get_text()]
    assert set(ticks) <= set(shown) and all(len(text) <= 7 for text in shown)  # +0.0783223% once
    assert ("logarithmic beyond ±1%" in ax.get_xlabel()) == (scale == "symlog")
    assert [text.get_text() for text in ax.texts] == ["base", "lora", "ewc", "osf", "kl"]
