"""Key/value caches for shared prompt prefixes: compute a prefix once, score many continuations against it.

The E2WM files share long few-shot prefixes across items, and every QA item scores several options
after the same prompt, so most forward-pass work is repeated. These helpers run each shared token once.
"""

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


@dataclass
class Prefix:
    """Tokens already run through the model: their cache and the log-probs of the next token."""

    tokens: list[int]
    cache: DynamicCache
    next_logprobs: torch.Tensor  # (vocab,) float32


def supports_prefix_cache(cache) -> bool:
    """Only plain dynamic caches (full attention) can be cropped and broadcast safely."""
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def model_device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def run_tokens(model, tokens: list[int], prefix: Prefix | None = None) -> Prefix:
    """Run tokens (which must start with prefix.tokens, if a prefix is given) and return their Prefix.

    The prefix's cache is extended in place; call `restore` afterwards to share it again.
    """
    if prefix is not None:
        suffix = tokens[len(prefix.tokens):]
        if not suffix:
            return prefix
        cache = prefix.cache
    else:
        suffix, cache = tokens, DynamicCache(config=model.config)
    ids = torch.tensor([suffix], device=model_device(model))
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)  # only the next token's
    logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
    return Prefix(list(tokens), out.cache, logprobs)


def restore(prefix: Prefix) -> None:
    """Crop the prefix's cache back to its own tokens after it was extended by run_tokens."""
    extra = prefix.cache.get_seq_length() - len(prefix.tokens)
    if extra > 0:
        prefix.cache.crop(-extra)


def common_prefix(sequences: list[list[int]]) -> list[int]:
    """The longest token prefix shared by every sequence."""
    if not sequences:
        return []
    first = sequences[0]
    length = min(len(s) for s in sequences)
    for other in sequences[1:]:
        i = 0
        while i < length and other[i] == first[i]:
            i += 1
        length = i
    return first[:length]


def broadcast(cache: DynamicCache, copies: int) -> DynamicCache:
    """A new cache holding `copies` rows of a one-row cache (views; the model's update makes new tensors)."""
    data = [(keys.expand(copies, -1, -1, -1), values.expand(copies, -1, -1, -1)) for keys, values, _ in cache]
    return DynamicCache(ddp_cache_data=data)


@torch.no_grad()
def continuation_logprobs(
    model, context: Prefix, continuations: list[list[int]], pad_id: int
) -> list[tuple[float, bool]]:
    """(sum of log p(token), all tokens greedy) for each continuation after context, in one batched pass.

    The first token of each continuation is read off context.next_logprobs; the remaining tokens run as
    one right-padded batch on top of the context's cache broadcast along the batch (right padding is
    safe: a causal model's real tokens never see the padding after them).
    """
    results = []
    longest = max(len(c) for c in continuations)
    logits = None
    if longest > 1:
        rows = [c[:-1] + [pad_id] * (longest - len(c)) for c in continuations]
        ids = torch.tensor(rows, device=model_device(model))
        cache = broadcast(context.cache, len(rows))
        logits = model(input_ids=ids, cache=cache, use_cache=True).logits.float()
        logits = torch.log_softmax(logits, dim=-1)
    for row, tokens in enumerate(continuations):
        total = context.next_logprobs[tokens[0]].item()
        greedy = int(context.next_logprobs.argmax()) == tokens[0]
        if len(tokens) > 1:
            steps = logits[row, : len(tokens) - 1]
            targets = torch.tensor(tokens[1:], device=steps.device)
            total += steps.gather(1, targets[:, None]).sum().item()
            greedy = greedy and bool((steps.argmax(-1) == targets).all())
        results.append((total, greedy))
    return results
