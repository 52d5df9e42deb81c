"""Does bf16 autocast train and evaluate like float32 on this CPU? (issue 17: decides the CPU default)

The same LoRA run twice, float32 and `--autocast bf16`, with the same seed (the same batches, LoRA
initialisation and dropout masks): the embedded SmolLM2-135M, the released mixture (`--train paper`), batches of
4, at most --max-len tokens, --steps optimiser steps, each process on one thread, both at once. Then each adapter
is evaluated in float32 on the dev slice's QA files (--limit items each), and the float32 adapter once more under
bf16 autocast.

    OMP_NUM_THREADS=1 python benchmarks/bf16_check.py [--steps 100] [--max-len 512] [--limit 40]
        [--out runs/bf16-check] [--publish docs/bf16]

What "matches within noise" means here (summary.md says it with the numbers):
- loss curve: the per-step CE of the two runs is paired (same batches); the mean bf16 - float32 difference has a
  bootstrap interval over steps, and each --window-step window's difference of means is set against the float32
  window mean's own standard error (the batch-to-batch noise a reader of the curve sees);
- QA: the share of items on which the two adapters predict the same option, and the paired accuracy difference
  with its interval and exact McNemar p (e2wm.eval.statistics.paired_bootstrap).
Finished stages are skipped on a rerun (train resumes; an eval with metrics.json is kept).
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from e2wm.eval.report import pyplot, save_figure
from e2wm.eval.statistics import interval, paired_bootstrap, resample_indices
from e2wm.files import read_jsonl, write_atomic, write_json

SHARED = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark"
KINDS = {"fp32": "none", "bf16": "bf16"}
RESAMPLES = 10_000


def e2wm(*args: str) -> None:
    """Run an e2wm command in its own process on one thread; stop on failure."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run([sys.executable, "-m", "e2wm.cli", *args], check=True, env=env)


def train(out: Path, kind: str, args) -> None:
    run = out / f"train-{kind}"
    if (run / "adapter").exists():
        return
    e2wm("train", "--method", "lora", "--train", "paper", "--data-dir", str(SHARED / "train"),
         "--max-steps", str(args.steps), "--max-len", str(args.max_len), "--batch-size", "4", "--seed", "0",
         "--autocast", KINDS[kind], "--log-every", str(args.window), "--device", "cpu", "--out", str(run),
         *(["--resume"] if run.exists() else []))


def evaluate(out: Path, trained: str, autocast: str, args) -> Path:
    run = out / f"eval-{trained}-adapter-{autocast}-eval"
    if not (run / "metrics.json").exists():
        shutil.rmtree(run, ignore_errors=True)  # an interrupted evaluation starts again
        e2wm("eval", "--adapter", str(out / f"train-{trained}" / "adapter"), "--data", str(SHARED / "eval-dev" / "qa"),
             "--limit", str(args.limit), "--autocast", KINDS[autocast], "--device", "cpu",
             "--bootstrap-resamples", "1000", "--out", str(run))
    return run


def predictions(run: Path) -> dict[str, list[dict]]:
    return {path.stem: read_jsonl(path) for path in sorted((run / "predictions").glob("*.jsonl"))}


def compare_curves(out: Path, window: int) -> dict:
    """Per-step CE of both runs (same batches), their paired difference and window-by-window noise check."""
    logs = {kind: [row for row in read_jsonl(out / f"train-{kind}" / "log.jsonl") if "ce" in row] for kind in KINDS}
    ce = {kind: np.array([row["ce"] for row in rows]) for kind, rows in logs.items()}  # (steps,)
    steps = {kind: np.array([row["seconds"] for row in rows]) for kind, rows in logs.items()}  # (steps,) each
    both = min(values.sum() for values in steps.values())  # the runs started together: both ran until then
    seconds = {kind: float(np.median(values[np.cumsum(values) <= both])) for kind, values in steps.items()}
    difference = ce["bf16"] - ce["fp32"]  # (steps,) nats per answer token
    samples = difference[resample_indices(len(difference), RESAMPLES, 0, "ce")].mean(axis=1)  # (R,)
    windows = []
    for start in range(0, len(difference), window):
        fp32, bf16 = ce["fp32"][start:start + window], ce["bf16"][start:start + window]
        noise = float(fp32.std(ddof=1) / np.sqrt(len(fp32))) if len(fp32) > 1 else float("nan")
        windows.append({"steps": f"{start + 1}-{start + len(fp32)}", "fp32": float(fp32.mean()),
                        "bf16": float(bf16.mean()), "difference": float(bf16.mean() - fp32.mean()),
                        "fp32_window_stderr": noise})
    return {"steps": len(difference), "ce": {kind: values.tolist() for kind, values in ce.items()},
            "mean_difference": float(difference.mean()), "mean_difference_ci": list(interval(samples)),
            "max_abs_step_difference": float(np.abs(difference).max()),
            "final_window": windows[-1], "windows": windows,
            "windows_within_noise": sum(abs(w["difference"]) < w["fp32_window_stderr"] for w in windows),
            "median_step_seconds": seconds, "speedup": seconds["fp32"] / seconds["bf16"]}


def compare_predictions(base: Path, other: Path, name: str) -> dict:
    """Item-level agreement and the paired accuracy difference (other - base) per QA file and over all."""
    mine, theirs = predictions(base), predictions(other)
    files, same, a_all, b_all = {}, 0, [], []
    for task, rows in mine.items():
        a = [float(r["prediction"] == r["answer"]) for r in rows]
        b = [float(r["prediction"] == r["answer"]) for r in theirs[task]]
        agree = sum(x["prediction"] == y["prediction"] for x, y in zip(rows, theirs[task]))
        paired = paired_bootstrap(a, b, RESAMPLES, 0, f"{name}/{task}")
        files[task] = {"n": len(rows), "agree": agree, "base_accuracy": float(np.mean(a)),
                       "other_accuracy": float(np.mean(b)), "difference": asdict(paired.difference)}
        same, a_all, b_all = same + agree, a_all + a, b_all + b
    overall = paired_bootstrap(a_all, b_all, RESAMPLES, 0, f"{name}/all")
    return {"files": files, "n": len(a_all), "agree": same, "agreement": same / len(a_all),
            "base_accuracy": float(np.mean(a_all)), "other_accuracy": float(np.mean(b_all)),
            "difference": asdict(overall.difference)}


def plot(curves: dict, path: Path, window: int) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for kind, values in curves["ce"].items():
        smooth = np.convolve(values, np.ones(window) / window, mode="valid")
        axis.plot(np.arange(1, len(values) + 1), values, alpha=0.25, lw=0.8)
        axis.plot(np.arange(window, len(values) + 1), smooth, label=f"{kind} ({window}-step mean)",
                  color=axis.lines[-1].get_color())
    axis.set_xlabel("optimiser step")
    axis.set_ylabel("answer-token CE (nats)")
    axis.legend()
    save_figure(figure, path)


def markdown(summary: dict, args) -> str:
    c = summary["curves"]
    lines = [f"# bf16 autocast against float32 on CPU ({summary['date']})", "",
             f"`{summary['command']}` on {summary['machine']}. LoRA (r 8, q/v) on the embedded SmolLM2-135M, the "
             f"released mixture, batch 4, max {args.max_len} tokens, {c['steps']} steps, seed 0 for both "
             "(the same batches, initialisation and dropout masks), one thread per run, both at once.", "",
             "## Loss curve", "",
             f"- median step while both ran side by side: float32 {c['median_step_seconds']['fp32']:.2f} s, bf16 "
             f"{c['median_step_seconds']['bf16']:.2f} s: **{c['speedup']:.2f}x** (on a machine shared with other "
             "jobs: read the ratio, not the seconds)",
             f"- mean per-step CE difference bf16 - float32: {c['mean_difference']:+.4f} nats "
             f"[{c['mean_difference_ci'][0]:+.4f}, {c['mean_difference_ci'][1]:+.4f}] (95% bootstrap over steps); "
             f"largest single-step difference {c['max_abs_step_difference']:.4f}",
             f"- {c['windows_within_noise']} of {len(c['windows'])} windows of {args.window} steps differ by less "
             "than one standard error of the float32 window mean (the batch-to-batch noise)", "",
             "| steps | float32 CE | bf16 CE | difference | float32 window stderr |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {w['steps']} | {w['fp32']:.4f} | {w['bf16']:.4f} | {w['difference']:+.4f} | "
              f"{w['fp32_window_stderr']:.4f} |" for w in c["windows"]]
    lines += ["", "![CE per step](loss.png)", ""]
    for key, title in (("trained", "QA: the bf16-trained adapter against the float32-trained one (both evaluated "
                                    "in float32)"),
                       ("evaluated", "QA: the float32-trained adapter evaluated under bf16 autocast against float32")):
        q = summary[key]
        d = q["difference"]
        lines += [f"## {title}", "",
                  f"{q['agree']} of {q['n']} predictions agree ({q['agreement']:.1%}); accuracy "
                  f"{q['base_accuracy']:.3f} -> {q['other_accuracy']:.3f}, difference {d['estimate']:+.3f} "
                  f"[{d['low']:+.3f}, {d['high']:+.3f}], p {d['p']:.3g} (exact McNemar)", "",
                  "| file | n | same prediction | float32 | other | difference [95% CI] | p |",
                  "|---|---:|---:|---:|---:|---|---:|"]
        lines += [f"| {task} | {f['n']} | {f['agree']} | {f['base_accuracy']:.3f} | {f['other_accuracy']:.3f} | "
                  f"{f['difference']['estimate']:+.3f} [{f['difference']['low']:+.3f}, {f['difference']['high']:+.3f}]"
                  f" | {f['difference']['p']:.3g} |" for task, f in q["files"].items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--max-len", type=int, default=512)
    parser.add_argument("--limit", type=int, default=40, help="QA items per dev file")
    parser.add_argument("--window", type=int, default=10, help="steps per window of the curve comparison")
    parser.add_argument("--out", type=Path, default=Path("runs/bf16-check"))
    parser.add_argument("--publish", type=Path, help="also write summary.md, summary.json and loss.png here")
    args = parser.parse_args()
    if not SHARED.exists():
        sys.exit(f"needs the released training files and the dev slice in {SHARED}")
    with ThreadPoolExecutor(2) as pool:  # two processes of one thread each
        list(pool.map(lambda kind: train(args.out, kind, args), KINDS))
        runs = list(pool.map(lambda pair: evaluate(args.out, *pair, args),
                             [("fp32", "fp32"), ("bf16", "fp32"), ("fp32", "bf16")]))
    summary = {"date": datetime.date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} when this summary was written)",
               "command": " ".join(["python", *sys.argv]), "curves": compare_curves(args.out, args.window),
               "trained": compare_predictions(runs[0], runs[1], "trained"),
               "evaluated": compare_predictions(runs[0], runs[2], "evaluated")}
    for folder in filter(None, (args.out, args.publish)):
        write_json(folder / "summary.json", summary)
        write_atomic(folder / "summary.md", markdown(summary, args))
        plot(summary["curves"], folder / "loss.png", args.window)
    print(markdown(summary, args))


if __name__ == "__main__":
    main()
