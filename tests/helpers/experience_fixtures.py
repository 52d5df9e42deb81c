"""Hand-made experience records in the docs/formats.md schema, for the task-building tests.

`House` writes exploration episodes step by step the way the collector records them (the place of every
object that changed, after each step); plan records are plain dicts.
"""

import copy
import json
import random
from pathlib import Path

ROOMS = {"1": "kitchen", "2": "living room", "3": "bedroom", "4": "bathroom"}
OBJECTS = {
    "10": "kitchen table", "11": "fridge", "12": "apple", "13": "cup", "14": "plate", "15": "apple",
    "20": "sofa", "21": "coffee table", "22": "book", "30": "bed", "31": "nightstand", "32": "pillow",
    "40": "towel", "41": "sink",
}
START = {  # object -> (room id, on, inside)
    "10": ("1", None, None), "11": ("1", None, None), "12": ("1", "10", None), "13": ("1", "10", None),
    "14": ("1", None, "11"), "15": ("1", "10", None), "20": ("2", None, None), "21": ("2", None, None),
    "22": ("3", "31", None), "30": ("3", None, None), "31": ("3", None, None), "32": ("3", "30", None),
    "40": ("4", None, None), "41": ("4", None, None),
}


def place(room, holder=None, on=None, inside=None) -> dict:
    return {"room": room, "holder": holder, "on": on, "inside": inside}


class House:
    """A tiny scene; each method appends one successful step (with the state the collector would record)."""

    def __init__(self, episode: int = 0, characters=(1,), start_room: str = "1"):
        self.episode = episode
        self.characters = list(characters)
        self.where = {c: ROOMS[start_room] for c in characters}
        self.places = {o: place(ROOMS[r], None, on, inside) for o, (r, on, inside) in START.items()}
        self.initial = copy.deepcopy(self.places)
        self.steps = []

    def _step(self, actor, action, text, changed):
        state = {o: dict(self.places[o]) for o in changed}
        self.steps.append({"t": len(self.steps), "actor": actor, "action": action, "text": text, "success": True,
                           "reason": None, "actor_room": self.where[actor], "state": state})
        return self

    def walk(self, actor, room_id):
        self.where[actor] = ROOMS[room_id]
        carried = [o for o, p in self.places.items() if p["holder"] == actor]
        for o in carried:
            self.places[o]["room"] = self.where[actor]
        name = ROOMS[room_id]
        return self._step(actor, f"[WALK] <{name.replace(' ', '_')}> ({room_id})", f"Walk to {name}.", carried)

    def walk_to(self, actor, oid):
        name = OBJECTS[oid]
        return self._step(actor, f"[WALK] <{name.replace(' ', '_')}> ({oid})", f"Walk to {name}.", [])

    def act(self, actor, verb, oid):
        name = OBJECTS[oid]
        return self._step(actor, f"[{verb}] <{name.replace(' ', '_')}> ({oid})", f"{verb.title()} {name}.", [])

    def grab(self, actor, oid):
        self.places[oid] = place(self.where[actor], actor)
        name = OBJECTS[oid]
        return self._step(actor, f"[GRAB] <{name.replace(' ', '_')}> ({oid})", f"Grab {name}.", [oid])

    def put(self, actor, oid, target, relation="on"):
        self.places[oid] = place(self.where[actor], None, target if relation == "on" else None,
                                 target if relation == "in" else None)
        verb = "PUTBACK" if relation == "on" else "PUTIN"
        a, b = OBJECTS[oid], OBJECTS[target]
        action = f"[{verb}] <{a.replace(' ', '_')}> ({oid}) <{b.replace(' ', '_')}> ({target})"
        return self._step(actor, action, f"Put {a} {relation} {b}.", [oid])

    def fail(self, actor, action):
        self.steps.append({"t": len(self.steps), "actor": actor, "action": action, "text": "", "success": False,
                           "reason": "not reachable", "actor_room": self.where[actor], "state": {}})
        return self

    def record(self, seed: int = 0) -> dict:
        return {"episode": self.episode, "seed": seed, "scene": "test", "characters": self.characters,
                "objects": OBJECTS, "rooms": ROOMS, "initial": self.initial, "steps": self.steps,
                "final": copy.deepcopy(self.places)}


PORTABLE = ["12", "13", "14", "15", "22", "32", "40"]
RECEPTACLES = {"10": "on", "11": "in", "20": "on", "21": "on", "30": "on", "31": "on", "41": "in"}


def random_episode(episode: int, characters: int = 2, steps: int = 16) -> dict:
    """Characters wandering the house at random, grabbing and putting things (seeded by the episode number)."""
    rng = random.Random(episode)
    house = House(episode, characters=range(1, characters + 1), start_room=rng.choice(list(ROOMS)))
    for _ in range(steps):
        actor = rng.choice(house.characters)
        room = house.where[actor]
        held = [o for o, p in house.places.items() if p["holder"] == actor]
        here = [o for o in PORTABLE if house.places[o]["room"] == room and house.places[o]["holder"] is None]
        spots = [o for o in RECEPTACLES if house.places[o]["room"] == room]
        choice = rng.random()
        if held and spots and choice < 0.4:
            target = rng.choice(spots)
            house.put(actor, rng.choice(held), target, RECEPTACLES[target])
        elif here and len(held) < 2 and choice < 0.7:
            house.grab(actor, rng.choice(here))
        elif spots and choice < 0.8:
            house.walk_to(actor, rng.choice(spots))
        else:
            house.walk(actor, rng.choice([r for r in ROOMS if ROOMS[r] != room]))
    return house.record(seed=episode)


def plan_record(program: str, activity: str, steps: list[tuple[str, str]], items: list[str],
                initial_text: list[str], success: bool = True) -> dict:
    """A plan record; steps are (script line, English sentence) pairs; the goal is met iff success."""
    goal = [f"{items[0].replace(' ', '_')} || ON"]
    return {"program": program, "activity": activity, "description": "", "scene": "TrimmedTestScene1",
            "goal": goal, "achieved": goal if success else [], "success": success,
            "plan": [s for s, _ in steps], "plan_text": [t for _, t in steps], "items": items,
            "initial_text": initial_text, "human_plan_text": [], "simulations": 10, "seconds": 0.1, "seed": 0}


def programs() -> list[dict]:
    """Twelve programs over five activities (two of them failed or inconsistent)."""
    def walk(room, rid):
        return f"[WALK] <{room.replace(' ', '_')}> ({rid})", f"Walk to {room}."

    def do(verb, obj, oid, text):
        return f"[{verb}] <{obj.replace(' ', '_')}> ({oid})", text

    records = []
    for i, room in enumerate(["living room", "bedroom", "kitchen"]):
        records.append(plan_record(f"tv_{i}", "Watch TV", [walk(room, i), do("SWITCHON", "television", 50 + i,
                       "Switch on television.")], ["television", room], ["The television is off.",
                       f"The television is in the {room}."]))
        records.append(plan_record(f"light_{i}", "Turn on light", [walk(room, i), do("SWITCHON", "light", 60 + i,
                       "Switch on light.")], ["light", room], [f"The light is in the {room}.", "The light is off."]))
        records.append(plan_record(f"read_{i}", "Read book", [walk(room, i), do("GRAB", "book", 70 + i,
                       "Grab book."), do("READ", "book", 70 + i, "Read book.")], ["book", room],
                       [f"The book is in the {room}."]))
    records.append(plan_record("fridge_0", "Put groceries in Fridge", [walk("kitchen", 2), do("OPEN", "fridge", 80,
                   "Open fridge.")], ["fridge", "kitchen"], ["The fridge is closed."]))
    records.append(plan_record("fridge_1", "Put groceries in Fridge", [walk("kitchen", 2)], ["fridge", "kitchen"],
                   ["The fridge is closed."], success=False))
    bad = plan_record("sofa_0", "Relax on sofa", [walk("living room", 0), do("SIT", "sofa", 90, "Sit on sofa.")],
                      ["sofa", "living room"], [])
    bad["plan_text"] = bad["plan_text"][:1]  # one sentence for two script lines
    records.append(bad)
    return records


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def inputs(folder: Path, episodes: int = 40) -> tuple[Path, Path]:
    """A plans file (programs()) and an explore file (random episodes) in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    plans = write_jsonl(folder / "plans.jsonl", programs())
    explore = write_jsonl(folder / "explore.jsonl", [random_episode(i) for i in range(episodes)])
    return plans, explore


def late_record(episode: int, delay: float) -> dict:
    """A collection job for the runner's tests: an episode record that takes delay seconds to make (jobs given
    decreasing delays finish in reverse order)."""
    import time

    time.sleep(delay)
    return {"episode": episode, "seed": 0, "success": episode % 2 == 0}
