"""General-text replay (rehearsal): every optimiser step also trains on a few texts of general text.

    value = sum over the step's replay texts of their token NLLs / their predicted tokens   (nats per token)

and the loss adds weight * value. Each process draws `texts_per_step` texts per step (`--replay-ratio` x its
training examples per step, rounded), walking a seeded permutation of the corpus (a new one each pass), so step k
always replays the same texts: a resumed run replays what the uninterrupted one would, and the training batches
are those of a run without replay (runs compare item by item). The texts are cut to `--max-len` tokens (their
start kept) and scored in one extra forward pass per step, so the cost is that of ratio x the step's examples.

Not to be confused with e2wm.data.replay (episodes of the world model replayed into training questions).
Source: rehearsal of old data against catastrophic forgetting (Robins 1995, "Catastrophic forgetting, rehearsal
and pseudorehearsal", Connection Science 7(2)); general-data replay at a ratio in LLM finetuning (LLaMA-Factory
issue 2611; GeRe, Zhang et al. 2025, arXiv 2508.04676).
"""

import math
import random
from dataclasses import dataclass, field

import torch

from e2wm.errors import InputError
from e2wm.models import autocast


@dataclass
class Replay:
    """The replay regulariser (e2wm.train.regularisers); see the module's docstring.

    texts: the corpus, tokenised, each of 2 to max_len ids. next_step: the optimiser step (0-based) the next call
    belongs to (`start` sets it: a resumed run's first step).
    """

    texts: list[list[int]]
    weight: float
    texts_per_step: int
    pad_id: int
    seed: int = 0
    process_index: int = 0
    processes: int = 1
    next_step: int = 0
    precision: torch.dtype | None = None  # the autocast dtype of the run's forward passes (None: the weights')
    name = "replay"
    per_step = True
    all_positions = False

    orders: dict[int, list[int]] = field(default_factory=dict, repr=False)  # pass -> permutation, as drawn

    def order(self, epoch: int) -> list[int]:
        """The corpus' permutation for one pass over it, seeded by (seed, pass)."""
        if epoch not in self.orders:
            self.orders[epoch] = list(range(len(self.texts)))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(self.orders[epoch])
        return self.orders[epoch]

    def indices(self, step: int) -> list[int]:
        """The corpus indices this process replays at `step` (0-based)."""
        start = (step * self.processes + self.process_index) * self.texts_per_step
        picked = []
        for position in range(start, start + self.texts_per_step):
            epoch, offset = divmod(position, len(self.texts))
            picked.append(self.order(epoch)[offset])
        return picked

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        """The step's texts, right-padded: "input_ids" (N, T) long, "attention_mask" (N, T) long."""
        chosen = [self.texts[i] for i in self.indices(step)]
        width = max(map(len, chosen))
        ids = torch.full((len(chosen), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chosen), width), dtype=torch.long)
        for row, text in enumerate(chosen):
            ids[row, : len(text)] = torch.tensor(text)
            mask[row, : len(text)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def start(self, step: int) -> None:
        """The next call replays step `step`'s texts (0-based)."""
        self.next_step = step

    def __call__(self, model, batch=None, outputs=None) -> torch.Tensor:
        """The mean NLL per predicted token of this step's replay texts (nats, a 0-d float32 tensor, with gradient);
        advances next_step. model: the model being trained (DDP-wrapped or not: the forward runs on its module, as
        the step's training forward already prepared DDP's backward)."""
        step, self.next_step = self.next_step, self.next_step + 1
        inner = getattr(model, "module", model)
        device = next(inner.parameters()).device
        replay = {key: value.to(device) for key, value in self.batch(step).items()}
        with autocast(self.precision, device):
            logits = inner(**replay).logits  # (N, T, V)
        nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), replay["input_ids"][:, 1:],
                                                reduction="none")  # (N, T - 1)
        counted = replay["attention_mask"][:, 1:].float()
        return (nll * counted).sum() / counted.sum()


def tokenise_texts(texts: list[str], tokenizer, max_len: int, source: str) -> list[list[int]]:
    """Each text's token ids (the tokenizer's special tokens as it adds them), cut to its first max_len; texts of
    fewer than 2 tokens are dropped (nothing to predict).

    Raises InputError naming source when no text is left."""
    tokenised = [ids[:max_len] for ids in tokenizer(texts)["input_ids"]]
    kept = [ids for ids in tokenised if len(ids) >= 2]
    if not kept:
        raise InputError(f"--replay-data {source}: no text has two or more tokens (nothing to replay)")
    return kept


def texts_per_step(ratio: float, examples_per_process_step: int) -> int:
    """ratio x training examples per process and step, rounded half up (0.25 x 2 examples: 1 text); InputError
    when that is 0."""
    count = math.floor(ratio * examples_per_process_step + 0.5)
    if count < 1:
        raise InputError(f"--replay-ratio {ratio} x {examples_per_process_step} training examples per process and "
                         f"step rounds to 0 replay texts; raise --replay-ratio to at least "
                         f"{0.5 / examples_per_process_step:.3g}")
    return count
