"""Activity recognition: given the plan in English, name the activity.

Training blocks follow the released train file ("Given a household activity plan as follows:..."); the
held-out split is also written as a multiple-choice QA file in the benchmark's evaluation format
("Given a task plan: ...", four options).
"""

import random

from e2wm.data.fewshot import Block, Format
from e2wm.data.plan_gen import activity_name, plan_english
from e2wm.data.records import PlanRecord

ACT_RECOG = Format(separator="\n\n")
ACT_RECOG_QA = Format(separator="\n")
OPTIONS = 4


def block(record: PlanRecord) -> Block:
    name = activity_name(record)
    plan = plan_english(record)
    prompt = f"Given a household activity plan as follows:\n{plan}\nQ: What is the name of the activity?\nA:"
    return Block(prompt, name, source=record.program, group=name, label=name)


def qa_block(record: PlanRecord) -> Block:
    name = activity_name(record)
    prompt = f"Given a task plan: {plan_english(record)}\nQuestion: what is the name of this task?\nAnswer:"
    return Block(prompt, name, source=record.program, group=name, label=name)


def qa_example(shots: list[Block], query: Block, activities: list[str], rng: random.Random) -> dict:
    """{"input", "answer_list", "answer", "source"}: the answer among up to three other activity names, shuffled."""
    others = sorted(set(activities) - {query.answer})
    options = [query.answer] + rng.sample(others, min(OPTIONS - 1, len(others)))
    rng.shuffle(options)
    text = ACT_RECOG_QA.separator.join([s.shot() for s in shots] + [query.prompt])
    return {"input": text, "answer_list": options, "answer": query.answer, "source": query.source}
