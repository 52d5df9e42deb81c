"""Standard errors, Wilson intervals, baselines, histograms, bootstrap intervals and permutation tests against
hand-worked values, and the permutation test's false verdicts on simulated runs without a real change."""

import math
import warnings

import numpy as np
import pytest

from e2wm.eval.results import results_table
from e2wm.eval.statistics import (
    Interval,
    answer_histogram,
    binomial_stderr,
    bootstrap_stderr,
    chance_baseline,
    detectable_difference,
    generation_statistics,
    majority_baseline,
    mean_over_tasks,
    min_items_for_verdict,
    multiple_choice_statistics,
    paired_bootstrap,
    perplexity_of,
    perplexity_statistics,
    ratio_samples,
    relative_gain,
    resample_indices,
    wilson_interval,
)

# a 10-item counting file: gold answers, options per item, and a model right on 7 items
GOLD = ["1", "1", "2", "1", "3", "2", "1", "1", "2", "3"]
OPTIONS = [2, 2, 4, 4, 4, 5, 5, 5, 5, 5]
PREDICTED = ["1", "1", "2", "1", "3", "2", "1", "2", "1", "1"]  # wrong on the last three


def test_ten_item_file_by_hand():
    stats = multiple_choice_statistics(PREDICTED, GOLD, OPTIONS)
    # p = 0.7: sqrt(0.7 * 0.3 / 9) = 0.152753; lm-eval's mean_stderr: sample stddev sqrt(2.1 / 9) / sqrt(10)
    assert stats["accuracy_stderr"] == pytest.approx(0.1527525, abs=1e-7)
    assert stats["accuracy_stderr"] == pytest.approx(math.sqrt((7 * 0.3**2 + 3 * 0.7**2) / 9) / math.sqrt(10))
    assert stats["chance"] == pytest.approx((2 * 0.5 + 3 * 0.25 + 5 * 0.2) / 10) == pytest.approx(0.275)
    assert (stats["majority_answer"], stats["majority"]) == ("1", 0.5)  # "1" is gold 5 times in 10
    assert stats["answers"] == {"gold": {"1": 5, "2": 3, "3": 2}, "predicted": {"1": 6, "2": 3, "3": 1}}
    assert stats["stderr_method"] == "binomial" and stats["constant_prediction"] is False
    # Wilson, z = 1.959964: (0.7 + 0.19208 ± 1.959964 sqrt(0.021 + 0.0009604)) / 1.384146 = [0.39678, 0.89221]
    assert stats["accuracy_ci95"] == [pytest.approx(0.396778, abs=1e-6), pytest.approx(0.892209, abs=1e-6)]


def test_wilson_interval_is_not_empty_at_0_or_1():
    """An accuracy of 0 or 1 has binomial stderr 0; its Wilson interval still spans what so few items allow."""
    assert binomial_stderr([1.0, 1.0, 1.0]) == 0.0
    low, high = wilson_interval(3, 3)
    assert high == 1.0 and low == pytest.approx(3 / (3 + 1.959964**2), abs=1e-6)  # n / (n + z²) = 0.43850
    assert wilson_interval(0, 10) == (0.0, pytest.approx(3.841459 / 13.841459, abs=1e-6))  # z² / (n + z²) = 0.27753
    assert wilson_interval(5, 10) == (pytest.approx(0.236593, abs=1e-6), pytest.approx(0.763407, abs=1e-6))


def test_constant_answer_model_is_flagged():
    """A model that answers "1" to everything scores exactly the majority baseline, and says so."""
    stats = multiple_choice_statistics(["1"] * 10, GOLD, OPTIONS)
    result = {"accuracy": 0.5, "n": 10, "n_original": 10, "truncated": 0, **stats}
    assert stats["constant_prediction"] and stats["answers"]["predicted"] == {"1": 10}
    assert result["accuracy"] == stats["majority"]
    text = results_table({"count": result}, "m")
    assert "count: the model gave the same answer ('1') to all 10 items" in text
    assert "count: accuracy 0.5000 is not above the majority baseline 0.5000 (always answering '1')" in text
    # sqrt(.25 / 9) = 0.1667; Wilson's interval of 5 of 10
    assert "| count | accuracy | 0.5000 | 0.2366-0.7634 | 0.1667 | 0.2750 | 0.5000 | 10 | 0 |" in text
    assert "| 1 | 5 | 10 |" in text and "| 2 | 3 | 0 |" in text  # the histogram: gold 5, predicted 10


def test_baselines_edge_cases():
    assert majority_baseline(["b", "a", "a", "b"]) == ("b", 0.5)  # a tie goes to the first met
    assert majority_baseline(["x"]) == ("x", 1.0)
    assert chance_baseline([4, 4, 4]) == 0.25
    assert binomial_stderr([1.0]) is None and binomial_stderr([1.0, 1.0, 1.0]) == 0.0
    assert binomial_stderr([0.0, 1.0]) == 0.5
    histogram = answer_histogram(["a", "b", "a"], ["b", "b", "c"])
    assert histogram == {"gold": {"b": 2, "c": 1}, "predicted": {"a": 2, "b": 1}}


def test_seeded_bootstrap_reproduces_and_matches_the_formula():
    scores = [0.0, 0.2, 0.9, 0.4, 0.4, 1.0, 0.0, 0.3] * 10  # 80 items
    first = bootstrap_stderr(scores, 10_000, seed=3, name="plan_gen")
    assert bootstrap_stderr(scores, 10_000, seed=3, name="plan_gen") == first  # same seed: the same number
    assert bootstrap_stderr(scores, 10_000, seed=4, name="plan_gen") != first
    assert bootstrap_stderr(scores, 10_000, seed=3, name="other") != first  # each task its own stream
    plug_in = np.std(scores) / math.sqrt(len(scores))  # the bootstrap's target: sigma_hat / sqrt(n)
    assert first == pytest.approx(plug_in, rel=0.03)
    assert bootstrap_stderr([0.5], 100, seed=0) is None
    stats = generation_statistics({"lcs": scores}, 2000, 5, "obj_move_path")
    assert stats == {"lcs_stderr": bootstrap_stderr(scores, 2000, 5, "obj_move_path"), "stderr_method": "bootstrap",
                     "bootstrap_resamples": 2000, "seed": 5}
    indices = resample_indices(7, 300, seed=1, name="t")
    assert indices.shape == (300, 7) and indices.min() >= 0 and indices.max() == 6
    assert (resample_indices(7, 300, seed=1, name="t") == indices).all()


def test_paired_bootstrap_hand_worked():
    # per-item differences (0, 1): resampled means 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the 95% interval is [0, 1];
    # one item differs: swapping it or not gives +0.5 and -0.5, p = 1
    pair = paired_bootstrap([0.0, 0.0], [0.0, 1.0], 10_000, seed=0)
    assert pair.difference == Interval(0.5, 0.0, 1.0, 1.0) and pair.difference.verdict == "noise"
    assert pair.relative is None  # the base scored 0
    clear = paired_bootstrap([0.0] * 20 + [1.0] * 20, [1.0] * 40, 10_000, seed=0, name="act_recog")
    assert clear.difference.estimate == 0.5 and clear.difference.verdict == "gain"
    assert clear.p == 2 / 2**20  # 20 items differ, all upward: exact, the two extreme patterns of 2^20
    # the mean of 40 Bernoulli(0.5) differences: about 0.5 +- 1.96 * sqrt(0.25 / 40) = 0.5 +- 0.155
    assert clear.difference.low == pytest.approx(0.345, abs=0.03) and clear.difference.high == pytest.approx(0.655,
                                                                                                           abs=0.03)
    assert clear.relative.estimate == 1.0 and clear.relative.verdict == "gain"  # 0.5 -> 1.0: +100%
    again = paired_bootstrap([0.0] * 20 + [1.0] * 20, [1.0] * 40, 10_000, seed=0, name="act_recog")
    assert again.difference == clear.difference  # seeded: the same interval
    same = paired_bootstrap([0.3, 0.6, 0.1], [0.3, 0.6, 0.1], 1000, seed=0)
    assert same.difference == Interval(0.0, 0.0, 0.0, 1.0) and same.difference.verdict == "no change"
    worse = paired_bootstrap([1.0] * 30, [0.0] * 30, 1000, seed=0)  # 30 items differ: 1000 random swap patterns
    assert worse.difference.verdict == "loss" and worse.relative == Interval(-1.0, -1.0, -1.0, 1 / 1001)
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1.0, 0.0], [1.0], 100, seed=0)


def test_relative_gain_and_the_mean_over_tasks():
    gain = relative_gain(np.array([0.0, 0.5, 0.3, 0.2]), np.array([0.0, 0.0, 0.2, 0.4]))
    assert gain.tolist() == [0.0, math.inf, pytest.approx(0.5), -0.5]
    a = paired_bootstrap([0.0] * 10 + [1.0] * 10, [1.0] * 20, 5000, seed=1, name="a")  # 0.5 -> 1.0
    b = paired_bootstrap([1.0] * 10 + [0.0] * 10, [1.0] * 5 + [0.0] * 15, 5000, seed=1, name="b")  # 0.5 -> 0.25
    assert (a.p, b.p) == (2 / 2**10, 2 / 2**5)  # 10 items all up: exact sign test; 5 items all down: 0.0625
    mean = mean_over_tasks([a, b], 5000, seed=1)
    assert mean.estimate == pytest.approx((0.5 - 0.25) / 2)
    assert mean.low < mean.estimate < mean.high and mean.verdict == "noise"
    # 15 differing items, every pattern: with k of a's 10 and j of b's 5 swapped the mean is
    # ((10 - 2k) - (5 - 2j)) / 40, as extreme as 0.125 when |5 - 2k + 2j| >= 5: sum of C(10, k) C(5, j) = 9888
    assert mean.p == 9888 / 2**15
    headline = mean_over_tasks([a, b], 5000, seed=1, relative=True)
    assert headline.estimate == pytest.approx((1.0 - 0.5) / 2)  # +100% and -50%: the paper's mean of relative gains


def test_permutation_test_hand_cases():
    """For 0/1 scores the permutation test is the exact McNemar (sign) test over the items that differ."""
    three = paired_bootstrap([0.0] * 5, [1.0, 1.0, 1.0, 0.0, 0.0], 10_000, seed=0)  # 0/5 -> 3/5
    assert three.p == 0.25 and three.difference.verdict == "noise"  # 2 of the 8 patterns are as extreme
    assert paired_bootstrap([0.0] * 3, [1.0] * 3, 1000, seed=0).p == 0.25
    six = paired_bootstrap([0.0] * 6, [1.0] * 6, 1000, seed=0)
    assert six.p == 0.03125 and six.difference.verdict == "gain"
    # 10/30 -> 15/30, the 5 changed items all upward: 2 / 2^5
    rising = paired_bootstrap([1.0] * 10 + [0.0] * 20, [1.0] * 15 + [0.0] * 15, 10_000, seed=0)
    assert rising.p == 0.0625 and rising.difference.verdict == "noise"
    assert rising.difference.low > 0  # the percentile interval alone would have called it a gain
    # 7 up and 1 down of 8 discordant items: two-sided sign test 2 * (1 + 8) / 256
    mixed = paired_bootstrap([0.0] * 7 + [1.0], [1.0] * 7 + [0.0], 1000, seed=0)
    assert mixed.p == pytest.approx(18 / 256) and mixed.difference.verdict == "noise"
    # graded scores: d = (0.1, 0.2, 0.3, -0.05), sum 0.55; a swap pattern is as extreme (|sum| >= 0.55) when it
    # swaps nothing (0.55), only the 4th item (0.65), everything (-0.55) or all but the 4th (-0.65): 4 of 16
    graded = paired_bootstrap([0.5, 0.5, 0.5, 0.5], [0.6, 0.7, 0.8, 0.45], 1000, seed=0)
    assert graded.p == 0.25
    # past EXACT_UNITS differing items: seeded Monte Carlo, the same p for the same seed
    rng = np.random.default_rng(7)
    base, other = rng.random(40), rng.random(40) + 0.2
    first = paired_bootstrap(base, other, 2000, seed=3, name="plan_gen").p
    assert paired_bootstrap(base, other, 2000, seed=3, name="plan_gen").p == first < 0.05
    assert min_items_for_verdict() == 6 and 2 / 2**5 > 0.05 > 2 / 2**6


def null_pairs(n: int, pairs: int, rng: np.random.Generator, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Runs with no real change: per item the two runs' scores are exchangeable. kind 'qa50': independent
    Bernoulli(0.5) scores (half the items discordant); 'qa80': 80% of the items discordant, each way with
    chance 1/2; 'rouge': independent Beta(2, 5) scores (ROUGE-like, every item differs)."""
    found = []
    for _ in range(pairs):
        if kind == "qa50":
            a, b = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
        elif kind == "qa80":
            discordant, up = rng.random(n) < 0.8, rng.random(n) < 0.5
            a = np.where(discordant, (~up).astype(float), 1.0)
            b = np.where(discordant, up.astype(float), 1.0)
        else:
            a, b = rng.beta(2, 5, n), rng.beta(2, 5, n)
        found.append((a, b))
    return found


@pytest.mark.parametrize(("n", "kind"), [(4, "qa50"), (4, "qa80"), (5, "qa50"), (8, "qa50"), (8, "qa80"),
                                         (30, "qa50"), (5, "rouge"), (30, "rouge")])
def test_false_verdicts_on_null_runs_stay_below_five_percent(n, kind):
    """The percentile bootstrap called 8.8-18% of such pairs a gain or loss at n = 4-8; the test must not.

    400 seeded pairs: the 5% level plus 2 binomial standard errors of 400 draws (0.022) as tolerance."""
    rng = np.random.default_rng(20_000 + n)
    verdicts = [paired_bootstrap(a, b, 1000, seed=1, name="t").difference.verdict
                for a, b in null_pairs(n, 400, rng, kind)]
    false = sum(v in ("gain", "loss") for v in verdicts) / len(verdicts)
    assert false <= 0.05 + 0.022
    if n <= 5:
        assert false == 0  # the smallest two-sided p at 4 or 5 items is 0.125 or 0.0625


def test_false_verdicts_of_the_mean_over_tasks_on_null_runs():
    """The mean over 11 tasks of 4 items (the demo's size): the bootstrap called 9.5% of null runs a change."""
    rng = np.random.default_rng(11)
    false = 0
    for trial in range(200):
        pairs = [paired_bootstrap(a, b, 300, seed=trial, name=f"task{t}")
                 for t, (a, b) in enumerate(null_pairs(4, 11, rng, "qa50"))]
        false += mean_over_tasks(pairs, 300, seed=trial).verdict in ("gain", "loss")
    assert false / 200 <= 0.05 + 0.031  # 2 standard errors of 200 draws


def test_detectable_difference_from_n_alone():
    """(1.959964 + 0.841621) sqrt(psi / n), psi = 0.3, and 2.8016 * 0.15 / sqrt(n): docs/statistics.md's table."""
    assert detectable_difference(40, "accuracy") == pytest.approx(2.801585 * math.sqrt(0.3 / 40), abs=1e-5)
    assert detectable_difference(183, "accuracy") == pytest.approx(0.1134, abs=1e-4)
    assert detectable_difference(59, "rougeL") == pytest.approx(0.0547, abs=1e-4)
    assert detectable_difference(25, "lcs") == pytest.approx(2.801585 * 0.15 / 5, abs=1e-5)


def test_perplexity_over_texts():
    indices = np.array([[0, 0], [0, 1], [1, 1]])
    assert ratio_samples([2.0, 4.0], [1, 3], indices).tolist() == [2.0, 1.5, pytest.approx(4 / 3)]
    stats = perplexity_statistics([2.0, 4.0, 3.0, 5.0], [1, 3, 2, 4], 4000, seed=2)
    low, high = stats["perplexity_ci95"]
    assert low < math.exp(14 / 10) < high and stats["nll_stderr"] > 0
    assert perplexity_statistics([3.0], [2], 100, seed=2)["perplexity_ci95"] is None
    # paired over texts: 6 texts all worse is the smallest p a 6-unit test can give, 2 / 64
    base = [(20.0, 10), (30.0, 12), (25.0, 11), (22.0, 10), (18.0, 9), (26.0, 12)]
    worse = [(nll + 2.0, tokens) for nll, tokens in base]
    pair = paired_bootstrap(base, worse, 2000, seed=0, name="ppl", measure=perplexity_of)
    assert pair.base_mean == pytest.approx(math.exp(141 / 64)) and pair.other_mean == pytest.approx(math.exp(153 / 64))
    assert pair.p == 2 / 64 and pair.difference.verdict == "gain"  # higher perplexity: worse, said by the report


def test_results_table_edge_cases():
    """Perplexity alone: no stderr note for tasks; answers holding '|' stay one table cell."""
    text = results_table({"ppl": {"perplexity": 10.0, "nll": 2.3, "tokens": 50, "texts": 1, "mode": "windows",
                                  "nll_stderr": None, "perplexity_ci95": None}}, "m")
    assert "| ppl | perplexity | 10.0000 (50 tokens) | — | — | — | — | 1 |  |" in text and "stderr:" not in text
    stats = multiple_choice_statistics(["a|b", "c"], ["a|b", "a|b"], [2, 2])
    text = results_table({"quiz": {"accuracy": 0.5, "n": 2, "truncated": 0, **stats}}, "m")
    assert "| a\\|b | 2 | 1 |" in text
    stats = multiple_choice_statistics(["two\nlines", "two\nlines"], ["two\nlines", "x"], [2, 2])
    text = results_table({"quiz": {"accuracy": 0.5, "n": 2, "truncated": 0, **stats}}, "m")
    assert "| two\\nlines | 1 | 2 |" in text and "same answer ('two\\nlines')" in text
    assert not any(line.startswith("lines") for line in text.splitlines())


def test_answer_chart_axes_title_and_quiet_glyphs(tmp_path, monkeypatch):
    """answers.png: whole items on the count axis, the title says when --limit cut the file, and answers in a
    script the font lacks (drawn as boxes) raise no warning."""
    from e2wm.eval import results

    drawn = []
    monkeypatch.setattr(results, "save_figure", lambda figure, file: drawn.append(figure))
    stats = multiple_choice_statistics(["厨房", "厨房", "卧室"], ["厨房", "卧室", "卧室"], [2, 2, 2])
    result = {"accuracy": 2 / 3, "n": 3, "n_original": 9, "cut_by_limit": True, "truncated": 0, **stats}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert results.answer_chart({"obj_move": result}, tmp_path / "answers.png") == tmp_path / "answers.png"
    ax = drawn[0].axes[0]
    assert ax.get_title() == "obj_move: accuracy 0.67, majority 0.67\n(--limit: the first 3 of 9 items)"
    assert all(float(tick).is_integer() for tick in ax.get_xticks())
