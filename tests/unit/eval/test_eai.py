"""EAI's action sequencing as an e2wm task (e2wm.eval.eai): the prompt forms, the English read back into EAI's
output format, and the judge's per-item findings under each form."""

import json
from types import SimpleNamespace

import pytest

from e2wm.errors import InputError
from e2wm.eval import eai
from e2wm.eval.items import GenItem, load_eval_files
from e2wm.world import eai_judge, eai_tasks


def items_for(*identifiers: str) -> list[GenItem]:
    return [GenItem("prompt", "ref", source=identifier) for identifier in identifiers]


def gpt4o(identifier: str) -> str:
    outputs = json.loads(eai_judge.shipped_outputs()["gpt-4o-2024-05-13"].read_text())
    return next(o["llm_output"] for o in outputs if o["identifier"] == identifier)


def test_english_plan_becomes_eai_output_with_repeated_verbs_kept_as_keys():
    text, actions = eai.to_eai_output("Walk to kitchen cabinet. Grab cup. Walk to sink. Put cup in sink.")
    assert text == ('{"WALK": ["kitchen_cabinet"], "GRAB": ["cup"], "WALK": ["sink"], "PUTIN": ["cup", "sink"]}')
    assert actions == [["WALK", "kitchen_cabinet"], ["GRAB", "cup"], ["WALK", "sink"], ["PUTIN", "cup", "sink"]]
    # a sentence outside the grammar: the plan goes to the judge as written (a parsing error there), never dropped
    unparsed = eai.UNPARSED + "Walk to sink. Dance with the cup."
    assert eai.to_eai_output("Walk to sink. Dance with the cup.") == (unparsed, None)
    assert eai.to_eai_output("") == (eai.UNPARSED, None)
    # an answer that happens to be JSON is not an English plan: never read as actions (a parsing error)
    assert eai.to_eai_output('{"WALK": ["sink"]}') == (eai.UNPARSED + '{"WALK": ["sink"]}', None)


def test_forms_of_the_342_tasks():
    native = eai.eai_file("native")
    assert len(native.items) == 342 and native.stop == "}" and native.name == eai.TASK
    first = eai_tasks.load_tasks()[0]
    assert native.items[0].input == first.prompt and native.items[0].source == first.identifier
    assert native.items[0].ref.startswith("Walk to dining room. Walk to basket for clothes.")
    with_goals, without = eai.prompt(first, "e2wm"), eai.prompt(first, "e2wm-no-goals")
    question = with_goals.split("\n")[-2]  # the task's question (the shots come first, each over two lines)
    assert question.startswith("Q: How to wash clothes? Given items include basket for clothes, washing machine, soap, "
                               "clothes jacket, dining room.")
    assert "Goal: The washing machine is closed. The washing machine is on." in question
    assert "The clothes jacket is on the washing machine." in question and with_goals.endswith("\nA:")
    assert "Goal:" not in without.split("\n")[-2] and without.count("Q: How to") == 3
    assert not set(eai.shot_programs()) & set(eai_tasks.program_ids())  # worked examples from outside the 342
    action_only = next(t for t in eai_tasks.load_tasks() if t.action_goals and not t.node_goals)
    assert "Goal: The plan must include: type on, then switch off." in eai.prompt(action_only, "e2wm")
    either = next(t for t in eai_tasks.load_tasks() if t.identifier == "231_2")  # ('GRAB', 'WASH|RINSE|SCRUB|WIPE')
    assert "The plan must include: grab, then wash or rinse or scrub or wipe." in eai.prompt(either, "e2wm")
    with pytest.raises(InputError, match="--eai-form"):
        eai.eai_file("chat")


def test_eai_is_a_data_name_beside_files():
    (task,) = load_eval_files([eai.NAME], "e2wm")
    assert task.name == "eai_action_sequence" and task.stop == "\n" and len(task.items) == 342


def test_native_outputs_judged_per_item():
    """GPT-4o's output for 11_1 meets its goal; its 125_2 names an object that is not there; a non-JSON answer is a
    parsing error; 27_2's gold program fails EAI's own check at hash seed 0, so it is not counted."""
    items = items_for("11_1", "125_2", "120_1", "27_2")
    predictions = [gpt4o("11_1"), gpt4o("125_2"), "I would turn on the light.", gpt4o("27_2")]
    scores = eai.score(items, predictions, SimpleNamespace(eai_form="native"))
    assert scores.per_item["task_success"] == [1.0, 0.0, 0.0, None]
    assert scores.per_item["executable"] == [1.0, 0.0, 0.0, None]
    assert [row["error_type"] for row in scores.rows[:3]] == [None, "hallucination error", "parsing error"]
    assert scores.summary["eai_counted"] == 3 and scores.summary["eai_not_counted"] == 1
    assert scores.summary["eai_summary"] is None  # a subset: the evaluator's summary is of whole runs only
    assert scores.summary["eai_hash_seed"] == 0 and scores.binary == {"task_success", "executable"}


def test_english_plans_judged_by_the_same_judge():
    items = items_for("11_1", "311_1")
    scores = eai.score(items, ["Walk to floor lamp. Switch on floor lamp.", "Switch on floor lamp. Sing."],
                       SimpleNamespace(eai_form="e2wm"))
    assert scores.per_item["task_success"] == [1.0, 0.0]
    assert scores.rows[0]["eai_output"] == '{"WALK": ["floor_lamp"], "SWITCHON": ["floor_lamp"]}'
    assert scores.rows[0]["actions"] == [["WALK", "floor_lamp"], ["SWITCHON", "floor_lamp"]]
    assert scores.rows[1]["error_type"] == "parsing error" and scores.rows[1]["actions"] is None
