"""Object paths: a multi-character story of who went where and took or left what, and two kinds of question.

- The path (training file, obj_move_path.json): "What is the order of the rooms where the <obj> appeared?",
  answered with the object's rooms in order (consecutive repeats merged).
- Where before or after (obj_move.json, six-room multiple choice): "Where was the <obj> before the <room>?",
  answered with the room of the path before (or after) a room that occurs once in it. The released file's
  shots say "Where is ..." and its query "Where was ...": `WhereQuestion.block(tense)`.

The path is read from the recorded trajectory; it must equal the path the story tells (picked up in a room,
carried wherever its holder goes, put down), or the episode is skipped for this task.
"""

import random
from dataclasses import dataclass

from e2wm.data.balance import Quota
from e2wm.data.fewshot import Block, Format
from e2wm.data.records import Inconsistent
from e2wm.data.replay import GRAB, PUTS, Event, Trajectory
from e2wm.data.stories import cast, narrate_moves, object_names

OBJ_MOVE = Format(separator="\n\n")
# the released obj_move.json's answer_list, in its order (the rooms of its stories)
OPTIONS = ["dining room", "home office", "bathroom", "bedroom", "kitchen", "hallway"]


def told_path(events: list[Event], oid: str) -> list[str]:
    """The rooms the story places the object in: where it is picked up, then its holder's rooms."""
    rooms: list[str] = []
    holder = None
    for event in events:
        handles = event.verb in (GRAB, *PUTS) and event.args[0] == oid
        if (handles or event.actor == holder) and (not rooms or rooms[-1] != event.room):
            rooms.append(event.room)
        if handles:
            holder = event.actor if event.verb == GRAB else None
    return rooms


@dataclass(frozen=True)
class PathQuestion:
    story: str
    obj: str  # as the story names it
    path: list[str]
    source: str  # the episode's key

    def block(self) -> Block:
        prompt = f"{self.story}\nQuestion: What is the order of the rooms where the {self.obj} appeared?\nAnswer:"
        return Block(prompt, ", ".join(self.path), source=self.source, label=str(len(self.path)))


@dataclass(frozen=True)
class WhereQuestion:
    story: str
    obj: str
    word: str  # before / after
    room: str  # the room asked about, once in the path
    answer: str  # the room of the path before (after) it
    source: str

    def block(self, tense: str = "was") -> Block:
        prompt = f"{self.story}\nQuestion: Where {tense} the {self.obj} {self.word} the {self.room}?\nAnswer:"
        return Block(prompt, self.answer, source=self.source, label=self.answer)


def _story(trajectory: Trajectory, oid: str, rng: random.Random) -> tuple[str, dict[str, str]]:
    """The story of the episode and the objects' names in it, after checking oid's path against the story."""
    if told_path(trajectory.events, oid) != trajectory.paths[oid]:
        raise Inconsistent("object path disagrees with trajectory")
    people = cast(list(dict.fromkeys(e.actor for e in trajectory.events)), rng, surnames=True)
    names = object_names([e.args[0] for e in trajectory.events if e.verb == GRAB or e.verb in PUTS],
                         trajectory.episode.objects)
    return narrate_moves(trajectory.events, people, names, rng), names


def _carried(trajectory: Trajectory) -> list[str]:
    """Objects the story picks up or puts down that changed rooms, not held at the start, in order of mention."""
    carried = [e.args[0] for e in trajectory.events if e.verb == GRAB or e.verb in PUTS]
    initial = trajectory.episode.initial
    return [o for o in dict.fromkeys(carried) if o in trajectory.paths and initial[o].holder is None]


def path_question(trajectory: Trajectory, rng: random.Random, quota: Quota | None = None) -> PathQuestion | None:
    """The path of one object that changed rooms (with a quota, one whose path length the file needs most);
    None if none did."""
    candidates = _carried(trajectory)
    if quota is None:
        oid = rng.choice(candidates) if candidates else None
    else:
        oid = quota.pick({o: str(len(trajectory.paths[o])) for o in candidates}, rng)
    if oid is None:
        return None
    story, names = _story(trajectory, oid, rng)
    return PathQuestion(story, names[oid], trajectory.paths[oid], trajectory.episode.key)


def where_question(trajectory: Trajectory, rng: random.Random, quota: Quota) -> WhereQuestion | None:
    """Where an object was before or after a room that occurs once in its path, choosing the object, room and
    direction whose answer the quota needs most; None if no object changed rooms."""
    offered = {}
    for oid in _carried(trajectory):
        path = trajectory.paths[oid]
        for i, room in enumerate(path):
            if path.count(room) == 1:
                if i > 0:
                    offered[(oid, i, "before")] = path[i - 1]
                if i < len(path) - 1:
                    offered[(oid, i, "after")] = path[i + 1]
    chosen = quota.pick(offered, rng) if offered else None
    if chosen is None:
        return None
    oid, i, word = chosen
    story, names = _story(trajectory, oid, rng)
    return WhereQuestion(story, names[oid], word, trajectory.paths[oid][i], offered[chosen], trajectory.episode.key)
