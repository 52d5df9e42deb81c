"""EAI's own evaluator as e2wm's judge: per-item results that reproduce its summary, hand-made plans with known
outcomes, the shipped GPT-4o outputs against the evaluator alone, per-model error shares, and a patched parent."""

import json
import os

import pytest

from e2wm.errors import InputError, RunError
from e2wm.world import eai_judge
from e2wm.world.eai_judge import (
    check_items,
    evaluator_stopper,
    judge,
    leaderboard,
    leaderboard_path,
    run_evaluator,
    shipped_outputs,
    summary_from_items,
)
from e2wm.world.eai_tasks import load_tasks, version

WATCH_TV = '{"WALK": ["television"], "SWITCHON": ["television"], "TURNTO": ["television"], "WATCH": ["television"]}'
HAND = [  # Watch TV tasks (goals: TV ON and PLUGGED_IN, character FACING it, LOOKAT or WATCH), unless noted
    ("117_1", WATCH_TV),  # meets every goal
    ("1057_1", '{"SWITCHON": ["television"], "WATCH": ["television"]}'),  # not near the TV: fails at once
    ("307_2", '{"GRAB": ["remote_control"], "WALK": ["television"]}'),  # grabs before walking to it
    ("170_1", "WALK to the television, then switch it on"),  # not JSON
    ("225_2", "{}"),  # an empty plan
    ("197_2", '{"WALK": ["unicorn"]}'),  # no unicorn among the task's objects
    ("21_2", '{"WALK": ["television", "television"]}'),  # WALK takes one object
    ("342_2", WATCH_TV.replace('"SWITCHON"', '"STANDUP": [], "SWITCHON"')),  # standing up while standing
    ("377_2", '{"WALK": ["couch"], "SWITCHON": ["television"], "WALK": ["television"]}'),  # the last WALK counts
    ("1035_1", "```json\n{'FIND': ['cat'], 'TOUCH': ['cat']}"),  # Pet cat: exactly the gold program
    ("188_1", '{"WALK": ["bed"]}'),  # two edge goals: fails the evaluator's own gold check
]


def records(pairs) -> list[dict]:
    return [{"identifier": identifier, "llm_output": output} for identifier, output in pairs]


@pytest.fixture(scope="module")
def hand():
    return judge(records(HAND), hash_seed=0, name="hand")


@pytest.fixture(scope="module")
def shipped():
    return {name: json.loads(path.read_text(encoding="utf-8")) for name, path in shipped_outputs().items()}


@pytest.fixture(scope="module")
def gpt4o_subset(shipped):
    """Every 14th of GPT-4o's 342 outputs: 25 items, of which 3 fail the gold check."""
    return shipped["gpt-4o-2024-05-13"][::14]


def item(judgement, identifier):
    return next(i for i in judgement.items if i.identifier == identifier)


def test_a_plan_that_meets_its_goals_succeeds(hand):
    plan = item(hand, "117_1")
    assert plan.counted and plan.executable and plan.success and not plan.same_as_gold
    assert plan.actions == plan.executed == ["[WALK] <television> (410)", "[SWITCHON] <television> (410)",
                                             "[TURNTO] <television> (410)", "[WATCH] <television> (410)"]
    assert (plan.node_goals_met, plan.node_goals, plan.edge_goals_met, plan.edge_goals,
            plan.action_goals_met, plan.action_goals) == (2, 2, 1, 1, 1, 1)
    assert (plan.error_type, plan.error_action, plan.runtime_errors, plan.parse_errors) == (None, None, [], 0)
    assert [i.identifier for i in hand.items] == [identifier for identifier, _ in HAND]  # input order
    assert hand.hash_seed == 0 and hand.version == version() and hand.seconds > 0


def test_plans_that_fail_at_a_known_step(hand):
    for identifier, failing in [("1057_1", "[SWITCHON] <television> (410)"),
                                ("307_2", "[GRAB] <remote_control> (1000)")]:
        plan = item(hand, identifier)
        assert (plan.executable, plan.success, plan.error_type, plan.error_action) == (
            False, False, "missing_step", failing)
        assert plan.runtime_errors == ["missing_step"] and plan.executed == []
    # the TV is plugged in from the start: one node goal holds without acting
    assert item(hand, "1057_1").node_goals_met == 1


def test_grammar_errors(hand):
    expected = {"170_1": ("parsing error", 2), "225_2": ("parsing error", 1), "197_2": ("hallucination error", 0),
                "21_2": ("parameter error", 0)}
    for identifier, (error_type, parse_errors) in expected.items():
        plan = item(hand, identifier)
        assert (plan.error_type, plan.parse_errors, plan.executable, plan.actions, plan.executed) == (
            error_type, parse_errors, False, None, None)
        assert plan.node_goals_met == plan.edge_goals_met == plan.action_goals_met == 0


def test_the_evaluators_quirks(hand):
    standup = item(hand, "342_2")  # an additional step is counted but does not stop the plan, nor run
    assert standup.executable and standup.success and standup.runtime_errors == ["additional_step"]
    assert "[STANDUP]" in standup.actions and "[STANDUP]" not in standup.executed
    repeated = item(hand, "377_2")  # json.loads keeps the last WALK, at the first one's place
    assert repeated.actions == ["[WALK] <television> (410)", "[SWITCHON] <television> (410)"]
    gold = item(hand, "1035_1")  # a copy of the gold program is executable, but meets no goal and fails
    assert gold.same_as_gold and gold.executable and not gold.success and gold.executed is None
    assert gold.actions == ["[FIND] <cat> (1000)", "[TOUCH] <cat> (1000)"] and gold.action_goals == 1
    dropped = item(hand, "188_1")
    assert not dropped.counted and (dropped.edge_goals, dropped.edge_goals_met) == (2, 0)


def test_items_reproduce_the_summary(hand):
    assert summary_from_items(hand.items) == hand.summary
    # 10 counted: successes 117_1, 342_2; executable also 1035_1 and 377_2 (it walks, then switches on)
    assert hand.summary["goal_evaluation"]["task_success_rate"] == 20.0
    assert hand.summary["trajectory_evaluation"]["execution_success_rate"] == 40.0
    assert hand.summary["trajectory_evaluation"]["grammar_error"] == {
        "parsing": 30.0, "hallucination": 10.0, "predicate_argument_number": 10.0}
    assert hand.summary["trajectory_evaluation"]["runtime_error"] == {
        "wrong_order": 0.0, "missing_step": 20.0, "affordance_error": 0.0, "additional_step": 10.0}
    wrong = eai_judge.Judgement(hand.summary, [eai_judge.dataclasses.replace(hand.items[0], success=False),
                                               *hand.items[1:]], 0, version(), 1.0)
    with pytest.raises(RunError, match="task_success_rate: expected 20.0, found 10.0"):
        check_items(wrong)


def test_bad_outputs_are_input_errors():
    good = {"identifier": "117_1", "llm_output": "{}"}
    for outputs, message in [([], "non-empty list"), ([{"identifier": "117_1"}], "field 'llm_output'"),
                             ([{**good, "identifier": "1_1"}], "'1_1' is not one of EAI's 342 tasks"),
                             ([good, good], "'117_1' is repeated")]:
        with pytest.raises(InputError, match=message):
            judge(outputs)
    with pytest.raises(InputError, match="model name"):
        judge([good], name="../x")


@pytest.mark.parametrize("output, why", [('["WALK"]', "a JSON list where EAI expects an object"),
                                         ('{"walk": ["television"]}', "the verb 'walk' is not in upper case"),
                                         ('{"WALK": 3}', "the objects of 'WALK' are not a list of names"),
                                         ('{"WALK": [["television"]]}', "an object of 'WALK' is not a name"),
                                         ("```json\n7", "a JSON int")])
def test_outputs_that_would_stop_the_evaluator_are_judged_unreadable(output, why):
    """Run alone, the evaluator raises on these (AttributeError, KeyError, TypeError) and scores nothing; the judge
    hands it a text that is not JSON instead, so that the item is a parsing error and the others are judged."""
    names = next(t for t in load_tasks() if t.identifier == "117_1").objects
    assert why in evaluator_stopper(output, names)
    found = judge(records([("117_1", output), ("1057_1", WATCH_TV)]))
    stopped, other = found.items
    assert stopped.stops_evaluator.startswith(why) and stopped.error_type == "parsing error"
    assert stopped.parse_errors == 2 and not stopped.success and other.stops_evaluator is None
    assert found.summary["trajectory_evaluation"]["grammar_error"]["parsing"] == 100.0  # 2 counts of 2 items
    with pytest.raises(RunError, match="AttributeError|KeyError|TypeError"):  # the evaluator alone, same output
        run_evaluator({"alone": records([("117_1", output)])})


@pytest.mark.parametrize("output", ['{"WALK": [1]}', '{"walk": ["unicorn"]}', '{"FOO": ["bar"], "walk": ["bar"]}',
                                    '{"WALK": "television"}', "[" * 3000, "0" * 5, "[]", WATCH_TV, "WALK to the TV"])
def test_outputs_the_evaluator_classifies_itself_are_left_to_it(output):
    """Hallucinated verbs or names come first in the evaluator's checks, so these are its hallucination (or parsing)
    errors, not outputs that stop it: handed over unchanged, and its numbers equal the evaluator's alone."""
    names = next(t for t in load_tasks() if t.identifier == "117_1").objects
    assert evaluator_stopper(output, names) is None


def test_a_hallucinated_lower_case_verb_is_the_evaluators_hallucination_error():
    outputs = records([("117_1", '{"walk": ["unicorn"]}'), ("1057_1", '{"WALK": [1]}'), ("307_2", WATCH_TV)])
    found = judge(outputs)
    assert [item.error_type for item in found.items[:2]] == ["hallucination error"] * 2
    assert found.summary == run_evaluator({"alone": outputs})["alone"]


def test_a_subset_without_a_goal_kind_is_a_run_error_that_says_why():
    before = os.environ.get("PYTHONHASHSEED")
    with pytest.raises(RunError, match="ZeroDivisionError.*goals of each kind"):
        judge(records([("11_1", "{}")]), hash_seed=3)  # node goals only
    assert os.environ.get("PYTHONHASHSEED") == before


GPT4O_SUBSET = {  # the evaluator on the subset in a process that never imported e2wm.world.sim, PYTHONHASHSEED=0
    "goal_evaluation": {"task_success_rate": 63.6364, "state_goal": 80.0, "relation_goal": 50.0,
                        "action_goal": 50.0, "total_goal": 60.9756},
    "trajectory_evaluation": {"execution_success_rate": 68.2,
                              "grammar_error": {"parsing": 0.0, "hallucination": 0.0,
                                                "predicate_argument_number": 0.0},
                              "runtime_error": {"wrong_order": 0.0, "missing_step": 27.2727,
                                                "affordance_error": 4.5455, "additional_step": 0.0}}}


@pytest.mark.slow  # two evaluator calls on 25 items each: 10-35 s on 2 shared cores
def test_shipped_gpt4o_outputs_equal_the_evaluator_alone(gpt4o_subset):
    judgement = judge(gpt4o_subset, hash_seed=0, name="gpt-4o-2024-05-13")
    alone = run_evaluator({"gpt-4o-2024-05-13": gpt4o_subset}, hash_seed=0)["gpt-4o-2024-05-13"]
    assert not eai_judge._differences(alone, judgement.summary)
    assert summary_from_items(judgement.items) == judgement.summary
    assert [i.identifier for i in judgement.items if not i.counted] == ["27_2", "201_1", "721_2"]
    assert judgement.summary == GPT4O_SUBSET


@pytest.mark.slow  # two evaluator calls on 25 items each: 10-35 s on 2 shared cores
def test_a_models_shares_do_not_depend_on_the_others(shipped, gpt4o_subset, tmp_path):
    subsets = {"gpt4o": gpt4o_subset, "gpt35": shipped["gpt-3.5-turbo-0125"][::14]}
    files = {}
    for name, outputs in subsets.items():
        files[name] = tmp_path / f"{name}_outputs.json"
        files[name].write_text(json.dumps(outputs))
    board = leaderboard(tmp_path / "cache", hash_seed=0, workers=2, models=files)  # one judge call per model
    together = run_evaluator(subsets, hash_seed=0)  # the package's way: both in one call
    alone = {name: entry["summary"] for name, entry in board.items()}
    assert alone["gpt4o"] == GPT4O_SUBSET
    runtime = {name: summary["trajectory_evaluation"]["runtime_error"] for name, summary in alone.items()}
    first = next(name for name in together if together[name] == alone[name])
    second = next(name for name in together if name != first)
    assert together[second]["goal_evaluation"] == alone[second]["goal_evaluation"]
    for key in runtime[second]:  # the second model's counters start at the first's (both have 22 counted items)
        assert together[second]["trajectory_evaluation"]["runtime_error"][key] == pytest.approx(
            runtime[first][key] + runtime[second][key], abs=2e-4)
    assert runtime["gpt35"]["missing_step"] > 0 and runtime["gpt4o"]["missing_step"] > 0
    for entry in board.values():
        assert len(entry["items"]) == 22 and all(i["counted"] for i in entry["items"])
        assert entry["seconds_per_item"] > 0
    cache = leaderboard_path(tmp_path / "cache", 0)
    assert cache.name == f"eai_leaderboard-{version().replace(' ', '-')}-hashseed0.json"
    assert json.loads(cache.read_text())["models"].keys() == {"gpt35", "gpt4o"}


def test_the_leaderboard_cache(tmp_path, monkeypatch):
    cache = leaderboard_path(tmp_path, 0)
    entry = {"summary": {"goal_evaluation": {}}, "items": [], "seconds_per_item": 0.1}
    cache.write_text(json.dumps({"version": version(), "hash_seed": 0, "models": {"a": entry}}))
    monkeypatch.setattr(eai_judge, "_score", lambda path, seed, name: {**entry, "scored": name})
    models = {"a": tmp_path / "a.json", "b": tmp_path / "b.json"}
    assert leaderboard(tmp_path, 0, models=models) == {"a": entry, "b": {**entry, "scored": "b"}}  # a not rescored
    for stale in ['{"version": "virtualhome-eval 0.0", "hash_seed": 0, "models": {}}', "{not json"]:
        cache.write_text(stale)
        assert leaderboard(tmp_path, 0, models=models)["a"] == {**entry, "scored": "a"}  # rebuilt
        assert json.loads(cache.read_text())["version"] == version()
    with pytest.raises(InputError, match="workers must be at least 1"):
        leaderboard(tmp_path, 0, workers=0)


def test_shipped_outputs_are_the_15_models():
    names = shipped_outputs()
    assert len(names) == 15 and {"gpt-4o-2024-05-13", "gpt-3.5-turbo-0125", "llama-3-8b-chat"} <= names.keys()
    assert len(load_tasks()) == 342


def test_a_patched_parent_does_not_change_the_judge(gpt4o_subset):
    from virtualhome_eval.simulation.evolving_graph import environment

    import e2wm.world.sim  # noqa: F401  (installs e2wm.world.fast's speed-ups in this process)

    assert environment.DeleteEdges.apply_changes.__module__ == "e2wm.world.fast"
    with pytest.raises(RuntimeError, match="comes from e2wm.world.fast"):
        eai_judge._require_original_simulator()  # what the child checks before judging
    assert judge(gpt4o_subset, hash_seed=0).summary == GPT4O_SUBSET


def test_a_script_without_a_main_guard_that_patched_the_simulator(tmp_path):
    """The judge's child is `python -m e2wm.world.eai_judge`, not a multiprocessing spawn: the caller's script (here
    one that imports e2wm.world.sim, patching the simulator, and calls the judge at top level) is never re-run."""
    import subprocess
    import sys

    script = tmp_path / "study.py"
    script.write_text("import e2wm.world.sim  # noqa: F401\n"
                      "from e2wm.world.eai_judge import judge\n"
                      f"found = judge([{{'identifier': '117_1', 'llm_output': {WATCH_TV!r}}}])\n"
                      "print(found.items[0].success, found.summary['goal_evaluation']['task_success_rate'])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "100.0"]
