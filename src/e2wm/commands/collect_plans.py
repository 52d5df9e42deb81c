"""`e2wm collect plans`: MCTS plan records for RobotHow programs; the job is recipes.collect.collect_plans."""

from e2wm.experience.config import CollectPlansConfig
from e2wm.recipes.collect import collect_plans

CONFIG = CollectPlansConfig


def run(config: CollectPlansConfig) -> None:
    result = collect_plans(config)
    summary = f"{result.written} records appended to {result.out}"
    if result.written:
        summary += f"; success {result.successes}/{result.written} ({result.successes / result.written:.0%})"
    print(summary)
