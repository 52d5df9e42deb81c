"""e2wm's regularisers inside a `transformers.Trainer` or TRL `SFTTrainer` run (the `e2wm[trl]` extra).

    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer
    from e2wm.train.trainer_plugin import E2wmRegularisers, Penalties

    class Trainer(E2wmRegularisers, SFTTrainer):  # the mixin first: its compute_loss wraps SFTTrainer's
        pass

    trainer = Trainer(model="HuggingFaceTB/SmolLM2-135M", args=SFTConfig(output_dir="out"), train_dataset=data,
                      peft_config=LoraConfig(target_modules=["q_proj", "v_proj"]),
                      penalties=Penalties(fisher="fisher.safetensors", lam=0.5, kl_weight=0.1))
    trainer.train()  # each logged row: loss = loss_ce + loss_ewc + loss_kl, and the values ewc, kl

The loss of every optimiser step is the trainer's own (its CE, label smoothing, DFT, MoE auxiliary loss, as it
computes them) plus sum over regularisers of weight * value, each regulariser being e2wm's component
(e2wm.train.regularisers: `Ewc` on `LoraEwc`/`OsfEwc`/`FullEwc`, `KlAnchor`, `Replay`), built by
`e2wm.train.assemble` as for `e2wm train`, so the values are `e2wm train`'s.

Why a mixin and not `compute_loss_func`: Transformers' `compute_loss_func(outputs, labels, num_items_in_batch)`
sees neither the model nor the input ids, which the KL anchor's base pass needs, and it replaces the trainer's
loss instead of adding to it; in TRL 1.16 it also turns SFTTrainer's fused LM head off (full logits, and a second
forward pass for its metrics). The mixin calls the trainer's own `compute_loss` unchanged (SFTTrainer's metrics,
entropy and mean_token_accuracy, stay as they are) and adds the regularisers' terms to what it returns. It also
wraps `get_batch_samples`, which Trainer calls once per optimiser step with all of the step's micro-batches, to
count the step's tokens and know its last micro-batch. Only `training` mode is changed: evaluation losses are the
trainer's own.

Normalisation, the same as `e2wm train`'s (e2wm.train.regularisers):
- KL anchor: the step's value is sum over the step's micro-batches and processes of the token KL at the counted
  positions / the step's counted positions (its labels != -100 after the first position for kl_tokens="answer",
  its attended tokens after the first for "all"), counted over all the step's micro-batches and processes. This
  is how Trainer normalises the CE with gradient accumulation (`num_items_in_batch`: the step's label tokens over
  every micro-batch and, with `average_tokens_across_devices`, every process; each micro-batch's sum divided by
  it, times the processes since DDP averages gradients): for "answer" the KL and the CE share one denominator.
  Where the trainer divides a micro-batch's loss by the accumulation steps instead (a model without loss kwargs),
  the KL term is multiplied back, so the KL stays the step's mean per counted token whatever the split.
- EWC (and replay): a function of the weights (of its own texts), added once per optimiser step, with the step's
  last micro-batch, at weight * value (times the accumulation steps where the trainer divides that micro-batch's
  loss by them); each process adds it once and DDP averages the identical gradients.

The KL's finetuned logits come from the trainer's own forward pass: the backbone's last hidden state is captured
(a forward hook) and projected by the LM head, under the trainer's autocast as in its forward pass, over the
positions from the first counted one on, as `transformers` computes logits with `logits_to_keep` (SFTTrainer's
fused head never materialises them). The base
logits take one extra forward pass without gradient, adapter disabled (KlAnchor). Models that transform their
logits after the head (softcapping, logit scales) are refused with the KL anchor.
Not supported (refused): FSDP, DeepSpeed, `nn.DataParallel` (several GPUs in one process); with the KL anchor,
batches without labels or attention_mask (padding-free or packed batches, context/sequence parallelism).
"""

import contextlib
from dataclasses import MISSING, dataclass, field

import torch

from e2wm import config
from e2wm.config import option
from e2wm.errors import InputError
from e2wm.methods import REGULARISERS
from e2wm.train.assemble import (
    adapted_layers,
    build_regularisers,
    ewc_penalty,
    fisher_layers,
    is_peft,
    scaled_fisher,
)
from e2wm.train.config import TrainConfig
from e2wm.train.fisher import load_fisher
from e2wm.train.kl_anchor import KL_TOKENS, KlAnchor
from e2wm.train.regularisers import Outputs, Regulariser, first_position

IGNORE = -100  # Transformers' label of a position without loss
# config fields that make a model's logits other than lm_head(hidden state) (the ones TRL's fused head reads)
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                    "logits_scaling")


def train_option(name: str):
    """A Penalties field that is `e2wm train`'s option of the same name (TrainConfig): its default, help, flag,
    choices and bounds."""
    item = TrainConfig.__dataclass_fields__[name]
    assert item.default is not MISSING, f"TrainConfig.{name} has no plain default"
    return field(default=item.default, metadata=item.metadata)


@dataclass(kw_only=True)
class Penalties:
    """The e2wm regularisers a trainer adds to its loss. Each field is `e2wm train`'s option of the same name (its
    flag in the messages: `--lambda` for lam), checked the same way (e2wm.config.check).

    A regulariser is on when its setting is given: EWC with fisher, the KL anchor with kl_weight > 0, replay with
    replay_data; at least one must be.
    """

    fisher: str | None = option(None, "Fisher file from `e2wm fisher` of the base model over exactly the adapted "
                                "modules (LoRA's or OSF's target_modules: `e2wm fisher --modules`); given, EWC is on")
    lam: float = train_option("lam")
    fisher_scale: str = train_option("fisher_scale")
    kl_weight: float = option(0.0, "weight of the mean per-token KL between base and finetuned, nats (0: off); needs "
                              "a PEFT adapter, disabled for the base distribution", minimum=0)
    kl_direction: str = train_option("kl_direction")
    kl_tokens: str = option("answer", "answer: the positions with a label (labels != -100); all: every attended "
                            "token", choices=KL_TOKENS)
    replay_data: str | None = train_option("replay_data")
    replay_ratio: float = train_option("replay_ratio")
    replay_weight: float = train_option("replay_weight")
    replay_max_len: int = option(800, "replay texts keep their first replay_max_len tokens", minimum=2)

    def __post_init__(self):
        """Raises InputError naming the field's flag (e2wm.config.check), or when no regulariser is on."""
        config.check(self)
        if not (self.fisher or self.kl_weight or self.replay_data):
            raise InputError("Penalties: no regulariser is on; give fisher (EWC), kl_weight > 0 (KL anchor) or "
                             "replay_data (replay)")

    def names(self) -> list[str]:
        """The regularisers on, in e2wm's order (e2wm.methods.REGULARISERS)."""
        on = {"ewc": bool(self.fisher), "kl": bool(self.kl_weight), "replay": bool(self.replay_data)}
        return [name for name in REGULARISERS if on[name]]


def e2wm_penalties(model, fisher: str | None = None, lam: float = Penalties.lam,
                   fisher_scale: str = Penalties.fisher_scale, kl_weight: float = 0.0, kl_tokens: str = "answer",
                   kl_direction: str = Penalties.kl_direction) -> list[Regulariser]:
    """e2wm's EWC and KL anchor for model, in e2wm's order (ewc, kl): the components `E2wmRegularisers` adds.

    Args:
        model: a PEFT model (LoRA: EWC on its deltas, `LoraEwc`; OSF: on W_eff - W0, `OsfEwc`) or a transformers
            model trained in full (EWC on the Fisher's modules against their weights now, `FullEwc`); on the
            device it trains on.
        fisher, lam, fisher_scale, kl_weight, kl_tokens, kl_direction: as in `Penalties`; EWC is built when
            fisher is given, the KL anchor when kl_weight > 0.
    Returns:
        [Ewc(penalty, lam)] and/or [KlAnchor(kl_weight, kl_tokens, kl_direction)].
    Raises:
        InputError: neither fisher nor kl_weight given, or a setting out of its bounds (`Penalties`); from
            `fisher_penalty` (an adapter other than LoRA or OSF, a bad file, modules or shapes other than the
            adapted layers'); or the KL anchor asked of a model without a PEFT adapter or with transformed logits.
    """
    settings = Penalties(fisher=fisher, lam=lam, fisher_scale=fisher_scale, kl_weight=kl_weight, kl_tokens=kl_tokens,
                         kl_direction=kl_direction)
    if settings.kl_weight:
        check_kl_model(model)
    return build_regularisers(settings.names(), settings, fisher_penalty(model, settings), None,
                              examples_per_step=1, replay_max_len=settings.replay_max_len, seed=0)


def fisher_penalty(model, settings: Penalties):
    """The EWC penalty of model on settings.fisher (`assemble.ewc_penalty`), None without one.

    Raises InputError for an adapter kind EWC does not take (before the file is read), a bad Fisher file, or one
    whose modules or shapes are not the adapted layers'."""
    if not settings.fisher:
        return None
    source = f"Penalties.fisher {settings.fisher}"
    if is_peft(model):
        layers = adapted_layers(model, source)
        fisher = load_fisher(settings.fisher)[1]
    else:
        header, fisher = load_fisher(settings.fisher)
        layers = fisher_layers(model, header, source)
    return ewc_penalty(model, layers, scaled_fisher(source, fisher, layers, settings.fisher_scale), source)


def causal_lm(model):
    """The transformers causal LM inside model: DDP's module, PEFT's base model (with its adapter layers)."""
    inner = getattr(model, "module", model)
    return inner.get_base_model() if is_peft(inner) else inner


def check_kl_model(model) -> None:
    """InputError unless model is a PEFT model whose logits are its LM head applied to its backbone's last hidden
    state (what the plug-in recomputes for the KL anchor)."""
    if not is_peft(getattr(model, "module", model)):
        raise InputError("kl_weight: the KL anchor needs a PEFT adapter to disable for the base distribution; the "
                         "model has none (full finetuning)")
    causal = causal_lm(model)
    text_config = causal.config.get_text_config()
    for name in LOGIT_TRANSFORMS:
        value = getattr(text_config, name, None)
        if value is not None and value != 1:
            raise InputError(f"kl_weight: {text_config.model_type}'s logits are transformed after the LM head "
                             f"({name} = {value}), which the plug-in's KL anchor does not apply; use `e2wm train`")
    if causal.base_model is causal or causal.get_output_embeddings() is None:
        raise InputError(f"kl_weight: {type(causal).__name__} has no backbone and LM head to read the logits from")


@contextlib.contextmanager
def captured_hidden(model):
    """Within the context, a list that receives the backbone's last hidden state (B, T, H) of the first forward
    pass of model (with its graph: the KL's gradient flows through it)."""
    store: list[torch.Tensor] = []

    def keep(module, args, output):
        if not store:
            store.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    handle = causal_lm(model).base_model.register_forward_hook(keep)
    try:
        yield store
    finally:
        handle.remove()


def counted_positions(batches: list[dict], tokens: str) -> int:
    """The KL anchor's counted positions in a step's micro-batches: labels != -100 after the first position
    ("answer") or attended tokens after the first ("all"); what `KlAnchor.denominator` counts of e2wm's examples.

    Raises InputError when a batch lacks labels or attention_mask (padding-free or packed batches)."""
    total = 0
    for batch in batches:
        check_kl_batch(batch)
        if tokens == "all":
            total += int(batch["attention_mask"][:, 1:].sum())
        else:
            total += int((batch["labels"][:, 1:] != IGNORE).sum())
    return total


def check_kl_batch(batch: dict) -> None:
    if "labels" not in batch or "attention_mask" not in batch or "shift_labels" in batch:
        raise InputError("kl_weight: the KL anchor needs each batch's labels and attention_mask; padding-free or "
                         "packed batches and context or sequence parallelism are not supported")


def kl_batch(inputs: dict) -> dict[str, torch.Tensor]:
    """A trainer's batch as `KlAnchor` reads it: input_ids, attention_mask and "weights" (B, T) float, 1 where a
    label is (labels != -100) and 0 elsewhere and at position 0, as e2wm.train.data.collate's weights."""
    check_kl_batch(inputs)
    weights = (inputs["labels"] != IGNORE).float()
    weights[:, 0] = 0.0
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "weights": weights}


@dataclass
class StepPlan:
    """One optimiser step as `get_batch_samples` gave it: its micro-batches (on this process), how many of them
    compute_loss has seen, and per batch-reading regulariser 1 / its denominator (all processes)."""

    micro_batches: int
    done: int
    divide: list[float]


class E2wmRegularisers:
    """A mixin for `transformers.Trainer` and its subclasses (TRL's SFTTrainer): the trainer's loss plus e2wm's
    regularisers, each logged (see the module's docstring).

        class Trainer(E2wmRegularisers, SFTTrainer): pass
        Trainer(..., penalties=Penalties(fisher="fisher.safetensors", lam=0.5, kl_weight=0.1))

    Logged with each training row (means over the steps since the last row, as the trainer's own loss): loss_ce,
    the trainer's loss without the regularisers; loss_<name> = weight x value for each regulariser and <name>, its
    value (ewc: sum F dW^2; kl: nats per counted token; replay: nats per general-text token), as e2wm's log.jsonl
    names them; loss = loss_ce + the loss_<name> terms.
    """

    def __init__(self, *args, penalties: "Penalties | list[Regulariser]", **kwargs):
        """penalties: the settings, built on the trainer's model once the trainer has set it up (after TRL applied
        a peft_config), or regularisers built already (`e2wm_penalties`).

        Raises InputError under FSDP, DeepSpeed or nn.DataParallel, for a batch-reading regulariser other than
        the KL anchor, and from `e2wm_penalties` / `check_kl_model`."""
        super().__init__(*args, **kwargs)
        if self.is_fsdp_enabled or self.is_deepspeed_enabled or self.args.n_gpu > 1:
            raise InputError("E2wmRegularisers: FSDP, DeepSpeed and nn.DataParallel are not supported (the EWC "
                             "penalty needs whole weights); run one process per GPU (DDP) or one process")
        self.regularisers = penalties if isinstance(penalties, list) else self.build_penalties(penalties)
        self.on_batches = [r for r in self.regularisers if not r.per_step]  # read the step's batches: KL anchor only
        for regulariser in self.on_batches:
            if not isinstance(regulariser, KlAnchor):
                raise InputError(f"E2wmRegularisers: {regulariser.name} reads the batches, and the plug-in counts "
                                 f"the positions of the KL anchor's only")
            check_kl_model(self.model)
        self.e2wm_step: StepPlan | None = None
        self.e2wm_sums: torch.Tensor | None = None  # this process's shares of [loss_ce, each value], summed
        self.e2wm_steps = 0  # steps in e2wm_sums

    def build_penalties(self, settings: Penalties) -> list[Regulariser]:
        """The regularisers of settings on self.model (`assemble.build_regularisers`, as `e2wm train` builds them),
        replay drawing per process and step as `e2wm train` does (the trainer's seed, per_device_train_batch_size x
        gradient_accumulation_steps examples per step); its forward pass is the prepared model's, which accelerate
        runs under the trainer's mixed precision (so no precision of its own)."""
        tokenizer = getattr(self.processing_class, "tokenizer", self.processing_class)
        return build_regularisers(
            settings.names(), settings, fisher_penalty(self.model, settings), tokenizer,
            examples_per_step=self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps,
            replay_max_len=settings.replay_max_len, seed=self.args.seed,
            process_index=self.accelerator.process_index, processes=self.accelerator.num_processes)

    def get_batch_samples(self, epoch_iterator, num_batches: int, device):
        """Trainer's (the step's micro-batches and num_items_in_batch), noting the step's plan (`StepPlan`)."""
        batch_samples, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        counts = [counted_positions(batch_samples, r.tokens) for r in self.on_batches]
        if counts and self.accelerator.num_processes > 1:
            counts = self.accelerator.reduce(torch.tensor(counts, device=device), reduction="sum").tolist()
        self.e2wm_step = StepPlan(len(batch_samples), 0, [1.0 / count if count else 0.0 for count in counts])
        return batch_samples, num_items_in_batch

    def divides_by_accumulation(self, num_items_in_batch) -> bool:
        """Whether Trainer.training_step divides this loss by the step's micro-batches (its `loss_is_scaled_for_ga`
        rule: not when the model or compute_loss_func normalised it by num_items_in_batch)."""
        scaled = self.loss_is_scaled_for_ga
        if scaled is None:
            scaled = (self.model_accepts_loss_kwargs and num_items_in_batch is not None) or (
                self.compute_loss_func is not None)
        return not scaled

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The trainer's loss, plus in training each regulariser's weight x its share of the step's value
        (see the module's docstring); the same return as the trainer's.

        Raises RuntimeError when called in training mode outside Trainer's loop (no `get_batch_samples` step)."""
        if not model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        plan = self.e2wm_step
        if plan is None or plan.done == plan.micro_batches:
            raise RuntimeError("E2wmRegularisers.compute_loss: no optimiser step begun (Trainer's training loop calls "
                               "get_batch_samples with the step's micro-batches first)")
        on_batches = self.on_batches
        batch = kl_batch(inputs) if on_batches else None  # before the trainer's loss, which may pop the labels
        with captured_hidden(model) if on_batches else contextlib.nullcontext() as hidden:
            result = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                          num_items_in_batch=num_items_in_batch)
        loss = result[0] if return_outputs else result
        if on_batches and not hidden:
            raise RuntimeError(f"E2wmRegularisers: the backbone {type(causal_lm(model).base_model).__name__} did not "
                               f"run in the trainer's forward pass; the KL anchor has no hidden states to read")
        undo = plan.micro_batches if self.divides_by_accumulation(num_items_in_batch) else 1
        processes = self.accelerator.num_processes
        plan.done += 1
        last = plan.done == plan.micro_batches
        shares = {}  # name -> this process's share of the step's value
        extra = torch.zeros((), device=loss.device)
        for regulariser, divide in zip(on_batches, plan.divide):
            first = first_position(batch["weights"], regulariser.all_positions)
            with self.accelerator.autocast():  # the head in the forward pass's precision (bf16 / fp16 mixed)
                logits = causal_lm(model).get_output_embeddings()(hidden[0][:, first - 1 :])  # (B, T - first + 1, V)
            share = regulariser(model, batch, Outputs(logits, first)) * divide
            shares[regulariser.name] = share.detach()
            extra = extra + regulariser.weight * share.to(loss.device) * (processes * undo)
        for regulariser in self.regularisers:
            if regulariser.per_step and last:
                regulariser.start(self.state.global_step)  # replay: the step's texts, as a resumed e2wm run
                value = regulariser(model, None, None)
                shares[regulariser.name] = value.detach() / processes  # every process adds the same value
                extra = extra + regulariser.weight * value.to(loss.device) * undo
        self.note(loss.detach() / (undo * processes), shares, last)
        loss = loss + extra
        return (loss, *result[1:]) if return_outputs else loss

    def note(self, ce_share: torch.Tensor, shares: dict[str, torch.Tensor], last: bool) -> None:
        """Add a micro-batch's shares (summed over processes they give the step's values) to the logging sums."""
        row = torch.stack([ce_share.float(), *(shares[r.name].float().to(ce_share.device) if r.name in shares
                                               else torch.zeros((), device=ce_share.device)
                                               for r in self.regularisers)])
        self.e2wm_sums = row if self.e2wm_sums is None else self.e2wm_sums + row
        self.e2wm_steps += last

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """A training row (one with "loss") gets loss_ce, loss_<name> and <name> of each regulariser: means over
        the steps since the last row, summed over processes (every process logs: Trainer calls log on each)."""
        if "loss" in logs and self.e2wm_steps:
            sums = self.accelerator.reduce(self.e2wm_sums, reduction="sum") / self.e2wm_steps
            ce, *values = sums.tolist()
            logs["loss_ce"] = ce
            for regulariser, value in zip(self.regularisers, values):
                logs[f"loss_{regulariser.name}"] = regulariser.weight * value
                logs[regulariser.name] = value
            self.e2wm_sums, self.e2wm_steps = None, 0
        super().log(logs, start_time)
