"""General-ability check: perplexity = exp(mean token NLL) over a text corpus.

The paper's script reported 2**loss; we report exp(loss), the usual definition.
"""

import math
from pathlib import Path

import torch

from e2wm.eval.encoding import encode
from e2wm.eval.prefix_cache import model_device
from e2wm.text import read_corpus


def read_texts(path: str | Path) -> list[str]:
    """General text for perplexity: JSONL with "text" per line, or plain text (blank-line paragraphs)."""
    return read_corpus(path, "--ppl-data")


def windows(ids: list[int], length: int) -> list[list[int]]:
    """Non-overlapping windows of at most length tokens (each window's first token is context only)."""
    return [ids[i : i + length] for i in range(0, len(ids), length) if len(ids[i : i + length]) > 1]


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], max_length: int = 1024, batch_size: int = 4,
               progress=None) -> dict[str, float]:
    """{"perplexity": exp(total NLL / tokens), "nll": mean NLL, "tokens": predicted tokens}."""
    chunks = [w for text in texts for w in windows(encode(tokenizer, text), max_length)]
    chunks.sort(key=len)
    device = model_device(model)
    total, count = 0.0, 0
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        width = max(len(c) for c in batch)
        ids = torch.tensor([c + [tokenizer.pad_token_id] * (width - len(c)) for c in batch], device=device)
        mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in batch], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none"
        )
        keep = mask[:, 1:].bool()
        total += nll[keep].sum().item()
        count += int(keep.sum())
        if progress is not None:
            progress(len(batch))
    mean = total / count
    return {"perplexity": math.exp(mean), "nll": mean, "tokens": count}
