"""Statistics of evaluation scores: standard errors, intervals, baselines, answer histograms and paired tests.

The conventions are lm-evaluation-harness's where it has one, so that e2wm's numbers read like its numbers:
- the standard error of an accuracy is the binomial one with n - 1, sqrt(p (1 - p) / (n - 1)), which is
  lm-eval's `mean_stderr` (`sample_stddev(arr) / sqrt(len(arr))`) applied to 0/1 item scores; its 95%
  interval is Wilson's score interval (Wilson, JASA 22, 1927), which stays inside [0, 1] and is not empty
  at an accuracy of 0 or 1;
- the standard error of a mean of per-item ROUGE or LCS scores is a bootstrap: the sample standard
  deviation (n - 1) of the mean over resamples of the items (lm-eval's `bootstrap_stderr`).
Comparisons of two runs over the same items give a paired bootstrap interval (Efron & Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13 for the percentile interval, ch. 6 for the standard error):
every resample draws the same item indices for both runs, so the interval is that of the mean per-item
difference. Whether a change is a gain, a loss or noise is decided by a paired permutation test instead
(Good, *Permutation, Parametric and Bootstrap Tests of Hypotheses*, 2005): the percentile interval is
anti-conservative at few items. Random draws come from `numpy.random.default_rng` seeded by (seed, name),
so the same seed and data give the same numbers, whatever else is compared alongside. docs/statistics.md
gives the formulas and what each number means.
"""

import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from e2wm.eval.metrics import METRICS, headline

LEVEL = 0.95  # the confidence level of every interval
Z = NormalDist().inv_cdf((1 + LEVEL) / 2)  # 1.959964: score ± Z stderr covers about LEVEL
ALPHA = 1 - LEVEL  # a change is a gain or a loss when its permutation test's two-sided p is below this
MIN_ITEMS = 30  # below this many items a task's intervals are rough (the report warns)
EXACT_UNITS = 20  # up to this many differing items the permutation test enumerates all 2^D label swaps
SWAP_STREAM = 1  # tells the permutation test's random stream from the bootstrap's (same seed and name)
POWER = 0.8  # the power of `detectable_difference`
PSI = 0.3  # assumed share of items whose correctness differs between two runs (docs/statistics.md)
SD_DIFFERENCE = 0.15  # assumed per-item standard deviation of ROUGE / LCS differences (docs/statistics.md)

Measure = Callable[[np.ndarray, int], np.ndarray]  # column sums (..., k) of n units -> the run's score (...,)


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


def wilson_interval(correct: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson's score interval of a proportion, correct successes of n (Wilson, JASA 22, 1927):

        (p + z²/2n ± z sqrt(p (1 - p) / n + z² / 4n²)) / (1 + z²/n),  z the normal (1 + level) / 2 quantile.

    Inside [0, 1], and not empty at p = 0 or 1 (3 of 3 right: [0.439, 1]), unlike p ± z stderr. Needs n >= 1.
    """
    z = NormalDist().inv_cdf((1 + level) / 2)
    p, shrink = correct / n, 1 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / shrink
    return (0.0 if correct == 0 else centre - half), (1.0 if correct == n else centre + half)


def score_interval(result: dict) -> tuple[float, float] | None:
    """The 95% interval of a task result's headline score (`metrics.headline`): an accuracy's Wilson interval
    (`accuracy_ci95`), the perplexity's bootstrap interval over texts (`perplexity_ci95`), else score ± Z
    stderr (ROUGE, LCS, and accuracies saved before the Wilson interval); None when the result has neither."""
    metric, value = headline(result)
    if result.get(f"{metric}_ci95"):
        return tuple(result[f"{metric}_ci95"])
    stderr = result.get(f"{metric}_stderr")
    return None if stderr is None or metric == "perplexity" else (value - Z * stderr, value + Z * stderr)


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
    """Expected accuracy of picking an option uniformly at random: the mean over the scored items of 1 / (options)."""
    return math.fsum(1 / k for k in option_counts) / len(option_counts)


def majority_baseline(answers: Sequence[str]) -> tuple[str, float]:
    """The most frequent gold answer text of the scored items and the accuracy of always giving it (with
    --limit, of the items scored, not of the whole file).

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
    """An estimate, its 95% percentile bootstrap interval and the two-sided p of the paired permutation test."""

    estimate: float
    low: float
    high: float
    p: float

    @property
    def verdict(self) -> str:
        """'no change' when the estimate and its interval are all 0 (every item alike in both runs), 'gain' or
        'loss' (by the estimate's sign) when p < ALPHA, else 'noise'. The interval does not decide: at few
        items the percentile bootstrap excludes zero too often (docs/statistics.md)."""
        if self.estimate == self.low == self.high == 0:
            return "no change"
        if self.p < ALPHA:
            return "gain" if self.estimate > 0 else "loss"
        return "noise"


def mean_of(sums: np.ndarray, n: int) -> np.ndarray:
    """A run's mean score from the column sums (..., 1) of its n per-item scores: (...,)."""
    return sums[..., 0] / n


def perplexity_of(sums: np.ndarray, n: int) -> np.ndarray:
    """A run's perplexity exp(total NLL / total tokens) from the column sums (..., 2) of its texts' (NLL in
    nats, predicted tokens): (...,). n (the texts) is not needed: the ratio weighs every token equally."""
    return np.exp(sums[..., 0] / sums[..., 1])


def subset_sums(values: np.ndarray) -> np.ndarray:
    """(2^D, k): row c is the sum of the rows j of values (D, k) whose bit j is set in c (row 0: nothing)."""
    table = np.zeros((1, values.shape[1]))
    for row in values:  # D <= EXACT_UNITS: the table doubles each time
        table = np.concatenate([table, table + row])
    return table


def swap_deltas(differences: list[np.ndarray], resamples: int, seed: int,
                names: list[str]) -> Iterator[np.ndarray]:
    """Per group (a task, or the perplexity's texts), the sum of the differences (other - base) of the units
    that each label-swap pattern swaps: (P, k).

    Swapping the two runs' values on a unit moves its difference from the other run's sum to the base's:
    base' = base + delta, other' = other - delta. Only units whose values differ matter (D in all groups
    together). With D <= EXACT_UNITS the P = 2^D patterns are every way to swap them (exact; pattern 0 swaps
    none); else P = resamples patterns, each unit swapped with probability 1/2, drawn from the group's own
    stream (seed, crc32 of its name, SWAP_STREAM), so that a task's patterns do not depend on the others.

    Args:
        differences: per group the (D_g, k) differences other - base of its units that differ.
    """
    if exact_enumeration(differences):
        codes = np.arange(2 ** sum(len(d) for d in differences), dtype=np.int64)  # (P,)
        start = 0
        for values in differences:
            yield subset_sums(values)[(codes >> start) & ((1 << len(values)) - 1)]
            start += len(values)
        return
    for values, name in zip(differences, names):
        rng = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8")), SWAP_STREAM])
        yield (rng.random((resamples, len(values))) < 0.5) @ values  # (R, D_g) @ (D_g, k)


def exact_enumeration(differences: list[np.ndarray]) -> bool:
    """The permutation test enumerates every swap pattern: the units that differ, over all groups, number
    EXACT_UNITS or fewer (2^20 patterns at most)."""
    return sum(len(d) for d in differences) <= EXACT_UNITS


def two_sided_p(observed: float, permuted: np.ndarray, exact: bool) -> float:
    """The share of permuted statistics (P,) at least as far from 0 as the observed one (Good, *Permutation,
    Parametric and Bootstrap Tests of Hypotheses*, 2005, ch. 3: the two-sided test of a symmetric
    statistic). Exact: over every pattern, the observed among them. Monte Carlo: (1 + count) / (1 + P),
    which never gives 0 (Phipson & Smyth, Stat. Appl. Genet. Mol. Biol. 9(1), 2010). A relative tolerance
    of 1e-9 keeps ties, which are common with 0/1 scores, from being split by rounding."""
    extreme = int(np.count_nonzero(np.abs(permuted) >= abs(observed) - 1e-9 * max(1.0, abs(observed))))
    return extreme / len(permuted) if exact else (extreme + 1) / (len(permuted) + 1)


def moved_units(base: np.ndarray, other: np.ndarray) -> np.ndarray:
    """(D, k): other - base on the units (rows of the (n, k) values) that differ, the only ones a swap changes."""
    difference = other - base
    return difference[np.any(difference != 0, axis=1)]


def permuted_scores(base: np.ndarray, other: np.ndarray, measure: Measure,
                    delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both runs' scores (P,) from their values (n, k) after the label swaps whose summed differences are delta
    (P, k) (`swap_deltas`)."""
    n = len(base)
    return measure(base.sum(axis=0) + delta, n), measure(other.sum(axis=0) - delta, n)


@dataclass
class Paired:
    """Two runs' values over the same units (items, or texts for the perplexity): what the difference's
    interval and test need, and what the means over tasks need.

    base, other: per unit its values, (n, k) each (k = 1: the item's score; perplexity: NLL, tokens); measure
    turns their column sums into the run's score. base_samples, other_samples: each run's score in each
    bootstrap resample, (R,), the same units drawn for both. p: the two-sided p of the paired permutation
    test of the difference, over this task's units alone.
    """

    name: str
    base: np.ndarray
    other: np.ndarray
    measure: Measure
    base_samples: np.ndarray
    other_samples: np.ndarray
    p: float

    @property
    def base_mean(self) -> float:
        return float(self.measure(self.base.sum(axis=0), len(self.base)))

    @property
    def other_mean(self) -> float:
        return float(self.measure(self.other.sum(axis=0), len(self.other)))

    @property
    def moved(self) -> np.ndarray:
        return moved_units(self.base, self.other)

    def permuted(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return permuted_scores(self.base, self.other, self.measure, delta)

    @property
    def difference(self) -> Interval:
        return Interval(self.other_mean - self.base_mean, *interval(self.other_samples - self.base_samples), self.p)

    @property
    def relative(self) -> Interval | None:
        """(other - base) / base with its interval and the difference's p (for one task, a change is a gain
        whatever its scale); None when the base's score is 0 (no relative change)."""
        if self.base_mean == 0:
            return None
        return Interval((self.other_mean - self.base_mean) / self.base_mean,
                        *interval(relative_gain(self.other_samples, self.base_samples)), self.p)


def paired_bootstrap(base: Sequence[float] | np.ndarray, other: Sequence[float] | np.ndarray, resamples: int,
                     seed: int, name: str = "", measure: Measure = mean_of) -> Paired:
    """Compare two runs over the same units: a bootstrap resampling the units of both runs together, and a
    paired permutation test of the difference (`swap_deltas`, `two_sided_p`; for 0/1 scores the exact
    McNemar test, McNemar 1947, i.e. the two-sided sign test on the items that differ).

    Args:
        base, other: per-unit values of the same units in the same order: (n,) scores, or (n, k) with measure.
        resamples: R, the bootstrap's resamples and, past EXACT_UNITS units that differ, the permutation
            test's; seed, name: see `resample_indices` and `swap_deltas`.
        measure: the run's score from its column sums (`mean_of`, `perplexity_of`).
    Raises:
        ValueError: when the shapes differ or there is no unit.
    """
    a = np.asarray(base, dtype=np.float64).reshape(len(base), -1)  # (n, k)
    b = np.asarray(other, dtype=np.float64).reshape(len(other), -1)
    if a.shape != b.shape or not len(a):
        raise ValueError(f"paired scores need the same items: {len(a)} and {len(b)}")
    indices = resample_indices(len(a), resamples, seed, name)  # (R, n)
    samples = [measure(values[indices].sum(axis=1), len(values)) for values in (a, b)]  # (R,) each
    moved = [moved_units(a, b)]
    permuted_base, permuted_other = permuted_scores(a, b, measure, next(swap_deltas(moved, resamples, seed, [name])))
    observed = float(measure(b.sum(axis=0), len(b)) - measure(a.sum(axis=0), len(a)))
    p = two_sided_p(observed, permuted_other - permuted_base, exact_enumeration(moved))
    return Paired(name, a, b, measure, samples[0], samples[1], p)


def relative_gain(other: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Elementwise (other - base) / base, with 0 / 0 = 0 (no change) and x / 0 = +inf for x > 0.

    Scores are non-negative, so a zero base has no negative change; an infinite end of an interval says that
    the relative change is unbounded at this number of items.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (other - base) / base
    return np.where(base == 0, np.where(other > base, np.inf, 0.0), gain)


def mean_over_tasks(pairs: list[Paired], resamples: int, seed: int, relative: bool = False) -> Interval:
    """The unweighted mean over tasks of the differences (or of the relative gains, the paper's headline).

    Interval: a stratified bootstrap, each task's items resampled on their own, the task statistics averaged
    per resample. p: the label-swap permutation test of the same statistic, swapping per item within each
    task (exact over every pattern when the tasks' differing items number EXACT_UNITS or fewer, else
    resamples patterns from each task's stream, the ones of its own test). relative: tasks whose base mean is
    0 must be left out by the caller.
    """
    change = relative_gain if relative else (lambda other, base: other - base)
    estimate = float(np.mean([change(np.float64(p.other_mean), np.float64(p.base_mean)) for p in pairs]))
    samples = np.mean([change(p.other_samples, p.base_samples) for p in pairs], axis=0)  # (R,)
    moved = [pair.moved for pair in pairs]
    permuted = 0.0
    for pair, delta in zip(pairs, swap_deltas(moved, resamples, seed, [pair.name for pair in pairs])):
        base, other = pair.permuted(delta)  # (P,) each
        permuted = permuted + change(other, base) / len(pairs)
    return Interval(estimate, *interval(samples), two_sided_p(estimate, permuted, exact_enumeration(moved)))


def detectable_difference(n: int, metric: str) -> float:
    """The smallest paired difference of mean scores found with POWER (80%) by a two-sided test at ALPHA (5%)
    on n items, from the normal approximation: (z_{1 - ALPHA/2} + z_{POWER}) * s / sqrt(n).

    s is assumed, never taken from the runs: for an accuracy (or another 0/1 metric) sqrt(PSI), PSI the share
    of items on which the runs disagree about correctness (McNemar's test; Connor, Biometrics 43(1), 1987, δ²
    neglected beside PSI); for ROUGE / LCS SD_DIFFERENCE, a per-item standard deviation of the differences. Below
    `min_items_for_verdict` items no change can be detected at all, whatever its size.
    """
    spread = math.sqrt(PSI) if METRICS[metric].binary else SD_DIFFERENCE
    normal = NormalDist()
    return (normal.inv_cdf(1 - ALPHA / 2) + normal.inv_cdf(POWER)) * spread / math.sqrt(n)


def min_items_for_verdict() -> int:
    """The fewest items on which a paired permutation test can reach p < ALPHA: its smallest two-sided p on
    n items is 2 / 2^n (every item changed, all the same way), 0.0625 at 5 items and 0.03125 at 6."""
    return math.ceil(math.log2(2 / ALPHA) + 1e-12)


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
        "accuracy_ci95": [low, high], the `wilson_interval`, "chance": `chance_baseline`, "majority":
        accuracy of always giving "majority_answer" (`majority_baseline` of these items),
        "constant_prediction": every item (2 or more) got the same answer, "answers": `answer_histogram`}.
    """
    correct = [float(p == a) for p, a in zip(predictions, answers)]
    majority_answer, majority = majority_baseline(answers)
    histogram = answer_histogram(predictions, answers)
    return {"accuracy_stderr": binomial_stderr(correct), "stderr_method": "binomial",
            "accuracy_ci95": list(wilson_interval(sum(correct), len(correct))),
            "chance": chance_baseline(option_counts), "majority": majority, "majority_answer": majority_answer,
            "constant_prediction": len(predictions) > 1 and len(histogram["predicted"]) == 1,
            "answers": histogram}


def generation_statistics(scores: dict[str, Sequence[float]], resamples: int, seed: int, name: str,
                          binary: set[str] | frozenset[str] = frozenset()) -> dict:
    """Standard errors of a generation task's mean scores: bootstrap ones, and for 0/1 scores (EAI's task success)
    the binomial one with Wilson's interval, as for an accuracy.

    Args:
        scores: metric name (rouge1, rouge2, rougeL, lcs, task_success, ...) -> per-item scores, (n,) each.
        resamples, seed, name: see `bootstrap_stderr` (the task name seeds its own stream).
        binary: the names in scores whose items score 0 or 1.
    Returns:
        {"<metric>_stderr" per metric (None under 2 items), "<metric>_ci95" per binary metric (`wilson_interval`;
        None for no item), "stderr_method": "bootstrap", or "binomial" when every metric is binary,
        "bootstrap_resamples", "seed"}.
    """
    result: dict = {}
    for metric, values in scores.items():
        if metric in binary:
            result[f"{metric}_stderr"] = binomial_stderr(values)
            result[f"{metric}_ci95"] = list(wilson_interval(sum(values), len(values))) if values else None
        else:
            result[f"{metric}_stderr"] = bootstrap_stderr(values, resamples, seed, name)
    method = "binomial" if scores and set(scores) <= set(binary) else "bootstrap"
    return result | {"stderr_method": method, "bootstrap_resamples": resamples, "seed": seed}


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
