"""KL anchor to the frozen base model: the mean per-token KL between the base and the finetuned model's next-token
distributions over the training tokens.

    forward (default): value = sum over counted positions t of KL(p_base(. | x_<t) || p_theta(. | x_<t)) / counted
    reverse:           value = sum over counted positions t of KL(p_theta(. | x_<t) || p_base(. | x_<t)) / counted

summed over the whole vocabulary (no sampling), in nats per token; counted positions are the answer (ref)
tokens (`tokens="answer"`) or every non-pad token after the first (`tokens="all"`) of the step's examples. The
loss adds weight * value. The base distribution comes from the same model with its adapter disabled
(PEFT's `disable_adapter`), in eval mode and without gradient, so no second copy of the weights is kept: one extra
forward pass per micro-batch. Full finetuning has no adapter to disable and is refused by the config.

The forward direction is e2wm's specification (SPEC.md 5b): mass-covering, it penalises the finetuned model for
taking probability away from what the base predicts, which is what keeping general ability asks. The reverse
direction is the anchor of Anchored Supervised Fine-Tuning (Zhu et al. 2025, arXiv 2509.23753) and the KL penalty
of RLHF (Ouyang et al. 2022), mode-seeking; `--kl-direction reverse` gives it.
"""

from dataclasses import dataclass

import torch

from e2wm.train.data import Example
from e2wm.train.regularisers import Outputs

KL_TOKENS = ("answer", "all")
KL_DIRECTIONS = ("forward", "reverse")  # KL(base || finetuned), KL(finetuned || base)


def token_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(p_logits) || softmax(q_logits)) per position, in nats, computed in float32.

    p_logits, q_logits: (..., V). Returns (...)."""
    log_p = torch.log_softmax(p_logits.float(), dim=-1)
    log_q = torch.log_softmax(q_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@dataclass
class KlAnchor:
    """The KL anchor regulariser (e2wm.train.regularisers); see the module's docstring.

    tokens: "answer" (the ref tokens the CE covers) or "all" (every non-pad token after the first).
    direction: "forward", KL(base || finetuned), or "reverse", KL(finetuned || base).
    """

    weight: float
    tokens: str = "answer"
    direction: str = "forward"
    name = "kl"
    per_step = False

    @property
    def all_positions(self) -> bool:
        return self.tokens == "all"

    def start(self, step: int) -> None:
        """Nothing to do: the value is a function of the step's batches and the weights."""

    def denominator(self, step: list[list[Example]]) -> float:
        """The step's counted positions: its predicted ref tokens, or all its tokens after the first."""
        if self.tokens == "all":
            return float(sum(len(e.ids) - 1 for batch in step for e in batch))
        return float(sum(e.predicted_refs for batch in step for e in batch))

    def __call__(self, model, batch: dict[str, torch.Tensor], outputs: Outputs) -> torch.Tensor:
        """The sum of the token KL over this micro-batch's counted positions (a 0-d float32 tensor).

        model: the PEFT model being trained (DDP-wrapped or not: its `module` is used for the base pass)."""
        first = outputs.first
        peft_model = getattr(model, "module", model)  # DDP's wrapper has no disable_adapter
        was_training = peft_model.training
        peft_model.eval()  # the base distribution without dropout
        try:
            with torch.no_grad(), peft_model.disable_adapter():
                base = peft_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  logits_to_keep=outputs.logits.shape[1]).logits
        finally:
            peft_model.train(was_training)
        tuned = outputs.logits[:, :-1]  # (B, T - first, V): the positions predicting first..T-1
        kl = token_kl(base[:, :-1], tuned) if self.direction == "forward" else token_kl(tuned, base[:, :-1])
        if self.tokens == "all":
            counted = batch["attention_mask"][:, first:].float()
        else:
            counted = (batch["weights"][:, first:] > 0).float()
        return (kl * counted).sum()
