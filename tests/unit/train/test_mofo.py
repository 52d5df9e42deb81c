"""MoFO (e2wm.train.mofo) against a hand-written reference of the paper's update, against torch's AdamW at fraction 1,
and through a state_dict saved and loaded as a checkpoint does."""

import io

import pytest
import torch

from e2wm.train.mofo import MoFO, momentum_filter

SHAPES = [(6, 5), (7,), (3, 4, 2)]


def gradients(steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    """Per step, one random gradient per tensor of SHAPES (float32; no two entries equal)."""
    generator = torch.Generator().manual_seed(seed)
    return [[torch.randn(shape, generator=generator) for shape in SHAPES] for _ in range(steps)]


def start(seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in SHAPES]


def reference(weights: list[torch.Tensor], grads: list[list[torch.Tensor]], lrs: list[float], fraction: float,
              decay: float, betas=(0.9, 0.999), eps=1e-8) -> list[torch.Tensor]:
    """The paper's update written out in float64, entry by entry ranks by sorting: per tensor, the k = round(fraction
    x n) entries of largest |m| take AdamW's step (decoupled decay, bias-corrected moments), the others stay."""
    weights = [w.double().clone() for w in weights]
    m = [torch.zeros_like(w) for w in weights]
    v = [torch.zeros_like(w) for w in weights]
    for t, (step_grads, lr) in enumerate(zip(grads, lrs), start=1):
        for i, g in enumerate(step_grads):
            g = g.double()
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            flat_m, flat_w = m[i].flatten(), weights[i].flatten().clone()
            k = max(1, round(fraction * flat_m.numel()))
            chosen = sorted(range(flat_m.numel()), key=lambda j: -abs(flat_m[j].item()))[:k]
            for j in chosen:
                m_hat = flat_m[j] / (1 - betas[0] ** t)
                v_hat = v[i].flatten()[j] / (1 - betas[1] ** t)
                flat_w[j] = flat_w[j] * (1 - lr * decay) - lr * m_hat / (v_hat.sqrt() + eps)
            weights[i] = flat_w.view_as(weights[i])
    return weights


def run(optimizer_of, weights: list[torch.Tensor], grads: list[list[torch.Tensor]], lrs: list[float]):
    """Parameters from weights, stepped by optimizer_of(params) with each step's gradients and learning rate."""
    params = [torch.nn.Parameter(w.clone()) for w in weights]
    optimizer = optimizer_of(params)
    for step_grads, lr in zip(grads, lrs):
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("fraction, decay", [(0.3, 0.0), (0.15, 0.1), (0.5, 0.01)])
def test_steps_equal_the_papers_update_written_out(fraction, decay):
    grads, lrs, weights = gradients(5), [1e-2, 8e-3, 6e-3, 4e-3, 2e-3], start()
    params, _ = run(lambda p: MoFO(p, lr=1.0, weight_decay=decay, fraction=fraction), weights, grads, lrs)
    for got, want in zip(params, reference(weights, grads, lrs, fraction, decay)):
        torch.testing.assert_close(got.detach().double(), want, rtol=1e-6, atol=1e-7)


def test_one_step_moves_exactly_the_k_entries_of_largest_momentum_and_no_other():
    weights = start()
    grads = gradients(1)
    params, optimizer = run(lambda p: MoFO(p, lr=1e-2, weight_decay=0.1, fraction=0.25), weights, grads, [1e-2])
    for before, after, g in zip(weights, params, grads[0]):
        moved = after.detach() != before
        assert int(moved.sum()) == max(1, round(0.25 * before.numel()))
        # at step 1 the first moment is (1 - beta1) g: the moved entries are those of largest |g|
        assert moved.flatten()[g.abs().flatten().argsort(descending=True)[: int(moved.sum())]].all()
        assert torch.equal(after.detach()[~moved], before[~moved])  # bit for bit: no decay either
    state = optimizer.state[params[0]]
    assert torch.equal(state["exp_avg"], 0.1 * grads[0][0])  # the moments of every entry are kept
    assert torch.count_nonzero(state["exp_avg_sq"]) == params[0].numel()


def test_fraction_one_is_torchs_adamw_bit_for_bit():
    grads, lrs, weights = gradients(6, seed=3), [1e-2, 9e-3, 7e-3, 5e-3, 3e-3, 1e-3], start(4)
    mofo, _ = run(lambda p: MoFO(p, lr=1.0, weight_decay=0.05, fraction=1.0), weights, grads, lrs)
    adamw, _ = run(lambda p: torch.optim.AdamW(p, lr=1.0, weight_decay=0.05), weights, grads, lrs)
    for a, b in zip(mofo, adamw):
        assert torch.equal(a, b)


def test_a_state_dict_saved_and_loaded_continues_exactly():
    """As `e2wm train --resume` does: torch.save of state_dict, torch.load(weights_only=True), load_state_dict."""
    grads, weights = gradients(6, seed=5), start(6)
    lrs = [1e-2] * 6
    whole, _ = run(lambda p: MoFO(p, lr=1e-2, weight_decay=0.01, fraction=0.2), weights, grads, lrs)
    first, optimizer = run(lambda p: MoFO(p, lr=1e-2, weight_decay=0.01, fraction=0.2), weights, grads[:3], lrs[:3])
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    def resumed(params):
        optimizer = MoFO(params, lr=1e-2, weight_decay=0.01, fraction=0.9)  # the fraction comes back from the state
        optimizer.load_state_dict(saved)
        return optimizer

    second, optimizer = run(resumed, [p.detach() for p in first], grads[3:], lrs[3:])
    assert optimizer.param_groups[0]["fraction"] == 0.2
    for a, b in zip(second, whole):
        assert torch.equal(a, b)


def test_the_filter_keeps_at_least_one_entry_and_every_tie_at_the_threshold():
    m = torch.tensor([0.5, -2.0, 1.0, -1.0, 0.1])
    assert momentum_filter(m, 0.4).tolist() == [False, True, True, True, False]  # k 2: |1.0| ties, both kept
    assert momentum_filter(m, 0.01).tolist() == [False, True, False, False, False]  # k rounds to 0: one kept
    assert momentum_filter(m, 1.0).all()
    assert momentum_filter(torch.zeros(3, 2), 0.5).all()  # all tied at 0 (a LoRA A before B moves): no step anyway


@pytest.mark.parametrize("kwargs", [{"fraction": 0.0}, {"fraction": 1.5}, {"lr": -1.0}, {"betas": (0.9, 1.0)}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="MoFO"):
        MoFO([torch.nn.Parameter(torch.zeros(2))], **kwargs)
