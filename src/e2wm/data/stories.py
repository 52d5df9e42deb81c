"""Telling an episode as a story: names, pronouns, varied verbs, and unambiguous object names.

Two styles. `narrate` tells everything the characters did in flowing sentences (pronouns, connectives,
"a cup" then "the cup"): the counting task. `narrate_moves` tells only who went where and who took or
put down what, one short sentence each: the object path task. Both take the randomness from the caller's
seeded Random, so a story is fixed by the build seed and the episode.
"""

import random
from dataclasses import dataclass

from e2wm.data.replay import GRAB, MOVES, PUTS, Event

WOMEN = ["Alice", "Clara", "Emma", "Grace", "Hannah", "Julia", "Laura", "Lucy", "Maya", "Nina", "Olivia",
         "Rosa", "Sofia", "Tina", "Vera", "Zoe"]
MEN = ["Adam", "Ben", "Carlos", "David", "Ethan", "Felix", "George", "Henry", "Ivan", "Leo", "Marco", "Noah",
       "Oscar", "Paul", "Sam", "Victor"]
SURNAMES = ["Baker", "Carter", "Evans", "Fischer", "Garcia", "Hughes", "Kim", "Lopez", "Miller", "Novak",
            "Parker", "Reed", "Suzuki", "Turner", "Walsh", "Wright"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]

# verb -> ways to tell it; {o} is the object, {t} the target, {p} the actor's possessive pronoun
TO_ROOM = ["went to the {r}", "walked into the {r}", "headed to the {r}", "made {p} way to the {r}"]
PHRASES = {
    "WALK": ["walked to {o}", "went over to {o}", "approached {o}"],
    "RUN": ["ran to {o}", "hurried over to {o}"],
    "FIND": ["found {o}", "spotted {o}"],
    "GRAB": ["grabbed {o}", "picked up {o}", "took {o}"],
    "PUTBACK": ["put {o} on {t}", "placed {o} on {t}", "set {o} down on {t}", "left {o} on {t}"],
    "PUTIN": ["put {o} in {t}", "placed {o} inside {t}", "stored {o} in {t}"],
    "OPEN": ["opened {o}"],
    "CLOSE": ["closed {o}", "shut {o}"],
    "SWITCHON": ["switched on {o}", "turned on {o}"],
    "SWITCHOFF": ["switched off {o}", "turned off {o}"],
    "SIT": ["sat on {o}", "sat down on {o}"],
    "LIE": ["lay on {o}", "lay down on {o}"],
    "STANDUP": ["stood up"],
    "TURNTO": ["turned to {o}", "faced {o}"],
    "LOOKAT": ["looked at {o}", "glanced at {o}"],
    "WATCH": ["watched {o}"],
    "TOUCH": ["touched {o}"],
    "PUSH": ["pushed {o}"],
    "PULL": ["pulled {o}"],
    "WASH": ["washed {o}"],
    "RINSE": ["rinsed {o}"],
    "SCRUB": ["scrubbed {o}"],
    "WIPE": ["wiped {o}"],
    "DRINK": ["drank from {o}"],
    "READ": ["read {o}"],
    "TYPE": ["typed on {o}"],
    "POINTAT": ["pointed at {o}"],
    "PLUGIN": ["plugged in {o}"],
    "PLUGOUT": ["unplugged {o}"],
    "POUR": ["poured {o} into {t}"],
}
OPENERS = ["", "", "Then ", "After that, ", "Next, ", "Later, "]
MOVE_TO = ["went to the {r}.", "walked into the {r}.", "moved to the {r}.", "headed to the {r}.", "entered the {r}."]
TAKE = ["took the {o}.", "picked up the {o}.", "grabbed the {o}.", "got the {o}."]
PUT_DOWN = ["put down the {o}.", "dropped the {o}.", "left the {o}."]


@dataclass(frozen=True)
class Person:
    name: str
    subject: str  # she / he
    possessive: str  # her / his


def cast(actors: list[int], rng: random.Random, surnames: bool = False) -> dict[int, Person]:
    """Distinct names for the characters; with surnames=True some are surnames (used without pronouns)."""
    pool = [(n, "she", "her") for n in WOMEN] + [(n, "he", "his") for n in MEN]
    if surnames:
        pool += [(n, "they", "their") for n in SURNAMES]
    chosen = rng.sample(pool, len(actors))
    return {actor: Person(*person) for actor, person in zip(actors, chosen)}


def object_names(ids: list[str], names: dict[str, str]) -> dict[str, str]:
    """Names for ids in order of first mention; same-named objects become 'first apple', 'second apple'."""
    groups: dict[str, list[str]] = {}
    for oid in dict.fromkeys(ids):
        groups.setdefault(names[oid], []).append(oid)
    result = {}
    for name, members in groups.items():
        for i, oid in enumerate(members):
            rank = ORDINALS[i] if i < len(ORDINALS) else f"{i + 1}th"
            result[oid] = name if len(members) == 1 else f"{rank} {name}"
    return result


def base_name(display: str) -> str:
    """'second apple' -> 'apple'."""
    head, _, rest = display.partition(" ")
    return rest if rest and (head in ORDINALS or head[:-2].isdigit()) else display


def plural(name: str) -> str:
    """'apple' -> 'apples', 'dish' -> 'dishes', 'candy' -> 'candies'; names already ending in s stay."""
    if name.endswith("s"):
        return name
    if name.endswith(("x", "z", "ch", "sh")):
        return name + "es"
    if name.endswith("y") and name[-2:-1] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def indefinite(name: str) -> str:
    """'a cup', 'an apple', 'some slippers'."""
    if name.endswith("s") and not name.endswith("ss"):
        return f"some {name}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def join(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b, and c'."""
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + ", and " + parts[-1]


def mentioned(event: Event, episode_rooms: dict[str, str]) -> list[str]:
    """The object ids an event names in a story (rooms excluded)."""
    return [a for a in event.args if a not in episode_rooms]


def tellable(event: Event) -> bool:
    """Whether narrate can tell this event (a known verb with the ids its phrases need)."""
    phrases = PHRASES.get(event.verb)
    return phrases is not None and len(event.args) >= phrases[0].count("{o}") + phrases[0].count("{t}")


def narrate(events: list[Event], people: dict[int, Person], names: dict[str, str], rooms: dict[str, str],
            rng: random.Random) -> str:
    """A flowing story of every tellable event; names maps every mentioned object id to its display name."""
    seen: set[str] = set()

    def ref(oid: str) -> str:
        if oid in rooms:
            return f"the {rooms[oid]}"
        if oid in seen or names[oid] != base_name(names[oid]):
            seen.add(oid)
            return f"the {names[oid]}"
        seen.add(oid)
        return indefinite(names[oid])

    events = [e for e in events if tellable(e)]
    actors = list(dict.fromkeys(e.actor for e in events)) or list(people)
    first_room = events[0].room if events and events[0].verb not in MOVES else None
    if len(actors) == 1:
        where = f"in the {first_room}" if first_room else "at home"
        sentences = [f"{people[actors[0]].name} was {where}."]
    else:
        sentences = [f"{join([people[a].name for a in actors])} were at home."]
    previous = actors[0] if len(actors) == 1 else None
    i = 0
    while i < len(events):
        actor = events[i].actor
        size = rng.choice([1, 2, 2, 3])
        run = [events[i]]
        while len(run) < size and i + len(run) < len(events) and events[i + len(run)].actor == actor:
            run.append(events[i + len(run)])
        i += len(run)
        person = people[actor]
        clauses, last = [], None
        for event in run:
            clauses.append(_clause(event, person, rooms, ref, last, rng))
            last = event.args[0] if event.args and event.verb in MOVES else None
        subject = person.subject if actor == previous else person.name
        opener = rng.choice(OPENERS) if len(sentences) > 1 else ""
        sentence = f"{opener}{subject} {join(clauses)}."
        sentences.append(sentence[0].upper() + sentence[1:])
        previous = actor
    return " ".join(sentences)


def _clause(event: Event, person: Person, rooms: dict[str, str], ref, last: str | None, rng) -> str:
    args = event.args
    if event.verb in MOVES and args and args[0] in rooms:
        return rng.choice(TO_ROOM).format(r=rooms[args[0]], p=person.possessive)
    template = rng.choice(PHRASES[event.verb])
    target = ""
    if "{t}" in template:
        target = "it" if event.verb in PUTS and args[1] == last else ref(args[1])
    obj = ref(args[0]) if "{o}" in template else ""
    return template.format(o=obj, t=target, p=person.possessive)


def narrate_moves(events: list[Event], people: dict[int, Person], names: dict[str, str], rng: random.Random) -> str:
    """Short sentences of room changes, grabs and put-downs; each character's room is told before it acts."""
    where: dict[int, str] = {}
    sentences = []
    for event in events:
        name = people[event.actor].name
        moved = where.get(event.actor) != event.room
        if moved and (event.verb in MOVES or event.actor in where):
            sentences.append(f"{name} {rng.choice(MOVE_TO).format(r=event.room)}")
        elif moved and (event.verb == GRAB or event.verb in PUTS):
            sentences.append(f"{name} was in the {event.room}.")
        else:
            moved = False
        if moved:
            where[event.actor] = event.room
        if event.verb == GRAB:
            sentences.append(f"{name} {rng.choice(TAKE).format(o=names[event.args[0]])}")
        elif event.verb in PUTS:
            sentences.append(f"{name} {rng.choice(PUT_DOWN).format(o=names[event.args[0]])}")
    return " ".join(sentences)
