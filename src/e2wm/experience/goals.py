"""A program's goal for the planner: its goal facts, the objects that matter, and the actions over them.

Two kinds of goal (`KINDS`, `e2wm collect plans --goals`): `final-graph`, the facts a program's final graph gains
over its initial graph (`make_goal`), and `eai`, the goals of the Embodied Agent Interface's task made from the
program (`eai_goal`): its node and edge goals as the facts, and its action goals as verbs the plan must execute in
order, with the plan told the way EAI's evaluator reads it (each verb once, objects by the names its prompt lists).
"""

import re
from dataclasses import dataclass, field

from virtualhome_eval.simulation.evolving_graph.environment import Property
from virtualhome_eval.simulation.evolving_graph.eval_utils import valid_actions

from e2wm.world.describe import relevant_objects
from e2wm.world.eai_tasks import EAITask
from e2wm.world.facts import Fact, goal_facts
from e2wm.world.programs import Program, load_program
from e2wm.world.sim import Action, World

KINDS = ("final-graph", "eai")  # what a plan aims at: the program's final graph, or EAI's goals of its task

# verbs on one object -> the property the object needs (None: any object)
_UNARY = {
    "WALK": None, "FIND": None, "TURNTO": None, "GRAB": Property.GRABBABLE, "OPEN": Property.CAN_OPEN,
    "CLOSE": Property.CAN_OPEN, "SWITCHON": Property.HAS_SWITCH, "SWITCHOFF": Property.HAS_SWITCH,
    "PLUGIN": Property.HAS_PLUG, "PLUGOUT": Property.HAS_PLUG, "SIT": Property.SITTABLE, "LIE": Property.LIEABLE,
    "DROP": Property.GRABBABLE,
}
_GRABBABLE_BY_NAME = ("water",)  # the simulator lets these be grabbed without the property
_CLEANING = ("WASH", "RINSE", "SCRUB", "WIPE")  # verbs that make an object CLEAN (the simulator's WashExecutor)
# an object line of EAI's prompt, under 'Objects in the scene' (motion_planner.get_symbolic_goal_nl)
_LISTED = re.compile(r"^(\w+), id: (\d+), properties:", re.MULTILINE)


@dataclass(frozen=True)
class Trace:
    """What a plan has done that the goal facts do not show: its action goals met so far, in order, and the verbs it
    used (kept only for a goal whose plans use each verb once)."""

    met: int = 0
    verbs: frozenset[str] = frozenset()


@dataclass
class Goal:
    """What the planner needs: the world, the goal facts, the objects that matter and the candidate actions; and,
    for a plan judged by its actions too, the verbs it must execute in order and whether it may repeat a verb."""

    world: World
    facts: list[Fact]
    objects: list[int]
    candidates: list[Action]
    effects: list[int]  # per candidate: bitmask of the goal facts it can make true
    touches: list[int]  # per candidate: bitmask of the goal facts whose objects it acts on
    kind: str = KINDS[0]
    action_goals: tuple[frozenset[str], ...] = ()  # verbs to execute in this order; an entry accepts any of its verbs
    once: bool = False  # each verb at most once in a plan (EAI reads a plan as a JSON object keyed by verb)
    action_names: tuple[str, ...] = field(default=(), repr=False)  # the action goals as the task writes them

    def after(self, trace: Trace, action: Action) -> Trace:
        """The trace once `action` has executed: the next action goal is met when its verb is one of the entry's
        (one goal per step, as EAI's `check_order_with_or_score` finds each goal after the previous one)."""
        met = trace.met + self.advances(trace, action)
        verbs = trace.verbs | {action.verb} if self.once else trace.verbs
        return trace if (met, verbs) == (trace.met, trace.verbs) else Trace(met, verbs)

    def advances(self, trace: Trace, action: Action) -> bool:
        """Whether executing `action` meets the next action goal."""
        return trace.met < len(self.action_goals) and action.verb in self.action_goals[trace.met]

    def allows(self, trace: Trace, action: Action) -> bool:
        """Whether the plan may take `action` next (a verb already used is refused when `once`)."""
        return not self.once or action.verb not in trace.verbs

    def actions_done(self, trace: Trace) -> bool:
        """Whether every action goal is met."""
        return trace.met == len(self.action_goals)


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
        produced["RUN"] = produced["WALK"]
        produced["PUTON"] = fact.relation == "ON" and fact.target in world.characters and args == (fact.subject,)
        if verb in _CLEANING:
            produced[verb] = fact.relation == "CLEAN" and args == (fact.subject,)
        if produced.get(verb, False):
            made |= 1 << bit
    return made


def make_goal(program: Program) -> Goal:
    """The planning goal of a program: its facts = facts gained from its initial to its final graph."""
    return goal_for(World(program.init_graph), goal_facts(program.init_graph, program.final_graph))


def goal_for(world: World, goal: list[Fact], objects: list[int] | None = None,
             candidates: list[Action] | None = None) -> Goal:
    """The planning goal of any goal facts in a world (hand-made goals included); the objects default to the goal's
    `relevant_objects` and the candidates to `candidate_actions` over them."""
    objects = relevant_objects(world, goal) if objects is None else objects
    candidates = candidate_actions(world, objects) if candidates is None else candidates
    effects = [_effects(action, goal, world) for action in candidates]
    touches = [sum(1 << bit for bit, fact in enumerate(goal) if {fact.subject, fact.target} & set(action.args))
               for action in candidates]
    return Goal(world, goal, objects, candidates, effects, touches)


def judged_objects(task: EAITask, world: World) -> dict[str, int]:
    """The objects EAI's evaluator lets a plan name: class name -> the node it executes for that name.

    Its evaluator reads a plan by class name and looks each name up in the objects its prompt lists
    (`relevant_name_to_id` of motion_planner.get_symbolic_goal_nl, in the prompt's order): of two listed nodes with one
    name the later one wins, and a name it does not list is a hallucination error. Nodes the world lacks are left
    out."""
    named: dict[str, int] = {}
    for name, node in _LISTED.findall(task.prompt):
        named[name] = int(node)
    return {name: node for name, node in named.items() if world.names.get(node) == name}


def eai_goal(task: EAITask, root: str | None = None) -> Goal:
    """The planning goal of an EAI task, in the initial graph of its program (`task.program_id`).

    Facts: the task's node goals and edge goals. Action goals: its verbs, in order ('TYPE|TOUCH' accepts either).
    Candidates: `candidate_actions` over the objects the evaluator can name (`judged_objects`), RUN beside every
    WALK, PUTON (wear) for every grabbable one, and every action-goal verb over them (0, 1 or 2 objects as EAI's
    `valid_actions` says), keeping only the verbs and objects the evaluator accepts; a plan uses each verb once,
    since the evaluator reads a plan as a JSON object keyed by verb (repeated keys keep one step). Source:
    virtualhome_eval evaluate_results.py, eval_utils.py.
    """
    program = load_program(task.program_id, root)
    world = World(program.init_graph)
    judged = judged_objects(task, world)
    nameable = set(judged.values())
    objects = sorted(nameable - world.rooms - set(world.characters))
    candidates = candidate_actions(world, objects)
    candidates += [Action("RUN", action.args) for action in candidates if action.verb == "WALK"]
    candidates += [Action("PUTON", (node,)) for node in objects if Property.GRABBABLE in world.nodes[node].properties]
    entries = tuple(frozenset(verb.strip().upper() for verb in entry.split("|")) for entry in task.action_goals)
    for verb in sorted(set().union(*entries)) if entries else ():
        arity = valid_actions[verb][1] if verb in valid_actions else None
        if arity == 0:
            candidates.append(Action(verb))
        elif arity == 1:
            candidates += [Action(verb, (node,)) for node in objects]
        elif arity == 2:
            candidates += [Action(verb, (a, b)) for a in objects for b in objects if a != b]
    candidates = [action for action in dict.fromkeys(candidates)
                  if action.verb in valid_actions and set(action.args) <= nameable]
    goal = goal_for(world, [*task.node_goals, *task.edge_goals], objects, candidates)
    goal.kind, goal.action_goals, goal.once, goal.action_names = KINDS[1], entries, True, task.action_goals
    return goal
