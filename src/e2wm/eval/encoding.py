"""Tokenising (context, continuation) pairs the way lm-evaluation-harness does, scoring exactly the continuation.

The whole string is encoded once and split at the length of the context's own encoding, so the
continuation tokens are those the model would really produce after the context. Trailing spaces of
the context move to the continuation first: BPE tokenizers attach a space to the word after it
(" yes" -> "Ġyes") and SentencePiece ones mark it on that word too ("▁yes"). Special tokens a tokenizer
puts in front (Llama's BOS) are kept in front of the context; nothing is appended at the end.
When the whole's encoding does not start with the context's own (a merge crosses the boundary, e.g. a
tokenizer without a pre-tokenizer that learned "Answer: C" as one token), the continuation is encoded on
its own instead: the scored tokens are then exactly the continuation's, and the context is the same for
every continuation (lm-evaluation-harness issue 1053).
Source: lm-evaluation-harness, `TemplateLM._encode_pair` and `TemplateLM.loglikelihood` (lm_eval/api/model.py).
"""

from functools import cache

from e2wm.chat import starts_with_bos


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


def encode_rendered(tokenizer, text: str) -> list[int]:
    """Token ids of a chat template's rendering: its own ids without special tokens when it starts with the BOS
    the template wrote (no second BOS; lm-evaluation-harness's `tok_encode`), else `encode`'s."""
    if starts_with_bos(tokenizer, text):
        return tokenizer(text, add_special_tokens=False).input_ids
    return encode(tokenizer, text)


def split_boundary(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace to the front of the continuation.

    ("Q: a ", "b") -> ("Q: a", " b"); the two still concatenate to context + continuation. The harness's
    `_encode_pair` does the same (`n_spaces = len(context) - len(context.rstrip())`).
    """
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + continuation


def encode_pair(tokenizer, context: str, continuation: str, rendered: bool = False) -> tuple[list[int], list[int]]:
    """Token ids of (context, continuation) for scoring log p(continuation | context), the harness's way.

    The whole string (after `split_boundary`) is encoded once with `encode`; when it starts with the
    context's own encoding and has tokens past it, it is split there (context ids + continuation ids == the
    whole's ids). Otherwise a merge crosses the boundary, and the continuation is encoded on its own (no
    special tokens) after the context's own ids, so that no context text is scored as the continuation's and
    no continuation text is left in the context.

    Args:
        context: the conditioning text (a QA item's input, or "Answer:").
        continuation: the text to score (" " + option).
        rendered: the context is a chat template's user turn (`chat.user_turn`) and the continuation the bare
            option: both are encoded with `encode_rendered`, and no whitespace moves (the newline that ends the
            opened assistant turn stays in the context, so exactly the option's tokens are scored).
    Returns:
        (context ids, continuation ids), lists of token ids. The context ids are always `encode(context)` after
        `split_boundary`, whatever the continuation. When the context encodes to nothing (empty text, no
        special prefix) the context is [BOS], else [EOS], and the continuation is the whole encoding, as
        the harness does with its `prefix_token_id` for an empty context.
    Raises:
        ValueError: when the continuation encodes to no token at all (nothing to score), or the context encodes to
            nothing and the tokenizer has no BOS or EOS token to start from.
    """
    if not rendered:
        context, continuation = split_boundary(context, continuation)
    encoder = encode_rendered if rendered else encode
    whole = encoder(tokenizer, context + continuation)
    context_ids = encoder(tokenizer, context)
    if not context_ids:  # nothing to condition on: start from a BOS/EOS token as the harness does
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if start is None:
            raise ValueError("the input encodes to no token and the tokenizer has neither a BOS nor an EOS token "
                             "to condition on")
        return [start], whole
    split = len(context_ids)
    if whole[:split] == context_ids and len(whole) > split:
        return context_ids, whole[split:]
    alone = tokenizer(continuation, add_special_tokens=False).input_ids
    if not alone:
        raise ValueError(f"{continuation!r} encodes to no token: nothing to score")
    return context_ids, alone
