"""Training-loop components: the step schedule, the weighted ref-token NLL, the learning-rate decay.

The loop itself is e2wm.recipes.finetune.FinetuneRecipe.train. Loss normalisation: one optimiser
step's CE is sum(weight * token NLL) / sum(weight) over every ref token of every micro-batch of every
process in that step. So it does not depend on how the step's examples are split into micro-batches or
processes, and a file's weight scales its tokens exactly.
"""

import math
from dataclasses import dataclass

import torch

from e2wm.errors import RunError
from e2wm.train.data import length_grouped_batches


class Diverged(RunError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class Schedule:
    """How the examples are cut into optimiser steps: batch x accumulation x processes examples each."""

    batch_size: int
    grad_accum: int
    processes: int
    epochs: int
    max_steps: int | None
    seed: int

    def batches(self, lengths: list[int], epoch: int) -> list[list[int]]:
        return length_grouped_batches(lengths, self.batch_size, self.seed * 1_000_003 + epoch)

    def steps_per_epoch(self, n_examples: int) -> int:
        return math.ceil(n_examples / self.batch_size) // (self.grad_accum * self.processes)

    def total_steps(self, n_examples: int) -> int:
        total = self.epochs * self.steps_per_epoch(n_examples)
        return min(total, self.max_steps) if self.max_steps else total


def weighted_nll_sum(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the batch's ref tokens of weight * NLL, in nats (the numerator of the step's loss).

    Args:
        batch: "input_ids" (B, T) long, "attention_mask" (B, T) long, "weights" (B, T) float: the weight
            of predicting token t, 0 off the ref and on padding (train.data.collate).
    Returns:
        a 0-d float32 tensor. Logits are computed only from the earliest predicted ref position on
        (`logits_to_keep`), which saves the (B, T, V) head on the prompt.
    """
    weights = batch["weights"]
    first = int(weights.sum(0).nonzero()[0])  # earliest predicted ref token in the batch
    keep = weights.shape[1] - first + 1
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    nll = torch.nn.functional.cross_entropy(  # logits[:, :-1]: (B, T - first, V) predict ids[:, first:]
        logits[:, :-1].float().transpose(1, 2), batch["input_ids"][:, first:], reduction="none"
    )  # (B, T - first)
    return (nll * weights[:, first:]).sum()


def linear_decay(optimizer, total_steps: int):
    """lr * (1 - step / total_steps): linear decay to 0, no warm-up."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))
