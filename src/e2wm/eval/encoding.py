"""Tokenising (context, continuation) pairs the way lm-evaluation-harness does.

The whole string is encoded once and split at the length of the context's own encoding, so the
continuation tokens are those the model would really produce after the context. Trailing spaces of
the context move to the continuation first: BPE tokenizers attach a space to the word after it
(" yes" -> "Ġyes") and SentencePiece ones mark it on that word too ("▁yes"). Special tokens a tokenizer
puts in front (Llama's BOS) are kept in front of the context; nothing is appended at the end.
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
    """The special tokens the tokenizer puts before any text (e.g. [BOS] for Llama, [] for GPT-2)."""
    return list(_special_prefix(tokenizer))


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of text with the tokenizer's leading special tokens and no trailing ones."""
    return special_prefix(tokenizer) + tokenizer(text, add_special_tokens=False).input_ids


def split_boundary(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the front of the continuation."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids): the whole encoded once, split at the context encoding's length."""
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
