"""Strict readers of the four E2WM training formats and of the evaluation formats (count, obj_move and act_recog
QA), for released and built files.

Each reader takes one line ({"input", "ref"}, or {"input", "answer_list", "answer"} for the QA formats), asserts
the prompt skeleton, separators and answer phrasing, and returns the parsed blocks, the query's answer last.
"""

import re

PLAN_Q = re.compile(r"Q: How to (?P<activity>[^?\n]+)\? Given items include (?P<items>[^\n]*?)\.(?P<state>( [^\n]*)?)")
PLAN = re.compile(r"([A-Z][^.\n]*\.)( [A-Z][^.\n]*\.)*")
ACT_BLOCK = re.compile(
    r"Given a household activity plan as follows:\n(?P<plan>[^\n]+)\nQ: What is the name of the activity\?\nA:"
    r"(?: (?P<answer>[^\n]+))?"
)
ACT_QA_BLOCK = re.compile(
    r"Given a task plan: (?P<plan>[^\n]+)\nQuestion: what is the name of this task\?\nAnswer:(?: (?P<answer>[^\n]+))?"
)
COUNT_HEADER = (
    "Given a sequence of actions in a house, and a question about what items are located in a specific place. "
    "Answer the number of items and list the items.\n\n"
)
COUNT_BLOCK = re.compile(
    r"Q: (?P<story>[^\n]+) How many items are there (?P<prep>on|in) the (?P<target>[^?\n]+)\?\nA:(?: (?P<answer>.+))?"
)
COUNT_NONE = re.compile(r"There is no item (?P<prep>on|in) the (?P<target>[^.]+)\.")
COUNT_ONE = re.compile(r"There is one item (?P<prep>on|in) the (?P<target>[^.]+)\. It is the (?P<items>[^.,]+)\.")
COUNT_MANY = re.compile(
    r"There are (?P<n>\d+) items (?P<prep>on|in) the (?P<target>[^.]+)\. They are (?P<items>[^.]+)\."
)
COUNT_QA_BLOCK = re.compile(
    r"Q: (?P<story>[^\n]+) How many items are there (?P<prep>on|in) the (?P<target>[^?\n]+)\?\nA:"
    r"(?: (?P<answer>[0-9]))?"
)
WHERE_BLOCK = re.compile(
    r"(?P<story>[^\n]+)\nQuestion: Where (?P<tense>is|was) the (?P<obj>[^?\n]+) (?P<word>before|after) the "
    r"(?P<room>[^?\n]+)\?\nAnswer:(?: (?P<answer>[^\n]+))?"
)
PATH_BLOCK = re.compile(
    r"(?P<story>[^\n]+)\nQuestion: What is the order of the rooms where the (?P<obj>[^?\n]+) appeared\?\nAnswer:"
    r"(?: (?P<answer>[^\n]+))?"
)


def _blocks(text: str, separator: str, pattern: re.Pattern) -> list[re.Match]:
    parts = text.split(separator)
    matches = [pattern.fullmatch(part) for part in parts]
    assert all(matches), f"block does not match the skeleton: {parts[matches.index(None)]!r}"
    assert all(m.group("answer") for m in matches[:-1]) and not matches[-1].group("answer"), "shots need answers"
    return matches


def read_plan_gen(line: dict) -> list[tuple[str, str]]:
    lines = line["input"].split("\n")
    assert len(lines) % 2 == 0 and lines[-1] == "A:", "plan_gen alternates Q lines and A lines, ending in 'A:'"
    pairs = []
    for question, answer in zip(lines[::2], lines[1::2]):
        assert PLAN_Q.fullmatch(question), f"bad plan question {question!r}"
        plan = answer[len("A: "):] if answer != "A:" else line["ref"]
        assert answer == "A:" or answer.startswith("A: "), answer
        assert PLAN.fullmatch(plan), f"bad plan {plan!r}"
        pairs.append((question, plan))
    return pairs


def read_act_recog(line: dict) -> list[tuple[str, str]]:
    matches = _blocks(line["input"], "\n\n", ACT_BLOCK)
    assert PLAN.fullmatch(matches[-1].group("plan"))
    assert line["ref"] == line["ref"].strip() and "\n" not in line["ref"]
    return [(m.group("plan"), m.group("answer") or line["ref"]) for m in matches]


def read_act_recog_qa(line: dict) -> list[tuple[str, str]]:
    matches = list(ACT_QA_BLOCK.finditer(line["input"]))
    assert "\n".join(m.group(0) for m in matches) == line["input"], "blocks must be joined by single newlines"
    assert all(m.group("answer") for m in matches[:-1]) and not matches[-1].group("answer"), "shots need answers"
    assert line["answer"] in line["answer_list"] and len(set(line["answer_list"])) == len(line["answer_list"])
    return [(m.group("plan"), m.group("answer") or line["answer"]) for m in matches]


def count_items(answer: str) -> tuple[str, str, int, list[str]]:
    """(prep, target, N, listed items with multiplicities expanded as 'N names') of a counting answer."""
    if m := COUNT_NONE.fullmatch(answer):
        return m["prep"], m["target"], 0, []
    if m := COUNT_ONE.fullmatch(answer):
        return m["prep"], m["target"], 1, [f"the {m['items']}"]
    m = COUNT_MANY.fullmatch(answer)
    assert m, f"bad counting answer {answer!r}"
    parts = re.split(r", and |, | and ", m["items"])
    total = 0
    for part in parts:
        group = re.fullmatch(r"(\d+) .+", part)
        assert group or part.startswith("the "), f"bad item {part!r}"
        total += int(group[1]) if group else 1
    assert total == int(m["n"]) >= 2, f"{answer!r}: listed {total} items"
    return m["prep"], m["target"], total, parts


def read_count(line: dict) -> list[tuple[str, str]]:
    assert line["input"].startswith(COUNT_HEADER)
    matches = _blocks(line["input"][len(COUNT_HEADER):], "\n\n", COUNT_BLOCK)
    pairs = []
    for m in matches:
        answer = m.group("answer") or line["ref"]
        prep, target, _, _ = count_items(answer)
        assert (prep, target) == (m["prep"], m["target"]), f"answer {answer!r} is about another place"
        pairs.append((m.group("story"), answer))
    return pairs


def read_count_qa(line: dict) -> list[re.Match]:
    """The count evaluation format (also the training file's with --answer-form option): blocks of a story and
    "How many items are there on the X?", answered with a digit."""
    matches = _blocks(line["input"], "\n\n", COUNT_QA_BLOCK)
    assert line.get("answer", line.get("ref")).isdigit()
    return matches


def read_where_qa(line: dict) -> list[re.Match]:
    """The obj_move evaluation format: blocks of a story and "Where was the X before/after the Y?", a room."""
    matches = _blocks(line["input"], "\n\n", WHERE_BLOCK)
    assert all(m["room"] != m["answer"] for m in matches[:-1]) and line.get("answer", line.get("ref"))
    return matches


def read_obj_move(line: dict) -> list[tuple[str, str, str]]:
    """(story, object, rooms) per block."""
    matches = _blocks(line["input"], "\n\n", PATH_BLOCK)
    result = []
    for m in matches:
        rooms = (m.group("answer") or line["ref"]).split(", ")
        assert all(r and r == r.strip() for r in rooms) and len(rooms) >= 2
        assert all(a != b for a, b in zip(rooms, rooms[1:])), "consecutive rooms repeat"
        result.append((m["story"], m["obj"], ", ".join(rooms)))
    return result


MOVE = re.compile(r"(\w+) (?:went to|walked into|moved to|headed to|entered|travelled to|journeyed to) the ([^.]+)\.")
WAS = re.compile(r"(\w+) was in the ([^.]+)\.")
TAKE = re.compile(r"(\w+) (?:took|picked up|grabbed|got) the ([^.]+)\.")
DROP = re.compile(r"(\w+) (?:put down|dropped|left) the ([^.]+)\.")


def solve_path(story: str, obj: str) -> str:
    """Answer a path question by reading the story alone (a bAbI-style reader)."""
    where, holder, rooms = {}, None, []
    for sentence in re.findall(r"[^.]+\.", story):
        sentence = sentence.strip()
        if m := MOVE.fullmatch(sentence) or WAS.fullmatch(sentence):
            where[m[1]] = m[2]
            if m[1] == holder and rooms[-1] != m[2]:
                rooms.append(m[2])
        elif m := TAKE.fullmatch(sentence):
            if m[2] == obj:
                holder = m[1]
                if not rooms or rooms[-1] != where[m[1]]:
                    rooms.append(where[m[1]])
        elif m := DROP.fullmatch(sentence):
            if m[2] == obj:
                holder = None
        else:
            raise AssertionError(f"unknown sentence {sentence!r}")
    return ", ".join(rooms)
