"""Running a plan told in English in the simulator: which steps execute, where it first fails, which goal facts it
reaches.

Each sentence is read back (`parse.parse_sentence`), its object names resolved to node ids in the state it is
executed in (`parse.resolve`), and the action run with `World.step` from the initial state, in order. A step that
does not parse, names an object the scene lacks, or that the simulator refuses, changes nothing and is recorded;
execution goes on with the next step from the unchanged state. So `steps_executed` says how much of a plan works
(a plan that fails at its first step is not scored as if the rest failed too), and `first_failure` where it first
went wrong. The later steps run in a state without the failed step's effect, so they are judged as the plan
would unfold in the simulator, not as its author meant. EAI's evaluator (Li et al., NeurIPS 2024) stops at the
first failure instead, and its executability differs from `executable` here: it lets a step that changes nothing
(an "additional step", e.g. standing up while standing) pass, where the simulator's refusal fails it here.
"""

from dataclasses import dataclass

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentState

from e2wm.world.facts import Fact
from e2wm.world.parse import ParsedStep, class_key, name_index, resolve
from e2wm.world.sim import MOVES, Action, World

UNKNOWN_OBJECT = "no object named {name!r} in the scene"  # EAI: a hallucinated object


@dataclass(frozen=True)
class StepResult:
    """One step of a plan: its position (0-based), sentence, the action it was resolved to (None when it did not
    parse or resolve), whether it executed and, when not, why (a parse error, an unknown object, or the
    simulator's reason)."""

    index: int
    sentence: str
    action: Action | None
    success: bool
    reason: str | None = None


@dataclass(frozen=True)
class Execution:
    """A plan executed from a scene's initial state.

    steps: every step's result, in plan order. executed: how many succeeded. steps_executed: executed / steps in
    [0, 1] (0 for a plan without steps). executable: every step parsed, resolved and executed, and there was at
    least one. first_failure: the first step that failed, or None. reached: per goal fact whether it holds in the
    final state. goals_reached: the share of goal facts that hold, in [0, 1]; None when there are no goal facts.
    """

    steps: list[StepResult]
    executed: int
    steps_executed: float
    executable: bool
    first_failure: StepResult | None
    reached: list[bool]
    goals_reached: float | None


@dataclass
class Scene:
    """A world with what execution needs to resolve names in it: the class-name index (`parse.name_index`, built
    once) and the node ids to prefer for a class with several instances (a program's own script ids)."""

    world: World
    prefer: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.index = name_index(self.world.names)


def execute_plan(scene: Scene, steps: list[ParsedStep], goal: list[Fact], character: int | None = None
                 ) -> Execution:
    """Execute parsed steps in order from the scene's initial state (module docstring: failed steps are skipped).

    character: the node id that acts (default: the world's first character). Names are resolved in the state
    each step runs in (`_resolve`).
    """
    world = scene.world
    character = character or world.characters[0]
    state = world.initial_state()
    results = []
    mentions: dict[str, list[tuple[int, str]]] = {}  # class key -> (node id, verb) per resolved mention, in order
    for index, step in enumerate(steps):
        if step.error:
            results.append(StepResult(index, step.sentence, None, False, step.error))
            continue
        ids = [_resolve(scene, state, character, step.verb, name, mentions) for name in step.names]
        for name, node in zip(step.names, ids):
            if node is not None:
                mentions.setdefault(class_key(name), []).append((node, step.verb))
        missing = [name for name, node in zip(step.names, ids) if node is None]
        if missing:
            results.append(StepResult(index, step.sentence, None, False, UNKNOWN_OBJECT.format(name=missing[0])))
            continue
        action = Action(step.verb, tuple(ids))
        outcome = world.step(state, action, character)  # a copy: a refused step leaves the state as it was
        if outcome.success:
            state = outcome.state
        results.append(StepResult(index, step.sentence, action, outcome.success, outcome.reason))
    executed = sum(result.success for result in results)
    reached = [world.holds(state, fact) for fact in goal]
    return Execution(
        steps=results,
        executed=executed,
        steps_executed=executed / len(results) if results else 0.0,
        executable=bool(results) and executed == len(results),
        first_failure=next((result for result in results if not result.success), None),
        reached=reached,
        goals_reached=sum(reached) / len(reached) if reached else None,
    )


def _resolve(scene: Scene, state: EnvironmentState, character: int, verb: str, name: str,
             mentions: dict[str, list[tuple[int, str]]]) -> int | None:
    """`parse.resolve` with what the plan said before: a name continues the instance last named under its class
    ('Find light. Switch on light.'), except that a move (WALK, RUN, FIND) to a class the plan last named with
    another verb looks for an instance not named yet ('... Switch on light. Find light. Switch on light.' means
    the second light). English cannot tell instances apart otherwise; with this rule the English of 471 of the 518
    bundled programs reaches all their goal facts (their scripts with node ids: 475; the other 4 name two
    instances alike, e.g. file160_1 finds two controllers in a row)."""
    before = mentions.get(class_key(name), [])
    again = bool(before) and verb in MOVES and before[-1][1] not in MOVES
    world = scene.world
    room = world.room_of(state, character)
    return resolve(name, scene.index, scene.prefer, recent=None if again or not before else before[-1][0],
                   avoid={node for node, _ in before} if again else (),
                   near=lambda node: world.room_of(state, node) == room)
