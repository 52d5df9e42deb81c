"""Each forgetting method's cost per optimiser step against plain LoRA's, measured as `e2wm train` runs it.

    python benchmarks/method_overhead.py [--model smollm2-135m] [--steps 12] [--rounds 3] [--out runs/overhead]

Every method trains the same released examples (the paper's mixture, batch 4, up to 256 tokens, length-grouped,
seed 0) for --steps optimiser steps, in rounds that interleave the methods (so a background load falls on all of
them alike); a method's time is the median over rounds of its steps' median `seconds` in log.jsonl (the step's
wall time, first batch to update; the first two steps of a run, warm-up, left out). The ratio is that over
LoRA's median in the same rounds. Methods that need a second forward pass (the KL anchor's base pass, replay's
general-text pass) say so: the issue's 1.3x target holds for the others.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from e2wm.cli import main as e2wm

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "train"
COMMON = ["--train", "paper", "--data-dir", str(TRAIN), "--batch-size", "4", "--max-len", "256", "--batching",
          "length", "--seed", "0", "--save-every", "1000", "--autocast", "none"]


def methods(fisher: Path, general: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (its `e2wm train` options, what it adds to a LoRA step)."""
    replay = ["--replay-data", str(general), "--replay-ratio", "0.25"]
    return {
        "lora": (["--regularisers", "none"], "the reference"),
        "lora, ewc measured": (["--regularisers", "none", "--fisher", str(fisher)], "sum F dW^2 without gradient"),
        "ewc": (["--regularisers", "ewc", "--fisher", str(fisher)], "sum F dW^2 with gradient, once per step"),
        "kl (answer tokens)": (["--regularisers", "kl"], "a second forward pass (the base, no gradient)"),
        "kl (all tokens)": (["--regularisers", "kl", "--kl-tokens", "all"],
                            "a second forward pass and the logits of every position"),
        "replay (ratio 0.25)": (["--regularisers", "replay", *replay],
                                "a forward and backward pass over 1 general text per step"),
        "mofo (fraction 0.15)": (["--regularisers", "none", "--optimizer", "mofo"],
                                 "a top-k selection of |first moment| per trained tensor"),
        "osf (half the spectrum frozen)": (["--regularisers", "none", "--adapter-kind", "osf"],
                                           "a rank 2 (m - k) factored change and its gradient projection"),
    }


def general_text() -> Path:
    """e2wm's bundled general text (assets/general_text.jsonl): what replay trains on here (its cost is what is
    measured, not its effect)."""
    import e2wm

    return Path(e2wm.__file__).parent / "assets" / "general_text.jsonl"


def step_seconds(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return statistics.median(row["seconds"] for row in rows[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/overhead"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fisher = args.out / "fisher.safetensors"
    if not fisher.is_file():
        e2wm(["fisher", "--model", args.model, "--n", "8", "--max-len", "64", "--out", str(fisher)])
    general = general_text()
    table = methods(fisher, general)
    seconds: dict[str, list[float]] = {name: [] for name in table}
    for round_ in range(args.rounds):
        for index, (name, (options, _)) in enumerate(table.items()):
            run = args.out / f"round{round_}-{index}"
            if not (run / "adapter").is_dir():
                try:
                    e2wm(["train", "--model", args.model, *COMMON, *options, "--max-steps", str(args.steps),
                          "--out", str(run)])
                except SystemExit as stop:
                    if stop.code:
                        sys.exit(f"{name}: e2wm train failed ({stop.code})")
            seconds[name].append(step_seconds(run))
    reference = statistics.median(seconds["lora"])
    print(f"\n{args.model}, batch 4 x <= 256 tokens, float32, 1 thread, {args.steps} steps x {args.rounds} rounds "
          "(median step, steps 3+)\n")
    print("| method | s / step | x LoRA | what it adds |\n|---|---:|---:|---|")
    for name, (_, adds) in table.items():
        median = statistics.median(seconds[name])
        print(f"| {name} | {median:.2f} | {median / reference:.2f}x | {adds} |")


if __name__ == "__main__":
    main()
