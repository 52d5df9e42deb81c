"""Answers of the story tasks on hand-made episodes, and the consistency checks that skip bad records."""

import copy
import random
import re

import pytest
from helpers.experience_fixtures import House, plan_record, write_jsonl

from e2wm.data import counting, object_path, plan_gen
from e2wm.data.balance import COUNT_SHARES, Quota
from e2wm.data.records import Inconsistent, PlanRecord, read_episodes
from e2wm.data.replay import parse_action, replay
from e2wm.data.stories import object_names, plural


def trajectory(house_or_record, tmp_path):
    record = house_or_record.record() if isinstance(house_or_record, House) else house_or_record
    (episode,) = read_episodes(write_jsonl(tmp_path / "explore.jsonl", [record]))
    return replay(episode)


def count_block(traj, seed=0):
    return counting.question(traj, random.Random(seed), Quota(COUNT_SHARES)).block()


def path_block(traj, seed=0):
    question = object_path.path_question(traj, random.Random(seed))
    return None if question is None else question.block()


def count(house, tmp_path, seed=0):
    block = count_block(trajectory(house, tmp_path), seed)
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
    block = path_block(trajectory(house, tmp_path))
    assert block.answer == "kitchen, living room, bedroom"
    assert block.prompt.endswith("Question: What is the order of the rooms where the cup appeared?\nAnswer:")


def test_object_put_down_by_one_character_and_picked_up_by_another(tmp_path):
    house = House(characters=(1, 2), start_room="3").grab(1, "22").walk(1, "1").put(1, "22", "10")
    house.walk(2, "1").grab(2, "22").walk(2, "4").put(2, "22", "41", "in")
    block = path_block(trajectory(house, tmp_path))
    assert block.answer == "bedroom, kitchen, bathroom"
    story = block.prompt.split("\nQuestion:")[0]
    assert len(set(re.findall(r"(\w+) (?:took|picked up|grabbed|got) the book\.", story))) == 2, story


def test_no_path_question_when_nothing_changes_rooms(tmp_path):
    house = House().grab(1, "12").put(1, "12", "10").walk(1, "2")
    assert path_block(trajectory(house, tmp_path)) is None


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
    assert count_block(whole).answer == "There is no item on the kitchen table."
    block = count_block(cut)
    assert block.answer == "There is one item on the kitchen table. It is the cup."
    assert "room" not in block.prompt.split("How many")[0]
    assert path_block(whole).answer == "kitchen, living room, bedroom"
    assert path_block(replay(episode, limit=4)).answer == "kitchen, living room"
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
    block = count_block(traj)
    assert block.answer == "There is one item on the coffee table. It is the cup." and "_" not in block.prompt
    assert path_block(traj).answer == "kitchen, living room"


def test_count_in_the_option_form_answers_the_digit(tmp_path):
    house = House().grab(1, "13").put(1, "13", "10").grab(1, "14").put(1, "14", "10")
    question = counting.question(trajectory(house, tmp_path), random.Random(0), Quota(COUNT_SHARES))
    assert (question.target, question.items) == ("kitchen table", ["cup", "plate"])
    assert question.block(digits=True).answer == "2" and question.block(digits=True).label == "2"
    assert question.block().answer == "There are 2 items on the kitchen table. They are the cup and the plate."


def test_where_questions_ask_before_or_after_a_room_that_occurs_once(tmp_path):
    house = House().grab(1, "13").walk(1, "2").walk(1, "3").walk(1, "2").put(1, "13", "21")
    traj = trajectory(house, tmp_path)
    assert traj.paths["13"] == ["kitchen", "living room", "bedroom", "living room"]
    asked = set()
    for seed in range(40):
        question = object_path.where_question(traj, random.Random(seed), Quota({"kitchen": 1, "bedroom": 1,
                                                                                  "living room": 1}))
        asked.add((question.word, question.room, question.answer))
        block = question.block("is")
        assert block.prompt.endswith(f"Question: Where is the cup {question.word} the {question.room}?\nAnswer:")
    # living room occurs twice: never asked about; kitchen has nothing before it, the last room nothing after
    assert asked == {("after", "kitchen", "living room"), ("before", "bedroom", "living room"),
                     ("after", "bedroom", "living room")}


def test_where_question_only_with_an_answer_among_the_options(tmp_path):
    house = House().grab(1, "13").walk(1, "2").put(1, "13", "21")  # kitchen -> living room
    traj = trajectory(house, tmp_path)
    assert object_path.where_question(traj, random.Random(0), Quota({"hallway": 1})) is None
    assert object_path.where_question(traj, random.Random(0), Quota({"kitchen": 1})).answer == "kitchen"


def test_confusing_plan_question_adds_distractors_and_shuffles_the_state():
    record = plan()
    pool = plan_gen.object_pool([record, plan(initial_text=["The sofa is in the living room.", "The lamp is off."]),
                                 plan(initial_text=["The cupboard is open."])])
    assert pool == ["cup", "cupboard", "fridge", "lamp", "sofa"]
    for seed in range(20):
        block = plan_gen.confusing_block(record, pool, random.Random(seed))
        assert block.answer == plan_gen.block(record).answer
        found = re.fullmatch(r"Q: How to put cup in fridge\? Given items include ([^.]+)\.((?: [^.]+\.)+)\nA:",
                             block.prompt)
        items = found[1].split(", ")
        extra = [item for item in items if item not in record.items]
        assert 1 <= len(extra) <= 2 and set(extra) <= {"cupboard", "lamp", "sofa"}
        assert [item for item in items if item in record.items] == record.items
        sentences = re.findall(r" ([^.]+\.)", found[2])
        assert sorted(sentences) == sorted([*record.initial_text, *(
            s for s in sentences if s.split(" is in the ")[0].removeprefix("The ") in extra)])
        assert len(sentences) == len(record.initial_text) + len(extra)
