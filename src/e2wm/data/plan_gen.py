"""Plan generation: "Q: How to <activity>? Given items include ... <initial state>\\nA: <plan>".

The answer is the program's successful MCTS plan in English; the items and initial-state sentences come
from the record (the objects the goal involves, their rooms, open/closed, on/off). The confusing variant
(the released plan_gen*_confusing.json) adds one or two distractor objects among the items, each said to be
in one of them, and tells the initial-state sentences in a shuffled order; its answer is the same plan.
"""

import random
import re

from e2wm.data.fewshot import Block, Format
from e2wm.data.records import Inconsistent, PlanRecord

PLAN_GEN = Format(separator="\n")

_SCRIPT_NAME = re.compile(r"<([^>]+)>")
_SUBJECT = re.compile(r"The (.+?) is ")
DISTRACTORS = (1, 2)  # distractor objects per confusing question, drawn uniformly


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
    return _block(record, [" ".join(item.split()) for item in record.items if item.strip()],
                  [sentence(s) for s in record.initial_text if s.strip()])


def object_pool(records: list[PlanRecord]) -> list[str]:
    """The objects the records' initial-state sentences speak of ("The cup is ..."), sorted: distractors."""
    return sorted({m.group(1) for r in records for s in r.initial_text if (m := _SUBJECT.match(s.strip()))})


def confusing_block(record: PlanRecord, pool: list[str], rng: random.Random) -> Block:
    """The question with distractor objects of the pool (none of the record's items, none named in its plan)
    inserted among the items at random places, a sentence "The <distractor> is in the <item>." each, and the
    state sentences shuffled."""
    items = [" ".join(item.split()) for item in record.items if item.strip()]
    state = [sentence(s) for s in record.initial_text if s.strip()]
    plan = plan_english(record).lower()
    others = [name for name in pool if name not in items and name not in plan]
    for name in rng.sample(others, min(rng.choice(DISTRACTORS), len(others))):
        state.append(f"The {name} is in the {rng.choice(items)}.")
        items.insert(rng.randrange(len(items) + 1), name)
    rng.shuffle(state)
    return _block(record, items, state)


def question(activity: str, items: list[str], state: list[str]) -> str:
    """'Q: How to <activity>? Given items include <items>. <state sentences>\nA:' (the released files' form)."""
    return f"Q: How to {activity}? Given items include {', '.join(items)}.{''.join(' ' + s for s in state)}\nA:"


def _block(record: PlanRecord, items: list[str], state: list[str]) -> Block:
    name = activity_name(record)
    return Block(question(name, items, state), plan_english(record), source=record.program, group=name,
                 label=str(len(record.plan)))
