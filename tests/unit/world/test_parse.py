"""Reading actions back: script lines, e2wm's English for actions (the inverse of world/english.py), names -> ids."""

import pytest

from e2wm.data.records import Inconsistent
from e2wm.data.replay import parse_action
from e2wm.errors import InputError
from e2wm.world.english import _VERBS, action_text, name
from e2wm.world.parse import (
    NO_VERB,
    class_key,
    name_index,
    parse_plan,
    parse_sentence,
    resolve,
    script_line,
    split_sentences,
)
from e2wm.world.programs import parse_step

OBJECTS = ["kitchen_cabinet", "coffee_table"]


@pytest.mark.parametrize("verb", sorted(_VERBS) + ["LOOKAT_SHORT"])  # + a verb told by action_text's fallback
def test_every_verb_round_trips(verb):
    objects = OBJECTS[: _VERBS.get(verb, "{0}").count("{")]
    parsed = parse_sentence(action_text(verb, objects))
    assert (parsed.verb, parsed.names, parsed.error) == (verb, tuple(name(o) for o in objects), None)


@pytest.mark.parametrize("sentence, verb, names", [
    ("Put back cup.", "PUTOBJBACK", ("cup",)),  # not PUTBACK of 'back'
    ("Put on shoes.", "PUTON", ("shoes",)),
    ("Put cup on kitchen table.", "PUTBACK", ("cup", "kitchen table")),
    ("Put cup in kitchen cabinet.", "PUTIN", ("cup", "kitchen cabinet")),
    ("Switch on tv.", "SWITCHON", ("tv",)),
    ("Take off shoes.", "PUTOFF", ("shoes",)),
    ("Stand up.", "STANDUP", ()),
    ("Plug in toaster.", "PLUGIN", ("toaster",)),
    ("Pour milk into cup.", "POUR", ("milk", "cup")),
    ("  put   THE Cup  on the kitchen  table ..", "PUTBACK", ("cup", "kitchen table")),  # case, spaces, articles
    ("Walk to an apple", "WALK", ("apple",)),  # no period
    ("Turn on floor lamp.", "SWITCHON", ("floor lamp",)),  # the released files' wordings (parse.SYNONYMS)
    ("Turn off tv.", "SWITCHOFF", ("tv",)),
    ("Put off clothes jacket.", "PUTOFF", ("clothes jacket",)),
    ("Turn to tv.", "TURNTO", ("tv",)),
])
def test_specific_templates_and_tolerance(sentence, verb, names):
    assert (parse_sentence(sentence).verb, parse_sentence(sentence).names) == (verb, names)


def test_sentences_without_a_template_are_errors():
    for sentence in ("Brush teeth.", "Put toothbrush away.", "Stand up now.", "Walk to.", "Hold toothbrush."):
        parsed = parse_sentence(sentence)
        assert (parsed.verb, parsed.error, parsed.sentence) == (None, NO_VERB, sentence)


def test_plans_split_into_sentences():
    assert split_sentences("Walk to kitchen. Grab cup.\nOpen fridge.  ") == ["Walk to kitchen.", "Grab cup.",
                                                                             "Open fridge."]
    steps = parse_plan("Walk to kitchen. Brush teeth. Put cup in fridge")
    assert [(s.verb, s.names, s.error) for s in steps] == [
        ("WALK", ("kitchen",), None), (None, (), NO_VERB), ("PUTIN", ("cup", "fridge"), None)]
    assert parse_plan("") == [] and parse_plan("   ") == []


def test_one_reader_of_script_lines():
    assert script_line("[PUTBACK] <cup> (1.12) <kitchen_table> (45)") == (
        "PUTBACK", (("cup", "12"), ("kitchen_table", "45")))
    assert script_line(" [standup] ") == ("STANDUP", ())
    assert script_line("Walk to kitchen.") is None
    assert parse_step("[PUTIN] <cup> (1.12) <fridge> (1.45)", "x").args == (("cup", 12), ("fridge", 45))
    assert parse_action("[PUTIN] <cup> (1.12) <fridge> (45)") == ("PUTIN", ("12", "45"))
    with pytest.raises(InputError, match="f.txt:3: cannot parse script line 'WALK kitchen'"):
        parse_step("WALK kitchen", "f.txt:3")
    with pytest.raises(Inconsistent, match="unreadable action"):
        parse_action("WALK kitchen")


def test_names_resolve_to_node_ids():
    index = name_index({1: "cup", 2: "cup", 3: "cup", 4: "kitchen_cabinet", 7: "Kitchen_Cabinet"})
    assert index == {"cup": (1, 2, 3), "kitchen cabinet": (4, 7)}
    assert class_key(" Kitchen_cabinet ") == "kitchen cabinet"
    assert resolve("kitchen cabinet", index) == 4  # the lowest id
    assert resolve("unicorn", index) is None  # a hallucinated object
    assert resolve("cup", index, prefer={2, 3}) == 2  # the program's ids first
    assert resolve("cup", index, prefer={2, 3}, recent=3) == 3  # then the instance last named
    assert resolve("cup", index, prefer={2, 3}, recent=1) == 2  # ... when it is still a candidate
    assert resolve("cup", index, avoid={1, 2}) == 3  # then one not named yet
    assert resolve("cup", index, avoid={1, 2, 3}) == 1  # a rule that would leave none is skipped
    assert resolve("cup", index, near=lambda node: node > 1) == 2  # then one in the character's room
