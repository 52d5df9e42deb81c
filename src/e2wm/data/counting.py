"""Counting: a story of an exploration episode and "How many items are there on/in the <x>?".

The items counted are those the story itself puts on (or in) the receptacle and does not take away again,
i.e. the final graph restricted to objects whose placement the story tells. The receptacle is one the
story mentions, never moved itself, with one relation (on or in) to everything ever placed on it; which one
is asked about is balanced over a file (`balance.Quota`, towards the released answer shares). The answer is
computed twice, from the told actions and from the record's places after them, and must agree. It is given
as the released training file does ("There are 2 items on the desk. They are ...") or, in the evaluation
file's option form, as the digit alone.
"""

import random
from dataclasses import dataclass

from e2wm.data.balance import Quota
from e2wm.data.fewshot import Block, Format
from e2wm.data.records import Inconsistent, Place
from e2wm.data.replay import GRAB, PUTS, Trajectory
from e2wm.data.stories import base_name, cast, join, mentioned, narrate, object_names, plural, tellable

HEADER = (
    "Given a sequence of actions in a house, and a question about what items are located in a specific place. "
    "Answer the number of items and list the items.\n\n"
)
COUNT = Format(separator="\n\n", header=HEADER)
COUNT_QA = Format(separator="\n\n")  # the evaluation file: no header, shots answered with digits
OPTIONS = ["0", "1", "2", "3", "4"]  # the released count.json's answer_list


def answer(prep: str, target: str, items: list[str]) -> str:
    """'There are 3 items on the table. They are 2 apples and the cup.' (items as told in the story)."""
    if not items:
        return f"There is no item {prep} the {target}."
    if len(items) == 1:
        return f"There is one item {prep} the {target}. It is the {items[0]}."
    groups: dict[str, list[str]] = {}
    for item in items:
        groups.setdefault(base_name(item), []).append(item)
    parts = [f"the {same[0]}" if len(same) == 1 else f"{len(same)} {plural(name)}" for name, same in groups.items()]
    return f"There are {len(items)} items {prep} the {target}. They are {join(parts)}."


def _relation(place: Place, target: str) -> str | None:
    return "on" if place.on == target else "in" if place.inside == target else None


@dataclass(frozen=True)
class CountQuestion:
    """A counting question about one receptacle of a story, and the items it holds (as the story names them)."""

    story: str
    prep: str  # on / in
    target: str
    items: list[str]
    source: str  # the episode's key

    @property
    def prompt(self) -> str:
        return f"Q: {self.story} How many items are there {self.prep} the {self.target}?\nA:"

    def block(self, digits: bool = False) -> Block:
        """The question with its answer: a sentence listing the items, or (digits=True) the number alone."""
        reply = str(len(self.items)) if digits else answer(self.prep, self.target, self.items)
        return Block(self.prompt, reply, source=self.source, label=str(len(self.items)))


def question(trajectory: Trajectory, rng: random.Random, quota: Quota) -> CountQuestion | None:
    """A counting question about the receptacle whose count the quota needs most; None if the story offers none
    (or only counts without a share). Raises Inconsistent when the told count disagrees with the recorded places."""
    episode = trajectory.episode
    events = [e for e in trajectory.events if tellable(e)]
    ids = [oid for e in events for oid in mentioned(e, episode.rooms)]
    if not ids:
        return None
    relations: dict[str, set[str]] = {}
    placed: dict[str, tuple[str, str]] = {}  # object -> (target, relation) as the story tells it
    for event in events:
        if event.verb == GRAB:
            placed.pop(event.args[0], None)
        elif event.verb in PUTS:
            obj, target = event.args[:2]
            placed.pop(obj, None)  # re-insert: dict order is the order of the last placement
            placed[obj] = (target, PUTS[event.verb])
            relations.setdefault(target, set()).add(PUTS[event.verb])
    for place in [*episode.initial.values(), *trajectory.places.values()]:
        for target in (place.on, place.inside):
            if target is not None:
                relations.setdefault(target, set()).add(_relation(place, target))
    grabbed = {e.args[0] for e in events if e.verb == GRAB}
    candidates = [r for r in dict.fromkeys(ids) if r not in grabbed and len(relations.get(r, ())) == 1]
    counts = {r: str(sum(1 for where, _ in placed.values() if where == r)) for r in candidates}
    target = quota.pick(counts, rng) if counts else None
    if target is None:
        return None
    prep = next(iter(relations[target]))
    told = [obj for obj, where in placed.items() if where == (target, prep)]
    moved = {e.args[0] for e in events if e.verb in PUTS}
    finals = [trajectory.places.get(obj) for obj in moved]
    if None in finals:
        raise Inconsistent("final state lacks a moved object")
    recorded = {obj for obj, place in zip(moved, finals) if _relation(place, target) == prep}
    if recorded != set(told):
        raise Inconsistent("count disagrees with final state")
    people = cast(list(dict.fromkeys(e.actor for e in events)), rng)
    names = object_names(ids, episode.objects)
    story = narrate(events, people, names, episode.rooms, rng)
    return CountQuestion(story, prep, names[target], [names[o] for o in told], episode.key)
