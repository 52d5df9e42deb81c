"""Configs of the collection jobs: MCTS plans toward RobotHow goals, and random exploration episodes."""

from dataclasses import dataclass

from e2wm.config import option
from e2wm.experience.explore import ExploreConfig
from e2wm.experience.goals import KINDS
from e2wm.experience.mcts import SearchConfig
from e2wm.experience.runner import default_workers
from e2wm.world.config import RobotHowOptions


@dataclass(kw_only=True)
class CollectOptions(RobotHowOptions):
    """What both collection jobs share: output, seed, and where the jobs run."""

    out: str = option(help="JSONL file; records already in it are kept and skipped", result=False)
    seed: int = option(0, "seed of the search or the episodes")
    workers: int = option(default_factory=default_workers, help="processes (default: all cores)", minimum=1,
                          result=False)
    ray: str | None = option(None, "run jobs as Ray tasks (extra e2wm[ray]) on the cluster at ADDRESS, or locally "
                             "when given alone (default: local processes)", const="local", metavar="ADDRESS",
                             result=False)


@dataclass(kw_only=True)
class CollectPlansConfig(CollectOptions):
    """`e2wm collect plans` / `e2wm.collect_plans`: an MCTS plan record per RobotHow program."""

    programs: list[str] = option(default_factory=lambda: ["all"], help="program ids, 'all', or 'eai' (the 342 "
                                 "programs of EAI's action-sequencing tasks, in EAI's task order)")
    max_programs: int | None = option(None, "only the first N of the selected programs (default: all of them)",
                                      minimum=1)
    simulations: int = option(SearchConfig.simulations, "MCTS budget per program", minimum=1)
    goals: str = option(KINDS[0], "what a plan aims at: final-graph (the facts a program's final graph gains) or eai "
                        "(for the 342 programs of EAI's action-sequencing tasks, their node, edge and action goals, "
                        "each verb once as EAI reads a plan; other programs keep final-graph)", choices=KINDS)


@dataclass(kw_only=True)
class CollectExploreConfig(CollectOptions):
    """`e2wm collect explore` / `e2wm.collect_explore`: random exploration episodes (agents moving objects)."""

    episodes: int = option(100, "number of episodes", minimum=1)
    characters: int = option(ExploreConfig.characters, "agents acting in each episode", minimum=1)
    steps: int = option(ExploreConfig.steps, "actions tried per episode", minimum=1)
    scene: str | None = option(None, "program id whose initial graph is the scene (default: random)")
