"""Metrics: accuracy, ROUGE-1/2/L F1 with stemming (rouge-score), and the longest common run of room lists.

Source: the authors' `eval_gen.py` (ROUGE through `evaluate` with use_stemmer=True; `longest_common_substring`
for obj_move_path) and `eval_qa.py` (accuracy). All scores are fractions in [0, 1].
"""

from functools import cache


@cache
def _rouge_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge_scores(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """ROUGE-1/2/L F1 (Porter-stemmed, rouge-score's tokenizer) of each (prediction, reference) pair, in [0, 1].

    Returns:
        per pair {"rouge1", "rouge2", "rougeL"} -> its F1. A task's score is their plain mean (where
        `evaluate`'s default reports the bootstrap aggregate's mid value).
    """
    return [{key: score.fmeasure for key, score in _rouge_scorer().score(reference, prediction).items()}
            for prediction, reference in zip(predictions, references)]


def split_list(text: str) -> list[str]:
    """'hallway, dining room' -> ['hallway', 'dining room'] (split at commas, stripped, blank entries dropped).

    The authors' `eval_gen.py` splits at ', ' and keeps blank entries.
    """
    return [part.strip() for part in text.split(",") if part.strip()]


def longest_common_run(a: list[str], b: list[str]) -> int:
    """Length, in items, of the longest contiguous run that appears in both lists (0 when none).

    Dynamic programming in O(len(a) * len(b)) time, O(len(b)) memory: `eval_gen.py`'s
    `longest_common_substring` before its division.
    """
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
    """Longest common contiguous run of the comma-separated lists / the longer list's length, in [0, 1].

    1.0 when both lists are empty.
    """
    pred, ref = split_list(prediction), split_list(reference)
    longer = max(len(pred), len(ref))
    return longest_common_run(pred, ref) / longer if longer else 1.0


def accuracy(predictions: list[int], answers: list[int]) -> float:
    """Fraction of predicted option indices equal to the answer's, in [0, 1]; needs at least one answer."""
    return sum(p == a for p, a in zip(predictions, answers)) / len(answers)


def headline(result: dict) -> tuple[str, float]:
    """The main metric of a task result as (name, value): the first of accuracy, rougeL, lcs, perplexity present.

    Raises:
        KeyError: when the result has none of them.
    """
    for key in ("accuracy", "rougeL", "lcs", "perplexity"):
        if key in result:
            return key, result[key]
    raise KeyError(f"no known metric in {sorted(result)}")
