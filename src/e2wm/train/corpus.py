"""General text for the Fisher drawn from the base model itself (offline); files are read by e2wm.text."""

import torch

from e2wm.errors import InputError

MODEL_SAMPLES = "model-samples"  # the --corpus value that asks for these samples


def start_token(tokenizer) -> int:
    """The token generation starts from: BOS, else EOS (a document boundary for GPT-2 style models)."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise InputError("the tokenizer has neither a BOS nor an EOS token to start sampling from")
    return token


@torch.no_grad()
def sample_texts(model, tokenizer, n: int, max_len: int, seed: int, batch_size: int = 8, progress=None) -> list[str]:
    """n texts sampled (temperature 1, no top-k/top-p) from the model, started at BOS; seeded, so reproducible."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    texts: list[str] = []
    try:
        while len(texts) < n:
            prompt = torch.full((batch_size, 1), start_token(tokenizer), device=device)
            out = model.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                max_new_tokens=max_len - 1, pad_token_id=tokenizer.pad_token_id,
            )
            for row in out[:, 1:]:
                text = tokenizer.decode(row, skip_special_tokens=True).strip()
                if text and len(texts) < n:
                    texts.append(text)
                    if progress is not None:
                        progress(1)
    finally:
        torch.random.set_rng_state(generator_state)
    return texts
