"""Plan generation: "Q: How to <activity>? Given items include ... <initial state>\\nA: <plan>".

The answer is the program's successful MCTS plan in English; the items and initial-state sentences come
from the record (the objects the goal involves, their rooms, open/closed, on/off).
"""

import re

from e2wm.data.fewshot import Block, Format
from e2wm.data.records import Inconsistent, PlanRecord

PLAN_GEN = Format(separator="\n")

_SCRIPT_NAME = re.compile(r"<([^>]+)>")


def activity_name(record: PlanRecord) -> str:
    """'Put groceries in Fridge' -> 'put groceries in fridge' (the released files' lower case)."""
    return " ".join(record.activity.split()).lower()


def sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith(".") else text + "."


def plan_english(record: PlanRecord) -> str:
    """The plan as one line: 'Walk to kitchen. Grab cup. Put cup in fridge.'"""
    return " ".join(sentence(step) for step in record.plan_text)


def _fact_objects(fact: str) -> list[str]:
    parts = [p.strip() for p in fact.split("||")]
    return [parts[0]] + ([parts[2]] if len(parts) == 3 else [])


def _plain(name: str) -> str:
    return name.replace("_", " ").lower()


def verify(record: PlanRecord) -> None:
    """Raise Inconsistent unless the record is a usable success: every goal fact achieved, one English
    sentence per script line naming the same objects, and every goal object among the items."""
    if not activity_name(record):
        raise Inconsistent("empty activity")
    if not record.plan:
        raise Inconsistent("empty plan")
    if not any(item.strip() for item in record.items):
        raise Inconsistent("no items")
    if len(record.plan) != len(record.plan_text) or not all(t.strip() for t in record.plan_text):
        raise Inconsistent("plan_text does not match plan")
    if not set(record.goal) <= set(record.achieved):
        raise Inconsistent("success without every goal fact")
    for script, text in zip(record.plan, record.plan_text):
        if not all(_plain(name) in text.lower() for name in _SCRIPT_NAME.findall(script)):
            raise Inconsistent("plan_text does not match plan")
    items = {_plain(item) for item in record.items}
    for fact in record.goal:
        if any(_plain(name) not in items for name in _fact_objects(fact) if _plain(name) != "character"):
            raise Inconsistent("goal object missing from items")


def block(record: PlanRecord) -> Block:
    """The question about this program (verified first) with its plan as the answer."""
    name = activity_name(record)
    state = "".join(" " + sentence(s) for s in record.initial_text if s.strip())
    items = ", ".join(" ".join(item.split()) for item in record.items if item.strip())
    prompt = f"Q: How to {name}? Given items include {items}.{state}\nA:"
    return Block(prompt, plan_english(record), source=record.program, group=name, label=str(len(record.plan)))
