"""Answers of the story tasks on hand-made episodes, and the consistency checks that skip bad records."""

import copy
import random
import re

import pytest
from helpers.experience_fixtures import House, plan_record, write_jsonl

from e2wm.data import counting, object_path, plan_gen
from e2wm.data.records import Inconsistent, PlanRecord, read_episodes
from e2wm.data.replay import parse_action, replay
from e2wm.data.stories import object_names, plural


def trajectory(house_or_record, tmp_path):
    record = house_or_record.record() if isinstance(house_or_record, House) else house_or_record
    (episode,) = read_episodes(write_jsonl(tmp_path / "explore.jsonl", [record]))
    return replay(episode)


def count(house, tmp_path, seed=0):
    block = counting.block(trajectory(house, tmp_path), random.Random(seed))
    return block.prompt, block.answer


def test_count_many_lists_items_in_order_of_placement(tmp_path):
    house = House().walk_to(1, "10").grab(1, "13").put(1, "13", "10").grab(1, "14").put(1, "14", "10")
    house.grab(1, "12").put(1, "12", "10")
    prompt, answer = count(house, tmp_path)
    assert prompt.endswith(" How many items are there on the kitchen table?\nA:")
    assert answer == "There are 3 items on the kitchen table. They are the cup, the plate, and the apple."


def test_count_one_and_in_for_containers(tmp_path):
    house = House().walk_to(1, "11").act(1, "OPEN", "11").grab(1, "13").put(1, "13", "11", "in")
    prompt, answer = count(house, tmp_path)
    assert prompt.endswith("How many items are there in the fridge?\nA:")
    assert answer == "There is one item in the fridge. It is the cup."
    assert "opened the fridge" in prompt


def test_count_zero_when_the_story_takes_everything_away(tmp_path):
    house = House().walk_to(1, "10").grab(1, "12").grab(1, "13").walk(1, "2")  # table keeps the untold apple 15
    prompt, answer = count(house, tmp_path)
    assert answer == "There is no item on the kitchen table."
    assert "kitchen table" in prompt.split(" How many")[0]


def test_count_groups_same_named_items(tmp_path):
    house = House().grab(1, "12").grab(1, "15").walk(1, "2").put(1, "12", "21").put(1, "15", "21")
    prompt, answer = count(house, tmp_path)
    assert answer == "There are 2 items on the coffee table. They are 2 apples."
    assert "the first apple" in prompt and "the second apple" in prompt


def test_count_ignores_items_put_then_taken_by_another_character(tmp_path):
    house = House(characters=(1, 2)).grab(1, "13").put(1, "13", "10").grab(1, "12").put(1, "12", "10")
    house.grab(2, "13").walk(2, "2")
    prompt, answer = count(house, tmp_path)
    assert answer == "There is one item on the kitchen table. It is the apple."
    names = prompt[3:].split(" were at home.")[0].split(" and ")
    assert len(names) == 2 and all(name in prompt.split(" were at home.")[1] for name in names)


def test_object_carried_through_three_rooms(tmp_path):
    house = House().grab(1, "13").walk(1, "2").walk(1, "3").put(1, "13", "31")
    block = object_path.block(trajectory(house, tmp_path), random.Random(0))
    assert block.answer == "kitchen, living room, bedroom"
    assert block.prompt.endswith("Question: What is the order of the rooms where the cup appeared?\nAnswer:")


def test_object_put_down_by_one_character_and_picked_up_by_another(tmp_path):
    house = House(characters=(1, 2), start_room="3").grab(1, "22").walk(1, "1").put(1, "22", "10")
    house.walk(2, "1").grab(2, "22").walk(2, "4").put(2, "22", "41", "in")
    block = object_path.block(trajectory(house, tmp_path), random.Random(0))
    assert block.answer == "bedroom, kitchen, bathroom"
    story = block.prompt.split("\nQuestion:")[0]
    assert len(set(re.findall(r"(\w+) (?:took|picked up|grabbed|got) the book\.", story))) == 2, story


def test_no_path_question_when_nothing_changes_rooms(tmp_path):
    house = House().grab(1, "12").put(1, "12", "10").walk(1, "2")
    assert object_path.block(trajectory(house, tmp_path), random.Random(0)) is None


def test_failed_steps_are_left_out(tmp_path):
    house = House().fail(1, "[GRAB] <book> (22)").grab(1, "12").walk(1, "2").put(1, "12", "21")
    assert [e.verb for e in trajectory(house, tmp_path).events] == ["GRAB", "WALK", "PUTBACK"]


@pytest.mark.parametrize("corrupt, reason", [
    (lambda r: r["steps"][1]["state"]["12"].update(room="bathroom"), "trajectory disagrees with WALK"),
    (lambda r: r["final"]["12"].update(on="10"), "final state disagrees with the actions"),
    (lambda r: r["steps"][0].update(actor_room="bedroom"), "grab in another room"),
    (lambda r: r["steps"][2].update(action="[PUTBACK] <apple> (12) <ghost> (999)"), "action names an unknown id"),
    (lambda r: r["steps"][0].update(action="grab the apple"), "unreadable action"),
])
def test_inconsistent_episodes_are_rejected(tmp_path, corrupt, reason):
    record = House().grab(1, "12").walk(1, "2").put(1, "12", "21").record()
    bad = copy.deepcopy(record)
    corrupt(bad)
    trajectory(record, tmp_path)
    with pytest.raises(Inconsistent, match=reason):
        trajectory(bad, tmp_path)


def plan(**changes) -> PlanRecord:
    record = plan_record("p1", "Put cup in fridge", [("[WALK] <kitchen> (11)", "Walk to kitchen."),
                         ("[PUTIN] <cup> (3) <fridge> (4)", "Put cup in fridge.")], ["cup", "fridge", "kitchen"],
                         ["The cup is in the kitchen.", "The fridge is closed."])
    goal = ["cup || INSIDE || fridge", "fridge || CLOSED"]
    record.update({"goal": goal, "achieved": goal, **changes})
    return PlanRecord(**{k: record[k] for k in PlanRecord.__dataclass_fields__})


def test_plan_block_uses_the_record_items_and_state():
    block = plan_gen.block(plan())
    assert block.prompt == ("Q: How to put cup in fridge? Given items include cup, fridge, kitchen. The cup is in the "
                            "kitchen. The fridge is closed.\nA:")
    assert block.answer == "Walk to kitchen. Put cup in fridge."
    plan_gen.verify(plan())


@pytest.mark.parametrize("changes, reason", [
    ({"achieved": ["fridge || CLOSED"]}, "success without every goal fact"),
    ({"plan_text": ["Walk to kitchen.", "Put plate in fridge."]}, "plan_text does not match plan"),
    ({"plan_text": ["Walk to kitchen."]}, "plan_text does not match plan"),
    ({"items": ["cup", "kitchen"]}, "goal object missing from items"),
    ({"plan": [], "plan_text": []}, "empty plan"),
    ({"items": []}, "no items"),
])
def test_inconsistent_plans_are_rejected(changes, reason):
    with pytest.raises(Inconsistent, match=reason):
        plan_gen.verify(plan(**changes))


def test_helpers():
    assert parse_action("[PUTBACK] <cup> (1.12) <kitchen_table> (45)") == ("PUTBACK", ("12", "45"))
    assert object_names(["1", "2", "3", "1"], {"1": "apple", "2": "cup", "3": "apple"}) == {
        "1": "first apple", "2": "cup", "3": "second apple"}
    assert [plural(n) for n in ["apple", "dish", "candy", "slippers", "box"]] == [
        "apples", "dishes", "candies", "slippers", "boxes"]
    assert counting.answer("on", "desk", ["first apple"]) == "There is one item on the desk. It is the first apple."


def test_max_steps_tells_a_prefix_and_answers_from_the_state_after_it(tmp_path):
    house = House().grab(1, "13").put(1, "13", "10").grab(1, "13").walk(1, "2").walk(1, "3")
    (episode,) = read_episodes(write_jsonl(tmp_path / "explore.jsonl", [house.record()]))
    whole, cut = replay(episode), replay(episode, limit=2)
    assert counting.block(whole, random.Random(0)).answer == "There is no item on the kitchen table."
    block = counting.block(cut, random.Random(0))
    assert block.answer == "There is one item on the kitchen table. It is the cup."
    assert "room" not in block.prompt.split("How many")[0]
    assert object_path.block(whole, random.Random(0)).answer == "kitchen, living room, bedroom"
    assert object_path.block(replay(episode, limit=4), random.Random(0)).answer == "kitchen, living room"
    bad = house.record()
    bad["final"]["13"]["room"] = "garden"
    (bad_episode,) = read_episodes(write_jsonl(tmp_path / "bad.jsonl", [bad]))
    with pytest.raises(Inconsistent):  # the untold rest is verified too
        replay(bad_episode, limit=2)


def test_class_names_are_told_in_english(tmp_path):
    record = House().grab(1, "13").walk(1, "2").put(1, "13", "21").record()
    record["objects"] = {k: v.replace(" ", "_") for k, v in record["objects"].items()}
    record["rooms"] = {k: v.replace(" ", "_") for k, v in record["rooms"].items()}
    for places in [record["initial"], record["final"], *(step["state"] for step in record["steps"])]:
        for place in places.values():
            place["room"] = place["room"].replace(" ", "_")
    for step in record["steps"]:
        step["actor_room"] = step["actor_room"].replace(" ", "_")
    traj = trajectory(record, tmp_path)
    block = counting.block(traj, random.Random(0))
    assert block.answer == "There is one item on the coffee table. It is the cup." and "_" not in block.prompt
    assert object_path.block(traj, random.Random(0)).answer == "kitchen, living room"
