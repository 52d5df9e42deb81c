"""MCTS toward the Embodied Agent Interface's goals (`collect plans --goals eai`): the goal of an EAI task, the
action-goal reward in order, a search that meets them, and the default (final-graph) planning unchanged."""

import dataclasses
import json
import random

import pytest
from virtualhome_eval.simulation.evolving_graph.eval_utils import valid_actions

from e2wm.cli import main
from e2wm.errors import InputError
from e2wm.experience.goals import Trace, eai_goal, judged_objects
from e2wm.experience.mcts import DONE, FIRST, STEP, Search, SearchConfig, plan
from e2wm.experience.plans import plan_record, program_goal
from e2wm.world import eai_tasks
from e2wm.world.programs import program_ids
from e2wm.world.sim import Action

COMPUTER, KEYBOARD, DESK = 417, 415, 357


def task(identifier: str) -> eai_tasks.EAITask:
    return next(t for t in eai_tasks.load_tasks() if t.identifier == identifier)


def test_the_goal_of_an_eai_task_is_its_eai_goals():
    bed = task("181_1")  # 'Go to sleep': the character lies on the bed, then SLEEP
    goal = eai_goal(bed)
    assert goal.kind == "eai" and goal.once
    assert goal.facts == [*bed.node_goals, *bed.edge_goals] and len(goal.facts) == 2
    assert goal.action_goals == (frozenset({"SLEEP"}),) and goal.action_names == ("SLEEP",)
    # only what EAI's evaluator accepts: its verbs, and objects by the names its prompt lists (rooms too)
    named = set(judged_objects(bed, goal.world).values())
    assert goal.candidates and all(a.verb in valid_actions and set(a.args) <= named for a in goal.candidates)
    assert Action("SLEEP") in goal.candidates and not any(a.verb in ("PLUGIN", "PLUGOUT") for a in goal.candidates)
    assert {"WALK", "RUN", "FIND", "LIE"} <= {a.verb for a in goal.candidates}
    typing = eai_goal(task("1003_2"))  # action goals only: TYPE, then SWITCHOFF
    assert typing.facts == [] and typing.action_goals == (frozenset({"TYPE"}), frozenset({"SWITCHOFF"}))
    assert Action("TYPE", (KEYBOARD,)) in typing.candidates
    alternatives = eai_goal(task("231_2")).action_goals  # 'WASH|RINSE|SCRUB|WIPE' accepts any of them
    assert alternatives == (frozenset({"GRAB"}), frozenset({"WASH", "RINSE", "SCRUB", "WIPE"}))


def test_a_listed_name_resolves_to_the_node_eai_executes():
    listed = task("1003_2")
    world = eai_goal(listed).world
    named = judged_objects(listed, world)
    assert named["computer"] == COMPUTER and named["keyboard"] == KEYBOARD
    assert all(world.names[node] == name for name, node in named.items())


def test_action_goals_count_in_order_with_alternatives():
    goal = dataclasses.replace(eai_goal(task("1003_2")),
                               action_goals=(frozenset({"TYPE", "TOUCH"}), frozenset({"SWITCHOFF"})))
    off, touch = Action("SWITCHOFF", (COMPUTER,)), Action("TOUCH", (KEYBOARD,))
    assert goal.after(Trace(), off).met == 0  # SWITCHOFF before TYPE or TOUCH meets nothing
    assert goal.after(Trace(), touch).met == 1 and goal.after(goal.after(Trace(), touch), off).met == 2
    assert not goal.allows(goal.after(Trace(), touch), Action("TOUCH", (COMPUTER,)))  # each verb once
    assert goal.allows(Trace(), touch) and goal.actions_done(Trace(2)) and not goal.actions_done(Trace(1))

    search = Search(eai_goal(task("1003_2")), SearchConfig(), random.Random(0))
    search.count = 0  # (replay reports the simulations run so far)
    run, on, typed = Action("RUN", (DESK,)), Action("SWITCHON", (COMPUTER,)), Action("TYPE", (KEYBOARD,))
    done = search.replay([run, typed, on, off])  # TYPE then SWITCHOFF: +2 each, +5 at the end
    assert done.success and done.met == 2
    assert done.value == pytest.approx(-STEP + 0.99 * (FIRST - STEP) - 0.99**2 * STEP
                                       + 0.99**3 * (FIRST + DONE - STEP))
    wrong = search.replay([run, on, off, typed])  # SWITCHOFF before TYPE: only TYPE counts, no end bonus
    assert wrong is not None and not wrong.success and wrong.met == 1
    assert wrong.value == pytest.approx(-STEP - 0.99 * STEP - 0.99**2 * STEP + 0.99**3 * (FIRST - STEP))
    assert search.replay([run, typed, Action("TYPE", (COMPUTER,))]) is None  # a second TYPE is refused


@pytest.mark.parametrize("identifier", ["181_1", "1003_2"])
def test_a_small_search_meets_the_facts_and_the_action_goals(identifier):
    goal = eai_goal(task(identifier))
    result = plan(goal, SearchConfig(simulations=50), seed=f"0:file{identifier}")
    assert result.success and result.met == len(goal.action_goals) and len(result.actions) <= 5
    verbs = [action.verb for action in result.actions]
    assert len(set(verbs)) == len(verbs)  # survives EAI's reading of a plan as a JSON object keyed by verb
    state, met = goal.world.initial_state(), Trace()
    for action in result.actions:  # the simulator accepts it, the facts hold and the action goals come in order
        assert goal.world.step(state, action, in_place=True).success
        met = goal.after(met, action)
    assert all(goal.world.holds(state, fact) for fact in goal.facts) and goal.actions_done(met)


def test_the_default_plans_as_before():
    record = plan_record("file6_1", SearchConfig(simulations=50), 0)
    assert record["goals"] == "final-graph" and "action_goals" not in record
    assert record["plan"] == ["[WALK] <couch> (352)", "[FIND] <television> (410)", "[SIT] <couch> (352)",
                              "[SWITCHON] <television> (410)"]
    assert record["return"] == 18.259 and record["simulations"] == 45 and record["success"]
    eai = plan_record("file6_1", SearchConfig(simulations=50), 0, goals="eai")
    assert eai["goals"] == "eai" and eai["action_goals"] == list(task("6_1").action_goals)
    outside = next(p for p in program_ids() if p not in set(eai_tasks.program_ids()))
    assert program_goal(outside, "eai").kind == "final-graph"  # no EAI task: the final graph's facts
    with pytest.raises(InputError, match="--goals 'nope'"):
        program_goal("file6_1", "nope")


def test_the_goals_are_recorded_and_never_mixed(tmp_path, capsys):
    out = tmp_path / "plans.jsonl"
    main(["collect", "plans", "--programs", "file1003_2", "--goals", "eai", "--out", str(out), "--workers", "1",
          "--simulations", "30"])
    record = json.loads(out.read_text())
    assert record["goals"] == "eai" and record["action_goals"] == ["TYPE", "SWITCHOFF"]
    assert record["action_goals_met"] == 2 and record["success"]
    first = tmp_path / "first.jsonl"  # 'eai' selects EAI's programs, in EAI's task order
    main(["collect", "plans", "--programs", "eai", "--max-programs", "2", "--goals", "eai", "--out", str(first),
          "--workers", "1", "--simulations", "30"])
    assert [json.loads(line)["program"] for line in first.read_text().splitlines()] == eai_tasks.program_ids()[:2]
    settings = json.loads((tmp_path / "plans.jsonl.settings.json").read_text())
    assert settings["goals"] == "eai"
    with pytest.raises(SystemExit) as stop:
        main(["collect", "plans", "--programs", "file6_1", "--out", str(out), "--workers", "1", "--simulations", "30"])
    assert stop.value.code == 2 and "other --goals" in capsys.readouterr().err
    older = tmp_path / "older.jsonl"  # a file of an e2wm before --goals: its records aimed at the final graph
    main(["collect", "plans", "--programs", "file3_1", "--out", str(older), "--workers", "1", "--simulations", "30"])
    kept = tmp_path / "older.jsonl.settings.json"
    kept.write_text(json.dumps({k: v for k, v in json.loads(kept.read_text()).items() if k != "goals"}))
    main(["collect", "plans", "--programs", "file3_1", "file6_1", "--out", str(older), "--workers", "1",
          "--simulations", "30"])
    assert [json.loads(line)["program"] for line in older.read_text().splitlines()] == ["file3_1", "file6_1"]
