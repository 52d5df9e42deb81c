"""General text for the Fisher drawn from the base model itself (offline); files are read by e2wm.text.

The paper's Fisher used Pile validation texts (`compute_fisher_matrix.py`); samples of the model are e2wm's
offline default, needing no download.
"""

import torch

from e2wm.errors import InputError

MODEL_SAMPLES = "model-samples"  # the --corpus value that asks for these samples


def start_token(tokenizer) -> int:
    """The token generation starts from: BOS, else EOS (a document boundary for GPT-2 style models).

    Raises:
        InputError: when the tokenizer has neither.
    """
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise InputError("the tokenizer has neither a BOS nor an EOS token to start sampling from")
    return token


@torch.no_grad()
def sample_texts(model, tokenizer, n: int, max_len: int, seed: int, batch_size: int = 8, progress=None) -> list[str]:
    """n texts sampled (temperature 1, no top-k/top-p) from the model, started at BOS; seeded, so reproducible.

    torch's global RNG is seeded with seed and its CPU state restored afterwards. Samples that decode to
    nothing are skipped, so sampling goes on until n texts are there.

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
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts: list[str] = []
    try:
        while len(texts) < n:
            prompt = torch.full((batch_size, 1), start_token(tokenizer), device=device)  # (batch_size, 1) long
            out = model.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                max_new_tokens=max_len - 1, pad_token_id=tokenizer.pad_token_id,
            )
            for row in out[:, 1:]:  # out: (batch_size, <= max_len) long; row: the new tokens
                text = tokenizer.decode(row, skip_special_tokens=True).strip()
                if text and len(texts) < n:
                    texts.append(text)
                    if progress is not None:
                        progress(1)
    finally:
        torch.random.set_rng_state(generator_state)
    return texts
