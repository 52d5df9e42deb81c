"""Configs of the training-stage jobs: finetuning, the Fisher (computed or imported), the memory plan, the export.

Each field is an option of its command (see e2wm.config); `__post_init__` checks the values, so a bad
config fails the same way from Python and from the command line.
"""

import logging
from dataclasses import dataclass, fields

from e2wm import config
from e2wm.chat import HELP as CHAT_HELP
from e2wm.config import flag_of, option
from e2wm.errors import InputError
from e2wm.methods import ADAPTERS, METHODS, resolve_method
from e2wm.models import (
    ADAPTER_SCALE_HELP,
    AUTOCAST_HELP,
    AUTOCASTS,
    DTYPES,
    MODEL_HELP,
    LoadedModelOptions,
    ModelOptions,
    check_autocast,
    resolve_adapter,
)
from e2wm.train.corpus import MODEL_SAMPLES
from e2wm.train.data import TRUNCATIONS
from e2wm.train.fisher_scale import SCALES
from e2wm.train.kl_anchor import KL_DIRECTIONS, KL_TOKENS
from e2wm.train.loop import BATCHINGS, LOSS_NORMS
from e2wm.train.mofo import MOFO_FRACTION, OPTIMIZERS
from e2wm.train.rehearsal import texts_per_step

TRACKERS = ("none", "tensorboard", "wandb")
logger = logging.getLogger(__name__)
FULL_RANK_LR = 1e-4  # above it, OSF or full finetuning at a LoRA rate is warned about (full finetuning: 5e-6..2e-5)

MODULES_HELP = "comma-separated module names to adapt (default: PEFT's LoRA targets for the architecture)"


# options read only by one regulariser or adapter kind: name -> (that regulariser or adapter kind, its option)
UNREAD = {"kl_weight": ("kl", "--regularisers kl"), "kl_tokens": ("kl", "--regularisers kl"),
          "kl_direction": ("kl", "--regularisers kl"), "replay_ratio": ("replay", "--regularisers replay"),
          "replay_weight": ("replay", "--regularisers replay"), "lora_r": ("lora", "--adapter-kind lora"),
          "lora_alpha": ("lora", "--adapter-kind lora"), "lora_dropout": ("lora", "--adapter-kind lora")}


def listed(names: str | list[str] | None) -> str | None:
    """A YAML list of names (regularisers: [kl, replay]) as the option's comma-separated text; text as it is."""
    return ",".join(map(str, names)) if isinstance(names, list) else names


def check_kl_adapter(regularisers: str, adapter_kind: str) -> None:
    """InputError for the kl regulariser with full finetuning (no adapter to disable for the base distribution)."""
    if "kl" in regularisers.split(",") and adapter_kind == "full":
        raise InputError("--regularisers kl needs an adapter to disable for the base distribution (--adapter-kind "
                         "lora or osf); full finetuning keeps no copy of the base weights")


def mixture_text(mixture: str | dict[str, float]) -> str:
    """A mixture mapping {file or task: weight} as the option's text 'WEIGHT NAME ...'; text is kept as it is."""
    if isinstance(mixture, dict):
        return " ".join(f"{weight} {name}" for name, weight in mixture.items())
    return mixture


@dataclass(kw_only=True)
class TrainConfig(LoadedModelOptions):
    """`e2wm train` / `e2wm.finetune`: EWC-LoRA (or LoRA, or full finetuning, with any regularisers) on a
    weighted mixture.

    `__post_init__` resolves --method into `adapter_kind` and `regularisers` (`resolve_method`), so a config's
    adapter_kind and regularisers are always set after it.

    The authors' recipe (their scripts/run_1.3B.sh and run_6B.sh): LoRA r 8, alpha 32, dropout 0.1; AdamW lr 8e-4
    with linear decay; lambda 2 (GPT-Neo-1.3B) or 0.5 (GPT-J-6B); up to 800 tokens; mixture weights in
    e2wm.benchmark. The paper's text gives lr 8e-5 and the lambdas swapped (docs/reproduce.md).
    """

    train: str = option(help="mixture 'WEIGHT FILE_OR_TASK ...' of E2WM training files; a task name (plan_gen) "
                        "means train_<task>.jsonl/.json in --data-dir, or without it the released file (`e2wm data "
                        "download`), as e2wm:plan_gen always does; 'paper' means the paper's four tasks and "
                        "weights (e2wm.benchmark); a YAML config may give a mapping")
    data_dir: str | None = option(None, "folder where the task names of --train find their train_<task> files "
                                  "(default: the released files in the cache, from `e2wm data download`)",
                                  result=False)
    fisher: str | None = option(None, "Fisher file from `e2wm fisher` (needed by the ewc regulariser; with lora "
                                "alone its penalty is only measured and logged)")
    method: str | None = option(None, "a shorthand kept from earlier versions: ewc-lora (= --adapter-kind "
                                "lora --regularisers ewc), lora (= --adapter-kind lora --regularisers none), full (= "
                                "--adapter-kind "
                                "full, with --regularisers ewc when --fisher is given)", choices=METHODS)
    adapter_kind: str | None = option(None, "what is trained: lora (default), osf (PEFT's orthogonal subspace "
                                      "finetuning of the --modules weights: their smaller singular directions, the top "
                                      "--osf-effective-rank frozen) or full (every weight of the --modules layers and "
                                      "the rest of the model)", choices=ADAPTERS)
    regularisers: str | None = option(None, "comma-separated terms added to the loss: ewc (lambda x sum F dW^2, "
                                      "needs --fisher), kl (--kl-weight x KL to the base model), replay "
                                      "(--replay-weight x the NLL of --replay-data general text); none: the CE alone "
                                      "(default: ewc, the E2WM method; see e2wm.train.regularisers)")
    lam: float = option(0.5, "EWC weight lambda on the --fisher-scale Fisher (the authors' scripts: 2 for 1.3B, "
                        "0.5 for 6B, on the paper scale); the default 0.5: in the forgetting study (docs/results.md, "
                        "issue 25) every lambda from 0.05 to 5 kept LoRA's gain with no drift on human-written prose, "
                        "and 0.5 kept it on a second seed; over a whole epoch it kept LoRA's generation gain at a "
                        "fifth of LoRA's drift", flag="--lambda", minimum=0)
    fisher_scale: str = option("paper", "how the Fisher weighs the penalty: paper (the authors' effective "
                               "LLM.int8 row codes 0..127), raw (as computed: lambdas then need to be ~1e5x larger), "
                               "mean (divided by its mean entry); see e2wm.train.fisher_scale", choices=SCALES)
    kl_weight: float = option(0.1, "weight of the kl regulariser: the mean per-token KL between the base and the "
                              "finetuned model (nats; --kl-direction)", above=0)
    kl_direction: str = option("forward", "the kl regulariser's direction: forward, KL(base || finetuned) (mass-"
                               "covering: keeps what the base predicts); reverse, KL(finetuned || base) (ASFT's and "
                               "RLHF's)", choices=KL_DIRECTIONS)
    kl_tokens: str = option("answer", "the tokens the kl regulariser averages over: answer (the ref tokens the CE "
                            "covers) or all (every token of the examples)", choices=KL_TOKENS)
    replay_data: str | None = option(None, "general text the replay regulariser trains on (JSONL with 'text', plain "
                                     "text, or a saved HF dataset)")
    replay_ratio: float = option(0.25, "replay texts per training example, each step (rounded per process)",
                                 above=0)
    replay_weight: float = option(1.0, "weight of the replay regulariser's mean NLL per token", above=0)
    lr: float = option(8e-4, "learning rate of AdamW (or MoFO) (linear decay to 0, no warm-up); "
                        "the default is LoRA's: --adapter-kind osf or full wants 2e-5 to 1e-4 (docs/results.md, "
                        "issue 25: OSF at 1e-4 matched LoRA's gain, at 2e-5 kept general text best but learnt less)",
                        above=0)
    scheduler_steps: int | None = option(None, "size the linear decay for N optimiser steps instead of the run's "
                                         "(the authors' GPT-J run: 5320 for its 1330 steps, so its rate ends "
                                         "near 6e-4; default: the run's steps, decaying to 0)", minimum=1)
    epochs: int = option(3, "passes over the mixture", minimum=1)
    max_steps: int | None = option(None, "stop after this many optimiser steps", minimum=1)
    batch_size: int = option(4, "examples per micro-batch per process", minimum=1)
    grad_accum: int = option(1, "micro-batches per optimiser step", minimum=1)
    batching: str = option("random", "random: shuffled examples in consecutive batches (the authors'); length: "
                           "batches of similar length within shuffled chunks (less padding, same mixture; needs "
                           "--loss-norm mixture); sequential: the examples in the order of --train's files and "
                           "their lines, unshuffled, every epoch (a curriculum: order the file easy to hard)",
                           choices=BATCHINGS)
    loss_norm: str = option("mixture", "how a step's sum(weight x NLL) is divided: mixture: by the mean weighted "
                            "answer tokens of a step (a run constant: every file pulls its mixture share at any "
                            "batch size); step: by this step's (a mean per token; small steps cancel the weights); "
                            "micro-batch: the authors' per-micro-batch answer tokens (needs --batching random); "
                            "see e2wm.train.loop", choices=LOSS_NORMS)
    max_len: int = option(800, "tokens per example", minimum=2)
    chat_template: bool = option(False, CHAT_HELP + "; the loss covers the assistant's answer and the template's end "
                                 "of turn (evaluate such an adapter with `e2wm eval --chat-template`)")
    truncation: str = option("left", "which end of a longer example is cut: left keeps its end (the ref); right "
                             "keeps its start, as the authors' run.py (a ref past --max-len is lost)",
                             choices=TRUNCATIONS)
    weight_decay: float = option(0.0, "AdamW weight decay (the authors' code: 0.01, torch's default)", minimum=0)
    optimizer: str = option("adamw", "adamw: torch's AdamW; mofo: MoFO (Chen et al. 2024), AdamW that moves only the "
                            "--mofo-fraction of each trained tensor's entries with the largest momentum each step, the "
                            "rest keeping their values (see e2wm.train.mofo)", choices=OPTIMIZERS)
    mofo_fraction: float | None = option(None, f"--optimizer mofo: the fraction of each tensor's entries a step "
                                         f"updates, in (0, 1] (default: {MOFO_FRACTION}, the MoFO authors')", above=0)
    lora_r: int = option(8, "LoRA rank", minimum=1)
    lora_alpha: float = option(32, "LoRA alpha (scaling alpha / r)", above=0)
    lora_dropout: float = option(0.1, "dropout on the LoRA input", minimum=0)
    osf_effective_rank: float | None = option(None, "--adapter-kind osf: the top singular directions of each adapted "
                                              "weight kept frozen (PEFT's OSFConfig effective_rank): N, or a fraction "
                                              "in (0, 1) of min(out, in); the rest of the spectrum is trained "
                                              "(default: PEFT's, half of min(out, in))", above=0)
    modules: str | None = option(None, MODULES_HELP + "; with a Fisher, the Fisher's modules")
    gradient_checkpointing: bool = option(False, "recompute activations in backward (less memory)", result=False)
    seed: int = option(0, "seed of the LoRA initialisation and the data order")
    autocast: str = option("auto", AUTOCAST_HELP, choices=AUTOCASTS, group="model", absent="none")
    log_every: int = option(10, "average each training file's CE (task_ce in log.jsonl) over windows of N optimiser "
                            "steps; a window also ends at each checkpoint and at the last step", minimum=1,
                            result=False)
    report_to: str = option("none", "also log every step's values to TensorBoard (RUN/tensorboard/; extra "
                            "e2wm[tensorboard]) or Weights & Biases (wandb), through accelerate's trackers",
                            choices=TRACKERS, result=False)
    save_every: int = option(100, "checkpoint every N optimiser steps (checkpoint/ to resume, checkpoint-N/ to "
                             "evaluate)", minimum=1, result=False)
    keep_last: int | None = option(None, "keep only the last K checkpoint-N folders (default: all)", minimum=1,
                                   result=False)
    max_grad_norm: float | None = option(None, "clip the gradients' total L2 norm to this (default: no clipping, "
                                         "as in the paper)", above=0)
    eval_every: int | None = option(None, "every N optimiser steps and at the last, log the perplexity on "
                                    "--eval-ppl-data (and the accuracy on --eval-data)", minimum=1)
    eval_ppl_data: str | None = option(None, "general text for --eval-every's perplexity (JSONL with 'text', plain "
                                       "text, or a saved HF dataset)")
    eval_data: str | None = option(None, "an E2WM multiple-choice dev file whose accuracy --eval-every logs")
    out: str = option(help="run directory", result=False)
    resume: bool = option(False, "continue the run in --out from its checkpoint", result=False)

    def __post_init__(self) -> None:
        self.train = mixture_text(self.train)  # a mapping becomes the option's text before the checks
        self.regularisers = listed(self.regularisers)  # and a YAML list the comma-separated text
        super().__post_init__()
        check_autocast(self.autocast, self.dtype)
        self.adapter_kind, self.regularisers = resolve_method(self.method, self.adapter_kind, self.regularisers,
                                                                self.fisher)
        if "ewc" in self.regularisers.split(",") and not self.fisher:
            what = "--method ewc-lora" if self.method else "--regularisers ewc (the default: EWC-LoRA)"
            raise InputError(f"{what} needs --fisher F.safetensors (from `e2wm fisher`); or use --regularisers none "
                             "(no regulariser: plain LoRA) or another regulariser")
        check_kl_adapter(self.regularisers, self.adapter_kind)
        if ("replay" in self.regularisers.split(",")) != bool(self.replay_data):
            raise InputError("--regularisers replay needs --replay-data FILE (general text)" if self.replay_data is None
                             else "--replay-data is read only by the replay regulariser: add replay to --regularisers")
        self.check_osf_mofo()
        self.check_unread()
        if self.batching == "length" and self.loss_norm != "mixture":
            raise InputError(f"--batching length needs --loss-norm mixture: its batches hold one task each, and "
                             f"--loss-norm {self.loss_norm} would cancel the file weights inside them")
        if not self.lora_dropout < 1:
            raise InputError(f"--lora-dropout must be below 1, got {self.lora_dropout}")
        if self.eval_every and not self.eval_ppl_data:
            raise InputError("--eval-every needs --eval-ppl-data FILE (general text for the perplexity curve)")
        if not self.eval_every and (self.eval_ppl_data or self.eval_data):
            raise InputError(f"{'--eval-ppl-data' if self.eval_ppl_data else '--eval-data'} needs --eval-every N")

    def check_unread(self) -> None:
        """InputError for a setting, given other than its default, that only a regulariser or adapter kind the run
        does not use reads (--kl-weight without kl, --lora-r with osf, ...); a warning for --lambda without ewc
        (earlier versions took `--method lora --lambda X`, so their configs keep working) and for --fisher-scale
        without --fisher."""
        defaults = {item.name: item.default for item in fields(self)}
        given = [name for name, (owner, _) in UNREAD.items()
                 if owner not in (self.adapter_kind, *self.regularisers.split(",")) and getattr(self, name) !=
                 defaults[name]]
        if given:
            name = given[0]
            owner, what = UNREAD[name]
            raise InputError(f"{flag_of(next(f for f in fields(self) if f.name == name))} is read only by {what} "
                             f"(this run: --adapter-kind {self.adapter_kind} --regularisers {self.regularisers})")
        if "ewc" not in self.regularisers.split(",") and self.lam != defaults["lam"]:
            logger.warning("--lambda %s is read only by the ewc regulariser, which this run does not use", self.lam)
        if not self.fisher and self.fisher_scale != defaults["fisher_scale"]:
            logger.warning("--fisher-scale %s is read only with --fisher (the EWC penalty, or its logged value)",
                           self.fisher_scale)

    def check_osf_mofo(self) -> None:
        """Check --osf-effective-rank and --mofo-fraction, each read by its own setting alone; resolve the MoFO
        fraction's default and an integer rank (a command line gives 4.0 for 4, which PEFT would take as a
        fraction when 1); warn for OSF or full finetuning at a LoRA learning rate. Raises InputError."""
        if self.adapter_kind in ("osf", "full") and self.lr > FULL_RANK_LR:
            logger.warning("--lr %g with --adapter-kind %s: a LoRA rate on full-rank weight changes (docs/results.md, "
                           "issue 25: OSF at 8e-4 raised perplexity on human-written prose by 56%%); "
                           "full finetuning and OSF are run at 5e-6 to 2e-5 (OSF's authors' training_hub)", self.lr,
                           self.adapter_kind)
        if self.adapter_kind == "osf" and (self.load_in_8bit or self.load_in_4bit):
            raise InputError("--adapter-kind osf decomposes the base weights by SVD: not with --load-in-8bit or "
                             "--load-in-4bit (quantised weights); use --adapter-kind lora")
        rank = self.osf_effective_rank
        if rank is not None and self.adapter_kind != "osf":
            raise InputError(f"--osf-effective-rank is read only by --adapter-kind osf (this run: {self.adapter_kind})")
        if rank is not None and rank >= 1:
            if rank != int(rank):
                raise InputError(f"--osf-effective-rank {rank}: a whole number of directions, or a fraction below 1")
            self.osf_effective_rank = int(rank)
        if self.optimizer != "mofo" and self.mofo_fraction is not None:
            raise InputError("--mofo-fraction is read only by --optimizer mofo")
        if self.optimizer == "mofo":
            self.mofo_fraction = MOFO_FRACTION if self.mofo_fraction is None else float(self.mofo_fraction)
            if self.mofo_fraction > 1:
                raise InputError(f"--mofo-fraction must be at most 1 (1: every entry, AdamW), got {self.mofo_fraction}")


@dataclass(kw_only=True)
class FisherConfig(LoadedModelOptions):
    """`e2wm fisher` / `e2wm.compute_fisher`: the diagonal Fisher of the LoRA target weights on general text."""

    corpus: str = option(MODEL_SAMPLES, f"JSONL with 'text', a plain-text file (one text per paragraph), a saved "
                         f"HF dataset directory, or '{MODEL_SAMPLES}'")
    n: int = option(1000, "number of texts (the paper: 20000)", minimum=1)
    max_len: int = option(800, "tokens per text at most", minimum=2)
    modules: str | None = option(None, MODULES_HELP)
    batch_size: int = option(8, "texts per batch (sampling and gradients)", minimum=1)
    seed: int = option(0, "seed of the model samples")
    save_every: int = option(200, "checkpoint the partial sums every N texts", minimum=1, result=False)
    write_samples: str | None = option(None, "also write the texts used to this JSONL file", result=False)
    samples_only: bool = option(False, "only draw/write the texts (needs --write-samples)", result=False)
    out: str = option(help="output .safetensors file", result=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples_only and not self.write_samples:
            raise InputError("--samples-only needs --write-samples FILE")


@dataclass(kw_only=True)
class FisherImportConfig:
    """`e2wm fisher import` / `e2wm.import_fisher`: a released Fisher checkpoint as an e2wm Fisher file."""

    checkpoint: str = option(help="directory or Hub id of the Fisher checkpoint")
    model: str = option(help="the base model the Fisher belongs to (Hub id or directory)")
    modules: str | None = option(None, MODULES_HELP)
    n: int = option(0, "number of texts behind the Fisher, if known", minimum=0)
    out: str = option(help="output .safetensors file")

    def __post_init__(self) -> None:
        config.check(self)


@dataclass(kw_only=True)
class PlanMemoryConfig(ModelOptions):
    """`e2wm plan-memory`: the expected training memory per component, from the model's config alone."""

    method: str | None = option(None, "a shorthand: ewc-lora (lora + ewc), lora, full (+ ewc unless --no-ewc)",
                                choices=METHODS)
    adapter_kind: str | None = option(None, "what is trained: lora (default), osf or full", choices=ADAPTERS)
    regularisers: str | None = option(None, "comma-separated regularisers of the run (ewc, kl, replay; none), as "
                                      "`e2wm train --regularisers` (default: ewc)")
    replay_ratio: float = option(0.25, "the replay regulariser's texts per training example", above=0)
    optimizer: str = option("adamw", "adamw or mofo (the same states: MoFO keeps AdamW's moments for every entry)",
                            choices=OPTIMIZERS)
    batch_size: int = option(1, "examples per micro-batch", minimum=1)
    max_len: int = option(800, "tokens per example", minimum=1)
    lora_r: int = option(8, "LoRA rank", minimum=1)
    modules: str | None = option(None, MODULES_HELP)
    no_ewc: bool = option(False, "--method full without the EWC penalty")
    attention: str = option("fused", "fused (flash/memory-efficient SDPA on GPUs) or eager (keeps len^2 scores; "
                            "CPU too)", choices=("fused", "eager"))

    def __post_init__(self) -> None:
        self.regularisers = listed(self.regularisers)
        super().__post_init__()
        if self.no_ewc and self.method != "full":
            raise InputError("--no-ewc is read only with --method full (full finetuning without EWC); otherwise "
                             "leave ewc out of --regularisers (e.g. --regularisers none)")
        fisher = None if self.no_ewc else "planned"  # --method full plans EWC unless --no-ewc
        self.adapter_kind, self.regularisers = resolve_method(self.method, self.adapter_kind, self.regularisers,
                                                              fisher)
        check_kl_adapter(self.regularisers, self.adapter_kind)
        if "replay" in self.regularisers.split(","):
            texts_per_step(self.replay_ratio, self.batch_size)  # refused as `e2wm train` refuses it


@dataclass(kw_only=True)
class ExportConfig:
    """`e2wm export merged` / `e2wm.export_merged`: a LoRA adapter merged into its base, saved as a standard
    transformers checkpoint (weights, config, tokenizer, model card), optionally pushed to the Hub."""

    model: str = option(help=MODEL_HELP)
    adapter: str = option(help="the PEFT LoRA adapter directory to merge (or the name of an adapter shipped with "
                          "e2wm)")
    adapter_scale: float = option(1.0, ADAPTER_SCALE_HELP + "; the merged weights are W0 + s * scaling * B @ A",
                                  minimum=0, metavar="S")
    out: str = option(help="new directory for the merged checkpoint (must not exist)")
    dtype: str = option("float32", "dtype of the saved weights (the merge itself is computed in float32)",
                        choices=tuple(sorted(DTYPES)))
    device: str | None = option(None, "where the merge is computed: cpu, cuda, ... (default: cuda if available)",
                                result=False)
    push: str | None = option(None, "also upload the folder to this Hugging Face Hub model repo (created if "
                              "absent; needs the network and a token)", metavar="REPO")

    def __post_init__(self) -> None:
        self.adapter = resolve_adapter(self.adapter)
        config.check(self)
        self.adapter_scale = float(self.adapter_scale)  # a YAML 1 records as 1.0
