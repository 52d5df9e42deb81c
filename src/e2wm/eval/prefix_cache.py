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
    cache: DynamicCache  # keys/values of the len(tokens) positions, batch 1 (more while extended, until restore)
    next_logprobs: torch.Tensor  # (V,) float32: log p(next token | tokens) in nats (a log-softmax)


def supports_prefix_cache(cache) -> bool:
    """Whether cache can be shared as a prefix: a DynamicCache whose every layer is a plain DynamicLayer.

    Only plain dynamic caches (full attention) can be cropped and broadcast safely; sliding-window and
    other layer types return False.
    """
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def model_device(model) -> torch.device:
    """The device of the model's first parameter (where input ids are put)."""
    return next(model.parameters()).device


@torch.no_grad()
def run_tokens(model, tokens: list[int], prefix: Prefix | None = None) -> Prefix:
    """Run tokens through the model (on top of prefix, if given) and return their Prefix.

    Args:
        tokens: the full token ids, L >= 1; with a prefix they must start with prefix.tokens, and only the
            suffix after them is run.
        prefix: an already-run start of tokens. Its cache is extended in place (the returned Prefix holds
            the same cache object); call `restore(prefix)` afterwards to share it again. With nothing left
            to run, prefix itself is returned.
    Returns:
        a Prefix of tokens: the cache of all L positions and next_logprobs (V,) float32, in nats. Only the
        last position's logits are computed (`logits_to_keep=1`). Runs under torch.no_grad.
    """
    if prefix is not None:
        suffix = tokens[len(prefix.tokens):]
        if not suffix:
            return prefix
        cache = prefix.cache
    else:
        suffix, cache = tokens, DynamicCache(config=model.config)
    ids = torch.tensor([suffix], device=model_device(model))  # (1, S) long, S = len(suffix)
    out = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)  # logits: (1, 1, V), the next token's
    logprobs = torch.log_softmax(out.logits[0, -1].float(), dim=-1)  # (V,) float32
    return Prefix(list(tokens), out.cache, logprobs)


def restore(prefix: Prefix) -> None:
    """Crop the prefix's cache back to its own len(prefix.tokens) positions after run_tokens extended it (in place)."""
    extra = prefix.cache.get_seq_length() - len(prefix.tokens)
    if extra > 0:
        prefix.cache.crop(-extra)


def common_prefix(sequences: list[list[int]]) -> list[int]:
    """The longest token prefix shared by every sequence ([] for no sequences)."""
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
    """A new cache holding `copies` rows of a one-row cache (views; the model's update makes new tensors).

    Each layer's keys and values go from (1, H, S, D) to (copies, H, S, D) without copying memory (H: key/value
    heads, S: cached positions, D: head size); the one-row cache is left unchanged.
    """
    # keys, values: (1, H, S, D) -> expanded views (copies, H, S, D)
    data = [(keys.expand(copies, -1, -1, -1), values.expand(copies, -1, -1, -1)) for keys, values, _ in cache]
    return DynamicCache(ddp_cache_data=data)


@torch.no_grad()
def continuation_logprobs(
    model, context: Prefix, continuations: list[list[int]], pad_id: int
) -> list[tuple[float, bool]]:
    """log p(continuation | context) and whether it is the greedy one, for each continuation, in one batched pass.

    The first token of each continuation is read off context.next_logprobs; the remaining tokens run as
    one right-padded batch on top of the context's cache broadcast along the batch (right padding is
    safe: a causal model's real tokens never see the padding after them). The context's cache is not
    changed. The (log-likelihood, is_greedy) pair is lm-evaluation-harness's `loglikelihood` result.

    Args:
        context: the Prefix the continuations follow (from `run_tokens`).
        continuations: N >= 1 lists of token ids, each of at least one token; Lmax the longest.
        pad_id: the id padding the rows; its positions are never read.
    Returns:
        one (sum over the continuation's tokens of log p(token | context, earlier tokens) in nats, True when
        every token is the argmax) per continuation, in order.
    """
    results = []
    longest = max(len(c) for c in continuations)
    logits = None
    if longest > 1:
        rows = [c[:-1] + [pad_id] * (longest - len(c)) for c in continuations]  # each continuation but its last token
        ids = torch.tensor(rows, device=model_device(model))  # (N, Lmax - 1) long
        cache = broadcast(context.cache, len(rows))
        logits = model(input_ids=ids, cache=cache, use_cache=True).logits.float()  # (N, Lmax - 1, V)
        logits = torch.log_softmax(logits, dim=-1)  # (N, Lmax - 1, V) float32: row r, step t predicts token t + 1
    for row, tokens in enumerate(continuations):
        total = context.next_logprobs[tokens[0]].item()
        greedy = int(context.next_logprobs.argmax()) == tokens[0]
        if len(tokens) > 1:
            steps = logits[row, : len(tokens) - 1]  # (n - 1, V), n = len(tokens)
            targets = torch.tensor(tokens[1:], device=steps.device)  # (n - 1,) long
            total += steps.gather(1, targets[:, None]).sum().item()
            greedy = greedy and bool((steps.argmax(-1) == targets).all())
        results.append((total, greedy))
    return results
