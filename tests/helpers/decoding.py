"""Independent greedy decoding, for the tests that check e2wm's generation against it."""

import torch

from e2wm.eval.encoding import encode


@torch.no_grad()
def naive_greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """Greedy decoding by plain forward passes: one unbatched, uncached pass per step, argmax of the last logits,
    until a newline is decoded; the first line, stripped."""
    ids = encode(tokenizer, prompt)
    new: list[int] = []
    for _ in range(max_new_tokens):
        new.append(int(model(torch.tensor([ids + new])).logits[0, -1].argmax()))
        if new[-1] == tokenizer.eos_token_id or "\n" in tokenizer.decode(new):
            break
    return tokenizer.decode(new, skip_special_tokens=True).split("\n")[0].strip()
