"""Random exploration: characters take random admissible actions in one scene; every move is recorded.

Each step one character (chosen at random) picks a kind of action at random among those it can do now
(walk to another room, walk to an object, grab, put on or in, open or close, switch on or off) and then
one admissible action of that kind. The record (docs/formats.md) holds the actions and, per step, the
place (room, holder, surface, container) of every object whose place changed.
"""

import random
from dataclasses import dataclass

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentState, Property, Relation

from e2wm.world.english import name
from e2wm.world.parse import script_line
from e2wm.world.programs import load_program, program_ids
from e2wm.world.sim import HANDS, Action, World

_KINDS = {  # kind of action -> verbs; the object properties each verb needs are in _NEEDS
    "walk to a room": ("WALK",), "walk to an object": ("WALK",), "grab": ("GRAB",), "put": ("PUTBACK", "PUTIN"),
    "open or close": ("OPEN", "CLOSE"), "switch": ("SWITCHON", "SWITCHOFF"),
}
_NEEDS = {
    "GRAB": {Property.GRABBABLE}, "OPEN": {Property.CAN_OPEN}, "CLOSE": {Property.CAN_OPEN},
    "SWITCHON": {Property.HAS_SWITCH}, "SWITCHOFF": {Property.HAS_SWITCH},
    "PUTBACK": {Property.SURFACES}, "PUTIN": {Property.CONTAINERS, Property.CAN_OPEN},
}
_USEFUL = set().union(*_NEEDS.values())  # objects worth walking to ...
_SCENERY = {"Rooms", "Walls", "Floor", "Floors", "Ceiling", "Doors", "Windows", "Characters"}  # ... unless scenery


@dataclass
class ExploreConfig:
    steps: int = 30
    characters: int = 2


def add_characters(graph: dict, count: int, rng: random.Random) -> dict:
    """A copy of the graph with `count` characters in all, the new ones in random rooms."""
    nodes, edges = list(graph["nodes"]), list(graph["edges"])
    existing = [n for n in nodes if n["class_name"] == "character"]
    template = existing[0] if existing else {"class_name": "character", "category": "Characters", "properties": []}
    rooms = sorted(n["id"] for n in nodes if n["category"] == "Rooms")
    next_id = max(n["id"] for n in nodes) + 1
    for _ in range(count - len(existing)):
        nodes.append({**template, "id": next_id, "states": []})
        edges.append({"from_id": next_id, "relation_type": "INSIDE", "to_id": rng.choice(rooms)})
        next_id += 1
    return {"nodes": nodes, "edges": edges}


def place(world: World, state: EnvironmentState, node_id: int) -> dict:
    """Where an object is: its room name, the character holding it, the object it is on / inside (ids as str)."""
    holder = next((c for c in world.characters for hand in HANDS if node_id in state.get_node_ids_from(c, hand)), None)
    on = state.get_node_ids_from(node_id, Relation.ON) - world.rooms - set(world.characters)
    inside = state.get_node_ids_from(node_id, Relation.INSIDE) - world.rooms
    room = world.room_of(state, holder if holder is not None else node_id)
    return {
        "room": name(world.names[room]) if room is not None else None,
        "holder": holder,
        "on": str(min(on)) if on else None,
        "inside": str(min(inside)) if inside else None,
    }


def options(world: World, state: EnvironmentState, actor: int, rooms_of: dict[int, int], loaded: set[int]
            ) -> dict[str, list[Action]]:
    """Admissible actions of the actor, by kind (kinds with none left out). Objects in `loaded` (something
    is on or in them) are not grabbed: the simulator would leave their contents behind, out of the container."""
    here = world.room_of(state, actor)
    nearby = [i for i, room in rooms_of.items() if room == here]
    held = [i for hand in HANDS for i in state.get_node_ids_from(actor, hand)]
    found = {
        "walk to a room": [Action("WALK", (room,)) for room in sorted(world.rooms) if room != here],
        "walk to an object": [Action("WALK", (i,)) for i in nearby],
    }
    for kind, verbs in _KINDS.items():
        if kind.startswith("walk"):
            continue
        actions = []
        for verb in verbs:
            for target in nearby:
                if not world.nodes[target].properties & _NEEDS[verb] or (verb == "GRAB" and target in loaded):
                    continue
                actions += [Action(verb, (h, target)) for h in held if h != target] if kind == "put" else [
                    Action(verb, (target,))]
        found[kind] = actions
    return {k: a for k, v in found.items() if (a := world.admissible(state, v, actor))}


def explore(episode: int, seed: int, config: ExploreConfig, scene: str | None = None, root: str | None = None
            ) -> dict:
    """One exploration episode as a record (docs/formats.md); the same seed gives the same record."""
    rng = random.Random(f"{seed}:{episode}")
    scene = scene or rng.choice(program_ids(root))
    graph = add_characters(load_program(scene, root).init_graph, config.characters, rng)
    world = World(graph)
    start, state = world.initial_state(), world.initial_state()
    useful = [i for i, node in world.nodes.items() if node.properties & _USEFUL and node.category not in _SCENERY]
    rooms_of = {i: world.room_of(state, i) for i in useful}
    movable = [i for i in useful if Property.GRABBABLE in world.nodes[i].properties]
    places = {i: place(world, state, i) for i in movable}
    supports = ("ON", "INSIDE")
    fixed = {e["to_id"] for e in graph["edges"] if e["relation_type"] in supports and e["from_id"] not in movable}
    steps = []
    for t in range(config.steps):
        actor = rng.choice(world.characters)
        loaded = fixed | {int(ref) for where in places.values() for ref in _refs(where)}
        found = options(world, state, actor, rooms_of, loaded)
        if not found:
            continue
        action = rng.choice(found[rng.choice(sorted(found))])
        outcome = world.step(state, action, actor, in_place=True)
        state = outcome.state
        moved = {}
        for node_id in movable:
            now = place(world, state, node_id)
            if now != places[node_id]:
                moved[str(node_id)] = places[node_id] = now
                rooms_of[node_id] = world.room_of(state, node_id)
        steps.append({
            "t": t, "actor": actor, "action": world.script(action), "text": world.text(action),
            "success": outcome.success, "reason": outcome.reason,
            "actor_room": name(world.names[world.room_of(state, actor)]), "state": moved,
        })
    return _record(world, start, state, steps, episode, seed, scene)


def _record(world: World, start, end, steps: list[dict], episode: int, seed: int, scene: str) -> dict:
    touched = {int(i) for step in steps for _, i in script_line(step["action"])[1]} - world.rooms
    touched |= {int(i) for step in steps for i in step["state"]}
    touched |= {int(ref) for state in (start, end) for i in touched for ref in _refs(place(world, state, i))}
    touched |= {int(ref) for step in steps for where in step["state"].values() for ref in _refs(where)}
    initial = {str(i): place(world, start, i) for i in sorted(touched)}
    final = {str(i): place(world, end, i) for i in sorted(touched)}
    named = touched | {int(ref) for places in (initial, final) for where in places.values() for ref in _refs(where)}
    return {
        "episode": episode, "seed": seed, "scene": scene, "characters": world.characters,
        "objects": {str(i): name(world.names[i]) for i in sorted(named)},
        "rooms": {str(i): name(world.names[i]) for i in sorted(world.rooms)},
        "initial": initial, "steps": steps, "final": final,
    }


def _refs(where: dict) -> list[str]:
    return [ref for ref in (where["on"], where["inside"]) if ref is not None]

