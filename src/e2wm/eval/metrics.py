"""Metrics: accuracy, ROUGE-1/2/L F1 with stemming (rouge-score), and the longest common run of room lists."""

from functools import cache


@cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (stemmed) over pairs."""
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references):
        scores = _rouge_scorer().score(reference, prediction)
        for key in totals:
            totals[key] += scores[key].fmeasure
    return {key: value / len(predictions) for key, value in totals.items()}


def split_list(text: str) -> list[str]:
    """'hallway, dining room' -> ['hallway', 'dining room'] (blank entries dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest contiguous run that appears in both lists."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def lcs_score(prediction: str, reference: str) -> float:
    """Longest common contiguous run of the comma-separated lists / the longer list's length."""
    pred, ref = split_list(prediction), split_list(reference)
    longer = max(len(pred), len(ref))
    return longest_common_run(pred, ref) / longer if longer else 1.0


def lcs(predictions: list[str], references: list[str]) -> float:
    return sum(lcs_score(p, r) for p, r in zip(predictions, references)) / len(predictions)


def accuracy(predictions: list[int], answers: list[int]) -> float:
    return sum(p == a for p, a in zip(predictions, answers)) / len(answers)


def headline(result: dict) -> tuple[str, float]:
    """The main metric of a task result: accuracy, ROUGE-L, LCS or perplexity; KeyError when none is there."""
    for key in ("accuracy", "rougeL", "lcs", "perplexity"):
        if key in result:
            return key, result[key]
    raise KeyError(f"no known metric in {sorted(result)}")
