"""MCTS plans for hand-made goals: solved, accepted by the simulator, reproducible."""

import json

import pytest

from e2wm.experience.goals import goal_for
from e2wm.experience.mcts import FIRST, STEP, SearchConfig, plan
from e2wm.world.facts import Fact
from e2wm.world.programs import load_program
from e2wm.world.sim import Action, World

CUP, CUPBOARD, FREEZER, TV = 2002, 229, 289, 410


@pytest.fixture(scope="module")
def world():
    """The scene of file3_1 with the tv switched off, so that switching it on is a goal."""
    graph = json.loads(json.dumps(load_program("file3_1").init_graph))
    tv = next(node for node in graph["nodes"] if node["id"] == TV)
    tv["states"] = ["PLUGGED_IN", "OFF", "CLEAN"]
    return World(graph)


@pytest.mark.parametrize("facts", [
    [Fact(FREEZER, "OPEN")],
    [Fact(CUP, "INSIDE", CUPBOARD)],
    [Fact(TV, "ON")],
], ids=["open the fridge", "put a cup in a cabinet", "switch on the tv"])
def test_mcts_solves_small_goals(world, facts):
    assert world.names[TV] == "television" and world.names[CUP] == "cup"
    result = plan(goal_for(world, facts), SearchConfig(simulations=50), seed=0)
    assert result.success and 1 <= len(result.actions) <= 6
    state = world.initial_state()  # the simulator accepts the plan and it reaches the goal
    for action in result.actions:
        assert world.step(state, action, in_place=True).success
    assert all(world.holds(state, fact) for fact in facts)
    assert result.value == pytest.approx(sum(  # +2 per fact, -0.1 per step, +5 at the end, discounted
        0.99 ** t * (-STEP + (FIRST * len(facts) + 5 if t == len(result.actions) - 1 else 0))
        for t in range(len(result.actions))))


def test_cup_plan_opens_the_cupboard(world):
    result = plan(goal_for(world, [Fact(CUP, "INSIDE", CUPBOARD)]), SearchConfig(simulations=50), seed=0)
    verbs = [action.verb for action in result.actions]
    assert "OPEN" in verbs and verbs[-1] == "PUTIN" and result.actions[-1] == Action("PUTIN", (CUP, CUPBOARD))


def test_same_seed_same_plan(world):
    goal = goal_for(world, [Fact(FREEZER, "OPEN"), Fact(TV, "ON")])
    first, second = (plan(goal, SearchConfig(simulations=20), seed=3) for _ in range(2))
    assert first.actions == second.actions and first.simulations == second.simulations
