"""A program's goal for the planner: its goal facts, the objects that matter, and the actions over them."""

from dataclasses import dataclass

from virtualhome_eval.simulation.evolving_graph.environment import Property

from e2wm.world.describe import relevant_objects
from e2wm.world.facts import Fact, goal_facts
from e2wm.world.programs import Program
from e2wm.world.sim import Action, World

# verbs on one object -> the property the object needs (None: any object)
_UNARY = {
    "WALK": None, "FIND": None, "TURNTO": None, "GRAB": Property.GRABBABLE, "OPEN": Property.CAN_OPEN,
    "CLOSE": Property.CAN_OPEN, "SWITCHON": Property.HAS_SWITCH, "SWITCHOFF": Property.HAS_SWITCH,
    "PLUGIN": Property.HAS_PLUG, "PLUGOUT": Property.HAS_PLUG, "SIT": Property.SITTABLE, "LIE": Property.LIEABLE,
    "DROP": Property.GRABBABLE,
}
_GRABBABLE_BY_NAME = ("water",)  # the simulator lets these be grabbed without the property


@dataclass
class Goal:
    """What the planner needs: the world, the goal facts, the objects that matter and the candidate actions."""

    world: World
    facts: list[Fact]
    objects: list[int]
    candidates: list[Action]
    effects: list[int]  # per candidate: bitmask of the goal facts it can make true
    touches: list[int]  # per candidate: bitmask of the goal facts whose objects it acts on


def candidate_actions(world: World, objects: list[int]) -> list[Action]:
    """Actions over the relevant objects and the rooms: moves, object actions, and puts between objects."""
    actions = [Action("WALK", (room,)) for room in sorted(world.rooms)] + [Action("STANDUP")]
    for node_id in objects:
        properties = world.nodes[node_id].properties
        actions += [Action(verb, (node_id,)) for verb, need in _UNARY.items() if need is None or need in properties]
        if world.names[node_id] in _GRABBABLE_BY_NAME and Property.GRABBABLE not in properties:
            actions.append(Action("GRAB", (node_id,)))
    for held in objects:
        held_properties = world.nodes[held].properties
        pourable = bool(held_properties & {Property.POURABLE, Property.DRINKABLE})
        if Property.GRABBABLE not in held_properties and not pourable:
            continue
        for target in objects:
            if target != held:
                properties = world.nodes[target].properties
                actions.append(Action("PUTBACK", (held, target)))
                if Property.CAN_OPEN in properties or Property.CONTAINERS in properties:
                    actions.append(Action("PUTIN", (held, target)))
                if pourable and Property.RECIPIENT in properties:
                    actions.append(Action("POUR", (held, target)))
    return actions


def _effects(action: Action, goal: list[Fact], world: World) -> int:
    """Bitmask of the goal facts this action can directly make true (a hand-made model of the verbs)."""
    made = 0
    for bit, fact in enumerate(goal):
        character = fact.subject in world.characters or fact.target in world.characters
        other = fact.target if fact.subject in world.characters else fact.subject
        verb, args = action.verb, action.args
        pair = fact.relation == "CLOSE" and set(args) == {fact.subject, fact.target}
        produced = {
            "OPEN": fact.relation == "OPEN" and args == (fact.subject,),
            "CLOSE": fact.relation == "CLOSED" and args == (fact.subject,),
            "SWITCHON": fact.relation == "ON" and fact.target is None and args == (fact.subject,),
            "SWITCHOFF": fact.relation == "OFF" and args == (fact.subject,),
            "PLUGIN": fact.relation == "PLUGGED_IN" and args == (fact.subject,),
            "PLUGOUT": fact.relation == "PLUGGED_OUT" and args == (fact.subject,),
            "SIT": character and (fact.relation in ("SITTING", "FACING") or (fact.relation, args) == ("ON", (other,))),
            "LIE": character and (fact.relation == "LYING" or (fact.relation, args) == ("ON", (other,))),
            "GRAB": character and fact.relation.startswith("HOLDS") and args == (other,),
            "PUTBACK": (fact.relation == "ON" and args == (fact.subject, fact.target)) or pair,
            "PUTIN": (fact.relation == "INSIDE" and args == (fact.subject, fact.target)) or pair,
            "POUR": fact.relation == "INSIDE" and args == (fact.subject, fact.target),
            "WALK": character and fact.relation in ("INSIDE", "CLOSE") and args == (other,),
            "FIND": character and fact.relation == "CLOSE" and args == (other,),
            "TURNTO": character and fact.relation == "FACING" and args == (other,),
        }
        if produced.get(verb, False):
            made |= 1 << bit
    return made


def make_goal(program: Program) -> Goal:
    """The planning goal of a program: its facts = facts gained from its initial to its final graph."""
    return goal_for(World(program.init_graph), goal_facts(program.init_graph, program.final_graph))


def goal_for(world: World, goal: list[Fact]) -> Goal:
    """The planning goal of any goal facts in a world (hand-made goals included)."""
    objects = relevant_objects(world, goal)
    candidates = candidate_actions(world, objects)
    effects = [_effects(action, goal, world) for action in candidates]
    touches = [sum(1 << bit for bit, fact in enumerate(goal) if {fact.subject, fact.target} & set(action.args))
               for action in candidates]
    return Goal(world, goal, objects, candidates, effects, touches)
