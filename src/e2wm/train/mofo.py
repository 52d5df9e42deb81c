"""MoFO, the momentum-filtered optimizer: AdamW whose every step moves only the entries with the largest momentum.

Source: Chen et al. 2024, "MoFO: Momentum-Filtered Optimizer for Mitigating Forgetting in LLM Fine-Tuning" (arXiv
2407.20999; TMLR 2025). In each step, within each parameter partition (here, as in the authors' code, each trainable
tensor), only the fraction alpha of entries with the largest |first moment| are updated, by AdamW's rule; the other
entries keep their values exactly (no update, no weight decay), while both moments are kept for every entry. The
authors' scripts and README use alpha = 0.15 (`MOFO_FRACTION`; they recommend 0.05 to 0.2).

For one tensor p with gradient g at step t (AdamW: Loshchilov and Hutter 2019, as torch.optim.AdamW computes it):

    m = beta1 * m + (1 - beta1) * g            v = beta2 * v + (1 - beta2) * g^2      (every entry)
    k = max(1, round(alpha * numel(p)));  keep = |m| >= the k-th largest |m|          (ties at it are all kept)
    p[keep] = p[keep] * (1 - lr * weight_decay) - lr / (1 - beta1^t) * m[keep] / (sqrt(v[keep] / (1 - beta2^t)) + eps)

With alpha = 1 every entry is kept and the step is AdamW's, operation for operation (torch's single-tensor path), so
the result equals torch.optim.AdamW's exactly. Built on AdamW's math rather than wrapping torch.optim.AdamW: a
wrapper would have to snapshot every trainable tensor before each step to put the filtered entries back (one more
copy of the trained weights, a whole model's worth for full finetuning), and AdamW's fused/foreach kernels give no
hook between the moment update and the parameter update, where the filter belongs. The state (step, exp_avg,
exp_avg_sq per tensor, as AdamW names them) lives in `state_dict`, so a checkpoint resumes exactly.

Differences from the authors' code (algorithms_MoFO.py), said here because they change numbers: their weight decay
shrinks every entry, filtered or not (their scripts train with weight decay 0, where the two agree); they leave
biases and normalisation weights unfiltered, while here every trainable tensor is filtered (LoRA and OSF train only
matrices and singular values); their k is int(alpha * numel), which is 0 for a tensor of fewer than 1 / alpha
entries.
"""

import torch

OPTIMIZERS = ("adamw", "mofo")
MOFO_FRACTION = 0.15  # the authors' scripts and README (--MoFO_fraction 0.15)


def momentum_filter(exp_avg: torch.Tensor, fraction: float) -> torch.Tensor:
    """The entries MoFO updates: a bool tensor of exp_avg's shape, True where |exp_avg| is at least its k-th
    largest value, k = max(1, round(fraction * numel)) (entries tied at the threshold are all True).

    exp_avg: a tensor's first moment (any shape); fraction: in (0, 1]."""
    magnitude = exp_avg.abs()
    flat = magnitude.reshape(-1)
    k = max(1, round(fraction * flat.numel()))
    if k >= flat.numel():
        return torch.ones_like(magnitude, dtype=torch.bool)
    threshold = flat.float().kthvalue(flat.numel() - k + 1).values  # the k-th largest
    return magnitude >= threshold.to(magnitude.dtype)


class MoFO(torch.optim.Optimizer):
    """AdamW updating, per tensor and step, only the `fraction` of entries with the largest |first moment| (see the
    module's docstring). Dense float gradients only; lr may change between steps (a scheduler sets group["lr"]).

    Raises ValueError on a learning rate, eps or weight decay below 0, betas outside [0, 1), or a fraction outside
    (0, 1]."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, fraction: float = MOFO_FRACTION):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"MoFO: lr {lr}, eps {eps} and weight_decay {weight_decay} must be at least 0")
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"MoFO: betas {betas} must be in [0, 1)")
        if not 0 < fraction <= 1:
            raise ValueError(f"MoFO: fraction {fraction} must be in (0, 1]")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
                                  "fraction": fraction})

    @torch.no_grad()
    def step(self, closure=None):
        """One MoFO step on every parameter with a gradient; returns closure()'s loss when a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, decay, fraction = group["lr"], group["eps"], group["weight_decay"], group["fraction"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if grad.is_sparse:
                    raise RuntimeError("MoFO takes dense gradients only")
                state = self.state[param]
                if not state:  # as torch.optim.AdamW lays its state out, so that the two read alike
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                state["step"] += 1
                step = state["step"].item()
                # the moments of every entry, as AdamW (the decay below touches the parameter, not the moments)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                keep = momentum_filter(exp_avg, fraction)
                if decay != 0:
                    param.copy_(torch.where(keep, param * (1 - lr * decay), param))
                step_size = lr / (1 - beta1**step)
                denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)  # AdamW's, to the bit
                # a filtered-out entry adds -step_size * 0 / denom = -0.0: its value stays exactly
                param.addcdiv_(torch.where(keep, exp_avg, torch.zeros((), dtype=exp_avg.dtype, device=exp_avg.device)),
                               denom, value=-step_size)
        return loss
