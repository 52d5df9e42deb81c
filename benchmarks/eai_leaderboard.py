"""EAI's action-sequencing leaderboard: the 15 LLM outputs shipped with virtualhome-eval, scored by EAI's own
evaluator through e2wm's judge (each model in its own call, cached), and the evaluator's own variation with
Python's hash seed.

    python benchmarks/eai_leaderboard.py --cache runs/eai-leaderboard [--check] [--seeds 0 1 2 3 4]

--check also runs the evaluator alone (no wrappers, one model per call, same hash seed) on every model and prints
the largest difference from the judge's rates (the issue's target: equal to 0.01). Rates are percent of the 305
counted tasks (the evaluator drops the 37 whose gold program fails its own check).
"""

import argparse
import json
import time
from pathlib import Path

from e2wm.world.eai_judge import judge, leaderboard, run_evaluator, shipped_outputs

SEED_MODEL = "gpt-4o-2024-05-13"
COLUMNS = ("success", "exec", "parse", "halluc", "argnum", "order", "missing", "afford", "addit", "s/item")


def row(entry: dict) -> list[float]:
    """The table's numbers of one model's leaderboard entry."""
    goal, trajectory = entry["summary"]["goal_evaluation"], entry["summary"]["trajectory_evaluation"]
    grammar, runtime = trajectory["grammar_error"], trajectory["runtime_error"]
    return [goal["task_success_rate"], trajectory["execution_success_rate"], grammar["parsing"],
            grammar["hallucination"], grammar["predicate_argument_number"], runtime["wrong_order"],
            runtime["missing_step"], runtime["affordance_error"], runtime["additional_step"],
            entry["seconds_per_item"]]


def largest_difference(a, b) -> float:
    """The largest absolute difference between the numbers of two nested summaries."""
    if isinstance(a, dict):
        return max(largest_difference(a[key], b[key]) for key in a)
    return abs(a - b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("runs/eai-leaderboard"))
    parser.add_argument("--hash-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--check", action="store_true", help="compare every model with the evaluator alone")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4],
                        help=f"hash seeds for {SEED_MODEL}'s task success")
    args = parser.parse_args()

    start = time.perf_counter()
    board = leaderboard(args.cache, args.hash_seed, args.workers)
    print(f"leaderboard ({len(board)} models, hash seed {args.hash_seed}, {time.perf_counter() - start:.0f} s "
          "with the cache)")
    print(f"{'model':34s}" + "".join(f"{c:>8s}" for c in COLUMNS))
    for name, entry in sorted(board.items(), key=lambda item: -item[1]["summary"]["goal_evaluation"]
                              ["task_success_rate"]):
        values = row(entry)
        print(f"{name:34s}" + "".join(f"{v:8.2f}" for v in values[:-1]) + f"{values[-1]:8.3f}")

    if args.check:
        outputs = {name: json.loads(path.read_text(encoding="utf-8")) for name, path in shipped_outputs().items()}
        worst = 0.0
        for name in sorted(board):
            alone = run_evaluator({name: outputs[name]}, args.hash_seed)[name]
            difference = largest_difference(alone, board[name]["summary"])
            worst = max(worst, difference)
            print(f"check {name:34s} largest difference from the evaluator alone: {difference:.6f}")
        print(f"check: all {len(board)} models equal the evaluator alone to {worst:.6f} (target 0.01)")

    if args.seeds:
        outputs = json.loads(shipped_outputs()[SEED_MODEL].read_text(encoding="utf-8"))
        rates = {seed: judge(outputs, seed, SEED_MODEL).summary["goal_evaluation"]["task_success_rate"]
                 for seed in args.seeds}
        print(f"{SEED_MODEL} task success by PYTHONHASHSEED: "
              + ", ".join(f"{seed}: {rate:.4f}" for seed, rate in rates.items()))


if __name__ == "__main__":
    main()
