"""Multiple-choice QA by log-likelihood: score each option o by log p(" " + o | input), normalised.

Source: the authors' `eval_qa.py` (sum of the option's token log-probs, then `ln` or `un` per task), with
the context/continuation split of lm-evaluation-harness (e2wm.eval.encoding). All log-probs are in nats.
With `--chat-template` (chat=True) the input is the user's turn of the model's chat template and each option is
scored as the assistant's answer right after it, with no " " before it (lm-evaluation-harness's
`--apply_chat_template` drops the target delimiter; e2wm.chat).
"""

from dataclasses import dataclass

from e2wm.chat import user_turn
from e2wm.eval.encoding import encode_pair
from e2wm.eval.items import QAItem
from e2wm.eval.prefix_cache import Prefix, common_prefix, continuation_logprobs, restore, run_tokens

UNCONDITIONAL_CONTEXT = "Answer:"
MIN_SHARED_TOKENS = 8  # below this a shared file prefix is not worth a cache


@dataclass
class EncodedItem:
    """Token ids of one QA item: one context shared by all options, and each option's own (see `encode_item`)."""

    context: list[int]  # the input's ids (special prefix kept), cut from the left to fit max_length
    options: list[list[int]]  # per option: exactly the ids of " " + option (chat: of option), at least one each
    truncated: bool  # the context lost tokens on the left to fit max_length


def encode_options(tokenizer, context: str, options: list[str], chat: bool) -> list[tuple[list[int], list[int]]]:
    """(context ids, option ids) per option: the pair (context, " " + option) by `encode_pair`, or with chat the
    pair (the context rendered as the chat template's user turn by `chat.user_turn`, option)."""
    if chat:
        turn = user_turn(tokenizer, context)
        return [encode_pair(tokenizer, turn, option, rendered=True) for option in options]
    return [encode_pair(tokenizer, context, " " + option) for option in options]


def encode_item(tokenizer, item: QAItem, max_length: int, chat: bool = False) -> EncodedItem:
    """The item's context ids and its options' ids; the context is cut from the left if the whole would not fit.

    Args:
        item: the QA item; each option o is encoded as the pair (item.input, " " + o) by `encode_pair`, which
            gives every option the same context ids and scores exactly the option's tokens.
        max_length: the model's context, in tokens.
        chat: wrap the input as the user's turn of the tokenizer's chat template and score each option as the
            assistant's answer, without the " " (`encode_options`); the tokenizer must have a template
            (`chat.check_template`).
    Returns:
        an EncodedItem whose context is cut to max_length - (longest option's tokens) tokens, keeping its end,
        so that context + any option fits in max_length tokens; truncated says whether it was cut.
    Raises:
        ValueError: when an option encodes to no token, or the longest option leaves no context token within
            max_length (`eval.run.check_limits` turns both into an InputError naming the file and line).
    """
    pairs = encode_options(tokenizer, item.input, item.options, chat)
    context, options = pairs[0][0], [option for _, option in pairs]
    longest = max(len(o) for o in options)
    budget = max_length - longest
    if budget < 1:
        raise ValueError(f"an option of {longest} tokens leaves no token of the question within {max_length}")
    return EncodedItem(context[max(0, len(context) - budget):], options, len(context) > budget)


def option_logprobs(model, items: list[EncodedItem], pad_id: int, progress=None,
                    share_file_prefix: bool = True, indices: list[int] | None = None) -> list[list[float]]:
    """log p(option | context) of every option of the items at indices (default: all), unnormalised.

    The file's common token prefix (over all items, so that a shard of the file computes exactly what
    the whole would) runs once unless share_file_prefix is off; each item's context runs once on top of
    it; all its options are scored in one batch (`continuation_logprobs`).

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
    shared = common_prefix([item.context for item in items]) if share_file_prefix else []
    prefix = run_tokens(model, shared) if len(shared) >= MIN_SHARED_TOKENS else None
    results = []
    for item in (items if indices is None else [items[i] for i in indices]):
        context_state = run_tokens(model, item.context, prefix)
        results.append([total for total, _ in continuation_logprobs(model, context_state, item.options, pad_id)])
        if prefix is not None:
            restore(prefix)
        if progress is not None:
            progress(1)
    return results


def unconditional_logprobs(model, tokenizer, options: list[str], pad_id: int, chat: bool = False) -> dict[str, float]:
    """log p(" " + o | "Answer:") in nats for each distinct option, all against one cached "Answer:" prefix.

    The unconditional term of the `un` normalisation; "Answer:" is the context of `eval_qa.py`'s
    `compute_prob(f'Answer: {answer}', ...)`. With chat, "Answer:" is the user's turn and o the assistant's
    answer (`encode_options`), so that the same tokens of o are scored as in `encode_item` with chat.

    Returns:
        option text -> sum of its tokens' log-probs after "Answer:", in nats.
    """
    distinct = sorted(set(options))
    pairs = encode_options(tokenizer, UNCONDITIONAL_CONTEXT, distinct, chat)
    prefix: Prefix = run_tokens(model, pairs[0][0])  # encode_pair gives every option the same context ids
    totals = continuation_logprobs(model, prefix, [option for _, option in pairs], pad_id)
    scores = {option: total for option, (total, _) in zip(distinct, totals)}
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
