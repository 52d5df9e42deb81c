"""Object path tracking: a multi-character story and "What is the order of the rooms where the <obj> appeared?".

The answer is the object's rooms in order (consecutive repeats merged), read from the recorded
trajectory; it must equal the path the story tells (picked up in a room, carried wherever its holder
goes, put down), or the episode is skipped for this task.
"""

import random

from e2wm.data.fewshot import Block, Format
from e2wm.data.records import Inconsistent
from e2wm.data.replay import GRAB, PUTS, Event, Trajectory
from e2wm.data.stories import cast, narrate_moves, object_names

OBJ_MOVE = Format(separator="\n\n")


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


def block(trajectory: Trajectory, rng: random.Random) -> Block | None:
    """A path question about one object that changed rooms; None if none did."""
    episode = trajectory.episode
    carried = [e.args[0] for e in trajectory.events if e.verb == GRAB or e.verb in PUTS]
    candidates = [o for o in dict.fromkeys(carried) if o in trajectory.paths and episode.initial[o].holder is None]
    if not candidates:
        return None
    oid = rng.choice(candidates)
    path = trajectory.paths[oid]
    if told_path(trajectory.events, oid) != path:
        raise Inconsistent("object path disagrees with trajectory")
    people = cast(list(dict.fromkeys(e.actor for e in trajectory.events)), rng, surnames=True)
    names = object_names(carried, episode.objects)
    story = narrate_moves(trajectory.events, people, names, rng)
    prompt = f"{story}\nQuestion: What is the order of the rooms where the {names[oid]} appeared?\nAnswer:"
    return Block(prompt, ", ".join(path), source=episode.key, label=str(len(path)))
