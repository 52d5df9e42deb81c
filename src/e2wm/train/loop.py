"""Training-loop components: the batches and loss normalisation of a step, the weighted ref-token NLL, the
learning-rate decay.

The loop itself is e2wm.recipes.finetune.FinetuneRecipe.train. A step's micro-batches (batch_size examples
each, grad_accum x processes of them) each contribute scale * sum(weight * token NLL) to the step's objective,
with the scale set by the loss normalisation (`Schedule.scales`):

- "mixture" (default): 1 / the mean over steps of sum(weight) over a step's ref tokens, a constant of the
  run. Every weighted ref token pulls the same, so over an epoch each file pulls its share of sum(weight)
  exactly, at any batch size, split into micro-batches or processes, and with length-grouped batches.
- "step": 1 / sum(weight) over the ref tokens of this step (its weighted mean NLL). Independent of the split
  too, but a ratio: the smaller the step, the more the file weights cancel inside it (at one example a step
  they have no effect; at 20 the shares are within 2-3 points of the mixture's).
- "micro-batch": the authors' run.py: each micro-batch's loss is sum(weight * NLL) / its number of ref
  tokens, and a step averages its micro-batches (accelerate's accumulation divides by grad_accum; DDP averages
  processes). A token's pull then depends on how many ref tokens share its micro-batch.

`benchmarks/mixture_shares.py` tabulates the resulting shares (docs/reproduce.md).
"""

import functools
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from e2wm.errors import RunError
from e2wm.train.data import Example, length_grouped_batches, random_batches, ref_tokens, ref_weight, sequential_batches
from e2wm.train.regularisers import Outputs, first_position

BATCHINGS = ("random", "length", "sequential")
LOSS_NORMS = ("mixture", "step", "micro-batch")


class Diverged(RunError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class Schedule:
    """How the examples are cut into optimiser steps (batch x accumulation x processes examples each) and how
    a step's loss is normalised (see the module's docstring)."""

    batch_size: int
    grad_accum: int
    processes: int
    epochs: int
    max_steps: int | None
    seed: int
    batching: str = "random"  # BATCHINGS
    loss_norm: str = "mixture"  # LOSS_NORMS
    mean_step_weight: float | None = None  # the "mixture" divisor (set by `fit`)

    def fit(self, examples: list[Example]) -> None:
        """Set the "mixture" divisor: sum(weight) over all ref tokens / steps' worth of examples (the mean
        weighted ref tokens of a step)."""
        if self.loss_norm == "mixture":
            per_step = self.batch_size * self.grad_accum * self.processes
            self.mean_step_weight = ref_weight(examples) * per_step / len(examples)

    def batches(self, lengths: list[int], epoch: int) -> list[list[int]]:
        """Example indices in micro-batches for this epoch, seeded by (seed, epoch): a resumed run rebuilds them."""
        seed = self.seed * 1_000_003 + epoch
        if self.batching == "length":
            return length_grouped_batches(lengths, self.batch_size, seed)
        if self.batching == "sequential":
            return sequential_batches(len(lengths), self.batch_size)
        return random_batches(len(lengths), self.batch_size, seed)

    def steps_per_epoch(self, n_examples: int) -> int:
        return math.ceil(n_examples / self.batch_size) // (self.grad_accum * self.processes)

    def total_steps(self, n_examples: int) -> int:
        total = self.epochs * self.steps_per_epoch(n_examples)
        return min(total, self.max_steps) if self.max_steps else total

    def scales(self, step: list[list[Example]]) -> list[float]:
        """Per micro-batch of one step, the factor on its weighted_nll_sum: the step's CE (nats) is
        sum(scale * weighted_nll_sum) over its micro-batches. A divisor of 0 (no ref token left, possible
        with right truncation) gives scale 0: that part adds no loss (the authors' code gave NaN)."""
        if self.loss_norm == "micro-batch":
            return [safe_inverse(ref_tokens(batch) * len(step)) for batch in step]
        if self.loss_norm == "mixture":
            if self.mean_step_weight is None:
                raise RuntimeError("Schedule.fit(examples) sets the mixture divisor before the first step")
            return [safe_inverse(self.mean_step_weight)] * len(step)
        return [safe_inverse(ref_weight([e for batch in step for e in batch]))] * len(step)


def safe_inverse(value: float) -> float:
    return 1.0 / value if value > 0 else 0.0


def effective_mixture(schedule: Schedule, examples: list[Example], epoch: int = 0) -> dict[str, float]:
    """Each training file's share of the loss's token weight over one epoch's steps: sum over its ref tokens
    of scale * weight (what the file pulls on the gradient, per unit NLL), divided by the total.

    "mixture" normalisation gives each file's share of sum(weight) over all ref tokens (the mixture's
    expectation) exactly, up to the examples an epoch's last incomplete step leaves out; "step" comes near it
    only with large steps; "micro-batch" favours files whose examples have few ref tokens beside long-answer
    ones.

    Returns:
        {file path: share in [0, 1]}, summing to 1, in the order files first appear.
    """
    n = len(examples)
    per_step = schedule.grad_accum * schedule.processes
    plan = schedule.batches([len(e.ids) for e in examples], epoch)
    pull: dict[str, float] = defaultdict(float)
    for e in examples:
        pull[e.source] += 0.0
    for first in range(0, schedule.steps_per_epoch(n) * per_step, per_step):
        step = [[examples[i] for i in batch] for batch in plan[first : first + per_step]]
        for batch, scale in zip(step, schedule.scales(step)):
            for e in batch:
                pull[e.source] += scale * e.weight * e.predicted_refs
    total = sum(pull.values())
    return {source: value / total for source, value in pull.items()}


def weighted_nll_sum(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over the batch's ref tokens of weight * NLL, in nats (the numerator of the step's loss): a 0-d
    float32 tensor, the sum of `weighted_nll_sums`."""
    return weighted_nll_sums(model, batch).sum()


def weighted_nll_sums(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per example, the sum over its ref tokens of weight * NLL, in nats: a (B,) float32 tensor (see
    `weighted_nll_outputs`, which also returns the logits)."""
    return weighted_nll_outputs(model, batch)[0]


def weighted_nll_outputs(model, batch: dict[str, torch.Tensor], all_positions: bool = False
                         ) -> tuple[torch.Tensor, Outputs]:
    """Per example, the sum over its ref tokens of weight * NLL, in nats, and the logits it came from.

    Args:
        batch: "input_ids" (B, T) long, "attention_mask" (B, T) long, "weights" (B, T) float: the weight
            of predicting token t, 0 off the ref and on padding (train.data.collate).
        all_positions: keep the logits of every position (a regulariser reads them, e.g. the KL anchor on all
            tokens); by default logits are computed only from the earliest predicted ref position on
            (`logits_to_keep`), which saves the (B, T, V) head on the prompt.
    Returns:
        a (B,) float32 tensor, and the `Outputs` (logits (B, T - first + 1, V), first). A batch without ref
        tokens gives zeros, still attached to the graph (every DDP process must run backward).
    """
    weights = batch["weights"]
    first = first_position(weights, all_positions)
    keep = weights.shape[1] - first + 1
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep).logits
    nll = torch.nn.functional.cross_entropy(  # logits[:, :-1]: (B, T - first, V) predict ids[:, first:]
        logits[:, :-1].float().transpose(1, 2), batch["input_ids"][:, first:], reduction="none"
    )  # (B, T - first)
    return (nll * weights[:, first:]).sum(1), Outputs(logits, first)


class TaskWindow:
    """Each training file's CE over a logging window of steps: sum(weight x NLL) / sum(weight) over the file's
    ref tokens in the window's steps, which is the file's mean NLL per ref token (nats), its weight being one
    constant. `add` takes a step's per-file sums, `close` returns the window's means and starts the next."""

    def __init__(self, sources: list[str]):
        self.sources = sources  # the mixture's files, in order; rows of the sums tensors
        self.sums = torch.zeros(len(sources), 2, dtype=torch.float64)

    def step_sums(self, micro_batch: list[Example], values: torch.Tensor, device) -> torch.Tensor:
        """(files, 2): per file, [sum(weight x NLL), sum(weight x predicted ref tokens)] of one micro-batch.

        values: its examples' weighted_nll_sums, (B,)."""
        rows = torch.tensor([self.sources.index(e.source) for e in micro_batch], device=device)
        weights = torch.tensor([e.weight * e.predicted_refs for e in micro_batch], device=device)
        sums = torch.zeros(len(self.sources), 2, device=device)
        sums[:, 0].index_add_(0, rows, values.detach().float())
        sums[:, 1].index_add_(0, rows, weights)
        return sums

    def add(self, sums: torch.Tensor) -> None:
        """Add a step's (files, 2) sums (all processes' together)."""
        self.sums += sums.detach().to("cpu", torch.float64)

    def close(self, labels: dict[str, str]) -> dict[str, float]:
        """{label of each file with a ref token in the window: its CE (nats per ref token)}; resets the sums."""
        means = {labels[source]: float(total / weight) for source, (total, weight) in zip(self.sources, self.sums)
                 if weight > 0}
        self.sums.zero_()
        return means


def task_labels(sources: list[str]) -> dict[str, str]:
    """A short label per training file: its name without suffix and without a train_ prefix (train_count.jsonl:
    count); the whole path where two files would share a label."""
    short = {source: Path(source).stem.removeprefix("train_") for source in sources}
    if len(set(short.values())) == len(short):
        return short
    return {source: source for source in sources}


@dataclass
class FlopCount:
    """Model FLOPs of training on one example, as PaLM counts them (Chowdhery et al. 2022, "PaLM: Scaling
    Language Modeling with Pathways", appendix B: 6N + 12 L H Q T per token for forward and backward, N the
    parameters, L layers, H heads, Q the head size, T the sequence length), adapted to what e2wm computes:

    - weights of the matrix multiplications (Linear, Conv1D; LoRA's A and B included) below the output head:
      2 FLOPs per weight and token forward, 2 backward for the input's gradient, and 2 more for the weight's
      own gradient only when it is trained: 6N for full finetuning, 4 N_frozen + 6 N_trainable for LoRA;
    - attention scores and the weighted values: 12 L H Q T per token (PaLM's term, causal masking not
      subtracted), with T the example's tokens;
    - the output head (vocabulary x hidden), 4 or 6 FLOPs per weight as above, only on the predicted ref
      tokens: the loss computes logits from the first ref position on (`weighted_nll_sums`).

    Padding, embedding look-ups, norms and the optimiser are not model FLOPs: their time lowers the MFU.
    """

    frozen: int  # weights of the body's matrix multiplications without gradient
    trainable: int  # and with gradient
    head: int  # weights of the output head
    head_trained: bool
    attention: int  # L x H x Q: layers x query heads x head size

    @classmethod
    def of(cls, model) -> "FlopCount":
        """Count the model's weights (a transformers causal LM, PEFT-wrapped or not)."""
        from transformers.pytorch_utils import Conv1D

        head = model.get_output_embeddings().weight
        frozen = trainable = 0
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, Conv1D)) and module.weight is not head:
                if module.weight.requires_grad:
                    trainable += module.weight.numel()
                else:
                    frozen += module.weight.numel()
        config = model.config
        width = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        return cls(frozen, trainable, head.numel(), head.requires_grad,
                   config.num_hidden_layers * config.num_attention_heads * width)

    def example(self, tokens: int, predicted: int) -> float:
        """FLOPs of forward and backward over one example of `tokens` tokens, `predicted` of them scored."""
        body = (4 * self.frozen + 6 * self.trainable + 12 * self.attention * tokens) * tokens
        return body + (6 if self.head_trained else 4) * self.head * predicted


@functools.lru_cache(maxsize=8)
def matmul_peak(device: str, dtype: torch.dtype, size: int | None = None, repeats: int = 3) -> float:
    """The machine's measured matrix-multiplication rate, FLOP/s: 2 n^3 / the fastest of `repeats` timed
    (n, n) @ (n, n) products in dtype on device (n = 2048 on a CPU, 8192 on a GPU), after one warm-up.
    The MFU's denominator; measured once per process and device, dtype (about a second on a CPU)."""
    size = size or (8192 if torch.device(device).type == "cuda" else 2048)
    generator = torch.Generator(device).manual_seed(0)  # its own: the run's random state is left as it was
    a, b = (torch.randn(size, size, device=device, generator=generator).to(dtype) for _ in range(2))
    synchronise = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    fastest = math.inf
    for attempt in range(repeats + 1):
        synchronise()
        start = time.perf_counter()
        torch.mm(a, b)
        synchronise()
        if attempt:  # the first is the warm-up
            fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest


def linear_decay(optimizer, total_steps: int):
    """lr * (1 - step / total_steps): linear decay to 0, no warm-up."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / total_steps))
