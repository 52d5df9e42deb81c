"""Plan execution speed: the time to execute a plan (`e2wm.eval.execution`) against the time to generate it.

Execution per item, cold (the program's graphs read and its World built, as for the first item of a program) and
warm (the scene cached, as for the other items of a program), on the released dev plan-generation items that match
a bundled program (their refs as the plans) and on items as e2wm's own files make them (source = a program id;
every --stride-th bundled program, its own English as the plan). Then, for scale, the embedded model generates the
plans of --gen-limit matching released items (greedy, stop at the newline, as `e2wm eval` does), and those plans
are executed: the issue's target is that execution adds under 10% to generation.

    python benchmarks/plan_execution.py --gen-limit 3
"""

import argparse
import statistics
import time
from pathlib import Path

import torch

from e2wm.eval import execution, generation
from e2wm.eval.items import GenItem, read_eval_file
from e2wm.models import ModelSpec, context_length, load_model
from e2wm.world.programs import load_program, plan_english, program_ids

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "eval-dev" / "gen"


def timed_rows(items: list[GenItem], plans: list[str]) -> tuple[list[dict | None], list[float], list[float]]:
    """Execute each item's plan with an empty scene cache (cold) and again with it filled (warm); seconds each."""
    execution.program_scene.cache_clear()
    cold, warm, rows = [], [], []
    for item, plan in zip(items, plans):
        start = time.perf_counter()
        rows.append(execution.execute_item(item, plan))
        cold.append(time.perf_counter() - start)
    for item, plan in zip(items, plans):
        start = time.perf_counter()
        execution.execute_item(item, plan)
        warm.append(time.perf_counter() - start)
    return rows, cold, warm


def describe(label: str, rows: list[dict], cold: list[float], warm: list[float]) -> None:
    print(f"{label}: {len(rows)} items, executable {sum(r['executable'] for r in rows)}, "
          f"goals reached mean {statistics.mean(r['goals_reached'] or 0 for r in rows):.3f}; per item cold "
          f"mean {statistics.mean(cold) * 1e3:.1f} ms (max {max(cold) * 1e3:.1f}), warm mean "
          f"{statistics.mean(warm) * 1e3:.2f} ms (max {max(warm) * 1e3:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of the released plan_gen*.json files")
    parser.add_argument("--stride", type=int, default=10, help="every Nth bundled program as an e2wm item")
    parser.add_argument("--gen-limit", type=int, default=3, help="matching released items the model plans (0: none)")
    args = parser.parse_args()

    start = time.perf_counter()
    execution.english_index()
    print(f"English index of the bundled programs: {time.perf_counter() - start:.3f} s (once per process)")

    released = [item for path in sorted(Path(args.data).glob("plan_gen*.json")) for item in read_eval_file(path).items]
    matched = [item for item in released if execution.find_program(item) is not None]
    print(f"released dev items: {len(matched)} of {len(released)} match a bundled program "
          f"({len(matched) / max(len(released), 1):.1%})")
    if matched:
        rows, cold, warm = timed_rows(matched, [item.ref for item in matched])
        describe("released, refs as plans", rows, cold, warm)

    ids = program_ids()[:: args.stride]
    own = [GenItem("", "", None, program_id) for program_id in ids]
    rows, cold, warm = timed_rows(own, [plan_english(load_program(program_id).steps) for program_id in ids])
    describe(f"e2wm items (every {args.stride}th program, own English)", rows, cold, warm)

    if args.gen_limit and matched:
        torch.manual_seed(0)
        model, tokenizer = load_model(ModelSpec(args.model))
        items = matched[: args.gen_limit]
        prompts, _ = generation.encode_prompts(tokenizer, [item.input for item in items],
                                               context_length(model, tokenizer), 256)
        seconds, plans = [], []
        for prompt in prompts:
            start = time.perf_counter()
            (text,) = generation.generate(model, tokenizer, [prompt], max_new_tokens=256)
            seconds.append(time.perf_counter() - start)
            plans.append(generation.first_line(text))
        rows, cold, warm = timed_rows(items, plans)
        describe(f"{args.model} plans", rows, cold, warm)
        share = statistics.mean(cold) / statistics.mean(seconds)
        print(f"generation with {args.model} (torch threads {torch.get_num_threads()}): mean "
              f"{statistics.mean(seconds):.2f} s per plan; execution cold adds {share:.1%}, warm "
              f"{statistics.mean(warm) / statistics.mean(seconds):.2%}")
        for plan, row in zip(plans, rows):
            print(f"  {row['program']}: {row['steps']} steps, executed {row['steps_executed']:.2f}, "
                  f"goals {row['goals_reached']}, first failure {row['first_failure']}; plan: {plan[:100]!r}")


if __name__ == "__main__":
    main()
