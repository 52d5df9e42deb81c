"""General-ability check: perplexity = exp(mean token NLL) over a text corpus.

The paper's script reported 2**loss; we report exp(loss), the usual definition.
Source: the authors' `eval_ppl.py` (first 5000 Pile test texts, each cut to 800 tokens, no BOS, 2**loss);
here long texts are split into windows instead of cut, and the tokenizer's BOS is kept (`encode`).
"""

import math
from pathlib import Path

import torch

from e2wm.eval.encoding import encode
from e2wm.eval.prefix_cache import model_device
from e2wm.text import read_corpus


def read_texts(path: str | Path) -> list[str]:
    """General text for perplexity: JSONL with "text" per line, plain text (blank-line paragraphs), or a saved dataset.

    Reads with e2wm.text.read_corpus; the texts come back stripped, blank ones dropped.

    Raises:
        InputError: (naming --ppl-data) when the path is neither a file nor a saved Hugging Face dataset,
            a JSONL line is bad or lacks a string "text", a dataset has no "text" column, or no text is left.
    """
    return read_corpus(path, "--ppl-data")


def windows(ids: list[int], length: int) -> list[list[int]]:
    """Non-overlapping windows of at most length tokens (each window's first token is context only).

    A window predicts its tokens 1.. from the ones before it inside the window only (no stride or overlap, unlike
    lm-evaluation-harness's rolling windows), so the first token of every window is never predicted; a last
    window of a single token is dropped (nothing to predict).
    """
    return [ids[i : i + length] for i in range(0, len(ids), length) if len(ids[i : i + length]) > 1]


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], max_length: int = 1024, batch_size: int = 4,
               progress=None) -> dict[str, float]:
    """Perplexity of the model on texts: exp of the mean next-token NLL over all predicted tokens.

    Args:
        texts: general text; each is encoded with `encode` and split into `windows` of max_length tokens.
        max_length: window length, in tokens (at most the model's context).
        batch_size: windows per forward pass (windows are sorted by length, then right-padded).
        progress: called with the number of windows done after each batch.
    Returns:
        {"perplexity": exp(nll), "nll": total NLL / tokens, in nats per token, "tokens": the number of
        predicted tokens (an int)}. Every token counts once (a micro-average over texts).
    Raises:
        ZeroDivisionError: when no text gives a window of at least 2 tokens.
    """
    chunks = [w for text in texts for w in windows(encode(tokenizer, text), max_length)]
    chunks.sort(key=len)
    device = model_device(model)
    total, count = 0.0, 0
    for start in range(0, len(chunks), batch_size):
        batch = chunks[start : start + batch_size]
        width = max(len(c) for c in batch)
        ids = torch.tensor([c + [tokenizer.pad_token_id] * (width - len(c)) for c in batch], device=device)  # (B, T)
        mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in batch], device=device)  # (B, T), 0 on pads
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V) float32
        nll = torch.nn.functional.cross_entropy(  # logits[:, :-1]: (B, T - 1, V) predict ids[:, 1:]
            logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none"
        )  # (B, T - 1) nats
        keep = mask[:, 1:].bool()  # (B, T - 1): the predicted token is real, not padding
        total += nll[keep].sum().item()
        count += int(keep.sum())
        if progress is not None:
            progress(len(batch))
    mean = total / count
    return {"perplexity": math.exp(mean), "nll": mean, "tokens": count}
