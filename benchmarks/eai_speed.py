"""EAI action sequencing with the embedded model: seconds per task at several --batch-size, and the projected time of
all 342 tasks (issue 24's target: within 20 minutes on 2 cores), against batch size 1 (the naive way: one prompt
at a time, with the shared-prefix cache) measured in the same run. Each setting is one `e2wm eval` process (model
load, generation and EAI's judge in its child process, all counted); the answers must be the same at every batch
size (greedy decoding of left-padded prompts).

    python benchmarks/eai_speed.py --form e2wm --limit 32 --naive-limit 8 --threads 2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASKS = 342


def run(folder: Path, form: str, limit: int, batch: int, threads: int, model: str) -> tuple[float, list[str]]:
    """Seconds of one `e2wm eval` and its answers."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    out = folder / f"batch{batch}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "e2wm", "eval", "--model", model, "--data", "eai:action_sequence",
                    "--eai-form", form, "--limit", str(limit), "--batch-size", str(batch), "--out", str(out)],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    rows = (out / "predictions" / "eai_action_sequence.jsonl").read_text().splitlines()
    return seconds, [json.loads(row)["prediction"] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--form", default="e2wm", choices=["native", "e2wm", "e2wm-no-goals"])
    parser.add_argument("--limit", type=int, default=32, help="tasks per batched setting (the first ones)")
    parser.add_argument("--naive-limit", type=int, default=8, help="tasks at batch size 1 (slow)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        naive_seconds, naive = run(Path(folder), args.form, args.naive_limit, 1, args.threads, args.model)
        naive_per = naive_seconds / args.naive_limit
        print(f"{args.form} form, {args.threads} threads, {args.model}; per task (model load and judge included)")
        print(f"batch  1: {naive_per:6.2f} s/task over {args.naive_limit:3d} -> {naive_per * TASKS / 60:5.1f} min "
              f"for {TASKS} (the naive way)")
        for batch in args.batch_sizes:
            seconds, answers = run(Path(folder), args.form, args.limit, batch, args.threads, args.model)
            per = seconds / args.limit
            same = sum(a == b for a, b in zip(naive, answers))
            print(f"batch {batch:2d}: {per:6.2f} s/task over {args.limit:3d} -> {per * TASKS / 60:5.1f} min for "
                  f"{TASKS}, {naive_per / per:4.1f}x faster; answers equal to batch 1's: {same}/{len(naive)}")


if __name__ == "__main__":
    main()
