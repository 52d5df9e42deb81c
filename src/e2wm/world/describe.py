"""What a prompt says about a program: the objects that matter, their rooms, and their initial state."""

from virtualhome_eval.simulation.evolving_graph.environment import EnvironmentState, Relation

from e2wm.world.config import WorldConfig
from e2wm.world.english import action_text, fact_text, name
from e2wm.world.facts import Fact, fact_string, goal_facts
from e2wm.world.programs import load_program
from e2wm.world.sim import Action, World

_SHOWN_STATES = ("OPEN", "CLOSED", "ON", "OFF", "PLUGGED_IN", "PLUGGED_OUT")
_SCENERY = ("Floor", "Floors", "Walls", "Ceiling")  # not worth saying that the fridge is on the floor


def relevant_objects(world: World, goal: list[Fact]) -> list[int]:
    """Objects in the goal (characters and rooms aside) and the containers they start inside."""
    state = world.initial_state()
    skip = set(world.characters) | world.rooms
    objects = {i for fact in goal for i in (fact.subject, fact.target) if i is not None and i not in skip}
    for node_id in list(objects):
        objects |= {c for c in state.get_node_ids_from(node_id, Relation.INSIDE) if c not in skip}
    return sorted(objects)


def items(world: World, state: EnvironmentState, objects: list[int]) -> list[str]:
    """English names of the objects and of their rooms, each once ("Given items include ...")."""
    names = [name(world.names[i]) for i in objects]
    names += [name(world.names[room]) for i in objects if (room := world.room_of(state, i)) is not None]
    return list(dict.fromkeys(names))


def initial_text(world: World, state: EnvironmentState, objects: list[int]) -> list[str]:
    """Sentences about each object's place (room, container, surface) and its open/closed, on/off states."""
    sentences = []
    for i in objects:
        facts = []
        if (room := world.room_of(state, i)) is not None:
            facts.append(Fact(i, "INSIDE", room))
        for relation in (Relation.INSIDE, Relation.ON):
            facts += [Fact(i, relation.name, j) for j in sorted(state.get_node_ids_from(i, relation))
                      if j not in world.rooms and world.nodes[j].category not in _SCENERY]
        facts += [Fact(i, s.name) for s in sorted(state.get_node(i).states, key=lambda s: s.name)
                  if s.name in _SHOWN_STATES]
        sentences += [fact_text(fact, world.names, world.rooms) for fact in facts]
    return list(dict.fromkeys(sentences))


def show_program(config: WorldConfig) -> list[str]:
    """What `e2wm world` prints: the program, its initial facts, human program and goal, and the replay."""
    program = load_program(config.program, config.robothow_dir)
    lines = []
    world = World(program.init_graph)
    goal = goal_facts(program.init_graph, program.final_graph)
    state = world.initial_state()
    lines.append(f"{program.id} ({program.scene}): {program.activity}")
    lines.append(f"  {program.description}")
    lines.append("Initial facts:")
    for sentence in initial_text(world, state, relevant_objects(world, goal)):
        lines.append(f"  {sentence}")
    lines.append("Human program:")
    for number, step in enumerate(program.steps, start=1):
        lines.append(f"  {number}. {action_text(step.verb, [name for name, _ in step.args])}")
    lines.append(f"Goal facts ({len(goal)}):")
    for fact in goal:
        lines.append(f"  {fact_string(fact, world.names):45s} {fact_text(fact, world.names, world.rooms)}")
    if not config.replay:
        return lines
    for number, step in enumerate(program.steps, start=1):
        outcome = world.step(state, Action(step.verb, tuple(i for _, i in step.args)), in_place=True)
        if not outcome.success:
            lines.append(f"Replay stopped at step {number}: {outcome.reason}")
            break
        state = outcome.state
    reached = [fact for fact in goal if world.holds(state, fact)]
    lines.append(f"Replay reaches {len(reached)}/{len(goal)} goal facts:")
    for fact in goal:
        lines.append(f"  [{'x' if fact in reached else ' '}] {fact_string(fact, world.names)}")
    return lines
