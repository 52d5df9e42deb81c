"""Collection recipes: embodied experiences as JSONL records (docs/formats.md), resumable.

    from e2wm import CollectPlansConfig, collect_plans
    result = collect_plans(CollectPlansConfig(programs=["file3_1"], out="plans.jsonl"))

Records already in the output file are kept and their jobs skipped, so an interrupted run resumes.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from e2wm.experience.config import CollectExploreConfig, CollectPlansConfig
from e2wm.experience.explore import ExploreConfig, explore
from e2wm.experience.mcts import SearchConfig
from e2wm.experience.plans import plan_record
from e2wm.experience.runner import collect, done_keys
from e2wm.world.programs import check_ids, program_ids

logger = logging.getLogger(__name__)


@dataclass
class CollectResult:
    """What a collection run did: records found already there, records appended, and successes (plans)."""

    out: Path
    already: int
    written: int
    successes: int


def collect_plans(config: CollectPlansConfig) -> CollectResult:
    """An MCTS plan record per selected program not yet in config.out; InputError on an unknown program id."""
    out = Path(config.out)
    chosen = program_ids(config.robothow_dir) if config.programs == ["all"] else config.programs
    check_ids(chosen, config.robothow_dir)
    chosen = chosen[: config.max_programs] if config.max_programs else chosen
    done = done_keys(out, "program")
    search = SearchConfig(simulations=config.simulations)
    jobs = [(p, search, config.seed, config.robothow_dir) for p in chosen if p not in done]
    return _run(plan_record, jobs, done, config, "plans")


def collect_explore(config: CollectExploreConfig) -> CollectResult:
    """Exploration episodes 0 .. episodes-1 not yet in config.out; InputError on an unknown scene."""
    if config.scene:
        check_ids([config.scene], config.robothow_dir)
    done = done_keys(Path(config.out), "episode")
    episode = ExploreConfig(steps=config.steps, characters=config.characters)
    jobs = [(e, config.seed, episode, config.scene, config.robothow_dir) for e in range(config.episodes)
            if e not in done]
    return _run(explore, jobs, done, config, "episodes")


def _run(work, jobs: list[tuple], done: set, config: CollectPlansConfig | CollectExploreConfig,
         label: str) -> CollectResult:
    out = Path(config.out)
    if done:
        logger.info("%s: %d records already there, %d to go", out, len(done), len(jobs))
    written, successes = collect(work, jobs, out, config.workers, config.ray, label)
    return CollectResult(out, len(done), written, successes)
