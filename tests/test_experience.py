"""MCTS plans for hand-made goals, exploration records against the simulator, resumable collection."""

import json
import random

import pytest

from e2wm.cli import main
from e2wm.experience.explore import ExploreConfig, add_characters, explore, place
from e2wm.experience.goals import goal_for
from e2wm.experience.mcts import FIRST, STEP, SearchConfig, plan
from e2wm.experience.runner import done_keys
from e2wm.world.facts import Fact, graph_facts
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


def _ids(script: str) -> tuple[int, ...]:
    return tuple(int(part.split(")")[0]) for part in script.split("(")[1:])


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


def test_collect_plans_resumes(tmp_path, capsys):
    out = tmp_path / "plans.jsonl"
    main(["collect", "plans", "--programs", "file3_1", "file15_2", "--out", str(out), "--workers", "1",
          "--simulations", "40"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["program"] for r in records] == ["file3_1", "file15_2"]
    first = records[0]
    assert first["success"] and first["achieved"] == first["goal"] and len(first["plan"]) == len(first["plan_text"])
    assert first["activity"] == "Relax on sofa" and first["seed"] == 0 and first["items"]
    with out.open("a") as handle:
        handle.write('{"program": "half a li')  # a kill mid-append
    main(["collect", "plans", "--programs", "file3_1", "file15_2", "file153_2", "--out", str(out), "--workers", "1",
          "--simulations", "40"])
    assert "2 records already there, 1 to go" in capsys.readouterr().out
    assert [json.loads(line)["program"] for line in out.read_text().splitlines()] == ["file3_1", "file15_2",
                                                                                      "file153_2"]
    assert done_keys(out, "program") == {"file3_1", "file15_2", "file153_2"}


def test_collect_explore_in_processes(tmp_path):
    out = tmp_path / "episodes.jsonl"
    main(["collect", "explore", "--episodes", "2", "--steps", "5", "--out", str(out), "--workers", "2",
          "--seed", "4"])
    records = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r["episode"])
    assert [r["episode"] for r in records] == [0, 1]
    assert records[1] == explore(1, 4, ExploreConfig(steps=5, characters=2))


def test_collect_on_ray(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'e2wm[ray]')")
    out = tmp_path / "ray.jsonl"
    main(["collect", "plans", "--programs", "file3_1", "--out", str(out), "--ray", "--simulations", "20"])
    assert json.loads(out.read_text())["program"] == "file3_1"


def test_bad_collect_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"program": "file3_1"}\nnot json\n')
    for argv in (["collect", "plans", "--out", str(bad)], ["collect", "explore", "--scene", "nope", "--out", "x"],
                 ["collect", "explore", "--steps", "0", "--out", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert "bad.jsonl:2: bad JSON" in err[0] and "unknown program id 'nope'" in err[1] and "--steps" in err[2]


def test_ray_missing_is_a_clear_error(tmp_path, capsys):
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Ray is installed: test_collect_on_ray covers the Ray path")
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "plans", "--programs", "file3_1", "--out", str(tmp_path / "x.jsonl"), "--ray"])
    assert exit_info.value.code == 2 and "--ray needs Ray: pip install 'e2wm[ray]'" in capsys.readouterr().err
