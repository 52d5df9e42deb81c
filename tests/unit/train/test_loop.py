"""The weighted loss equals a hand computation."""

import pytest
import torch
from helpers.training import PAIRS

from e2wm.models import ModelSpec, load_model
from e2wm.train.data import collate, encode_example, ref_weight
from e2wm.train.loop import weighted_nll_sum


def test_weighted_loss_equals_hand_computation(tiny_llama):
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    examples = [encode_example(tokenizer, text, ref, weight, 64) for (text, ref), weight in zip(PAIRS, [1, 0.7, 1, 2])]
    batch = collate(examples, tokenizer.pad_token_id)
    got = weighted_nll_sum(model, batch).item() / ref_weight(examples)
    numerator = denominator = 0.0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
            for t in range(1, len(example.ids)):
                if example.is_ref[t]:
                    numerator -= example.weight * logp[t - 1, example.ids[t]].item()
                    denominator += example.weight
    assert got == pytest.approx(numerator / denominator, rel=1e-5)
