"""`e2wm demo`: every stage on the embedded SmolLM2-135M, on a CPU, in about 20 minutes; a report at the end."""

import os
import time
from dataclasses import fields
from pathlib import Path

from e2wm.demo import DemoSettings, run_stages
from e2wm.errors import InputError

SIZES = ("programs", "simulations", "episodes", "holdout_activities", "fisher_n", "fisher_len", "train_steps",
         "batch_size", "max_len", "limit", "max_new_tokens", "workers")


def add_arguments(parser) -> None:
    defaults = DemoSettings()
    parser.add_argument("--out", default=str(defaults.out), help="folder of the stages' folders")
    parser.add_argument("--force", action="store_true", help="redo every stage, even those done before")
    parser.add_argument("--model", default=defaults.model, help="a small causal LM (Hub id, local dir, or default)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, or 1 on a machine already "
                        "busy, where more threads contend for the cores and run many times slower)")
    parser.add_argument("--eval-data", help="E2WM evaluation files (default: ../shared/e2wm-benchmark/eval-dev "
                        "when present, else the held-out split the build stage writes)")
    sizes = parser.add_argument_group("sizes (the defaults fit 20 minutes on 2 CPU cores)")
    for name in SIZES:
        sizes.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))


def run(args) -> None:
    for name in SIZES:
        if getattr(args, name) < (0 if name == "holdout_activities" else 1):
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    known = {f.name for f in fields(DemoSettings)}
    settings = DemoSettings(**{k: v for k, v in vars(args).items() if k in known and k not in ("out", "eval_data")},
                            out=Path(args.out), eval_data=Path(args.eval_data) if args.eval_data else None)
    set_threads(args.threads)
    start = time.time()
    run_stages(settings, force=args.force)
    report = settings.out / "report" / "report.md"
    print(f"\ne2wm demo: done in {time.time() - start:.0f} s; the report is {report} (charts beside it)")


def set_threads(threads: int | None) -> None:
    """Use the given thread count; by default 1 when other work already keeps every core busy."""
    import torch

    if threads is None:
        load, cores = os.getloadavg()[0], os.cpu_count() or 1
        if load < cores:
            return
        threads = 1
        print(f"e2wm demo: the machine is busy (load {load:.1f} on {cores} cores): 1 torch thread "
              "(--threads overrides)")
    torch.set_num_threads(threads)
