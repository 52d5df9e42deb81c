"""The simulator behind a small API: a World (one scene graph) and its States (cheap copy-on-branch overlays).

`virtualhome-eval`'s EnvironmentState already stores only the changes over an immutable base graph; we
keep that, execute actions in place on a state we own, and copy a state (a few small dicts) only where a
search branches; `fast` replaces the simulator's scans over all nodes with index look-ups.
"""

import logging
from dataclasses import dataclass

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentGraph, EnvironmentState, Node, Relation
from virtualhome_eval.simulation.evolving_graph.environment import State as NodeState
from virtualhome_eval.simulation.evolving_graph.execution import ExecutionInfo, ScriptExecutor
from virtualhome_eval.simulation.evolving_graph.scripts import Action as Verb
from virtualhome_eval.simulation.evolving_graph.scripts import Script, ScriptLine, ScriptObject
from virtualhome_eval.simulation.evolving_graph.utils import load_name_equivalence

from e2wm.world import fast
from e2wm.world.english import action_text
from e2wm.world.facts import SYMMETRIC, Fact

fast.install()
logging.getLogger("virtualhome_eval").setLevel(logging.WARNING)
_NAME_EQUIVALENCE = load_name_equivalence()
MOVES = ("WALK", "RUN", "FIND")  # verbs that can take a character to another room
HANDS = (Relation.HOLDS_RH, Relation.HOLDS_LH)


@dataclass(frozen=True)
class Action:
    """A verb and the node ids it acts on: Action('PUTIN', (12, 45))."""

    verb: str
    args: tuple[int, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """The result of one action: success, the state after it, and the simulator's reason when it failed."""

    success: bool
    state: EnvironmentState
    reason: str | None = None


def clone(state: EnvironmentState) -> EnvironmentState:
    """An independent copy of a state: copies the change overlay (small), never the base graph.

    Nodes in the overlay are replaced, never mutated, by the executors, so the node dict is copied shallowly;
    the edge sets are mutated, so each is copied.
    """
    new = EnvironmentState.__new__(EnvironmentState)
    new.__dict__.update(state.__dict__)
    new._new_nodes = dict(state._new_nodes)
    new._removed_edges_from = {key: set(ids) for key, ids in state._removed_edges_from.items()}
    new._new_edges_from = {key: set(ids) for key, ids in state._new_edges_from.items()}
    new._script_objects = dict(state._script_objects)
    new.executor_data = dict(state.executor_data)
    return new


class World:
    """One scene graph: names, rooms and characters, and the actions that can be executed in it."""

    def __init__(self, graph: dict):
        self.graph = EnvironmentGraph(graph)
        self.nodes = {node.id: node for node in self.graph.get_nodes()}
        self.names = {node_id: node.class_name for node_id, node in self.nodes.items()}
        self.rooms = {node_id for node_id, node in self.nodes.items() if node.category == "Rooms"}
        self.characters = sorted(n.id for n in self.graph.get_nodes_by_attr("class_name", "character"))

    def initial_state(self) -> EnvironmentState:
        return EnvironmentState(self.graph, _NAME_EQUIVALENCE, instance_selection=True)

    def clone(self, state: EnvironmentState) -> EnvironmentState:
        return clone(state)

    def script(self, action: Action) -> str:
        """The script line of an action: '[PUTIN] <cup> (12) <kitchen_cabinet> (45)'."""
        return f"[{action.verb}]" + "".join(f" <{self.names[i]}> ({i})" for i in action.args)

    def text(self, action: Action) -> str:
        """The action in English: 'Put cup in kitchen cabinet.'"""
        return action_text(action.verb, [self.names[i] for i in action.args])

    def _line(self, action: Action) -> Script:
        objects = [ScriptObject(self.names[i], i) for i in action.args]
        return Script([ScriptLine(Verb[action.verb], objects, 0)])

    def _run(self, state: EnvironmentState, action: Action, character: int, modify: bool, in_place: bool):
        info = ExecutionInfo()
        index = self.characters.index(character)
        results = ScriptExecutor.call_action_method(self._line(action), state, info, index, modify, in_place)
        return (next(results, None) if results is not None else None), info

    def can(self, state: EnvironmentState, action: Action, character: int | None = None) -> bool:
        """Whether the simulator accepts the action now (checks preconditions only; nothing changes)."""
        result, _ = self._run(state, action, character or self.characters[0], modify=False, in_place=False)
        return result is not None

    def admissible(self, state: EnvironmentState, candidates: list[Action], character: int | None = None
                   ) -> list[Action]:
        """The candidates the simulator accepts in this state for this character."""
        return [action for action in candidates if self.can(state, action, character)]

    def step(self, state: EnvironmentState, action: Action, character: int | None = None, in_place: bool = False
             ) -> Outcome:
        """Execute one action. With in_place the given state is changed (cheapest); otherwise it is copied first."""
        if action.verb not in Verb.__members__ or any(i not in self.nodes for i in action.args):
            return Outcome(False, state, f"unknown action or node in {action}")
        work = state if in_place else clone(state)
        result, info = self._run(work, action, character or self.characters[0], modify=True, in_place=True)
        if result is None:
            return Outcome(False, state, info.get_error_string() or "not executable here")
        if action.verb in MOVES:
            self._carry(result, character or self.characters[0])
        return Outcome(True, result)

    def _carry(self, state: EnvironmentState, character: int) -> None:
        """Put held objects in their holder's room: the simulator's walk leaves them in the room it left."""
        room = self.room_of(state, character)
        for hand in HANDS:
            for held in list(state.get_node_ids_from(character, hand)):
                for old in list(state.get_node_ids_from(held, Relation.INSIDE) & self.rooms):
                    state.delete_edge(Node(held), Relation.INSIDE, Node(old))
                state.add_edge(Node(held), Relation.INSIDE, Node(room))

    def holds(self, state: EnvironmentState, fact: Fact) -> bool:
        """Whether a fact is true in a state (a CLOSE fact in either direction)."""
        if fact.target is None:
            node = state.get_node(fact.subject)
            return NodeState[fact.relation] in node.states if fact.relation in NodeState.__members__ else False
        relation = Relation[fact.relation]
        source, target = Node(fact.subject), Node(fact.target)
        return state.has_edge(source, relation, target) or (
            fact.relation == SYMMETRIC and state.has_edge(target, relation, source)
        )

    def room_of(self, state: EnvironmentState, node_id: int) -> int | None:
        """The room a node is in (following INSIDE edges), or None."""
        seen = set()
        while node_id not in self.rooms:
            if node_id in seen:
                return None
            seen.add(node_id)
            inside = state.get_node_ids_from(node_id, Relation.INSIDE)
            rooms = inside & self.rooms
            if rooms:
                return min(rooms)
            if not inside:
                return None
            node_id = min(inside)
        return node_id
