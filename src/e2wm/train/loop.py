"""The training loop: weighted ref-token cross-entropy plus lambda * EWC, AdamW with linear decay.

Loss normalisation: one optimiser step's CE is sum(weight * token NLL) / sum(weight) over every ref
token of every micro-batch of every process in that step. So it does not depend on how the step's
examples are split into micro-batches or processes, and a file's weight scales its tokens exactly.
"""

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from e2wm.errors import InputError
from e2wm.files import append_jsonl
from e2wm.train.checkpoint import save_checkpoint
from e2wm.train.data import Example, collate, length_grouped_batches, ref_weight


class Diverged(InputError):
    """The loss became NaN or infinite; the message names the step."""


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
    """sum over the batch's ref tokens of weight * NLL; logits are computed only from the first ref position on."""
    weights = batch["weights"]
    first = int(weights.sum(0).nonzero()[0])  # earliest predicted ref token in the batch
    keep = weights.shape[1] - first + 1
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    nll = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().transpose(1, 2), batch["input_ids"][:, first:], reduction="none"
    )
    return (nll * weights[:, first:]).sum()


def linear_decay(optimizer, total_steps: int):
    """lr * (1 - step / total_steps): linear decay to 0, no warm-up."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))


def train(accelerator, model, optimizer, scheduler, examples: list[Example], schedule: Schedule,
          penalty: Callable[[], torch.Tensor] | None, lam: float, run_dir: Path, start_step: int,
          save_every: int, pad_id: int) -> None:
    """Run optimiser steps start_step+1 .. total, logging each to run_dir/log.jsonl and checkpointing."""
    lengths = [len(e.ids) for e in examples]
    per_epoch = schedule.steps_per_epoch(len(examples))
    total = schedule.total_steps(len(examples))
    chunk = schedule.grad_accum * schedule.processes
    rank = accelerator.process_index
    device = accelerator.device
    model.train()
    bar = tqdm(total=total, initial=start_step, desc="train", unit="step", disable=not accelerator.is_main_process)
    plan, plan_epoch = None, -1
    for step in range(start_step, total):
        epoch, position = divmod(step, per_epoch)
        if epoch != plan_epoch:
            plan, plan_epoch = schedule.batches(lengths, epoch), epoch
        step_batches = plan[position * chunk : (position + 1) * chunk]
        denominator = ref_weight([examples[i] for batch in step_batches for i in batch])
        mine = step_batches[rank :: schedule.processes]
        nll = torch.zeros((), device=device)
        ewc = torch.zeros((), device=device)
        for index, batch_indices in enumerate(mine):
            last = index == len(mine) - 1
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in batch_indices], pad_id).items()}
            sync = contextlib.nullcontext() if last else accelerator.no_sync(model)
            with sync:
                part = weighted_nll_sum(model, batch)
                loss = part * (schedule.processes / denominator)
                if last and penalty is not None:
                    ewc = penalty()
                    loss = loss + lam * ewc
                accelerator.backward(loss)
            nll = nll + part.detach()
        ce = (accelerator.reduce(nll, reduction="sum") / denominator).item()
        ewc_value = ewc.detach().item()
        total_loss = ce + lam * ewc_value
        if not math.isfinite(total_loss):
            raise Diverged(
                f"step {step + 1}: the loss is {total_loss} (ce {ce}, ewc {ewc_value}); stopped. "
                f"The last good checkpoint is in {run_dir / 'checkpoint'} (lower --lr or --lambda and --resume)"
            )
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        record = {"step": step + 1, "loss": total_loss, "ce": ce, "ewc": ewc_value, "lr": lr}
        if accelerator.is_main_process:
            append_jsonl(run_dir / "log.jsonl", record)
        bar.set_postfix(loss=f"{total_loss:.4f}", ce=f"{ce:.4f}", ewc=f"{ewc_value:.3g}")
        bar.update(1)
        if (step + 1) % save_every == 0 or step + 1 == total:
            save_checkpoint(accelerator, run_dir, model, optimizer, scheduler, step + 1)
    bar.close()
