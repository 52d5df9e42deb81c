"""The plans-judged-by-the-world study (issue 24): does embodied training make plans that work, and which errors
does it remove? One command, resumable:

    python benchmarks/eai_study.py --out runs/eai-study [--parallel 2] [--publish docs/study-eai]

1. e2wm's MCTS plans for all 518 bundled programs (`e2wm collect plans`, 50 simulations, the demo's search);
2. training data from them with EAI's 342 programs kept out (`e2wm build --exclude-programs eai`);
3. a Fisher on the base model's samples and an EWC-LoRA adapter trained on that data with the shipped adapter's
   settings (80 steps of 4 examples, lambda 0.05 on the paper-scale Fisher, LoRA r 8, alpha 32, lr 8e-4);
4. the MCTS plans themselves through EAI's evaluator (the ceiling of imitating them);
5. EAI action sequencing (342 tasks) for the base model (native prompt with its chat template, e2wm form with and
   without goals), the shipped adapter (trained on the released E2WM files) and the new adapter (e2wm forms);
6. plan generation with execution metrics on the build's own held-out plan files (programs outside EAI and outside
   training), and on the released dev plan files when ../shared holds them;
7. `e2wm report` per prompt form (paired intervals against the base model; the EAI section with the 15 LLMs).

Every step is skipped when its output exists (collect, fisher and train resume; eval reuses finished tasks).
Jobs run with one torch thread each, --parallel at once. --publish copies metrics, reports and summaries (no
benchmark texts) into DIR.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from e2wm.eval.eai import plan_outputs
from e2wm.files import write_json
from e2wm.world.eai_judge import judge

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "eval-dev" / "gen"
MODEL = "smollm2-135m"
SHIPPED = "smollm2-135m-e2wm"
TRAIN = ["--train", "1 plan_gen 0.7 act_recog", "--method", "ewc-lora", "--lambda", "0.05", "--fisher-scale", "paper",
         "--lr", "0.0008", "--max-steps", "80", "--epochs", "100", "--batch-size", "4", "--max-len", "256",
         "--truncation", "left", "--batching", "length", "--save-every", "10", "--lora-r", "8", "--lora-alpha", "32"]
EAI_RUNS = {  # name -> (adapter, form, extra eval options)
    "base-native": (None, "native", ["--chat-template"]),
    "base-e2wm": (None, "e2wm", []),
    "base-e2wm-no-goals": (None, "e2wm-no-goals", []),
    "shipped-e2wm": (SHIPPED, "e2wm", []),
    "shipped-e2wm-no-goals": (SHIPPED, "e2wm-no-goals", []),
    "trained-e2wm": ("train/adapter", "e2wm", []),
    "trained-e2wm-no-goals": ("train/adapter", "e2wm-no-goals", []),
}
REPORTS = {  # report name -> runs, the first the baseline
    "eai-e2wm": ["base-e2wm", "shipped-e2wm", "trained-e2wm"],
    "eai-e2wm-no-goals": ["base-e2wm-no-goals", "shipped-e2wm-no-goals", "trained-e2wm-no-goals"],
    "eai-native": ["base-native"],
    "plans-heldout": ["plans-heldout-base", "plans-heldout-shipped", "plans-heldout-trained"],
    "plans-dev": ["plans-dev-base", "plans-dev-shipped", "plans-dev-trained"],
}


def e2wm(out: Path, *args: str) -> None:
    """Run `e2wm ARGS` in the study folder with one torch thread; SystemExit naming the command when it fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    print(f"[{time.strftime('%H:%M:%S')}] e2wm {' '.join(args)}", flush=True)
    if subprocess.call([sys.executable, "-m", "e2wm", *args], cwd=out, env=env, stdout=subprocess.DEVNULL) != 0:
        raise SystemExit(f"e2wm {' '.join(args)} failed (in {out})")


def evaluate(out: Path, name: str, adapter: str | None, data: list[str], extra: list[str]) -> None:
    if (out / "eval" / name / "metrics.json").is_file():
        return
    e2wm(out, "eval", "--model", MODEL, *(["--adapter", adapter] if adapter else []), "--data", *data,
         "--batch-size", "8", *extra, "--out", f"eval/{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/eai-study"))
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--publish", type=Path)
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    e2wm(out, "collect", "plans", "--programs", "all", "--simulations", "50", "--seed", "0",
         "--workers", str(args.parallel), "--out", "plans.jsonl")
    e2wm(out, "build", "--plans", "plans.jsonl", "--exclude-programs", "eai", "--eval-programs", "30",
         "--out", "built")
    if not (out / "fisher" / "fisher.safetensors").is_file():
        e2wm(out, "fisher", "--model", MODEL, "--n", "32", "--max-len", "128", "--batch-size", "8",
             "--write-samples", "fisher/samples.jsonl", "--out", "fisher/fisher.safetensors")
    if not (out / "train" / "adapter").is_dir():
        e2wm(out, "train", "--model", MODEL, *TRAIN, "--data-dir", "built", "--fisher", "fisher/fisher.safetensors",
             "--resume", "--out", "train")
    if not (out / "mcts_eai.json").is_file():
        judgement = judge(plan_outputs(out / "plans.jsonl"), hash_seed=0, name="e2wm-mcts")
        write_json(out / "mcts_eai.json", {"summary": judgement.summary, "version": judgement.version,
                                           "hash_seed": judgement.hash_seed})
    heldout = ["built/heldout/plan_gen.jsonl", "built/heldout/plan_gen_confusing.jsonl"]
    jobs = [(name, adapter, ["eai:action_sequence"], ["--eai-form", form, *extra])
            for name, (adapter, form, extra) in EAI_RUNS.items()]
    adapters = {"base": None, "shipped": SHIPPED, "trained": "train/adapter"}
    jobs += [(f"plans-heldout-{who}", adapter, heldout, []) for who, adapter in adapters.items()]
    if SHARED_DEV.is_dir():
        dev = [str(path) for path in sorted(SHARED_DEV.glob("plan_gen*.json"))]
        jobs += [(f"plans-dev-{who}", adapter, dev, []) for who, adapter in adapters.items()]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(lambda job: evaluate(out, *job), jobs))
    for name, runs in REPORTS.items():
        if all((out / "eval" / run / "metrics.json").is_file() for run in runs):
            e2wm(out, "report", *[f"eval/{run}" for run in runs], "--title", f"EAI study: {name}",
                 "--out", f"reports/{name}.md")
    summary = {name: json.loads((out / "eval" / name / "metrics.json").read_text())
               for name, *_ in jobs if (out / "eval" / name / "metrics.json").is_file()}
    write_json(out / "summary.json", {"mcts": json.loads((out / "mcts_eai.json").read_text()), "runs": summary})
    if args.publish:
        args.publish.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "summary.json", args.publish / "summary.json")
        shutil.copy(out / "built" / "stats.json", args.publish / "build-stats.json")
        if (out / "reports").is_dir():
            shutil.copytree(out / "reports", args.publish / "reports", dirs_exist_ok=True)
    print(f"done: {out / 'summary.json'}")


if __name__ == "__main__":
    main()
