"""Standard errors, baselines, histograms and bootstrap intervals against hand-worked values."""

import math

import numpy as np
import pytest

from e2wm.eval.results import results_table
from e2wm.eval.statistics import (
    Interval,
    answer_histogram,
    binomial_stderr,
    bootstrap_stderr,
    chance_baseline,
    generation_statistics,
    majority_baseline,
    mean_over_tasks,
    multiple_choice_statistics,
    paired_bootstrap,
    perplexity_statistics,
    ratio_samples,
    relative_gain,
    resample_indices,
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


def test_constant_answer_model_is_flagged():
    """A model that answers "1" to everything scores exactly the majority baseline, and says so."""
    stats = multiple_choice_statistics(["1"] * 10, GOLD, OPTIONS)
    result = {"accuracy": 0.5, "n": 10, "n_original": 10, "truncated": 0, **stats}
    assert stats["constant_prediction"] and stats["answers"]["predicted"] == {"1": 10}
    assert result["accuracy"] == stats["majority"]
    text = results_table({"count": result}, "m")
    assert "count: the model gave the same answer ('1') to all 10 items" in text
    assert "count: accuracy 0.5000 is not above the majority baseline 0.5000 (always answering '1')" in text
    assert "| count | accuracy | 0.5000 | 0.1667 | 0.2750 | 0.5000 | 10 | 0 |" in text  # sqrt(.25 / 9) = 0.1667
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
    # per-item differences (0, 1): resampled means 0, 0.5, 1 with chances 1/4, 1/2, 1/4: the 95% interval is [0, 1]
    pair = paired_bootstrap([0.0, 0.0], [0.0, 1.0], 10_000, seed=0)
    assert pair.difference == Interval(0.5, 0.0, 1.0) and pair.difference.verdict == "noise"
    assert pair.relative is None  # the base scored 0
    clear = paired_bootstrap([0.0] * 20 + [1.0] * 20, [1.0] * 40, 10_000, seed=0, name="act_recog")
    assert clear.difference.estimate == 0.5 and clear.difference.verdict == "gain"
    # the mean of 40 Bernoulli(0.5) differences: about 0.5 +- 1.96 * sqrt(0.25 / 40) = 0.5 +- 0.155
    assert clear.difference.low == pytest.approx(0.345, abs=0.03) and clear.difference.high == pytest.approx(0.655,
                                                                                                           abs=0.03)
    assert clear.relative.estimate == 1.0 and clear.relative.verdict == "gain"  # 0.5 -> 1.0: +100%
    again = paired_bootstrap([0.0] * 20 + [1.0] * 20, [1.0] * 40, 10_000, seed=0, name="act_recog")
    assert again.difference == clear.difference  # seeded: the same interval
    same = paired_bootstrap([0.3, 0.6, 0.1], [0.3, 0.6, 0.1], 1000, seed=0)
    assert same.difference == Interval(0.0, 0.0, 0.0) and same.difference.verdict == "no change"
    worse = paired_bootstrap([1.0] * 30, [0.0] * 30, 1000, seed=0)
    assert worse.difference.verdict == "loss" and worse.relative == Interval(-1.0, -1.0, -1.0)
    with pytest.raises(ValueError, match="same items"):
        paired_bootstrap([1.0, 0.0], [1.0], 100, seed=0)


def test_relative_gain_and_the_mean_over_tasks():
    gain = relative_gain(np.array([0.0, 0.5, 0.3, 0.2]), np.array([0.0, 0.0, 0.2, 0.4]))
    assert gain.tolist() == [0.0, math.inf, pytest.approx(0.5), -0.5]
    a = paired_bootstrap([0.0] * 10 + [1.0] * 10, [1.0] * 20, 5000, seed=1, name="a")  # 0.5 -> 1.0
    b = paired_bootstrap([1.0] * 10 + [0.0] * 10, [1.0] * 5 + [0.0] * 15, 5000, seed=1, name="b")  # 0.5 -> 0.25
    mean = mean_over_tasks([a, b])
    assert mean.estimate == pytest.approx((0.5 - 0.25) / 2)
    assert mean.low < mean.estimate < mean.high and mean.verdict == "noise"
    headline = mean_over_tasks([a, b], relative=True)
    assert headline.estimate == pytest.approx((1.0 - 0.5) / 2)  # +100% and -50%: the paper's mean of relative gains


def test_perplexity_over_texts():
    indices = np.array([[0, 0], [0, 1], [1, 1]])
    assert ratio_samples([2.0, 4.0], [1, 3], indices).tolist() == [2.0, 1.5, pytest.approx(4 / 3)]
    stats = perplexity_statistics([2.0, 4.0, 3.0, 5.0], [1, 3, 2, 4], 4000, seed=2)
    low, high = stats["perplexity_ci95"]
    assert low < math.exp(14 / 10) < high and stats["nll_stderr"] > 0
    assert perplexity_statistics([3.0], [2], 100, seed=2)["perplexity_ci95"] is None


def test_results_table_edge_cases():
    """Perplexity alone: no stderr note for tasks; answers holding '|' stay one table cell."""
    text = results_table({"ppl": {"perplexity": 10.0, "nll": 2.3, "tokens": 50, "texts": 1, "mode": "windows",
                                  "nll_stderr": None, "perplexity_ci95": None}}, "m")
    assert "| ppl | perplexity | 10.0000 | — | — | — | 50 |  |" in text and "stderr:" not in text
    stats = multiple_choice_statistics(["a|b", "c"], ["a|b", "a|b"], [2, 2])
    text = results_table({"quiz": {"accuracy": 0.5, "n": 2, "truncated": 0, **stats}}, "m")
    assert "| a\\|b | 2 | 1 |" in text
