"""The demo beside other jobs: its CPU time quiet and under a competing load (issue 23: within 1.5x).

Runs `e2wm demo` (sized by --sizes; the same sizes every run) into a fresh folder: quiet, then beside --load
processes that spin in Python, started after the demo has begun (as other jobs arrive on a machine where the
demo chose its threads while idle). With --naive it also runs the way before this fix under the same load:
OpenMP threads that spin while they wait (OMP_WAIT_POLICY left to libgomp's default) and the thread count
fixed at the start (--threads = the cores). Printed: CPU seconds (the demo and its workers) and wall seconds,
per stage too, and the ratios loaded/quiet. Results go to docs/benchmarks.md by hand.

    python benchmarks/demo_load.py [--load 6] [--naive] [--sizes "--num-programs 20 ..."]
"""

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = ("--num-programs 20 --simulations 20 --episodes 30 --eval-episodes 15 --eval-programs 6 --fisher-n 8 "
         "--train-steps 6 --limit 4 --max-new-tokens 48")


def run_demo(out: Path, sizes: str, load: int, env: dict, extra: list[str]) -> dict:
    """One demo run with `load` spinning processes started 2 s after it; its CPU and wall seconds, and its
    timings.json (per stage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    demo = subprocess.Popen([sys.executable, "-m", "e2wm", "demo", "--out", str(out), *shlex.split(sizes), *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spinners = []
    try:
        if load:
            time.sleep(2)
            spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
        if demo.wait() != 0:
            raise SystemExit(f"the demo failed (exit {demo.returncode}) in {out}")
    finally:
        for spinner in spinners:
            spinner.kill()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the demo's (reaped by wait), not yet the spinners'
    for spinner in spinners:
        spinner.wait()
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
            "stages": json.loads((out / "timings.json").read_text())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=6, help="competing busy processes")
    parser.add_argument("--sizes", default=SIZES, help="the demo's size options")
    parser.add_argument("--naive", action="store_true", help="also the way before: spinning waits, threads fixed")
    args = parser.parse_args()
    base = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base.pop("OMP_WAIT_POLICY", None)
    base.pop("OMP_NUM_THREADS", None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ways = [("quiet", 0, base, []), ("loaded", args.load, base, [])]
    if args.naive:  # an empty value: libgomp's default (spin, then sleep); `e2wm` leaves a set variable alone
        ways.append(("loaded, naive", args.load, {**base, "OMP_WAIT_POLICY": ""}, ["--threads", str(cores)]))
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, load, env, extra in ways:
            results[label] = run_demo(Path(folder) / label.replace(", ", "-"), args.sizes, load, env, extra)
            r = results[label]
            stages = r["stages"]["cpu_seconds"]
            print(f"{label:14s}: {r['cpu_s']:7.1f} s CPU {r['wall_s']:7.1f} s wall; the demo's own count per stage "
                  f"(sum {sum(stages.values()):.0f} s): " + ", ".join(f"{k} {v:.0f}" for k, v in stages.items()),
                  flush=True)
    quiet = results["quiet"]
    for label in results:
        if label != "quiet":
            print(f"{label}: CPU {results[label]['cpu_s'] / quiet['cpu_s']:.2f}x quiet's, wall "
                  f"{results[label]['wall_s'] / quiet['wall_s']:.2f}x")
    print(json.dumps({"load": args.load, "cores": cores, "sizes": args.sizes,
                      "results": {k: {"cpu_s": v["cpu_s"], "wall_s": v["wall_s"]} for k, v in results.items()}}))


if __name__ == "__main__":
    main()
