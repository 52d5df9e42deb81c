"""`e2wm collect explore`: random exploration episodes; the job is recipes.collect.collect_explore."""

from e2wm.experience.config import CollectExploreConfig
from e2wm.recipes.collect import collect_explore

CONFIG = CollectExploreConfig


def run(config: CollectExploreConfig) -> None:
    result = collect_explore(config)
    print(f"{result.written} records appended to {result.out}")
