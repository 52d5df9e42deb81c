"""Statistics of evaluation scores: standard errors, baselines, answer histograms and paired bootstrap intervals.

The conventions are lm-evaluation-harness's where it has one, so that e2wm's numbers read like its numbers:
- the standard error of an accuracy is the binomial one with n - 1, sqrt(p (1 - p) / (n - 1)), which is
  lm-eval's `mean_stderr` (`sample_stddev(arr) / sqrt(len(arr))`) applied to 0/1 item scores;
- the standard error of a mean of per-item ROUGE or LCS scores is a bootstrap: the sample standard
  deviation (n - 1) of the mean over resamples of the items (lm-eval's `bootstrap_stderr`).
Comparisons of two runs over the same items use a paired bootstrap (Efron & Tibshirani, *An Introduction
to the Bootstrap*, 1993, ch. 13 for the percentile interval, ch. 6 for the standard error): every resample
draws the same item indices for both runs, so the interval is that of the mean per-item difference. Indices
come from `numpy.random.default_rng` seeded by (seed, name), so the same seed and data give the same numbers,
whatever else is compared alongside. docs/statistics.md gives the formulas and what each number means.
"""

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # the confidence level of every interval
MIN_ITEMS = 30  # below this many items a task's intervals are rough (the report warns)


def binomial_stderr(correct: Sequence[float]) -> float | None:
    """Standard error of an accuracy: sqrt(p (1 - p) / (n - 1)), p the mean of the 0/1 item scores.

    Equal to lm-evaluation-harness's `mean_stderr` of 0/1 scores: sample_stddev (n - 1) / sqrt(n).
    Returns None for fewer than 2 items (no spread to estimate).
    """
    n = len(correct)
    if n < 2:
        return None
    p = math.fsum(correct) / n
    return math.sqrt(p * (1 - p) / (n - 1))


def resample_indices(n: int, resamples: int, seed: int, name: str = "") -> np.ndarray:
    """(resamples, n) int32 item indices drawn uniformly with replacement.

    The generator is seeded by (seed, crc32 of name), so that each task (name) gets its own stream that does
    not depend on which other tasks are resampled.
    """
    rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
    return rng.integers(0, n, size=(resamples, n), dtype=np.int32)


def bootstrap_stderr(scores: Sequence[float], resamples: int, seed: int, name: str = "") -> float | None:
    """Bootstrap standard error of the mean of per-item scores: the sample standard deviation (n - 1) of the
    mean over `resamples` resamples of the items (lm-eval's `bootstrap_stderr`; Efron & Tibshirani eq. 6.6).

    Returns None for fewer than 2 items.
    """
    if len(scores) < 2:
        return None
    values = np.asarray(scores, dtype=np.float64)  # (n,)
    means = values[resample_indices(len(values), resamples, seed, name)].mean(axis=1)  # (R,)
    return float(means.std(ddof=1))


def interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap samples (R,): their (1 - level) / 2 and (1 + level) / 2 quantiles.

    numpy's 'inverted_cdf' quantiles (no interpolation), so that infinite samples give infinite ends
    instead of NaN.
    """
    low, high = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return float(low), float(high)


def chance_baseline(option_counts: Sequence[int]) -> float:
    """Expected accuracy of picking an option uniformly at random: the mean over items of 1 / (options)."""
    return math.fsum(1 / k for k in option_counts) / len(option_counts)


def majority_baseline(answers: Sequence[str]) -> tuple[str, float]:
    """The file's most frequent gold answer text and the accuracy of always giving it.

    Ties go to the answer met first in file order. The accuracy is the share of items whose gold answer is
    that text (wherever it is not an item's answer, answering it is wrong). Needs at least one answer.
    """
    answer, count = Counter(answers).most_common()[0]  # a stable sort: ties stay in order of first appearance
    return answer, count / len(answers)


def answer_histogram(predictions: Sequence[str], answers: Sequence[str]) -> dict[str, dict[str, int]]:
    """{"gold": {answer text: items}, "predicted": {answer text: items}}, each most frequent first (ties in
    order of first appearance)."""
    return {"gold": dict(Counter(answers).most_common()), "predicted": dict(Counter(predictions).most_common())}


@dataclass(frozen=True)
class Interval:
    """An estimate and its 95% percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """'gain' when the interval lies above zero, 'loss' below it, 'no change' when it is [0, 0] (every
        resample, so every item, alike), else 'noise'."""
        if self.low == self.high == 0:
            return "no change"
        if self.low > 0:
            return "gain"
        if self.high < 0:
            return "loss"
        return "noise"

    def as_dict(self) -> dict:
        return {"estimate": self.estimate, "ci95": [self.low, self.high], "verdict": self.verdict}


@dataclass
class Paired:
    """Two runs' per-item scores resampled with the same indices: what interval() needs per task, and what
    the mean over tasks needs (the resampled means, (R,) each)."""

    base_mean: float
    other_mean: float
    base_samples: np.ndarray  # (R,): the base run's mean score in each resample
    other_samples: np.ndarray  # (R,): the other run's, over the same items

    @property
    def difference(self) -> Interval:
        return Interval(self.other_mean - self.base_mean, *interval(self.other_samples - self.base_samples))

    @property
    def relative(self) -> Interval | None:
        """(other - base) / base with its interval; None when the base's mean is 0 (no relative change)."""
        if self.base_mean == 0:
            return None
        return Interval((self.other_mean - self.base_mean) / self.base_mean,
                        *interval(relative_gain(self.other_samples, self.base_samples)))


def paired_bootstrap(base: Sequence[float], other: Sequence[float], resamples: int, seed: int,
                     name: str = "") -> Paired:
    """Resample the items of two runs together: each resample's mean score of both runs over the same items.

    Args:
        base, other: per-item scores of the same items in the same order, (n,) each.
        resamples: R, the number of resamples; seed, name: see `resample_indices`.
    Raises:
        ValueError: when the lengths differ or there is no item.
    """
    if len(base) != len(other) or not len(base):
        raise ValueError(f"paired scores need the same items: {len(base)} and {len(other)}")
    indices = resample_indices(len(base), resamples, seed, name)  # (R, n)
    a, b = np.asarray(base, dtype=np.float64), np.asarray(other, dtype=np.float64)
    return Paired(float(a.mean()), float(b.mean()), a[indices].mean(axis=1), b[indices].mean(axis=1))


def relative_gain(other: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Elementwise (other - base) / base, with 0 / 0 = 0 (no change) and x / 0 = +inf for x > 0.

    Scores are non-negative, so a zero base has no negative change; an infinite end of an interval says that
    the relative change is unbounded at this number of items.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (other - base) / base
    return np.where(base == 0, np.where(other > base, np.inf, 0.0), gain)


def mean_over_tasks(pairs: list[Paired], relative: bool = False) -> Interval:
    """The unweighted mean over tasks of the differences (or of the relative gains, the paper's headline),
    with the interval of a stratified bootstrap: each task's items resampled on their own, the task means
    averaged per resample. relative: tasks whose base mean is 0 must be left out by the caller."""
    if relative:
        estimate = float(np.mean([(p.other_mean - p.base_mean) / p.base_mean for p in pairs]))
        samples = np.mean([relative_gain(p.other_samples, p.base_samples) for p in pairs], axis=0)
    else:
        estimate = float(np.mean([p.other_mean - p.base_mean for p in pairs]))
        samples = np.mean([p.other_samples - p.base_samples for p in pairs], axis=0)
    return Interval(estimate, *interval(samples))


def ratio_samples(sums: Sequence[float], counts: Sequence[int], indices: np.ndarray) -> np.ndarray:
    """sum(sums) / sum(counts) over each resample of the units: (R,) from indices (R, n).

    For perplexity the units are texts, sums their NLL in nats and counts their predicted tokens: the
    resampled mean token NLL (a ratio estimator, every token weighted equally, as the perplexity itself).
    """
    s, c = np.asarray(sums, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    return s[indices].sum(axis=1) / c[indices].sum(axis=1)


def multiple_choice_statistics(predictions: Sequence[str], answers: Sequence[str],
                               option_counts: Sequence[int]) -> dict:
    """What metrics.json adds to a QA task's accuracy (docs/statistics.md).

    Args:
        predictions, answers: per item the predicted and the gold option text, (n,) each, n >= 1.
        option_counts: per item its number of options.
    Returns:
        {"accuracy_stderr": `binomial_stderr` (None under 2 items), "stderr_method": "binomial",
        "chance": `chance_baseline`, "majority": accuracy of always giving "majority_answer"
        (`majority_baseline`), "constant_prediction": every item (2 or more) got the same answer,
        "answers": `answer_histogram`}.
    """
    correct = [float(p == a) for p, a in zip(predictions, answers)]
    majority_answer, majority = majority_baseline(answers)
    histogram = answer_histogram(predictions, answers)
    return {"accuracy_stderr": binomial_stderr(correct), "stderr_method": "binomial",
            "chance": chance_baseline(option_counts), "majority": majority, "majority_answer": majority_answer,
            "constant_prediction": len(predictions) > 1 and len(histogram["predicted"]) == 1,
            "answers": histogram}


def generation_statistics(scores: dict[str, Sequence[float]], resamples: int, seed: int, name: str) -> dict:
    """Bootstrap standard errors of a generation task's mean scores.

    Args:
        scores: metric name (rouge1, rouge2, rougeL or lcs) -> per-item scores, (n,) each.
        resamples, seed, name: see `bootstrap_stderr` (the task name seeds its own stream).
    Returns:
        {"<metric>_stderr" per metric (None under 2 items), "stderr_method": "bootstrap",
        "bootstrap_resamples", "seed"}.
    """
    result: dict = {f"{metric}_stderr": bootstrap_stderr(values, resamples, seed, name)
                    for metric, values in scores.items()}
    return result | {"stderr_method": "bootstrap", "bootstrap_resamples": resamples, "seed": seed}


def perplexity_statistics(nll: Sequence[float], tokens: Sequence[int], resamples: int, seed: int) -> dict:
    """Bootstrap over texts of the mean token NLL (`ratio_samples`): its standard error and the perplexity's
    interval.

    Args:
        nll, tokens: per text its summed NLL (nats) and predicted tokens, (n,) each.
    Returns:
        {"nll_stderr": sample standard deviation of the resampled mean NLL, nats per token, "perplexity_ci95":
        [exp(low), exp(high)] of its percentile interval (None and None under 2 texts), "bootstrap_resamples",
        "seed"}.
    """
    result: dict = {"nll_stderr": None, "perplexity_ci95": None, "bootstrap_resamples": resamples, "seed": seed}
    if len(nll) > 1:
        samples = ratio_samples(nll, tokens, resample_indices(len(nll), resamples, seed, "ppl"))  # (R,)
        low, high = interval(samples)
        result.update(nll_stderr=float(samples.std(ddof=1)), perplexity_ci95=[math.exp(low), math.exp(high)])
    return result
