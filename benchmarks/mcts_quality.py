"""Success of the MCTS planner against its simulation budget, on a sample of the bundled programs.

The search does not depend on its budget until it stops, so one search per program (stopped at its first
success, or at the largest budget) gives the whole curve: success@S is the share of programs whose first
success came within S simulations, and seconds@S the mean time a program takes with budget S (no patience).

    python benchmarks/mcts_quality.py --sample 60 --budgets 25 50 100 200 400
"""

import argparse
import random
import time

from e2wm.experience.goals import make_goal
from e2wm.experience.mcts import Search, SearchConfig
from e2wm.world.programs import load_program, program_ids


def first_success(program_id: str, budget: int, seed: int) -> tuple[int | None, list[float], float]:
    """(simulation of the first success or None, elapsed seconds after each simulation, setup seconds)."""
    start = time.perf_counter()
    goal = make_goal(load_program(program_id))
    setup = time.perf_counter() - start
    config = SearchConfig(simulations=budget, patience=0)
    search = Search(goal, config, random.Random(f"{seed}:{program_id}"))
    stamps, begin = [], time.perf_counter()
    result = search.run(lambda count, best: stamps.append(time.perf_counter() - begin))
    return (result.simulations if result.success else None), stamps, setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=60, help="programs, evenly spaced over the sorted ids")
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100, 200, 400])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ids = program_ids()
    sample = [ids[i * len(ids) // args.sample] for i in range(args.sample)]
    budget = max(args.budgets)
    runs = []
    for number, program_id in enumerate(sample, start=1):
        first, stamps, setup = first_success(program_id, budget, args.seed)
        runs.append((first, stamps, setup))
        print(f"[{number}/{len(sample)}] {program_id}: first success at {first}, {stamps[-1] if stamps else 0:.1f}s",
              flush=True)
    print(f"\n{len(sample)} programs, seed {args.seed}")
    print("simulations  success  mean s/program")
    for limit in sorted(args.budgets):
        solved = sum(first is not None and first <= limit for first, _, _ in runs)
        seconds = [setup + (stamps[min(first or limit, limit, len(stamps)) - 1] if stamps else 0.0)
                   for first, stamps, setup in runs]
        print(f"{limit:11d}  {solved / len(runs):6.1%}  {sum(seconds) / len(seconds):14.2f}")


if __name__ == "__main__":
    main()
