"""Multiple-choice QA by log-likelihood: score each option o by log p(" " + o | input), normalised.

Source: the authors' `eval_qa.py` (sum of the option's token log-probs, then `ln` or `un` per task), with
the context/continuation split of lm-evaluation-harness (e2wm.eval.encoding). All log-probs are in nats.
"""

from dataclasses import dataclass

from e2wm.eval.encoding import encode_pair
from e2wm.eval.items import QAItem
from e2wm.eval.prefix_cache import Prefix, common_prefix, continuation_logprobs, restore, run_tokens

UNCONDITIONAL_CONTEXT = "Answer:"
MIN_SHARED_TOKENS = 8  # below this a shared file prefix is not worth a cache


@dataclass
class EncodedItem:
    """Token ids of one QA item: a context and a continuation per option (see `encode_item`)."""

    contexts: list[list[int]]  # per option; all equal unless an option merged with the context's end
    options: list[list[int]]  # per option: the ids of " " + option, at least one each
    truncated: bool  # some context lost tokens on the left to fit max_length


def encode_item(tokenizer, item: QAItem, max_length: int) -> EncodedItem:
    """Context and option token ids per option; contexts are cut from the left if the whole would not fit.

    Args:
        item: the QA item; each option o is encoded as the pair (item.input, " " + o) by `encode_pair`.
        max_length: the model's context, in tokens.
    Returns:
        an EncodedItem whose contexts are cut to max_length - (longest option's tokens) tokens, keeping
        their end, so that every context + option fits in max_length tokens; truncated says whether any was
        cut.
    """
    pairs = [encode_pair(tokenizer, item.input, " " + option) for option in item.options]
    options = [option for _, option in pairs]
    budget = max_length - max(len(o) for o in options)
    contexts = [context[max(0, len(context) - budget):] for context, _ in pairs]
    truncated = any(len(context) > budget for context, _ in pairs)
    return EncodedItem(contexts, options, truncated)


def option_logprobs(model, items: list[EncodedItem], pad_id: int, progress=None,
                    share_file_prefix: bool = True, indices: list[int] | None = None) -> list[list[float]]:
    """log p(option | context) of every option of the items at indices (default: all), unnormalised.

    The file's common token prefix (over all items, so that a shard of the file computes exactly what
    the whole would) runs once unless share_file_prefix is off; each item's context runs once on top of
    it; all options after the same context are scored in one batch (`continuation_logprobs`).

    Args:
        items: the file's encoded items (all of them, also when scoring a shard).
        pad_id: the tokenizer's padding id, for the batch of options.
        progress: called with 1 after each item, e.g. a tqdm bar's update.
        share_file_prefix: reuse one cache of the items' common prefix when it has >= MIN_SHARED_TOKENS tokens.
        indices: positions in items to score (a process's shard); None for all.
    Returns:
        per chosen item, in order, per option: the sum over the option's tokens of the token log-probs, in
        nats (`eval_qa.py`'s `compute_prob`; lm-evaluation-harness's log-likelihood).
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
    """log p(" " + o | "Answer:") in nats for each distinct option, all against one cached "Answer:" prefix.

    The unconditional term of the `un` normalisation; "Answer:" is the context of `eval_qa.py`'s
    `compute_prob(f'Answer: {answer}', ...)`.

    Returns:
        option text -> sum of its tokens' log-probs after "Answer:", in nats.
    """
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
    """Normalised scores of an item's options; the argmax is the prediction. As in the authors' `eval_qa.py`.

    Args:
        item, encoded: the item and its `encode_item` encoding (for the options' token counts).
        logprobs: log p(option | input) per option, in nats (from `option_logprobs`).
        norm: 'ln': log-prob per option token, in nats per token (lm-evaluation-harness's acc_norm divides
            by characters instead); 'un': log p(o | input) - log p(o | "Answer:"), in nats.
        unconditional: for 'un', option text -> log p(o | "Answer:") from `unconditional_logprobs`
            covering every option of the item; unused for 'ln'.
    Returns:
        one float per option, in the item's option order.
    Raises:
        ValueError: when norm is neither 'ln' nor 'un' (the configuration checks it first).
    """
    if norm == "ln":
        return [lp / len(tokens) for lp, tokens in zip(logprobs, encoded.options)]
    if norm == "un":
        return [lp - unconditional[option] for lp, option in zip(logprobs, item.options)]
    raise ValueError(f"unknown normalisation {norm!r}")


def argmax(values: list[float]) -> int:
    """Index of the largest value, the first one on ties (as numpy.argmax in `eval_qa.py`)."""
    return max(range(len(values)), key=values.__getitem__)
