"""General text for the Fisher drawn from the base model itself (offline); files are read by e2wm.text.

The paper's Fisher used Pile validation texts (`compute_fisher_matrix.py`); samples of the model are e2wm's
offline default, needing no download.
"""

import logging

import torch
from transformers import GenerationConfig

from e2wm.decoding import ignored_settings, own_settings_only
from e2wm.errors import InputError
from e2wm.models import pad_id

logger = logging.getLogger(__name__)

MODEL_SAMPLES = "model-samples"  # the --corpus value that asks for these samples


def start_token(tokenizer) -> int:
    """The token generation starts from: BOS, else EOS (a document boundary for GPT-2 style models).

    Raises:
        InputError: when the tokenizer has neither.
    """
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise InputError(f"--corpus {MODEL_SAMPLES}: the tokenizer has neither a BOS nor an EOS token to start "
                         "sampling from; give --corpus a text file")
    return token


def sampling_config(tokenizer, max_len: int) -> GenerationConfig:
    """e2wm's sampling for the Fisher's texts: plain multinomial sampling at temperature 1 (no top-k, top-p or other
    warper, no penalty), at most max_len - 1 new tokens, stopping at the tokenizer's EOS (padding after it)."""
    return GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=max_len - 1,
                            pad_token_id=pad_id(tokenizer), eos_token_id=tokenizer.eos_token_id)


@torch.no_grad()
def sample_texts(model, tokenizer, n: int, max_len: int, seed: int, batch_size: int = 8, progress=None) -> list[str]:
    """n texts sampled (temperature 1, no top-k/top-p) from the model, started at BOS; seeded, so reproducible.

    torch's global RNG is seeded with seed and its CPU state restored afterwards. Samples that decode to
    nothing are skipped, so sampling goes on until n texts are there. Only `sampling_config`'s settings apply:
    the model's generation_config.json is kept out (`decoding.own_settings_only`), and what it held
    that is ignored is logged once.

    Args:
        n: texts wanted.
        max_len: tokens per sample, the start token included (max_len - 1 new tokens at most).
        seed: the sampling seed.
        batch_size: samples drawn per `generate` call.
        progress: called with 1 per text kept.
    Returns:
        n stripped, non-empty texts, special tokens removed.
    Raises:
        InputError: when the tokenizer has no BOS or EOS token (`start_token`).
    """
    start = start_token(tokenizer)
    config = sampling_config(tokenizer, max_len)
    ignored = ignored_settings(model, config)
    if ignored:
        logger.info("sampling the Fisher's texts with e2wm's settings only; the model's generation_config "
                    "settings ignored: %s", ignored)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts: list[str] = []
    try:
        with own_settings_only(model):
            while len(texts) < n:
                prompt = torch.full((batch_size, 1), start, device=device)  # (batch_size, 1) long
                out = model.generate(prompt, attention_mask=torch.ones_like(prompt), generation_config=config)
                for row in out[:, 1:]:  # out: (batch_size, <= max_len) long; row: the new tokens
                    text = tokenizer.decode(row, skip_special_tokens=True).strip()
                    if text and len(texts) < n:
                        texts.append(text)
                        if progress is not None:
                            progress(1)
    finally:
        torch.random.set_rng_state(generator_state)
    return texts
