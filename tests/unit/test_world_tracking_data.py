"""benchmarks/world_tracking_data.py: the released world-tracking files in the benchmark's answer form."""

import importlib.util
import random
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "world_tracking_data.py"
spec = importlib.util.spec_from_file_location("world_tracking_data", SCRIPT)
wtd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wtd)

HEADER = "Given a sequence of actions in a house, and a question. Answer the number of items and list the items.\n\n"


def count_input(*blocks: tuple[str, str | None]) -> str:
    parts = [f"Q: {story} How many items are there on the desk?\nA:" + (f" {answer}" if answer else "")
             for story, answer in blocks]
    return HEADER + "\n\n".join(parts)


def test_count_digit_reads_every_released_form():
    assert wtd.count_digit("There is no item on the floor.") == "0"
    assert wtd.count_digit("There is one item in the fridge. It is the milk.") == "1"
    assert wtd.count_digit(" There are 3 items on the coffee table. They are the cup, 2 plates and the rug.") == "3"
    with pytest.raises(ValueError, match="not a released count answer"):
        wtd.count_digit("Three things.")


def test_count_example_answers_shots_and_query_with_digits():
    example = {"input": count_input(("Sue put the cup on the desk.", "There is one item on the desk. It is the cup."),
                                    ("Bob sat.", "There is no item on the desk."),
                                    ("Ann put 2 pens on the desk.", None)),
               "ref": "There are 2 items on the desk. They are 2 pens."}
    converted = wtd.count_example(example)
    assert converted["ref"] == "2"
    assert converted["input"] == count_input(("Sue put the cup on the desk.", "1"), ("Bob sat.", "0"),
                                             ("Ann put 2 pens on the desk.", None))


def path_block(story: str, obj: str, path: str | None) -> str:
    return f"{story}\nQuestion: What is the order of the rooms where the {obj} appeared?\nAnswer:" + (
        f" {path}" if path else "")


def test_obj_move_example_asks_the_room_before_a_room_that_occurs_once():
    example = {"input": "\n\n".join([path_block("Bo took the hat.", "hat", "kitchen, bedroom"),
                                     path_block("Al took the cup.", "cup", None)]),
               "ref": "kitchen, hallway, kitchen, bathroom"}
    for seed in range(20):  # hallway (after kitchen) or bathroom (after kitchen); kitchen occurs twice
        converted = wtd.obj_move_example(example, random.Random(seed))
        shot, query = converted["input"].split("\n\n")
        assert shot == "Bo took the hat.\nQuestion: Where is the hat before the bedroom?\nAnswer: kitchen"
        assert query in ("Al took the cup.\nQuestion: Where was the cup before the hallway?\nAnswer:",
                         "Al took the cup.\nQuestion: Where was the cup before the bathroom?\nAnswer:")
        assert converted["ref"] == "kitchen"


def test_obj_move_example_without_a_usable_room_is_left_out():
    example = {"input": path_block("Al took the cup.", "cup", None), "ref": "kitchen, hallway, kitchen, hallway"}
    assert wtd.obj_move_example(example, random.Random(0)) is None


def test_exclusion_finds_an_evaluation_story_told_as_a_shot_or_as_the_query():
    evaluation = {"input": count_input(("Sue put the cup on the desk.", "1"), ("Tim ran.", None))}
    held = {wtd.story(evaluation["input"].split("\n\n")[-1])}
    as_shot = {"input": count_input(("Tim ran.", "There is no item on the desk."), ("Kim sat.", None))}
    as_query = {"input": count_input(("Kim sat.", "There is no item on the desk."), ("Tim ran.", None))}
    other = {"input": count_input(("Kim sat.", "There is no item on the desk."), ("Sue put the cup on the desk.",
                                                                                   None))}
    assert held == {"Q: Tim ran."}
    assert wtd.told_stories(as_shot) & held and wtd.told_stories(as_query) & held
    assert not wtd.told_stories(other) & held
