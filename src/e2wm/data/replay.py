"""Replaying an exploration episode: the actions alone must explain its recorded trajectory.

We re-derive every object's place from the successful actions (a grab puts the object in the actor's
hand, a put sets it on or in its target, held objects follow their holder between rooms) and compare with
the places the collector recorded, step by step and at the end. An episode that disagrees raises
Inconsistent and is skipped; otherwise the stories told from its actions answer questions exactly as
the recorded trajectory does.
"""

from dataclasses import dataclass, replace

from e2wm.data.records import Episode, Inconsistent, Place
from e2wm.world.parse import script_line

GRAB = "GRAB"
PUTS = {"PUTBACK": "on", "PUTIN": "in"}  # script verb -> relation to the target
MOVES = {"WALK", "RUN", "FIND"}  # verbs that take the actor to an object or room


@dataclass(frozen=True)
class Event:
    """A successful step: who did what to which ids, and the actor's room after it."""

    actor: int
    verb: str
    args: tuple[str, ...]
    room: str


@dataclass(frozen=True)
class Trajectory:
    """A verified episode, or its first events: the events, per moved object the rooms it was in, and every
    object's place after the last event (paths and places as recorded by the collector)."""

    episode: Episode
    events: list[Event]
    paths: dict[str, list[str]]
    places: dict[str, Place]


def parse_action(action: str) -> tuple[str, tuple[str, ...]]:
    """'[PUTBACK] <cup> (12) <table> (45)' -> ('PUTBACK', ('12', '45')); ids like '1.45' keep '45'
    (`world.parse.script_line`); Inconsistent for a line that is not a script line."""
    parsed = script_line(action)
    if parsed is None:
        raise Inconsistent("unreadable action")
    verb, args = parsed
    return verb, tuple(node for _, node in args)


def replay(episode: Episode, limit: int | None = None) -> Trajectory:
    """Check the whole episode against its own actions; return its trajectory, cut after `limit` events."""
    world = dict(episode.initial)  # places derived from the actions
    recorded = dict(episode.initial)  # places as the collector recorded them
    paths = {oid: [place.room] for oid, place in episode.initial.items()}
    events = []
    cut = None
    for step in episode.steps:
        if cut is None and len(events) == limit:
            cut = _trajectory(episode, events, paths, recorded)
        if not step.success:
            if step.state:
                raise Inconsistent("failed step moved objects")
            continue
        verb, args = parse_action(step.action)
        if any(a not in episode.objects and a not in episode.rooms for a in args):
            raise Inconsistent("action names an unknown id")
        if step.actor not in episode.characters:
            raise Inconsistent("unknown actor")
        if step.actor_room is None:
            raise Inconsistent("successful step without actor room")
        room = step.actor_room
        changed = _apply(world, step.actor, verb, args, room)
        for oid, place in step.state.items():
            recorded[oid] = place
            if paths.setdefault(oid, [place.room])[-1] != place.room:
                paths[oid].append(place.room)
        for oid in changed | step.state.keys():
            if world.get(oid) != recorded.get(oid):
                raise Inconsistent(f"trajectory disagrees with {verb}")
        events.append(Event(step.actor, verb, args, room))
    for oid, place in episode.final.items():
        if world.get(oid, recorded.get(oid)) != place:
            raise Inconsistent("final state disagrees with the actions")
    return cut or _trajectory(episode, events, paths, {**recorded, **episode.final})


def _trajectory(episode: Episode, events: list[Event], paths: dict[str, list[str]], places: dict) -> Trajectory:
    moved = {oid: list(rooms) for oid, rooms in paths.items() if len(rooms) > 1}
    return Trajectory(episode, list(events), moved, dict(places))


def _apply(world: dict[str, Place], actor: int, verb: str, args: tuple[str, ...], room: str) -> set[str]:
    """Update world for one action; return the ids whose place changed."""
    changed = set()
    if verb == GRAB or verb in PUTS:
        if not args or args[0] not in world:
            raise Inconsistent(f"{verb} of an untracked object")
        obj = args[0]
        if verb == GRAB:
            if world[obj].holder is not None:
                raise Inconsistent("grab of a held object")
            if world[obj].room != room:
                raise Inconsistent("grab in another room")
            world[obj] = Place(room, actor, None, None)
        else:
            if len(args) < 2:
                raise Inconsistent(f"{verb} without a target")
            target = args[1]
            if world[obj].holder != actor:
                raise Inconsistent("put of an object not held")
            if target in world and world[target].room != room:
                raise Inconsistent("put on a target in another room")
            on, inside = (target, None) if PUTS[verb] == "on" else (None, target)
            world[obj] = Place(room, None, on, inside)
        changed.add(obj)
    for oid, place in world.items():  # held objects go where their holder goes
        if place.holder == actor and place.room != room:
            world[oid] = replace(place, room=room)
            changed.add(oid)
    return changed
