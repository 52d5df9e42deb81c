"""Exploration records: reproducible, and in agreement with the simulator step by step."""

import json
import random

import pytest

from e2wm.experience.explore import ExploreConfig, add_characters, explore, place
from e2wm.world.facts import graph_facts
from e2wm.world.programs import load_program
from e2wm.world.sim import Action, World


def _ids(script: str) -> tuple[int, ...]:
    return tuple(int(part.split(")")[0]) for part in script.split("(")[1:])


@pytest.fixture(scope="module")
def episode():
    return explore(0, 7, ExploreConfig(steps=40, characters=3), scene="file3_1")


def _episode_world() -> World:
    """The scene of the fixture episode: characters are placed with the episode's own random stream."""
    return World(add_characters(load_program("file3_1").init_graph, 3, random.Random("7:0")))


def test_exploration_is_reproducible(episode):
    assert explore(0, 7, ExploreConfig(steps=40, characters=3), scene="file3_1") == episode
    assert explore(0, 8, ExploreConfig(steps=40, characters=3), scene="file3_1")["steps"] != episode["steps"]


def test_exploration_agrees_with_the_simulator(episode):
    assert len(episode["characters"]) == 3 and len(episode["steps"]) == 40
    assert len({step["actor"] for step in episode["steps"]}) == 3
    assert any(step["action"].startswith("[GRAB]") for step in episode["steps"])
    import random

    from e2wm.experience.explore import add_characters

    rng = random.Random("7:0")  # the episode's own stream: characters are placed with it
    world = World(add_characters(load_program("file3_1").init_graph, 3, rng))
    state = world.initial_state()
    places = {int(i): p for i, p in episode["initial"].items()}
    for step in episode["steps"]:
        verb = step["action"][1:step["action"].index("]")]
        outcome = world.step(state, Action(verb, _ids(step["action"])), step["actor"], in_place=True)
        assert outcome.success == step["success"]
        held = {int(i) for i in step["state"] if step["state"][i]["holder"] == step["actor"]}
        for node, where in step["state"].items():  # every move comes from this action or the actor's hands
            assert int(node) in _ids(step["action"]) or int(node) in held or places[int(node)]["holder"]
            assert place(world, state, int(node)) == where
            places[int(node)] = where
    assert {i: place(world, state, int(i)) for i in episode["final"]} == episode["final"]
    ids = set(episode["objects"]) | set(episode["rooms"])
    for where in [*episode["initial"].values(), *episode["final"].values()]:
        assert {where["on"], where["inside"]} - {None} <= ids


def test_resimulating_gives_the_same_final_graph(episode):
    def final_graph(record):
        world = _episode_world()
        state = world.initial_state()
        for step in record["steps"]:
            verb = step["action"][1:step["action"].index("]")]
            world.step(state, Action(verb, _ids(step["action"])), step["actor"], in_place=True)
        return graph_facts(state.to_dict())

    assert final_graph(episode) == final_graph(json.loads(json.dumps(episode)))
