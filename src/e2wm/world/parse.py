"""Reading actions back: script lines ('[PUTBACK] <cup> (1.12) <table> (1.45)') and e2wm's English for actions
('Put cup on table.'), and English object names resolved to a scene's node ids.

The English grammar is `e2wm.world.english`'s: each template of `english._VERBS` becomes one pattern here (one
table, read both ways), and the fallback of `english.action_text` for verbs outside it ('Lookat_short tv.') is read
back for the simulator's verbs. This module imports no simulator code at load time (`e2wm.world.sim` patches
`virtualhome_eval` when imported; `programs` imports this module).
"""

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache

from e2wm.world.english import _VERBS

_SCRIPT_LINE = re.compile(r"^\[(\w+)\]((?:\s*<[^>]+>\s*\([\d.]+\))*)\s*$")
_SCRIPT_ARG = re.compile(r"<([^>]+)>\s*\(([\d.]+)\)")
_PLACEHOLDER = re.compile(r"\{(\d)\}")
_SENTENCE_END = re.compile(r"(?<=\.)\s+|\n+")  # a sentence ends at '. ' (or a line break)
ARTICLES = ("the ", "a ", "an ")  # dropped before a name: no class name starts with one (checked: bundled graphs)
NO_VERB = "no verb matches"


def script_line(text: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """'[PUTBACK] <cup> (1.12) <table> (45)' -> ('PUTBACK', (('cup', '12'), ('table', '45'))): the verb (upper case)
    and per argument its name and node id as written after the last dot; None for a line that is not a script line.

    The one reader of script lines: `programs.parse_step` (program files) and `data.replay.parse_action`
    (exploration records) call it.
    """
    match = _SCRIPT_LINE.match(text.strip())
    if not match:
        return None
    args = tuple((name, node.split(".")[-1]) for name, node in _SCRIPT_ARG.findall(match.group(2)))
    return match.group(1).upper(), args


@dataclass(frozen=True)
class ParsedStep:
    """One English sentence read back: its script verb and object names (English, lower case), or why not."""

    sentence: str
    verb: str | None = None
    names: tuple[str, ...] = ()
    error: str | None = None  # NO_VERB when no template of the grammar matches


def _pattern(template: str) -> tuple[re.Pattern, tuple[int, ...]]:
    """'Put {0} on {1}' -> (^put (.+?) on (.+)$, (0, 1)): literal words matched case-insensitively, one group per
    placeholder (all but the last lazy, so a second name keeps a separator word it contains)."""
    pieces = _PLACEHOLDER.split(template.lower())  # literal, index, literal, index, ..., literal
    order = tuple(int(i) for i in pieces[1::2])
    groups = ["(.+?)"] * (len(order) - 1) + ["(.+)"] * bool(order)
    regex = "".join(re.escape(literal) + (groups[k] if k < len(groups) else "")
                    for k, literal in enumerate(pieces[::2]))
    return re.compile(regex), order


def _specificity(item: tuple[str, str]) -> int:
    """Characters of a template outside its placeholders: 'Put back {0}' (9) is tried before 'Put {0} on {1}' (8)
    and 'Put on {0}' (7), so the longest literal wording wins where two templates match."""
    return len(_PLACEHOLDER.sub("", item[1]))


# other wordings of a verb read back too (never written by e2wm): the released E2WM files' own English, whose fixed
# worked example in every plan_gen eval prompt says "Turn on faucet." and whose references say "Put off shoes."
SYNONYMS = (("SWITCHON", "Turn on {0}"), ("SWITCHOFF", "Turn off {0}"), ("PUTOFF", "Put off {0}"))
_PATTERNS = [(verb, *_pattern(template))
             for verb, template in sorted([*_VERBS.items(), *SYNONYMS], key=_specificity, reverse=True)]


@cache
def _fallback_verbs() -> frozenset[str]:
    """The simulator's verbs that `english._VERBS` lacks (told as 'Lookat_short tv.' by `english.action_text`)."""
    from virtualhome_eval.simulation.evolving_graph.scripts import Action

    return frozenset(Action.__members__) - frozenset(_VERBS)


def _name(text: str) -> str:
    """An object name as written -> its plain form: lower case, single spaces, a leading article dropped ('the
    kitchen cabinet' -> 'kitchen cabinet'). An article names no object, and plans by models not trained on e2wm's
    grammar write one ('Walk to the kitchen.'): execution judges the plan, not its wording (ROUGE-L does that)."""
    text = " ".join(text.split())
    for article in ARTICLES:
        if text.startswith(article) and len(text) > len(article):
            return text[len(article):]
    return text


def parse_sentence(sentence: str) -> ParsedStep:
    """'Put cup in kitchen cabinet.' -> ParsedStep(sentence, 'PUTIN', ('cup', 'kitchen cabinet')).

    Case-insensitive; extra spaces and one or more trailing periods are ignored. The most specific template
    (`_specificity`) that matches the whole sentence wins. A sentence that matches none has error NO_VERB.
    """
    text = " ".join(sentence.split()).rstrip(".").rstrip().lower()
    for verb, pattern, order in _PATTERNS:
        match = pattern.fullmatch(text)
        if match:
            names = [""] * len(order)
            for group, index in enumerate(order):
                names[index] = _name(match.group(group + 1))
            return ParsedStep(sentence, verb, tuple(names))
    head, _, rest = text.partition(" ")
    if head.upper() in _fallback_verbs():
        return ParsedStep(sentence, head.upper(), (_name(rest),) if rest else ())
    return ParsedStep(sentence, error=NO_VERB)


def split_sentences(text: str) -> list[str]:
    """A one-line plan -> its sentences: split after each period followed by space and at line breaks; blank
    pieces dropped. 'Walk to kitchen. Grab cup.' -> ['Walk to kitchen.', 'Grab cup.']"""
    return [piece.strip() for piece in _SENTENCE_END.split(text) if piece.strip()]


def parse_plan(text: str) -> list[ParsedStep]:
    """Every sentence of a plan read back (`split_sentences`, `parse_sentence`); an empty plan has no steps."""
    return [parse_sentence(sentence) for sentence in split_sentences(text)]


def class_key(name: str) -> str:
    """The form under which English names and class names meet: 'kitchen_cabinet' and 'Kitchen  cabinet' ->
    'kitchen cabinet' (`english.name` tells class names with spaces for underscores)."""
    return " ".join(name.replace("_", " ").lower().split())


def name_index(names: Mapping[int, str]) -> dict[str, tuple[int, ...]]:
    """Node id -> class name (a World's `names`) turned into key (`class_key`) -> the node ids of that class, sorted."""
    found: dict[str, list[int]] = {}
    for node_id, class_name in names.items():
        found.setdefault(class_key(class_name), []).append(node_id)
    return {key: tuple(sorted(ids)) for key, ids in found.items()}


def resolve(name: str, index: Mapping[str, tuple[int, ...]], prefer: Collection[int] = (), recent: int | None = None,
            avoid: Collection[int] = (), near: Callable[[int], bool] | None = None) -> int | None:
    """The node id an English object name means in a scene, or None when the scene has no object of that class
    (EAI counts such a name as a hallucinated object).

    Several instances are narrowed in this order, each rule only when it keeps at least one:
    1. the ids in `prefer` (the program's own script ids: its goal facts are about those instances, so a plan
       naming the class is credited with them);
    2. `recent`, the instance the plan last named under this class, when it is a candidate ('Find button. Push
       button.' pushes the button found);
    3. those not in `avoid` (instances the plan has named before, when it comes back to the class for another:
       `execute` passes them after the plan finished with one);
    4. those `near` accepts (in the character's current room: what 'grab the cup' means there);
    5. the lowest id (deterministic).
    """
    candidates = index.get(class_key(name), ())
    if len(candidates) > 1:
        candidates = [i for i in candidates if i in prefer] or candidates
    if len(candidates) > 1 and recent in candidates:
        return recent
    if len(candidates) > 1:
        candidates = [i for i in candidates if i not in avoid] or candidates
    if len(candidates) > 1 and near is not None:
        candidates = [i for i in candidates if near(i)] or candidates
    return min(candidates) if candidates else None
