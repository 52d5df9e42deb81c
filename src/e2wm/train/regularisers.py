"""The regulariser interface: a term added to the finetuning loss to keep what the base model knew.

A step's objective is

    loss = CE + sum over regularisers of weight * value

with CE the normalised cross-entropy of the step (e2wm.train.loop) and each regulariser's value in its own unit
(EWC: sum F * dW^2; KL anchor: nats per token; replay: nats per general-text token). Each regulariser is a small
component with

- `name`: its key in log.jsonl (`loss_<name>` = weight * value as it enters the loss, `<name>` = the value),
- `weight`: its factor in the loss,
- `per_step`: True when its value is a function of the weights (or of its own data) alone, computed once per
  optimiser step: `__call__(model, None, None)` returns the value;
  False when it depends on the step's training batches: `denominator(step)` says what the micro-batches' sums
  are divided by, and `__call__(model, batch, outputs)` returns one micro-batch's sum, so that the step's value
  is the sum over its micro-batches (and processes) divided by the denominator, whatever the split;
- `all_positions`: True when it needs the logits of every position, not only from the first answer token on;
- `start(step)`: the next call belongs to optimiser step `step` (0-based), so that a regulariser with its own data
  (replay) draws what an uninterrupted run draws: `e2wm train` calls it when it resumes, the Trainer plug-in before
  every step's per-step call (its trainer may skip or resume steps). Every regulariser has it (a no-op when the
  value needs no step).

The loop (e2wm.recipes.finetune) builds `Outputs` once per micro-batch, so a regulariser that reads the model's
predictions (the KL anchor) costs no second forward pass of the finetuned model. The methods live beside this
file: ewc.py (elastic weight consolidation), kl_anchor.py (KL to the frozen base), rehearsal.py (general-text
replay).
"""

from dataclasses import dataclass
from typing import Protocol

import torch

from e2wm.train.data import Example


@dataclass
class Outputs:
    """What the loss step computed on a micro-batch.

    logits: (B, T - first + 1, V), the model's logits at positions first - 1 .. T - 1, so that logits[:, :-1]
        predict input_ids[:, first:] (as `train.loop.weighted_nll_sums` computes them, autocast dtype).
    first: the first predicted position (1 when every position is kept).
    """

    logits: torch.Tensor
    first: int


class Regulariser(Protocol):
    """A term of the loss (see the module's docstring)."""

    name: str
    weight: float
    per_step: bool
    all_positions: bool

    def start(self, step: int) -> None:
        """The next call belongs to optimiser step `step` (0-based)."""
        ...

    def denominator(self, step: list[list[Example]]) -> float:
        """What the micro-batch sums of one optimiser step (all its micro-batches, every process) are divided by;
        only called when per_step is False."""
        ...

    def __call__(self, model, batch: dict[str, torch.Tensor] | None, outputs: Outputs | None) -> torch.Tensor:
        """A 0-d float32 tensor, differentiable in the trained parameters (see the module's docstring)."""
        ...


def first_position(weights: torch.Tensor, all_positions: bool) -> int:
    """The first position whose token the loss step predicts: 1 with all_positions, else the earliest position
    with a ref weight in the batch (the last position when none has one).

    weights: (B, T), the ref-token weights of `train.data.collate`."""
    if all_positions:
        return 1
    predicted = weights.sum(0).nonzero()
    return int(predicted[0]) if len(predicted) else weights.shape[1] - 1
