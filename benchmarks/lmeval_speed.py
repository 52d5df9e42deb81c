"""lm-evaluation-harness against `e2wm eval` on the same items, in one process: wall time and agreement.

Exports the files as lm-eval tasks (`e2wm export lm-eval`), then scores the first --limit items of each file
with e2wm's evaluator (`evaluate_model`: the file's shared prefix once, each item's context once, all options
of an item in one batch, generation stopped at the first newline with a shared prefix cache) and with
lm-eval's `simple_evaluate` on an HFLM wrapping the same loaded model (batch size 1, lm-eval's default),
and prints both scores per task and the ratio of the wall times. Needs lm-eval (the dev extra).

    python benchmarks/lmeval_speed.py --model smollm2-135m --limit 2 --max-new-tokens 48
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch

from e2wm.eval.config import EvalConfig
from e2wm.eval.items import load_eval_files
from e2wm.eval.lm_eval.export import lm_eval_name, write_task_dir
from e2wm.eval.metrics import headline
from e2wm.eval.run import evaluate_model
from e2wm.models import ModelSpec, load_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "eval-dev"
LM_EVAL_METRIC = {"accuracy": "acc,none", "rougeL": "rougeL,none", "lcs": "lcs,none"}


def main() -> None:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=2, help="items per file")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="generation budget of both (e2wm's default "
                        "is 256; a smaller one bounds the time of answers that never reach a newline)")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model(ModelSpec(args.model, device="cpu"))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_task_dir(load_eval_files([args.data]), folder / "tasks")
        tasks = load_eval_files([args.data])
        config = EvalConfig(model=args.model, data=[args.data], out=str(folder / "e2wm"), limit=args.limit,
                            max_new_tokens=args.max_new_tokens)
        start = time.perf_counter()
        ours = evaluate_model(model, tokenizer, tasks, config, identity={})
        ours_s = time.perf_counter() - start
        manager = TaskManager(include_path=str(folder / "tasks"), include_defaults=False,
                              metadata={"tokenizer": tokenizer})
        start = time.perf_counter()
        theirs = simple_evaluate(model=HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1), tasks=["e2wm"],
                                 task_manager=manager, limit=args.limit, log_samples=False,
                                 gen_kwargs={"max_gen_toks": args.max_new_tokens})["results"]
        theirs_s = time.perf_counter() - start
    print(f"model {args.model}; {len(tasks)} files x {args.limit} items; up to {args.max_new_tokens} new tokens; "
          f"torch threads {torch.get_num_threads()}")
    worst = 0.0
    for name, result in ours.items():
        metric, value = headline(result)
        other = theirs[lm_eval_name(name)][LM_EVAL_METRIC[metric]]
        worst = max(worst, abs(value - other))
        print(f"  {name:<26} {metric:<8} e2wm eval {value:.4f}   lm-eval {other:.4f}")
    print(f"largest difference of a task score: {worst:.2e}")
    print(f"wall time: e2wm eval {ours_s:.1f} s, lm-eval {theirs_s:.1f} s: lm-eval takes {theirs_s / ours_s:.2f}x")


if __name__ == "__main__":
    main()
