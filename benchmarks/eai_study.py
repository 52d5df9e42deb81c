"""The plans-judged-by-the-world study (issue 24): does embodied training make plans that work, and which errors
does it remove? One command, resumable:

    python benchmarks/eai_study.py --out runs/eai-study [--parallel 2] [--publish docs/study-eai]

1. e2wm's MCTS plans for all 518 bundled programs (`e2wm collect plans`, 50 simulations, the demo's search);
2. training data from them with EAI's 342 programs kept out (`e2wm build --exclude-programs eai`);
3. a Fisher on the base model's samples and an EWC-LoRA adapter trained on that data with the shipped adapter's
   settings (80 steps of 4 examples, lambda 0.05 on the paper-scale Fisher, LoRA r 8, alpha 32, lr 8e-4);
4. the MCTS plans themselves through EAI's evaluator (the ceiling of imitating them), those of `collect plans
   --programs eai --goals eai` too, and the gold programs' own English through the e2wm form (that form's ceiling);
5. EAI action sequencing (342 tasks) for the base model (native prompt with its chat template, e2wm form with and
   without goals), the shipped adapter (trained on the released E2WM files) and the new adapter (e2wm forms; the
   ablation without goals and the native run on the first 100 tasks);
6. plan generation with execution metrics on the build's own held-out plan files (programs outside EAI and outside
   training; every item's program is known, where only 13 of the released dev slice's 158 plan items are);
7. `e2wm report` per prompt form and for the plan files: paired intervals against the base model for the main
   metrics and those beside them (execution metrics, EAI's executability), the EAI section with the 15 LLMs; and
   the goals ablation per model (with against without the goals, over the same tasks: summary.json).

`--measure-only` runs step 4 alone. Every step is skipped when its output exists (collect,
fisher and train resume; eval reuses finished tasks).
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

from e2wm.eval.eai import eai_file, plan_outputs, to_eai_output
from e2wm.eval.statistics import paired_bootstrap
from e2wm.files import read_jsonl, write_json
from e2wm.world.eai_judge import judge

MODEL = "smollm2-135m"
SHIPPED = "smollm2-135m-e2wm"
TRAIN = ["--train", "1 plan_gen 0.7 act_recog", "--method", "ewc-lora", "--lambda", "0.05", "--fisher-scale", "paper",
         "--lr", "0.0008", "--max-steps", "80", "--epochs", "100", "--batch-size", "4", "--max-len", "256",
         "--truncation", "left", "--batching", "length", "--save-every", "10", "--lora-r", "8", "--lora-alpha", "32"]
# the goals ablation and the base model's native run (its 2,500-token prompts and 256-token answers cost ~12 s a task
# on 2 cores) run on the first 100 tasks (86 counted; the runs pair over the same ones): the 2-core budget of one
# session held the study's other runs, not these whole
SUBSET = ["--limit", "100"]
EAI_RUNS = {  # name -> (adapter, form, extra eval options)
    "base-native": (None, "native", ["--chat-template", *SUBSET]),
    "base-e2wm": (None, "e2wm", []),
    "base-e2wm-no-goals": (None, "e2wm-no-goals", SUBSET),
    "shipped-e2wm": (SHIPPED, "e2wm", []),
    "shipped-e2wm-no-goals": (SHIPPED, "e2wm-no-goals", SUBSET),
    "trained-e2wm": ("train/adapter", "e2wm", []),
    "trained-e2wm-no-goals": ("train/adapter", "e2wm-no-goals", SUBSET),
}
REPORTS = {  # report name -> runs, the first the baseline
    "eai-e2wm": ["base-e2wm", "shipped-e2wm", "trained-e2wm"],
    "eai-e2wm-no-goals": ["base-e2wm-no-goals", "shipped-e2wm-no-goals", "trained-e2wm-no-goals"],
    "eai-native": ["base-native"],
    "plans-heldout": ["plans-heldout-base", "plans-heldout-shipped", "plans-heldout-trained"],
}


def e2wm(out: Path, *args: str) -> None:
    """Run `e2wm ARGS` in the study folder with one torch thread; SystemExit naming the command when it fails."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    print(f"[{time.strftime('%H:%M:%S')}] e2wm {' '.join(args)}", flush=True)
    if subprocess.call([sys.executable, "-m", "e2wm", *args], cwd=out, env=env, stdout=subprocess.DEVNULL) != 0:
        raise SystemExit(f"e2wm {' '.join(args)} failed (in {out})")


def judged(outputs: list[dict], name: str) -> dict:
    found = judge(outputs, hash_seed=0, name=name)
    return {"summary": found.summary, "version": found.version, "hash_seed": found.hash_seed}


def measure(out: Path, workers: int) -> None:
    """EAI's evaluator on plans that no model wrote (measured.json): e2wm's MCTS plans (final-graph goals, and
    `--goals eai`) and the gold programs' English through the e2wm form."""
    found = json.loads((out / "measured.json").read_text()) if (out / "measured.json").is_file() else {}
    if "mcts" not in found:
        found["mcts"] = judged(plan_outputs(out / "plans.jsonl"), "e2wm-mcts")
    if "mcts_goals_eai" not in found:
        e2wm(out, "collect", "plans", "--programs", "eai", "--goals", "eai", "--simulations", "50", "--seed", "0",
             "--workers", str(workers), "--out", "mcts-goals-eai/plans.jsonl")
        found["mcts_goals_eai"] = judged(plan_outputs(out / "mcts-goals-eai" / "plans.jsonl"), "e2wm-mcts-eai")
    if "gold_english_e2wm_form" not in found:
        task = eai_file("e2wm")  # the gold program's English is each item's ref
        outputs = [{"identifier": item.source, "llm_output": to_eai_output(item.ref)[0]} for item in task.items]
        found["gold_english_e2wm_form"] = judged(outputs, "gold-english")
    write_json(out / "measured.json", found)


def goals_ablation(out: Path) -> dict:
    """Per model, EAI's task success and executability with the goals told and without, paired over the tasks of the
    no-goals run (the first 100) that the judge counts (`statistics.paired_bootstrap`: 10,000 resamples, seed 1234;
    `e2wm report` pairs runs of one prompt form only)."""
    found = {}
    for who in ("base", "shipped", "trained"):
        folders = [out / "eval" / f"{who}-{form}" for form in ("e2wm", "e2wm-no-goals")]
        if not all((folder / "metrics.json").is_file() for folder in folders):
            continue
        goals, plain = (read_jsonl(folder / "predictions" / "eai_action_sequence.jsonl") for folder in folders)
        kept = [(a, b) for a, b in zip(goals, plain) if a["counted"] and b["counted"]]
        for key in ("success", "executable"):
            pair = paired_bootstrap([float(b[key]) for _, b in kept], [float(a[key]) for a, _ in kept], 10_000, 1234,
                                    f"{who}/{key}")
            d = pair.difference
            found[f"{who} {key}"] = {"tasks": len(kept), "no_goals": pair.base_mean, "goals": pair.other_mean,
                                     "difference": d.estimate, "ci95": [d.low, d.high], "p": d.p}
    return found


def evaluate(out: Path, name: str, adapter: str | None, data: list[str], extra: list[str]) -> None:
    """One `e2wm eval` into eval/NAME; a finished run is reused by eval itself (and re-scored from its saved
    generations when e2wm's scoring changed: `eval.run.METRICS_VERSION`)."""
    e2wm(out, "eval", "--model", MODEL, *(["--adapter", adapter] if adapter else []), "--data", *data,
         "--batch-size", "8", *extra, "--out", f"eval/{name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/eai-study"))
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--publish", type=Path)
    parser.add_argument("--measure-only", action="store_true", help="only the judge's measurements (step 4)")
    parser.add_argument("--existing-runs-only", action="store_true",
                        help="start no eval run that has no folder yet (finished ones are resumed or re-scored)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.measure_only:
        measure(out, args.parallel)
        return
    e2wm(out, "collect", "plans", "--programs", "all", "--simulations", "50", "--seed", "0",
         "--workers", str(args.parallel), "--out", "plans.jsonl")
    if not (out / "built" / "stats.json").is_file():
        e2wm(out, "build", "--plans", "plans.jsonl", "--exclude-programs", "eai", "--eval-programs", "30",
             "--out", "built")
    if not (out / "fisher" / "fisher.safetensors").is_file():
        e2wm(out, "fisher", "--model", MODEL, "--n", "32", "--max-len", "128", "--batch-size", "8",
             "--write-samples", "fisher/samples.jsonl", "--out", "fisher/fisher.safetensors")
    if not (out / "train" / "adapter").is_dir():
        e2wm(out, "train", "--model", MODEL, *TRAIN, "--data-dir", "built", "--fisher", "fisher/fisher.safetensors",
             "--resume", "--out", "train")
    measure(out, args.parallel)
    if args.measure_only:
        return
    heldout = ["built/heldout/plan_gen.jsonl", "built/heldout/plan_gen_confusing.jsonl"]
    jobs = [(name, adapter, ["eai:action_sequence"], ["--eai-form", form, *extra])
            for name, (adapter, form, extra) in EAI_RUNS.items()]
    adapters = {"base": None, "shipped": SHIPPED, "trained": "train/adapter"}
    jobs += [(f"plans-heldout-{who}", adapter, heldout, []) for who, adapter in adapters.items()]
    if args.existing_runs_only:
        jobs = [job for job in jobs if (out / "eval" / job[0] / "config.json").is_file()]
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        list(pool.map(lambda job: evaluate(out, *job), jobs))
    for name, runs in REPORTS.items():  # the runs that exist, the first of them the baseline
        present = [run for run in runs if (out / "eval" / run / "metrics.json").is_file()]
        if present:
            e2wm(out, "report", *[f"eval/{run}" for run in present], "--title", f"EAI study: {name}",
                 "--out", f"reports/{name}.md")
    summary = {name: json.loads((out / "eval" / name / "metrics.json").read_text())
               for name, *_ in jobs if (out / "eval" / name / "metrics.json").is_file()}
    write_json(out / "summary.json", {"measured": json.loads((out / "measured.json").read_text()), "runs": summary,
                                      "goals_ablation": goals_ablation(out)})
    if args.publish:
        args.publish.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "summary.json", args.publish / "summary.json")
        shutil.copy(out / "measured.json", args.publish / "measured.json")
        shutil.copy(out / "built" / "stats.json", args.publish / "build-stats.json")
        if (out / "reports").is_dir():
            shutil.copytree(out / "reports", args.publish / "reports", dirs_exist_ok=True)
    print(f"done: {out / 'summary.json'}")


if __name__ == "__main__":
    main()
