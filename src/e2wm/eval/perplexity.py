"""General-ability check: perplexity over a text corpus, in e2wm's way (windows) or the paper's.

windows (the default): every text, encoded with the tokenizer's BOS kept (`encode`), split into
non-overlapping windows; perplexity = exp(mean token NLL), the usual definition.
paper: what the authors' `eval_ppl.py` did: the first N texts (5000 Pile test texts in their script), each
cut to its first 800 tokens (`PAPER_TOKENS`), encoded without a BOS token, one sequence per text; their
tables print 2 ** mean NLL (nats used as if bits), reported here as `perplexity_base2` beside exp(mean NLL).
"""

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from e2wm.eval.encoding import encode
from e2wm.eval.prefix_cache import model_device
from e2wm.models import pad_id
from e2wm.text import read_corpus

PAPER_TOKENS = 800  # --ppl-mode paper: each text cut to its first 800 tokens, as in the authors' eval_ppl.py


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
def sequence_nll(model, sequences: list[list[int]], pad_id: int, batch_size: int = 4,
                 progress=None) -> list[tuple[float, int]]:
    """Summed next-token NLL and the number of predicted tokens of each sequence, scored on its own.

    Each sequence predicts its tokens 1.. from the ones before it (its first token is context only).
    Sequences are sorted by length and right-padded into batches of batch_size (pads are masked out and
    never predicted). progress is called with the number of sequences done after each batch.
    Returns:
        per sequence, in the given order: (NLL in nats, predicted tokens).
    """
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    device = model_device(model)
    results: list[tuple[float, int]] = [(0.0, 0)] * len(sequences)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = [sequences[i] for i in chosen]
        width = max(len(c) for c in batch)
        ids = torch.tensor([c + [pad_id] * (width - len(c)) for c in batch], device=device)  # (B, T)
        mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in batch], device=device)  # (B, T), 0 on pads
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V) float32
        nll = torch.nn.functional.cross_entropy(  # logits[:, :-1]: (B, T - 1, V) predict ids[:, 1:]
            logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none"
        )  # (B, T - 1) nats
        keep = mask[:, 1:].bool()  # (B, T - 1): the predicted token is real, not padding
        sums, counts = (nll * keep).sum(dim=1).tolist(), keep.sum(dim=1).tolist()  # (B,) each
        for i, total, count in zip(chosen, sums, counts):
            results[i] = (total, int(count))
        if progress is not None:
            progress(len(batch))
    return results


def predicts_a_token(tokenizer, texts: list[str], mode: str, max_texts: int) -> bool:
    """Whether the mode's perplexity has a token to predict: some text it scores has two or more tokens.

    mode "windows" scores every text encoded with `encode` (BOS kept); "paper" the first max_texts texts
    without special tokens (`paper_sequences`). Stops at the first such text.
    """
    if mode == "windows":
        return any(len(encode(tokenizer, text)) > 1 for text in texts)
    return any(len(tokenizer(text, add_special_tokens=False).input_ids) > 1 for text in texts[:max_texts])


@dataclass
class TextLoss:
    """One scored text: its position in the texts read, a digest of it, its summed NLL and predicted tokens."""

    index: int
    sha256: str  # of the text's UTF-8 bytes, first 16 hex digits: tells whether two runs scored the same texts
    nll: float  # nats, summed over the text's predicted tokens
    tokens: int


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def window_losses(model, tokenizer, texts: list[str], max_length: int = 1024, batch_size: int = 4,
                  progress=None) -> list[TextLoss]:
    """Per text, e2wm's windows mode: the text encoded with `encode` (BOS kept), split into `windows` of
    max_length tokens, its windows' NLL summed. Texts giving no window (under 2 tokens) are left out.
    batch_size: windows per forward pass; progress: called with the windows done after each batch."""
    split = [windows(encode(tokenizer, text), max_length) for text in texts]
    scored = iter(sequence_nll(model, [w for ws in split for w in ws], pad_id(tokenizer), batch_size, progress))
    losses = []
    for index, (text, parts) in enumerate(zip(texts, split)):
        pairs = [next(scored) for _ in parts]
        if pairs:
            losses.append(TextLoss(index, text_digest(text), sum(p[0] for p in pairs), sum(p[1] for p in pairs)))
    return losses


def paper_losses(model, tokenizer, texts: list[str], max_texts: int = 5000, max_tokens: int = PAPER_TOKENS,
                 batch_size: int = 4, progress=None) -> list[TextLoss]:
    """Per text, the authors' eval_ppl.py way: the first max_texts texts, each cut to its first max_tokens
    tokens without BOS (`paper_sequences`); texts under 2 tokens are left out. batch_size: texts per pass."""
    kept = [(i, ids) for i, ids in enumerate(paper_sequences(tokenizer, texts, max_texts, max_tokens, drop=False))
            if len(ids) > 1]
    scored = sequence_nll(model, [ids for _, ids in kept], pad_id(tokenizer), batch_size, progress)
    return [TextLoss(i, text_digest(texts[i]), nll, count) for (i, _), (nll, count) in zip(kept, scored)]


def summary(losses: list[TextLoss], mode: str) -> dict:
    """{"perplexity": exp(nll), "nll": total NLL / tokens, in nats per token, "tokens": predicted tokens,
    "texts": texts scored, "mode"}; with mode "paper" also "perplexity_base2": 2 ** nll (the number the
    paper's tables print). Every token counts once (a micro-average over texts).

    Raises:
        ValueError: when no token was scored (no text had two or more tokens: `predicts_a_token` tells first).
    """
    tokens = sum(loss.tokens for loss in losses)
    if tokens == 0:
        raise ValueError("no text has two or more tokens: perplexity has nothing to predict")
    mean = sum(loss.nll for loss in losses) / tokens
    result = {"perplexity": math.exp(mean), "nll": mean, "tokens": tokens, "texts": len(losses), "mode": mode}
    if mode == "paper":
        result["perplexity_base2"] = 2**mean
    return result


def perplexity(model, tokenizer, texts: list[str], max_length: int = 1024, batch_size: int = 4,
               progress=None) -> dict:
    """Perplexity of the model on texts (e2wm's windows mode): exp of the mean next-token NLL.

    Args:
        texts: general text; each is encoded with `encode` (BOS kept) and split into `windows` of max_length tokens.
        max_length: window length, in tokens (at most the model's context).
        batch_size: windows per forward pass (windows are sorted by length, then right-padded).
        progress: called with the number of windows done after each batch.
    Returns:
        `summary` of `window_losses` in mode "windows": perplexity, nll, tokens, texts (those giving a window).
    Raises:
        ValueError: when no text gives a window of at least 2 tokens.
    """
    return summary(window_losses(model, tokenizer, texts, max_length, batch_size, progress), "windows")


def paper_sequences(tokenizer, texts: list[str], max_texts: int, max_tokens: int = PAPER_TOKENS,
                    drop: bool = True) -> list[list[int]]:
    """The authors' inputs: the first max_texts texts, each encoded WITHOUT special tokens (no BOS, whatever
    the tokenizer adds by default) and cut to its first max_tokens tokens; with drop, texts under 2 tokens are
    dropped (nothing to predict)."""
    cut = [tokenizer(text, add_special_tokens=False).input_ids[:max_tokens] for text in texts[:max_texts]]
    return [ids for ids in cut if len(ids) > 1 or not drop]


def paper_perplexity(model, tokenizer, texts: list[str], max_texts: int = 5000, max_tokens: int = PAPER_TOKENS,
                     batch_size: int = 4, progress=None) -> dict:
    """Perplexity the way the authors' eval_ppl.py computed it (`--ppl-mode paper`).

    Args:
        texts: general text, in order; only the first max_texts are scored (the authors took 5000).
        max_tokens: each text's first tokens kept (PAPER_TOKENS, 800; at most the model's context).
        batch_size: texts per forward pass (right-padded; the same numbers as one pass per text).
        progress: called with the number of texts done after each batch.
    Returns:
        `summary` of `paper_losses` in mode "paper": perplexity = exp(nll) (comparable with windows mode),
        perplexity_base2 = 2 ** nll (the number the paper's tables print), nll, tokens (each text's tokens
        1..), texts.
    Raises:
        ValueError: when none of the first max_texts texts has 2 tokens.
    """
    return summary(paper_losses(model, tokenizer, texts, max_texts, max_tokens, batch_size, progress), "paper")
