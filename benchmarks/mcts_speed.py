"""MCTS simulations per second: our world (copy-on-branch overlay states, steps in place) against a naive
world that deep-copies the graph dictionary and rebuilds the simulator state at every step, same run.

Both run the same first simulations of the same seeded search (the first ones expand the root and roll
out 25 steps; later ones can be cheap revisits of a solved branch, so a longer run would flatter ours).

    python benchmarks/mcts_speed.py --programs file1004_2 file3_1 file326_1 --simulations 2
"""

import argparse
import copy
import math
import random
import time
from dataclasses import replace

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentGraph, EnvironmentState

from e2wm.experience.goals import Goal, goal_for
from e2wm.experience.mcts import Search, SearchConfig
from e2wm.world.facts import Fact, edge_fact, goal_facts, graph_facts
from e2wm.world.programs import load_program
from e2wm.world.sim import _NAME_EQUIVALENCE, Action, Outcome, World


class NaiveWorld(World):
    """The same simulator with graph dictionaries as states: every step copies and re-parses the graph."""

    def __init__(self, graph: dict):
        super().__init__(graph)
        self.start = copy.deepcopy(graph)
        self.facts: tuple[int, set[Fact]] = (0, set())

    def initial_state(self) -> dict:
        return copy.deepcopy(self.start)

    def clone(self, state: dict) -> dict:
        return copy.deepcopy(state)

    def _rebuild(self, state: dict) -> EnvironmentState:
        return EnvironmentState(EnvironmentGraph(copy.deepcopy(state)), _NAME_EQUIVALENCE, instance_selection=True)

    def can(self, state: dict, action: Action, character: int | None = None) -> bool:
        return super().can(self._rebuild(state), action, character)

    def step(self, state: dict, action: Action, character: int | None = None, in_place: bool = False) -> Outcome:
        outcome = super().step(self._rebuild(state), action, character, in_place=True)
        return Outcome(outcome.success, outcome.state.to_dict() if outcome.success else state, outcome.reason)

    def holds(self, state: dict, fact: Fact) -> bool:
        if self.facts[0] != id(state):  # one graph scan per state, not per fact
            self.facts = (id(state), graph_facts(state))
        facts = self.facts[1]
        return fact in facts or (fact.target is not None and edge_fact(*fact) in facts)


def rate(goal: Goal, simulations: int, seed: int) -> float:
    """Simulations per second of a search that runs exactly `simulations` simulations."""
    config = SearchConfig(simulations=simulations, patience=10**9)
    search = Search(goal, config, random.Random(seed))
    start = time.perf_counter()
    search.run()
    return search.count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", nargs="+", default=["file1004_2", "file3_1", "file326_1"])
    parser.add_argument("--simulations", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("program      ours sims/s  naive sims/s  speed-up")
    ratios = []
    for program_id in args.programs:
        program = load_program(program_id)
        goal = goal_for(World(program.init_graph), goal_facts(program.init_graph, program.final_graph))
        ours = rate(goal, args.simulations, args.seed)
        naive = rate(replace(goal, world=NaiveWorld(program.init_graph)), args.simulations, args.seed)
        ratios.append(ours / naive)
        print(f"{program_id:12s} {ours:11.2f}  {naive:12.3f}  {ours / naive:7.1f}x", flush=True)
    print(f"geometric mean speed-up: {math.prod(ratios) ** (1 / len(ratios)):.1f}x")


if __name__ == "__main__":
    main()
