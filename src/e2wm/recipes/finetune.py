"""Finetuning recipe: EWC-LoRA (or plain LoRA, or full finetuning, with any regularisers) on a weighted mixture of
E2WM files.

    from e2wm import TrainConfig, finetune
    result = finetune(TrainConfig(model="smollm2-135m", train={"plan_gen": 1.0}, data_dir="build",
                                  method="lora", out="runs/lora"))

Works the same on one CPU and under `accelerate launch` (DDP over GPUs or gloo CPU processes; FSDP and
DeepSpeed are refused). The run directory holds config.json (the settings and every option), log.jsonl (one
line per optimiser step: the loss and each of its terms, gradient norm, time, throughput, MFU, per-file CE; with
the forgetting curve when `eval_every` is set; also to TensorBoard or wandb with `report_to`), checkpoint/ (for
`resume`), checkpoint-N/adapter/ per checkpointed step N and adapter/ (standard PEFT adapters; model/ for
--adapter-kind full).
State lives on the recipe (torchtune's recipe shape): `setup()` builds the run directory, model, data
and optimiser, `train()` runs the optimiser steps, `save()` writes the result, `finish()` closes the trackers.
"""

import contextlib
import importlib.util
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from tqdm import tqdm

from e2wm.chat import check_template
from e2wm.config import flag_of, result_settings, with_defaults
from e2wm.errors import InputError
from e2wm.eval.config import EvalConfig
from e2wm.eval.items import EvalFile, read_eval_file
from e2wm.eval.perplexity import perplexity, predicts_a_token
from e2wm.eval.run import PPL_WINDOW, Shard, check_limits, qa_rows
from e2wm.files import append_jsonl, drop_torn_tail, output_folder, read_jsonl, write_json, write_jsonl
from e2wm.locks import output_lock
from e2wm.methods import regulariser_names
from e2wm.models import (
    DTYPES,
    autocast,
    autocast_dtype,
    check_device,
    context_length,
    default_device,
    load_model,
    load_tokenizer,
    pad_id,
    same_model,
)
from e2wm.provenance import environment, model_fingerprint, path_digest
from e2wm.text import read_corpus
from e2wm.train.assemble import build_regularisers, ewc_penalty, fisher_layers, scaled_fisher
from e2wm.train.card import write_card
from e2wm.train.checkpoint import NAME as CHECKPOINT
from e2wm.train.checkpoint import load_checkpoint, prune_steps, recover, save_checkpoint, save_pretrained
from e2wm.train.config import TrainConfig, resolve_method
from e2wm.train.data import collate, load_examples, parse_mixture, read_pairs, ref_weight
from e2wm.train.fisher import load_fisher
from e2wm.train.loop import (
    Diverged,
    FlopCount,
    Schedule,
    TaskWindow,
    effective_mixture,
    linear_decay,
    matmul_peak,
    safe_inverse,
    task_labels,
    weighted_nll_outputs,
)
from e2wm.train.mofo import MoFO
from e2wm.train.targets import default_target_names, is_fan_in_fan_out, parse_modules, target_layers

logger = logging.getLogger(__name__)

TIMING = ("seconds", "tokens_per_s", "mfu")  # the log.jsonl fields that vary between runs of the same seed


@dataclass
class TrainResult:
    """What a finished run left: its directory, the adapter (or full model) folder, its steps and last loss."""

    run_dir: Path
    output: Path
    steps: int
    loss: float | None


@dataclass
class ForgettingCurve:
    """What `eval_every` measures: perplexity on general text and, optionally, the accuracy on one multiple-choice
    dev file, each as `e2wm eval` computes it (eval.perplexity.perplexity in windows of eval.run.PPL_WINDOW
    tokens; eval.run.qa_rows with the task's normalisation), so a point equals `e2wm eval` of that step's adapter
    up to float rounding (the perplexity here batches --batch-size windows per pass).
    """

    source: str  # --eval-ppl-data, the texts' file
    texts: list[str]
    dev: EvalFile | None
    scoring: EvalConfig | None  # the `e2wm eval` settings the dev file is scored with (qa_rows reads its norm)
    batch_size: int  # perplexity windows per forward pass

    @classmethod
    def load(cls, config: TrainConfig) -> "ForgettingCurve":
        """Read --eval-ppl-data and --eval-data. Raises InputError on a bad file or a dev file that is not QA."""
        texts = read_corpus(config.eval_ppl_data, "--eval-ppl-data")
        dev = scoring = None
        if config.eval_data:
            dev = read_eval_file(Path(config.eval_data))
            if dev.kind != "multiple_choice":
                raise InputError(f"--eval-data {config.eval_data}: a generation file; give a multiple-choice one "
                                 f"(input, answer_list, answer)")
            scoring = EvalConfig(model=config.model, data=[config.eval_data], out=config.out, norm=dev.spec.norm,
                                 chat_template=config.chat_template)
        return cls(config.eval_ppl_data, texts, dev, scoring, config.batch_size)

    def check(self, tokenizer, max_length: int) -> None:
        """Check before training that each measure can be taken within max_length tokens (the model's context).

        Raises InputError when no text has a token to predict, or a dev item's option leaves no token of its
        input (`eval.run.check_limits`)."""
        if not predicts_a_token(tokenizer, self.texts, "windows", len(self.texts)):
            raise InputError(f"--eval-ppl-data {self.source}: no text has two or more tokens (nothing to predict)")
        if self.dev is not None:
            check_limits(tokenizer, [self.dev], self.scoring, max_length, [])

    def measure(self, model, tokenizer) -> dict[str, float]:
        """{"eval_ppl": exp(mean token NLL) on the texts (nats-based), "eval_accuracy": the dev file's accuracy
        in [0, 1] (only with a dev file)} of model as it is; the caller puts it in eval mode."""
        max_length = context_length(model, tokenizer)
        window = min(PPL_WINDOW, max_length)
        point = {"eval_ppl": perplexity(model, tokenizer, self.texts, window, self.batch_size)["perplexity"]}
        if self.dev is not None:
            result, _ = qa_rows(model, tokenizer, self.dev, self.scoring, max_length, Shard())
            point["eval_accuracy"] = result["accuracy"]
        return point


def prepare_run_dir(config: TrainConfig, mixture: list[tuple[float, str]]) -> tuple[Path, dict, dict | None]:
    """Check the run directory (resuming: its settings); returns it, what its config.json will record (once
    the run is set up, so that a refused run leaves nothing): the result settings (with the digests of the
    training files, the Fisher and the evaluation files), every option and the provenance (versions, git
    commit, date), and, resuming, what its config.json recorded before (else None).

    Raises InputError when resuming a run started with other result settings (every field not marked
    result=False in TrainConfig) or other input file contents, or a folder where no run was started, when --out
    already holds a run and resume is off, or when --out is a file. Resuming a run that stopped before its first
    checkpoint starts it again from step 0.
    """
    run_dir = output_folder(config.out)
    inputs = [path for _, path in mixture] + [p for p in (config.fisher, config.eval_ppl_data, config.eval_data,
                                                          config.replay_data) if p]
    settings = {**method_settings(result_settings(config)), "inputs": {path: path_digest(path) for path in inputs},
                "base_model": model_fingerprint(config.model)}
    recorded = run_dir / "config.json"
    if config.resume:
        recover(run_dir)
        if not (run_dir / CHECKPOINT / "state.json").is_file():
            if not recorded.is_file():
                raise InputError(f"--resume: {run_dir} has no checkpoint to resume from")
            logger.warning("--resume: %s stopped before its first checkpoint (killed, or its disk full); it starts "
                           "again from step 0", run_dir)
        previous = json.loads(recorded.read_text())
        before = method_settings(with_defaults(previous["settings"], config, results_only=True))
        changed = [key for key in sorted(settings.keys() | before.keys()) if before.get(key) != settings.get(key)]
        what = [f"{flag_of(f)} {settings[f.name]} (was {before.get(f.name, 'not recorded')})"
                for f in fields(config) if f.name in changed]
        if "inputs" in changed:
            what.append("contents of " + ", ".join(p for p in settings["inputs"]
                                                   if before.get("inputs", {}).get(p) != settings["inputs"][p]))
        if "base_model" in changed:
            what.append(f"base model files ({config.model})")
        if what:
            raise InputError(f"--resume: {run_dir} was started with other {'; '.join(what)}; resume continues the "
                             "same run: other settings are a new --out")
    elif (run_dir / "log.jsonl").exists() or (run_dir / CHECKPOINT).exists():
        raise InputError(f"--out {run_dir}: a run is already there; use --resume or another --out")
    else:
        previous = None
    return run_dir, {"settings": settings, "options": asdict(config),
                     "provenance": environment(config.device or default_device())}, previous


def method_settings(settings: dict) -> dict:
    """Recorded result settings with --method resolved into adapter_kind and regularisers and left out (runs recorded
    before those two options existed had only --method), so that settings compare by what was trained."""
    adapter, regularisers = resolve_method(settings.get("method"), settings.get("adapter_kind"),
                                           settings.get("regularisers"), settings.get("fisher"))
    kept = {key: value for key, value in settings.items() if key != "method"}
    return {**kept, "adapter_kind": adapter, "regularisers": regularisers}


def build_model(config: TrainConfig, device: str):
    """(model, tokenizer, penalty or None): the base model with config.adapter_kind (the one place the adapter kind is
    built: LoRA or OSF by PEFT (`osf_config`), or none for full finetuning), and the EWC penalty on its Fisher
    (checked against the adapted layers and scaled before the adapter is built: `train.assemble`).

    penalty() returns sum F * dW^2 over the adapted matrices (a 0-d tensor; see train.ewc): the ewc regulariser's
    value; without it (lora with a Fisher) it is only measured and logged.
    """
    spec = config.model_spec()
    spec.device = device  # where accelerate runs this process (finetune checked --device against it)
    header, fisher = load_fisher(config.fisher) if config.fisher else (None, None)
    source = f"--fisher {config.fisher}"
    if header and not same_model(header.base_model, config.model):
        logger.warning("%s was computed on %s, and this run trains %s: EWC then weighs this model's weight changes "
                       "by another model's Fisher; compute the Fisher on %s unless they are the same weights",
                       source, header.base_model, config.model, config.model)
    model, tokenizer = load_model(spec)
    names = parse_modules(config.modules) or (header.modules if header else None) or default_target_names(model)
    if header and names != header.modules:
        raise InputError(f"--modules {','.join(names)}: the Fisher covers {','.join(header.modules)}")
    # the base layers, which PEFT's adapter layers keep inside them
    layers = fisher_layers(model, header, source) if header else target_layers(model, names)
    if fisher is not None:  # before the adapter: OSF's SVD of every layer, k-bit preparation
        fisher = scaled_fisher(source, fisher, layers, config.fisher_scale)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    torch.manual_seed(config.seed)
    if config.adapter_kind == "osf":
        from peft import get_peft_model

        model = get_peft_model(model, osf_config(config, names, layers))
    elif config.adapter_kind == "lora":
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        if config.load_in_8bit or config.load_in_4bit:
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
        lora = LoraConfig(
            r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, target_modules=names,
            fan_in_fan_out=any(is_fan_in_fan_out(layer) for layer in layers.values()), task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    penalty = ewc_penalty(model, layers, fisher, source) if fisher is not None else None
    return model, tokenizer, penalty


def osf_config(config: TrainConfig, names: list[str], layers: dict[str, torch.nn.Module]):
    """PEFT's OSFConfig for --adapter-kind osf on the --modules layers, its effective rank (--osf-effective-rank;
    None: PEFT's half of min(out, in)) checked to keep 1 to min(out, in) - 1 directions of every layer frozen, as PEFT
    resolves it (peft.tuners.osf.model: a fraction f keeps int(f * min(out, in)), a number N keeps min(N, min(out,
    in))), so that each layer trains a rank of 1 or more.

    Raises InputError for a layer that is not a torch Linear (GPT-2's fan-in-fan-out Conv1D: PEFT's OSF skips them)
    or a rank that freezes no direction or all of them in a layer."""
    from peft import OSFConfig

    rank = config.osf_effective_rank
    for name, layer in layers.items():
        if not isinstance(layer, torch.nn.Linear) or is_fan_in_fan_out(layer):
            raise InputError(f"--adapter-kind osf: {name} is a {type(layer).__name__} layer; PEFT's OSF adapts torch "
                             f"Linear layers only: use --adapter-kind lora for this model")
        smaller = min(layer.weight.shape)
        kept = smaller // 2 if rank is None else int(rank * smaller) if rank < 1 else min(rank, smaller)
        if not 0 < kept < smaller:
            given = f"--osf-effective-rank {rank}" if rank is not None else "PEFT's default rank (half)"
            raise InputError(f"{given} freezes {kept} of the {smaller} singular directions of {name} "
                             f"{tuple(layer.weight.shape)}: OSF needs 1 to {smaller - 1} frozen, the rest trained")
    return OSFConfig(effective_rank=rank, target_modules=names, task_type="CAUSAL_LM")


class FinetuneRecipe:
    """One training run; state on self. `setup()`, then `train()`, then `save()`, and `finish()` in any case
    (what `finetune` does)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.began = time.time()
        self.loss: float | None = None

    def setup(self) -> None:
        """Run directory, model (+ LoRA, Fisher), examples, schedule, optimiser; a resumed run's checkpoint.

        Raises InputError under FSDP or DeepSpeed (accelerate's distributed_type): the checkpoints and the
        gradient norm here assume every process holds the whole model (DDP or one process).
        """
        from accelerate import Accelerator
        from accelerate.utils import DistributedType

        config = self.config
        mixture = parse_mixture(config.train, config.data_dir)
        self.curve = ForgettingCurve.load(config) if config.eval_every else None
        check_tracker(config.report_to)
        device = torch.device(check_device(config.device or default_device()))
        self.accelerator = accelerator = Accelerator(  # cpu: gloo processes
            cpu=device.type == "cpu", log_with=None if config.report_to == "none" else config.report_to,
            project_dir=config.out)
        if accelerator.num_processes == 1 and (device.type, device.index or 0) != (accelerator.device.type,
                                                                                   accelerator.device.index or 0):
            raise InputError(f"--device {config.device}: e2wm train runs on the device accelerate gives its process "
                             f"({accelerator.device}); choose a GPU with CUDA_VISIBLE_DEVICES instead")
        if accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            raise InputError(f"accelerate's {accelerator.distributed_type.value} is not supported yet by e2wm train; "
                             f"use DDP (multi-GPU) or one process")
        self.run_dir, recorded, previous = prepare_run_dir(config, mixture)
        # the dtype the resumed run's matrix products were computed in; None for a new run or one recorded before
        before = (previous or {}).get("provenance", {}).get("matmul_peak", {}).get("dtype")
        for _, path in mixture:  # every training file checked before the model loads
            read_pairs(path)
        if config.chat_template:  # and the chat template --chat-template needs
            check_template(load_tokenizer(config.model), config.model)
        model, self.tokenizer, penalty = build_model(config, str(accelerator.device))
        self.precision = autocast_dtype(config.autocast, str(accelerator.device), config.dtype)
        self.regularisers = build_regularisers(
            regulariser_names(config.regularisers), config, penalty, self.tokenizer,
            examples_per_step=config.batch_size * config.grad_accum, replay_max_len=config.max_len, seed=config.seed,
            process_index=accelerator.process_index, processes=accelerator.num_processes, precision=self.precision)
        # lora with a Fisher and no ewc regulariser: the penalty is measured and logged as `ewc`, not trained on
        self.measured = penalty if penalty is not None and "ewc" not in regulariser_names(config.regularisers) else None
        self.flops = FlopCount.of(model)
        compute = self.precision or DTYPES[config.dtype]
        self.peak = matmul_peak(str(accelerator.device), compute)  # FLOP/s, the MFU's denominator
        recorded["provenance"]["matmul_peak"] = {"flops_per_s": round(self.peak), "dtype": str(compute)}
        if before not in (None, str(compute)):  # --autocast auto resolved otherwise here (the setting is the same)
            logger.warning("--resume: %s computed its matrix products in %s, this machine in %s (--autocast %s): "
                           "the rest of the run computes otherwise; pass --autocast explicitly in a new --out to "
                           "keep one precision", self.run_dir, before, compute, config.autocast)
        sources = list(dict.fromkeys(path for _, path in mixture))
        self.window, self.labels = TaskWindow(sources), task_labels(sources)
        self.examples = load_examples(mixture, self.tokenizer, config.max_len, config.truncation,
                                      config.chat_template)
        if self.curve is not None:
            self.curve.check(self.tokenizer, context_length(model, self.tokenizer))
        self.schedule = Schedule(config.batch_size, config.grad_accum, accelerator.num_processes, config.epochs,
                                 config.max_steps, config.seed, config.batching, config.loss_norm)
        self.schedule.fit(self.examples)
        self.total = self.schedule.total_steps(len(self.examples))
        if len(self.examples) < config.batch_size * config.grad_accum * accelerator.num_processes or not self.total:
            raise InputError(  # a step of fewer examples than the mixture divisor counts learns 4x less at 2 of 8
                f"--train: {len(self.examples)} examples make no full optimiser step of --batch-size "
                f"{config.batch_size} x --grad-accum {config.grad_accum} x {accelerator.num_processes} processes"
            )
        if accelerator.is_main_process:
            shares = effective_mixture(self.schedule, self.examples)
            logger.info("effective mixture (share of the loss's token weight per file, epoch 1): %s",
                        ", ".join(f"{Path(source).name} {share:.1%}" for source, share in shares.items()))
        self.trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = (MoFO(self.trainable, lr=config.lr, weight_decay=config.weight_decay, fraction=config.mofo_fraction)
                     if config.optimizer == "mofo" else
                     torch.optim.AdamW(self.trainable, lr=config.lr, weight_decay=config.weight_decay))
        self.scheduler = linear_decay(optimizer, config.scheduler_steps or self.total)
        if config.scheduler_steps and config.scheduler_steps < self.total:
            logger.warning("--scheduler-steps %d: the learning rate reaches 0 at step %d of the run's %d; the later "
                           "steps learn nothing", config.scheduler_steps, config.scheduler_steps, self.total)
        if accelerator.is_main_process:  # the run is set up: its directory and config.json appear
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "config.json", recorded)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        self.start = 0
        if config.resume:  # (a run stopped before its first checkpoint starts again: its log is emptied)
            if (self.run_dir / CHECKPOINT / "state.json").is_file():
                self.start = load_checkpoint(accelerator, self.run_dir, self.model, self.optimizer, self.scheduler)
                for regulariser in self.regularisers:  # step k replays what it replays in an uninterrupted run
                    regulariser.start(self.start)
            if accelerator.is_main_process:
                log = self.run_dir / "log.jsonl"
                if log.exists():
                    drop_torn_tail(log)  # a row a kill cut short
                kept = [r for r in read_jsonl(log) if r["step"] <= self.start] if log.exists() else []
                write_jsonl(log, kept)
                logger.info("resuming %s after step %d of %d", self.run_dir, self.start, self.total)
        if config.report_to != "none":
            hparams = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                       for key, value in asdict(config).items()}
            accelerator.init_trackers(  # tensorboard drops what an interrupted run logged after the checkpoint
                "tensorboard" if config.report_to == "tensorboard" else "e2wm", config=hparams,
                init_kwargs={"tensorboard": {"purge_step": self.start + 1},
                             "wandb": {"name": self.run_dir.name, "dir": str(self.run_dir)}})
        accelerator.wait_for_everyone()

    def train(self) -> None:
        """Optimiser steps start+1 .. total, each logged to log.jsonl, evaluated every eval_every steps and
        checkpointed every save_every steps (both also at the last step).

        Raises Diverged when a step's loss or gradient norm is NaN or infinite (before that step's update, so
        the last checkpoint holds finite weights).
        """
        schedule, examples = self.schedule, self.examples
        self.model.train()
        bar = tqdm(total=self.total, initial=self.start, desc="train", unit="step",
                   disable=not self.accelerator.is_main_process)
        try:
            self.steps([len(e.ids) for e in examples], schedule.steps_per_epoch(len(examples)),
                       schedule.grad_accum * schedule.processes, pad_id(self.tokenizer), bar)
        finally:
            bar.close()  # an error message then starts on a line of its own

    def steps(self, lengths: list[int], per_epoch: int, chunk: int, pad_id: int, bar) -> None:
        """The optimiser steps of `train` (see there)."""
        accelerator, schedule, examples = self.accelerator, self.schedule, self.examples
        on_batches = [r for r in self.regularisers if not r.per_step]  # read each micro-batch's outputs
        on_steps = [r for r in self.regularisers if r.per_step]  # once per step, with the last micro-batch
        all_positions = any(r.all_positions for r in self.regularisers)
        names = [r.name for r in on_batches + on_steps]  # the order of `terms` below
        plan, plan_epoch = None, -1
        for step in range(self.start, self.total):
            started = time.perf_counter()
            epoch, position = divmod(step, per_epoch)
            if epoch != plan_epoch:
                plan, plan_epoch = schedule.batches(lengths, epoch), epoch
            step_batches = [[examples[i] for i in batch] for batch in plan[position * chunk : (position + 1) * chunk]]
            scaled = list(zip(step_batches, schedule.scales(step_batches)))
            mine = scaled[accelerator.process_index :: schedule.processes]
            divide = [safe_inverse(r.denominator(step_batches)) for r in on_batches]
            sums = torch.zeros(2, device=accelerator.device)  # sum(weight x NLL), the normalised objective's CE
            shares = torch.zeros(len(names), device=accelerator.device)  # each regulariser's value, this process's
            per_file = torch.zeros(len(self.window.sources), 2, device=accelerator.device)  # TaskWindow.step_sums
            for index, (micro_batch, scale) in enumerate(mine):
                last = index == len(mine) - 1
                batch = {k: v.to(accelerator.device) for k, v in collate(micro_batch, pad_id).items()}
                with contextlib.nullcontext() if last else accelerator.no_sync(self.model):
                    terms = []
                    with autocast(self.precision, accelerator.device):
                        values, outputs = weighted_nll_outputs(self.model, batch, all_positions)
                        terms += [r(self.model, batch, outputs) * d for r, d in zip(on_batches, divide)]
                    per_file += self.window.step_sums(micro_batch, values, accelerator.device)
                    part = values.sum()
                    # DDP averages the processes' gradients: a process's share of a step's sum counts x processes
                    loss = part * (scale * schedule.processes)
                    loss = loss + sum(r.weight * t * schedule.processes for r, t in zip(on_batches, terms))
                    if last:
                        measures = [r(self.model, None, None) for r in on_steps]
                        loss = loss + sum(r.weight * t for r, t in zip(on_steps, measures))
                        terms += [t / schedule.processes for t in measures]  # the processes' sum is their mean
                    accelerator.backward(loss)
                sums += torch.stack([part.detach(), part.detach() * scale])
                for k, term in enumerate(terms):  # on_batches' each micro-batch, on_steps' with the last
                    shares[k] += term.detach().float()
            reduced = accelerator.reduce(torch.cat([sums, shares, per_file.flatten()]), reduction="sum")
            weighted, objective = reduced[:2].tolist()
            values = dict(zip(names, reduced[2 : 2 + len(names)].tolist()))
            self.window.add(reduced[2 + len(names) :].view(-1, 2))
            taken = [e for batch in step_batches for e in batch]
            ce = weighted / max(ref_weight(taken), 1e-12)
            work = {"examples": len(taken), "tokens": sum(len(e.ids) for e in taken),
                    "flops": sum(self.flops.example(len(e.ids), e.predicted_refs) for e in taken)}
            self.step_done(step + 1, ce, objective, values, bar, started, work)

    def loss_terms(self, objective: float, values: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
        """(each term as it enters the loss, the measures logged beside them) of one step.

        Terms: "loss_ce", the normalised CE (see train.loop), and "loss_<name>" = weight x value for each
        regulariser; they add up to the loss. Measures: each regulariser's value under its name, and "ewc", the
        penalty sum F * dW^2, also when EWC is not a regulariser but the run has a Fisher (measured without
        gradient, so that runs with and without EWC log the same drift measure); a run without a Fisher has no
        "ewc" (nothing measured it)."""
        terms = {"loss_ce": objective}
        terms.update({f"loss_{r.name}": r.weight * values[r.name] for r in self.regularisers})
        measures = dict(values)
        if self.measured is not None:
            with torch.no_grad():
                measures["ewc"] = self.measured().item()
        return terms, measures

    def step_done(self, step: int, ce: float, objective: float, values: dict[str, float], bar, started: float,
                  work: dict) -> None:
        """Check the loss, clip and take the optimiser step, evaluate, log it and checkpoint when due.

        values: each regulariser's value in the step (by name); started: time.perf_counter() when the step began;
        work: its "examples", "tokens" (non-pad, all processes) and model "flops" (FlopCount).

        Logged per step: loss, the objective minimised, and its terms as they enter it (`loss_terms`): loss_ce
        (the normalised CE, see train.loop) and loss_<regulariser> (its weight x its value), which add up to
        loss; ce, the step's weighted mean NLL per answer token (sum(weight x NLL) / sum(weight), nats, comparable
        across normalisations: under --loss-norm mixture it differs from loss_ce); each regulariser's value
        (ewc: sum F * dW^2 on the scaled Fisher, always logged, measured without gradient for lora with a
        Fisher; kl: nats per token; replay: nats per general-text token). grad_norm
        is the total L2 norm of the trainable parameters' gradients of the step's loss
        (summed over its micro-batches and averaged over processes, after accelerate's unscaling), before
        clipping to max_grad_norm; with max_grad_norm None the gradients are left as they are.
        Then: examples and tokens (non-pad) of the step; seconds, its wall time from its first batch to the
        optimiser's update (evaluation and checkpoints not included); tokens_per_s; mfu, the model FLOPs
        utilisation flops / (seconds x processes x the measured matmul peak, `matmul_peak`); and, at the end of
        each window (every log_every steps, each checkpoint, the last step), task_ce: {file label: its CE over
        the window} (TaskWindow).
        """
        config, accelerator = self.config, self.accelerator
        terms, measures = self.loss_terms(objective, values)
        self.loss = sum(terms.values())
        limit = math.inf if config.max_grad_norm is None else config.max_grad_norm  # inf: scales by exactly 1
        grad_norm = accelerator.clip_grad_norm_(self.trainable, limit).item()
        if not (math.isfinite(self.loss) and math.isfinite(grad_norm)):  # stop before a NaN update is taken
            saved = (f"The last checkpoint ({self.run_dir / CHECKPOINT}, and its adapter in checkpoint-N/) holds "
                     f"finite weights" if (self.run_dir / CHECKPOINT / "state.json").is_file()
                     else "No checkpoint was written before it")
            parts = ", ".join(f"{key} {value}" for key, value in terms.items())
            raise Diverged(
                f"step {step}: the loss is {self.loss} ({parts}; ce {ce}), the gradient norm {grad_norm}; "
                f"stopped before updating. {saved}; train again into a new --out with a lower --lr or a lower "
                f"regulariser weight (or --max-grad-norm)"
            )
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - started
        row = {"step": step, "loss": self.loss, **terms, "ce": ce, **measures, "lr": lr, "grad_norm": grad_norm,
               "examples": work["examples"], "tokens": work["tokens"], "seconds": round(seconds, 6),
               "tokens_per_s": significant(work["tokens"] / seconds),
               "mfu": significant(work["flops"] / (seconds * accelerator.num_processes * self.peak))}
        if step % config.log_every == 0 or step % config.save_every == 0 or step == self.total:
            row["task_ce"] = self.window.close(self.labels)
        if config.eval_every and (step % config.eval_every == 0 or step == self.total):
            point = self.evaluate()
            row.update(point)
            if point:
                logger.info("step %d: %s", step, ", ".join(f"{key} {value:.4f}" for key, value in point.items()))
        if accelerator.is_main_process:
            append_jsonl(self.run_dir / "log.jsonl", row)
        if config.report_to != "none":
            accelerator.log(tracked(row), step=step)
        bar.set_postfix(loss=f"{self.loss:.4f}", ce=f"{ce:.4f}", grad_norm=f"{grad_norm:.3g}",
                        **{name: f"{value:.3g}" for name, value in measures.items() if name != "ewc" or value})
        bar.update(1)
        if step % config.save_every == 0 or step == self.total:
            if accelerator.is_main_process:  # the evaluable step first: a crash before the state reruns the step
                self.write_model(self.run_dir / f"checkpoint-{step}", self.output_name)
                if config.keep_last:
                    prune_steps(self.run_dir, config.keep_last)
            save_checkpoint(accelerator, self.run_dir, self.model, self.optimizer, self.scheduler, step)

    def evaluate(self) -> dict[str, float]:
        """The forgetting curve's point of the model as it is (ForgettingCurve.measure), in eval mode.

        Runs on the main process only, on the unwrapped model (no DDP collective), while the other processes
        wait (accelerator.wait_for_everyone); they return {}, and only the main process writes the log.
        """
        point = {}
        if self.accelerator.is_main_process:
            model = self.accelerator.unwrap_model(self.model)
            model.eval()
            with autocast(self.precision, self.accelerator.device):
                point = self.curve.measure(model, self.tokenizer)
            model.train()
        self.accelerator.wait_for_everyone()
        return point

    @property
    def output_name(self) -> str:
        """The model's folder in the run directory and in each checkpoint-N: adapter, or model for full."""
        return "model" if self.config.adapter_kind == "full" else "adapter"

    def write_model(self, final: Path, inside: str | None = None) -> None:
        """The adapter (or, for full finetuning, the model and tokenizer) into final[/inside], atomically
        (checkpoint.save_pretrained), with its model card (train.card); call on the main process only."""
        tokenizer = self.tokenizer if self.config.adapter_kind == "full" else None
        save_pretrained(self.accelerator.unwrap_model(self.model), tokenizer, final, inside)
        if self.config.adapter_kind != "full":
            write_card(self.run_dir, final / inside if inside else final)

    def save(self) -> TrainResult:
        """Write adapter/ (or model/ and its tokenizer for full finetuning) into the run directory, atomically."""
        target = self.run_dir / self.output_name
        if self.accelerator.is_main_process:
            recorded = json.loads((self.run_dir / "config.json").read_text())
            recorded["provenance"]["wall_seconds"] = round(time.time() - self.began, 3)  # this session's
            write_json(self.run_dir / "config.json", recorded)
            self.write_model(target)
            logger.info("saved %s", target)
        self.accelerator.wait_for_everyone()
        return TrainResult(self.run_dir, target, self.total, self.loss)

    def finish(self) -> None:
        """Close the trackers (flushing TensorBoard's events) and accelerate's process group."""
        self.accelerator.end_training()


def check_tracker(report_to: str) -> None:
    """InputError when --report-to names a tracker whose package is not installed."""
    install = {"tensorboard": "pip install 'e2wm[tensorboard]'", "wandb": "pip install wandb"}
    if report_to in install and importlib.util.find_spec(report_to) is None:
        raise InputError(f"--report-to {report_to}: the {report_to} package is not installed ({install[report_to]})")


def significant(value: float, digits: int = 4) -> float:
    """value rounded to `digits` significant digits (what a log line needs of a rate)."""
    return float(f"{value:.{digits}g}")


def tracked(row: dict) -> dict[str, float]:
    """A log.jsonl row as a tracker's scalars: task_ce's files as task_ce/<label>, the step left out."""
    values = {key: value for key, value in row.items() if key not in ("step", "task_ce")}
    values.update({f"task_ce/{label}": value for label, value in row.get("task_ce", {}).items()})
    return values


def finetune(config: TrainConfig) -> TrainResult:
    """Train as config says and save the adapter (or model); see TrainConfig for every setting.

    Raises InputError on bad input (files, options, a resume with other settings) before training,
    and Diverged if the loss becomes NaN or infinite.
    """
    with output_lock(output_folder(config.out)):  # one writer: a second run on this --out is refused
        recipe = FinetuneRecipe(config)
        recipe.setup()
        try:
            recipe.train()
            return recipe.save()
        finally:
            recipe.finish()
