"""`e2wm train`: EWC-LoRA (or plain LoRA, or full) finetuning on a weighted mixture of E2WM files.

Works the same on one CPU and under `accelerate launch` (DDP over GPUs or gloo CPU processes).
The run directory holds config.json (the options used), log.jsonl (one line per optimiser step),
checkpoint/ (for --resume) and adapter/ (a standard PEFT adapter; model/ for --method full).
"""

import json
from pathlib import Path

import torch

from e2wm.errors import InputError
from e2wm.files import read_jsonl, write_json, write_jsonl
from e2wm.models import add_model_arguments, load_model, spec_from_args
from e2wm.train.checkpoint import NAME as CHECKPOINT
from e2wm.train.checkpoint import load_checkpoint
from e2wm.train.data import load_examples, parse_mixture
from e2wm.train.ewc import FullEwc, LoraEwc
from e2wm.train.fisher import check_fisher, load_fisher
from e2wm.train.loop import Schedule, linear_decay, train
from e2wm.train.targets import default_target_names, is_fan_in_fan_out, parse_modules, target_layers

METHODS = ("ewc-lora", "lora", "full")
# options that must not change between a run and its --resume
RESUME_KEYS = ("model", "train", "fisher", "method", "lam", "lr", "epochs", "max_steps", "batch_size",
               "grad_accum", "max_len", "lora_r", "lora_alpha", "lora_dropout", "modules", "seed", "dtype")


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--train", required=True, help="mixture 'WEIGHT FILE WEIGHT FILE ...' of E2WM JSONL files")
    parser.add_argument("--fisher", help="Fisher file from `e2wm fisher` (needed by ewc-lora)")
    parser.add_argument("--method", default="ewc-lora", choices=METHODS)
    parser.add_argument("--lambda", dest="lam", type=float, default=2.0,
                        help="EWC weight (paper: 2 for 1.3B, 0.5 for 6B; lora: 0)")
    parser.add_argument("--lr", type=float, default=8e-4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    parser.add_argument("--batch-size", type=int, default=4, help="examples per micro-batch per process")
    parser.add_argument("--grad-accum", type=int, default=1)
    parser.add_argument("--max-len", type=int, default=800, help="tokens per example (longer ones keep their end)")
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=32)
    parser.add_argument("--lora-dropout", type=float, default=0.1)
    parser.add_argument("--modules", help="LoRA modules without a Fisher (default: PEFT's for the architecture)")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=100, help="checkpoint every N optimiser steps")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")


def check_options(args) -> None:
    for key in ("lr", "epochs", "batch_size", "grad_accum", "max_len", "lora_r", "save_every"):
        if getattr(args, key) <= 0:
            raise InputError(f"--{key.replace('_', '-')} must be positive")
    if args.max_steps is not None and args.max_steps <= 0:
        raise InputError("--max-steps must be positive")
    if args.lam < 0:
        raise InputError("--lambda must be >= 0")
    if args.method == "ewc-lora" and not args.fisher:
        raise InputError("--method ewc-lora needs --fisher F.safetensors (from `e2wm fisher`); or use --method lora")
    if args.adapter:
        raise InputError("--adapter: training starts from the base model; leave --adapter out")


def prepare_run_dir(args, accelerator) -> tuple[Path, dict]:
    """Create (or, with --resume, check) the run directory; returns it and the settings to record."""
    run_dir = Path(args.out)
    settings = {key: getattr(args, key) for key in RESUME_KEYS}
    recorded = run_dir / "config.json"
    if args.resume:
        if not (run_dir / CHECKPOINT / "state.json").is_file():
            raise InputError(f"--resume: {run_dir} has no checkpoint to resume from")
        before = json.loads(recorded.read_text())["settings"]
        changed = [key for key in RESUME_KEYS if before.get(key) != settings[key]]
        if changed:
            raise InputError(f"--resume: {run_dir} was started with other options ({', '.join(changed)})")
    elif (run_dir / "log.jsonl").exists() or (run_dir / CHECKPOINT).exists():
        raise InputError(f"--out {run_dir}: a run is already there; use --resume or another --out")
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(recorded, {"settings": settings, "options": vars(args)})
    return run_dir, settings


def build_model(args, accelerator):
    """(model, tokenizer, penalty or None): the base model, wrapped with LoRA unless full, Fisher checked."""
    spec = spec_from_args(args)
    spec.device = spec.device or str(accelerator.device)
    header, fisher = load_fisher(args.fisher) if args.fisher else (None, None)
    model, tokenizer = load_model(spec)
    names = parse_modules(args.modules) or (header.modules if header else None) or default_target_names(model)
    if header and names != header.modules:
        raise InputError(f"--modules {','.join(names)}: the Fisher covers {','.join(header.modules)}")
    layers = target_layers(model, names)
    if fisher is not None:
        check_fisher(args.fisher, fisher, layers)
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    torch.manual_seed(args.seed)
    if args.method == "full":
        penalty = FullEwc.build(layers, fisher) if fisher is not None else None
        return model, tokenizer, penalty
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if args.load_in_8bit or args.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.gradient_checkpointing)
    config = LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=names,
        fan_in_fan_out=any(is_fan_in_fan_out(layer) for layer in layers.values()), task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    penalty = LoraEwc.build(model, fisher) if fisher is not None else None
    return model, tokenizer, penalty


def run(args) -> None:
    from accelerate import Accelerator

    check_options(args)
    mixture = parse_mixture(args.train)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())  # cpu: several processes talk over gloo
    run_dir, _ = prepare_run_dir(args, accelerator)
    model, tokenizer, penalty = build_model(args, accelerator)
    examples = load_examples(mixture, tokenizer, args.max_len)
    schedule = Schedule(args.batch_size, args.grad_accum, accelerator.num_processes, args.epochs, args.max_steps,
                        args.seed)
    total = schedule.total_steps(len(examples))
    if total == 0:
        raise InputError(
            f"--train: {len(examples)} examples make no full optimiser step of --batch-size {args.batch_size} x "
            f"--grad-accum {args.grad_accum} x {accelerator.num_processes} processes"
        )
    lam = 0.0 if args.method == "lora" else args.lam
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    scheduler = linear_decay(optimizer, total)
    model, optimizer = accelerator.prepare(model, optimizer)
    start = 0
    if args.resume:
        start = load_checkpoint(accelerator, run_dir, model, optimizer, scheduler)
        if accelerator.is_main_process:
            log = run_dir / "log.jsonl"
            kept = [r for r in read_jsonl(log) if r["step"] <= start] if log.exists() else []
            write_jsonl(log, kept)
            print(f"resuming {run_dir} after step {start} of {total}")
    accelerator.wait_for_everyone()
    train(accelerator, model, optimizer, scheduler, examples, schedule, penalty, lam, run_dir, start,
          args.save_every, tokenizer.pad_token_id)
    if accelerator.is_main_process:
        save_result(accelerator.unwrap_model(model), tokenizer, run_dir, args.method)
    accelerator.wait_for_everyone()


def save_result(model, tokenizer, run_dir: Path, method: str) -> None:
    target = run_dir / ("model" if method == "full" else "adapter")
    model.save_pretrained(target)
    if method == "full":
        tokenizer.save_pretrained(target)
    print(f"saved {target}")
