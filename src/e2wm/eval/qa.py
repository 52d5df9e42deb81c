"""Multiple-choice QA by log-likelihood: score each option o by log p(" " + o | input), normalised."""

from dataclasses import dataclass

from e2wm.eval.encoding import encode_pair
from e2wm.eval.items import QAItem
from e2wm.eval.prefix_cache import Prefix, common_prefix, continuation_logprobs, restore, run_tokens

UNCONDITIONAL_CONTEXT = "Answer:"
MIN_SHARED_TOKENS = 8  # below this a shared file prefix is not worth a cache


@dataclass
class EncodedItem:
    contexts: list[list[int]]  # per option; all equal unless an option merged with the context's end
    options: list[list[int]]
    truncated: bool


def encode_item(tokenizer, item: QAItem, max_length: int) -> EncodedItem:
    """Context and option tokens per option; contexts are cut from the left if the whole would not fit."""
    pairs = [encode_pair(tokenizer, item.input, " " + option) for option in item.options]
    options = [option for _, option in pairs]
    budget = max_length - max(len(o) for o in options)
    contexts = [context[max(0, len(context) - budget):] for context, _ in pairs]
    truncated = any(len(context) > budget for context, _ in pairs)
    return EncodedItem(contexts, options, truncated)


def option_logprobs(model, items: list[EncodedItem], pad_id: int, progress=None,
                    share_file_prefix: bool = True, indices: list[int] | None = None) -> list[list[float]]:
    """Sum log-prob of every option of the items at indices (default: all).

    The file's common token prefix (over all items, so that a shard of the file computes exactly what
    the whole would) runs once unless share_file_prefix is off; each item's context runs once on top of
    it; all options after the same context are scored in one batch.
    """
    shared = common_prefix([c for item in items for c in item.contexts]) if share_file_prefix else []
    prefix = run_tokens(model, shared) if len(shared) >= MIN_SHARED_TOKENS else None
    results = []
    for item in (items if indices is None else [items[i] for i in indices]):
        groups: dict[tuple, list[int]] = {}
        for index, context in enumerate(item.contexts):
            groups.setdefault(tuple(context), []).append(index)
        scores = [0.0] * len(item.options)
        for context, indices in groups.items():
            context_state = run_tokens(model, list(context), prefix)
            totals = continuation_logprobs(model, context_state, [item.options[i] for i in indices], pad_id)
            for i, (total, _) in zip(indices, totals):
                scores[i] = total
            if prefix is not None:
                restore(prefix)
        results.append(scores)
        if progress is not None:
            progress(1)
    return results


def unconditional_logprobs(model, tokenizer, options: list[str], pad_id: int) -> dict[str, float]:
    """log p(" " + o | "Answer:") for each distinct option, all against one cached "Answer:" prefix."""
    distinct = sorted(set(options))
    pairs = [encode_pair(tokenizer, UNCONDITIONAL_CONTEXT, " " + option) for option in distinct]
    scores: dict[str, float] = {}
    by_context: dict[tuple, list[int]] = {}
    for index, (context, _) in enumerate(pairs):
        by_context.setdefault(tuple(context), []).append(index)
    for context, indices in by_context.items():
        prefix: Prefix = run_tokens(model, list(context))
        totals = continuation_logprobs(model, prefix, [pairs[i][1] for i in indices], pad_id)
        for i, (total, _) in zip(indices, totals):
            scores[distinct[i]] = total
    return scores


def normalise(item: QAItem, encoded: EncodedItem, logprobs: list[float], norm: str,
              unconditional: dict[str, float] | None) -> list[float]:
    """'ln': log-prob per option token; 'un': log p(o | input) - log p(o | "Answer:")."""
    if norm == "ln":
        return [lp / len(tokens) for lp, tokens in zip(logprobs, encoded.options)]
    if norm == "un":
        return [lp - unconditional[option] for lp, option in zip(logprobs, item.options)]
    raise ValueError(f"unknown normalisation {norm!r}")


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)
