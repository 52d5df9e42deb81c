"""How the Fisher weighs the EWC penalty lambda * sum(F * dW**2): raw, the authors' 8-bit codes, or by its mean.

- raw: F as computed (mean squared per-text gradients). Its scale depends on the model, the corpus and the
  loss, so a lambda means something different for each Fisher.
- paper: what the authors' training effectively used. Their `run.py` loads the saved Fisher checkpoint with
  `load_in_8bit=True` (bitsandbytes 0.39) and reads `.weight`, which holds LLM.int8's row-wise codes: the
  values cast to fp16 (entries under 2**-25, half of fp16's smallest subnormal, become 0), then each output
  row scaled to round(127 * F / max(|F| of that row)), an integer 0..127. Every row's largest entry is 127 and
  most entries round to 0; lambda 2 (GPT-Neo-1.3B) and 0.5 (GPT-J-6B) are lambdas on these codes. A row that
  is all zero stays zero here (bitsandbytes divides 0 by 0 there, giving NaN).
- mean: F divided by its mean over every adapted entry, so that the average entry weighs 1 and lambda has
  the same meaning across models, corpora and Fisher sizes, without rounding most entries away.
"""

import torch

SCALES = ("raw", "paper", "mean")
CODE_MAX = 127  # LLM.int8's largest code


def paper_codes(fisher: torch.Tensor, fan_in_fan_out: bool = False) -> torch.Tensor:
    """The LLM.int8 row-wise codes of a Fisher tensor, as float32 integers 0..127 of the same shape.

    Args:
        fisher: (out, in) for a Linear layer, (in, out) for a GPT-2 Conv1D layer (fan_in_fan_out), >= 0.
        fan_in_fan_out: the layer keeps its weight as (in, out); a row is then a column of the tensor.
    Returns:
        round(127 * F16 / max(F16 over the output row)), F16 = the values in float16, computed in float32
        with round-half-to-even (torch.round, as the CUDA kernel's rint); all-zero rows are 0.
    """
    values = fisher.to(torch.float16).float()  # fp16 underflow (< 2**-24 -> 0) as in the authors' checkpoint
    row_max = values.abs().amax(dim=0 if fan_in_fan_out else 1, keepdim=True)  # one scale per output row
    codes = torch.round(CODE_MAX * values / row_max)
    return torch.nan_to_num(codes, nan=0.0)  # 0 / 0 in an all-zero row


def scale_fisher(fisher: dict[str, torch.Tensor], scale: str,
                 fan_in_fan_out: dict[str, bool] | None = None) -> dict[str, torch.Tensor]:
    """The Fisher the penalty uses under scale ('raw', 'paper' or 'mean'; see the module docstring).

    Args:
        fisher: module name -> float32 Fisher tensor of the weight's shape.
        fan_in_fan_out: module name -> the layer keeps its weight as (in, out) (paper codes work per row of
            the (out, in) weight); missing names are Linear layers.
    Raises:
        ValueError: for an unknown scale, or 'mean' on a Fisher that is zero everywhere.
    """
    if scale == "raw":
        return fisher
    if scale == "paper":
        layout = fan_in_fan_out or {}
        return {name: paper_codes(f, layout.get(name, False)) for name, f in fisher.items()}
    if scale == "mean":
        total = sum(float(f.double().sum()) for f in fisher.values())
        count = sum(f.numel() for f in fisher.values())
        if total <= 0:
            raise ValueError("the Fisher is zero everywhere; its mean cannot scale it")
        return {name: f / (total / count) for name, f in fisher.items()}
    raise ValueError(f"unknown Fisher scale {scale!r}; choose one of {', '.join(SCALES)}")
