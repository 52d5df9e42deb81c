"""EWC penalties by hand (LoRA deltas and full weights); lambda 0 gives plain LoRA's gradients."""

import pytest
import torch
from helpers.training import PAIRS, peft_model

from e2wm.models import ModelSpec, load_model
from e2wm.train.data import collate, encode_example, ref_weight
from e2wm.train.ewc import FullEwc, LoraEwc, lora_layers
from e2wm.train.loop import weighted_nll_sum
from e2wm.train.targets import target_layers


def random_fisher(model, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(layer.base_layer.weight.shape, generator=generator)
            for name, layer in lora_layers(model).items()}


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_lora_penalty_equals_hand_computation(fixture, request):
    model, _ = peft_model(request.getfixturevalue(fixture))
    fisher = random_fisher(model)
    expected = 0.0
    for name, layer in lora_layers(model).items():
        a, b = layer.lora_A["default"].weight.double(), layer.lora_B["default"].weight.double()
        delta = (16 / 4) * b @ a  # scaling = alpha / r
        if fixture == "tiny_gpt2":
            delta = delta.T  # Conv1D keeps (in, out)
        assert delta.shape == layer.base_layer.weight.shape
        expected += (fisher[name].double() * delta**2).sum().item()
    value = LoraEwc.build(model, fisher)()
    assert expected > 0 and value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_full_penalty_is_fisher_weighted_distance(tiny_llama):
    model, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    layers = target_layers(model, ["q_proj"])
    fisher = {name: torch.full(layer.weight.shape, 2.0) for name, layer in layers.items()}
    penalty = FullEwc.build(layers, fisher)
    assert penalty().item() == 0.0
    with torch.no_grad():
        next(iter(layers.values())).weight += 0.5
    assert penalty().item() == pytest.approx(2.0 * 0.25 * 32 * 32)


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_lambda_zero_gradients_equal_plain_lora(fixture, request):
    path = request.getfixturevalue(fixture)
    grads = []
    for with_penalty in (True, False):
        model, tokenizer = peft_model(path)
        examples = [encode_example(tokenizer, t, r, 1.0, 64) for t, r in PAIRS]
        loss = weighted_nll_sum(model, collate(examples, tokenizer.pad_token_id)) / ref_weight(examples)
        if with_penalty:
            loss = loss + 0.0 * LoraEwc.build(model, random_fisher(model))()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name])


def test_penalties_follow_a_model_moved_after_they_were_built(tiny_llama):
    """accelerate's prepare moves the model after build_model made the penalty: the Fisher (and the full
    penalty's starting weights) follow each layer to its device instead of failing with mixed devices (found on
    a GPU). Simulated with the meta device, the one other device a CPU-only machine has."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from e2wm.train.targets import default_target_names

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    names = default_target_names(model)
    fisher = {name: torch.ones_like(layer.weight) for name, layer in target_layers(model, names).items()}
    model = get_peft_model(model, LoraConfig(r=2, target_modules=names))
    lora = LoraEwc.build(model, fisher)
    model.to("meta")
    assert lora().device.type == "meta" and all(f.device.type == "meta" for _, f in lora.pairs)
    weight = torch.nn.Parameter(torch.ones(3, 2, device="meta"))  # a weight moved after build; start, F not yet
    full = FullEwc([(weight, torch.zeros(3, 2), torch.ones(3, 2))])
    assert full().device.type == "meta" and {t.device.type for t in full.triples[0]} == {"meta"}
