"""Tokenising (context, continuation) pairs the way lm-evaluation-harness does.

The whole string is encoded once and split at the length of the context's own encoding, so the
continuation tokens are those the model would really produce after the context. Trailing spaces of
the context move to the continuation first: BPE tokenizers attach a space to the word after it
(" yes" -> "Ġyes") and SentencePiece ones mark it on that word too ("▁yes"). Special tokens a tokenizer
puts in front (Llama's BOS) are kept in front of the context; nothing is appended at the end.
Source: lm-evaluation-harness, `TemplateLM._encode_pair` and `TemplateLM.loglikelihood` (lm_eval/api/model.py).
"""

from functools import cache


@cache
def _special_prefix(tokenizer) -> tuple[int, ...]:
    with_special = tokenizer("a", add_special_tokens=True).input_ids
    plain = tokenizer("a", add_special_tokens=False).input_ids
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start : start + len(plain)] == plain:
            return tuple(with_special[:start])
    return ()


def special_prefix(tokenizer) -> list[int]:
    """The special token ids the tokenizer puts before any text (e.g. [BOS] for Llama, [] for GPT-2).

    Found once per tokenizer by encoding "a" with and without special tokens; a fresh list each call.
    """
    return list(_special_prefix(tokenizer))


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of text: special_prefix(tokenizer) + the text's own ids; no trailing special tokens (EOS)."""
    return special_prefix(tokenizer) + tokenizer(text, add_special_tokens=False).input_ids


def split_boundary(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the front of the continuation.

    ("Q: a ", "b") -> ("Q: a", " b"); the two still concatenate to context + continuation. The harness's
    `_encode_pair` does the same (`n_spaces = len(context) - len(context.rstrip())`).
    """
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) for scoring log p(continuation | context), the harness's way.

    The whole string (after `split_boundary`) is encoded once with `encode` and split at the length, in
    tokens, of the context's own encoding, so context ids + continuation ids == the whole's ids.

    Args:
        context: the conditioning text (a QA item's input, or "Answer:").
        continuation: the text to score (" " + option).
    Returns:
        (context ids, continuation ids), lists of token ids. The continuation keeps at least one token:
        when the context's encoding is as long as the whole's (the continuation merged into the context's
        last token), the split moves back by one. When the context encodes to nothing (empty text, no
        special prefix) the context is [BOS], else [EOS], and the continuation is the whole encoding, as
        the harness does with its `prefix_token_id` for an empty context.
    """
    context, continuation = split_boundary(context, continuation)
    whole = encode(tokenizer, context + continuation)
    context_ids = encode(tokenizer, context)
    if not context_ids:  # nothing to condition on: start from a BOS/EOS token as the harness does
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        return [start], whole
    split = len(context_ids)
    if split >= len(whole):  # the continuation merged into the context's last token
        split = len(whole) - 1
    return whole[:split], whole[split:]
