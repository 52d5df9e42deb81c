"""Statistics of built task files: length percentiles (characters, optionally tokens) and answer counts."""

import math
from collections import Counter


def percentiles(values: list[int]) -> dict[str, float]:
    """min, p50, p90, p99, max (nearest rank) and mean; {} for no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(q: float) -> int:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {
        "min": ordered[0], "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": ordered[-1],
        "mean": round(sum(ordered) / len(ordered), 1),
    }


def lengths(lines: list[dict], field: str, tokenizer=None) -> dict[str, dict[str, float]]:
    """Percentiles of one field's length in characters, and in tokens when a tokenizer is given."""
    texts = [line[field] for line in lines]
    result = {"chars": percentiles([len(t) for t in texts])}
    if tokenizer is not None:
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
        result["tokens"] = percentiles([len(i) for i in ids])
    return result


def distribution(values: list) -> dict[str, int]:
    """Counts of each value, most common first."""
    return {str(value): count for value, count in Counter(values).most_common()}
