"""`e2wm world`: show a program (activity, initial facts, human program, goal) and optionally replay it."""

from e2wm.world.config import WorldConfig
from e2wm.world.describe import initial_text, relevant_objects
from e2wm.world.english import action_text, fact_text
from e2wm.world.facts import fact_string, goal_facts
from e2wm.world.programs import load_program
from e2wm.world.sim import Action, World

CONFIG = WorldConfig


def run(config: WorldConfig) -> None:
    program = load_program(config.program, config.robothow_dir)
    world = World(program.init_graph)
    goal = goal_facts(program.init_graph, program.final_graph)
    state = world.initial_state()
    print(f"{program.id} ({program.scene}): {program.activity}")
    print(f"  {program.description}")
    print("Initial facts:")
    for sentence in initial_text(world, state, relevant_objects(world, goal)):
        print(f"  {sentence}")
    print("Human program:")
    for number, step in enumerate(program.steps, start=1):
        print(f"  {number}. {action_text(step.verb, [name for name, _ in step.args])}")
    print(f"Goal facts ({len(goal)}):")
    for fact in goal:
        print(f"  {fact_string(fact, world.names):45s} {fact_text(fact, world.names, world.rooms)}")
    if not config.replay:
        return
    for number, step in enumerate(program.steps, start=1):
        outcome = world.step(state, Action(step.verb, tuple(i for _, i in step.args)), in_place=True)
        if not outcome.success:
            print(f"Replay stopped at step {number}: {outcome.reason}")
            break
        state = outcome.state
    reached = [fact for fact in goal if world.holds(state, fact)]
    print(f"Replay reaches {len(reached)}/{len(goal)} goal facts:")
    for fact in goal:
        print(f"  [{'x' if fact in reached else ' '}] {fact_string(fact, world.names)}")
