"""The Fisher: batched per-sample gradients equal a naive loop; seeded model samples; mismatched Fishers."""

import pytest
import torch
from helpers.training import TEXTS, naive_fisher

from e2wm.errors import InputError
from e2wm.models import ModelSpec, load_model
from e2wm.train.corpus import sample_texts
from e2wm.train.fisher import accumulate, check_fisher, encode_texts, prepare_for_fisher, zero_sums
from e2wm.train.targets import default_target_names, target_layers


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_batched_fisher_equals_naive_loop(fixture, request):
    model, tokenizer = load_model(ModelSpec(str(request.getfixturevalue(fixture)), device="cpu"))
    layers = target_layers(model, default_target_names(model))
    prepare_for_fisher(model, layers)
    sequences = encode_texts(tokenizer, TEXTS, max_len=12)
    assert max(len(s) for s in sequences) == 12 and min(len(s) for s in sequences) < 12  # padding exercised
    sums = zero_sums(layers)
    accumulate(model, layers, sequences, tokenizer.pad_token_id, sums, batch_size=3)
    expected = naive_fisher(model, layers, sequences)
    assert set(sums) == set(expected) and len(sums) == (4 if fixture == "tiny_llama" else 2)
    for name in sums:
        assert sums[name].dtype == torch.float32
        assert sums[name].abs().sum() > 0
        torch.testing.assert_close(sums[name] / len(sequences), expected[name], rtol=1e-4, atol=1e-10)


def test_model_samples_are_seeded(tiny_llama):
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    first = sample_texts(model, tokenizer, 3, max_len=8, seed=1, batch_size=2)
    assert len(first) == 3 and all(isinstance(t, str) and t for t in first)
    assert sample_texts(model, tokenizer, 3, max_len=8, seed=1, batch_size=2) == first
    assert sample_texts(model, tokenizer, 3, max_len=8, seed=2, batch_size=2) != first


def test_mismatched_fisher_is_rejected(tiny_llama, tiny_gpt2, tmp_path):
    model, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    layers = target_layers(model, ["q_proj", "v_proj"])
    good = {name: torch.zeros(layer.weight.shape) for name, layer in layers.items()}
    check_fisher("f", good, layers)
    missing = dict(list(good.items())[1:])
    with pytest.raises(InputError, match="modules do not match"):
        check_fisher("f", missing, layers)
    wrong_shape = {**good, "model.layers.0.self_attn.q_proj": torch.zeros(3, 3)}
    with pytest.raises(InputError, match=r"q_proj has shape \[3, 3\]"):
        check_fisher("f", wrong_shape, layers)
