"""`e2wm collect plans|explore`: embodied experiences as JSONL records (docs/formats.md), resumable."""

from pathlib import Path

from e2wm.errors import InputError
from e2wm.experience.explore import ExploreConfig, explore
from e2wm.experience.mcts import SearchConfig
from e2wm.experience.plans import plan_record
from e2wm.experience.runner import collect, default_workers, done_keys
from e2wm.world.programs import check_ids, program_ids


def add_arguments(parser) -> None:
    parser.add_argument("mode", choices=["plans", "explore"], help="MCTS plans for programs, or random exploration")
    parser.add_argument("--out", required=True, help="JSONL file; records already in it are kept and skipped")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes (default: all cores)")
    parser.add_argument("--robothow-dir", help="a full RobotHow directory (same layout) instead of the bundled one")
    parser.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="run jobs as Ray tasks (extra e2wm[ray]) on the cluster at ADDRESS, or locally")
    plans = parser.add_argument_group("plans")
    plans.add_argument("--programs", nargs="+", default=["all"], help="program ids, or 'all' (default)")
    plans.add_argument("--limit", type=int, help="only the first N of the selected programs")
    plans.add_argument("--simulations", type=int, default=SearchConfig.simulations, help="MCTS budget per program")
    explore_group = parser.add_argument_group("explore")
    explore_group.add_argument("--episodes", type=int, default=100)
    explore_group.add_argument("--characters", type=int, default=ExploreConfig.characters)
    explore_group.add_argument("--steps", type=int, default=ExploreConfig.steps)
    explore_group.add_argument("--scene", help="program id whose initial graph is the scene (default: random)")


def run(args) -> None:
    for option in ("limit", "simulations", "workers", "episodes", "characters", "steps"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise InputError(f"--{option} must be at least 1, got {value}")
    out = Path(args.out)
    if args.mode == "plans":
        chosen = program_ids(args.robothow_dir) if args.programs == ["all"] else args.programs
        check_ids(chosen, args.robothow_dir)
        chosen = chosen[: args.limit] if args.limit else chosen
        done = done_keys(out, "program")
        config = SearchConfig(simulations=args.simulations)
        jobs = [(p, config, args.seed, args.robothow_dir) for p in chosen if p not in done]
        work, label = plan_record, "plans"
    else:
        if args.scene:
            check_ids([args.scene], args.robothow_dir)
        done = done_keys(out, "episode")
        config = ExploreConfig(steps=args.steps, characters=args.characters)
        jobs = [(e, args.seed, config, args.scene, args.robothow_dir) for e in range(args.episodes) if e not in done]
        work, label = explore, "episodes"
    if done:
        print(f"{out}: {len(done)} records already there, {len(jobs)} to go")
    written, successes = collect(work, jobs, out, args.workers, args.ray, label)
    summary = f"{written} records appended to {out}"
    if args.mode == "plans" and written:
        summary += f"; success {successes}/{written} ({successes / written:.0%})"
    print(summary)

