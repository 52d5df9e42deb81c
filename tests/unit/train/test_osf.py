"""--adapter-kind osf (PEFT's orthogonal subspace finetuning) as `build_model` builds it: the EWC penalty on OSF
against sum F * (W_eff - W0)^2 with W_eff read off each layer's forward pass, the base model behind
disable_adapter (the KL anchor's base distribution), the checkpoint's trainable weights, and the refusals."""

import pytest
import torch

from e2wm.errors import InputError
from e2wm.models import ModelSpec, load_model
from e2wm.recipes.finetune import build_model
from e2wm.train.checkpoint import trainable_state
from e2wm.train.config import TrainConfig
from e2wm.train.ewc import PEFT_PREFIX, OsfEwc


def osf_model(path, tmp_path, **options):
    config = TrainConfig(model=str(path), train="1 a.json", out=str(tmp_path / "r"), adapter_kind="osf",
                         regularisers="none", device="cpu", **options)
    model, _, _ = build_model(config, "cpu")
    return model


def osf_layers(model) -> dict[str, torch.nn.Module]:
    from peft.tuners.osf import OSFLayer

    return {name.removeprefix(PEFT_PREFIX): m for name, m in model.named_modules() if isinstance(m, OSFLayer)}


def perturb(model, seed=2, scale=0.05):
    """Move every trained OSF factor (U_low, S_low, V_low) at random, as training would."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * scale)


def effective_weight(layer) -> torch.Tensor:
    """The weight the layer computes with, read off its forward pass: layer(I) = I @ W_eff^T (no bias here)."""
    with torch.no_grad():
        return layer(torch.eye(layer.in_features)).T.double()


def test_only_the_osf_factors_train_on_the_modules_with_peft_defaults(tiny_llama, tmp_path):
    model = osf_model(tiny_llama, tmp_path)
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    layers = osf_layers(model)
    assert sorted(layers) == [f"model.layers.{i}.self_attn.{m}_proj" for i in (0, 1) for m in ("q", "v")]
    assert len(trained) == 3 * len(layers) and all(".osf_svd_params.default." in name for name in trained)
    q, v = layers["model.layers.0.self_attn.q_proj"], layers["model.layers.0.self_attn.v_proj"]
    # PEFT's default: half of min(out, in) frozen, the other half trained (q 32x32, v 16x32)
    assert q.osf_svd_params["default"]["S_low"].numel() == 16 and v.osf_svd_params["default"]["S_low"].numel() == 8
    assert set(trainable_state(model)) == set(trained)  # what a checkpoint saves and resumes
    small = osf_model(tiny_llama, tmp_path, osf_effective_rank=0.25, modules="q_proj")
    assert [layer.osf_svd_params["default"]["S_low"].numel() for layer in osf_layers(small).values()] == [24, 24]


def test_ewc_on_osf_is_the_fisher_weighted_change_of_the_effective_weights(tiny_llama, tmp_path):
    model = osf_model(tiny_llama, tmp_path)
    layers = osf_layers(model)
    generator = torch.Generator().manual_seed(1)
    fisher = {name: torch.rand(layer.base_layer.weight.shape, generator=generator) for name, layer in layers.items()}
    start = {name: effective_weight(layer) for name, layer in layers.items()}
    base, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    for name, weight in start.items():  # W_eff starts at W0 (up to the factored forward's rounding)
        torch.testing.assert_close(weight, base.get_submodule(name).weight.double(), rtol=0, atol=1e-5)
    penalty = OsfEwc.build(model, fisher)
    assert penalty().item() < 1e-8
    perturb(model)
    expected = sum((fisher[name].double() * (effective_weight(layer) - start[name]) ** 2).sum().item()
                   for name, layer in layers.items())
    value = penalty()
    assert expected > 1e-2 and value.item() == pytest.approx(expected, rel=1e-4)
    value.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_disable_adapter_computes_the_base_model(tiny_llama, tmp_path):
    """What the kl regulariser's base distribution needs: PEFT's OSF keeps W0 in the base layer, untouched."""
    model = osf_model(tiny_llama, tmp_path)
    perturb(model)
    base, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    ids = torch.tensor([[1, 5, 9, 14, 20, 7]])
    with torch.no_grad():
        expected = base(input_ids=ids).logits
        assert not torch.allclose(model(input_ids=ids).logits, expected, atol=1e-3)
        with model.disable_adapter():
            assert torch.equal(model(input_ids=ids).logits, expected)


def test_a_reloaded_checkpoint_keeps_the_gradient_projection(tiny_llama, tmp_path):
    """load_state_dict copies into the parameters, so PEFT's hooks (the gradient of U_low kept orthogonal to the
    frozen top singular directions) stay on after a resume."""
    model = osf_model(tiny_llama, tmp_path)
    perturb(model)
    saved = trainable_state(model)
    fresh = osf_model(tiny_llama, tmp_path)
    assert not fresh.load_state_dict(saved, strict=False).unexpected_keys
    assert all(torch.equal(p, saved[n]) for n, p in fresh.named_parameters() if p.requires_grad)
    fresh(input_ids=torch.tensor([[1, 5, 9, 14]])).logits.square().mean().backward()
    layer = osf_layers(fresh)["model.layers.0.self_attn.q_proj"]  # square: U_high is the complement of U0_low
    u_low = layer._osf_U_low_init["default"].double()
    grad = layer.osf_svd_params["default"]["U_low"].grad.double()
    assert grad.abs().max() > 0
    torch.testing.assert_close(u_low @ (u_low.T @ grad), grad, rtol=0, atol=1e-6)  # inside the trained subspace


def test_refusals(tiny_llama, tiny_gpt2, tmp_path):
    with pytest.raises(InputError, match="c_attn is a Conv1D layer; PEFT's OSF adapts torch Linear layers only"):
        osf_model(tiny_gpt2, tmp_path)
    with pytest.raises(InputError, match=r"--osf-effective-rank 16 freezes 16 of the 16 singular directions of "
                                         r"model.layers.0.self_attn.v_proj \(16, 32\)"):
        osf_model(tiny_llama, tmp_path, osf_effective_rank=16)
    with pytest.raises(InputError, match="--osf-effective-rank 0.01 freezes 0 of the 32"):
        osf_model(tiny_llama, tmp_path, osf_effective_rank=0.01)
