"""One program's plan record (docs/formats.md): its goal, the MCTS plan, and the prompt material."""

from e2wm.experience.goals import make_goal
from e2wm.experience.mcts import SearchConfig, plan
from e2wm.world.describe import initial_text, items
from e2wm.world.english import action_text
from e2wm.world.facts import fact_string
from e2wm.world.programs import load_program


def plan_record(program_id: str, config: SearchConfig, seed: int, root: str | None = None) -> dict:
    """Plan one program with MCTS (seeded by seed and program id) and describe the result.

    The record holds only what the seed fixes (its wall seconds are measured by experience.runner), so the same
    seed gives the same record."""
    program = load_program(program_id, root)
    goal = make_goal(program)
    world = goal.world
    result = plan(goal, config, seed=f"{seed}:{program_id}")
    state = world.initial_state()
    return {
        "program": program.id,
        "activity": program.activity,
        "description": program.description,
        "scene": program.scene,
        "goal": [fact_string(fact, world.names) for fact in goal.facts],
        "achieved": [fact_string(fact, world.names) for bit, fact in enumerate(goal.facts) if result.held >> bit & 1],
        "success": result.success,
        "plan": [world.script(action) for action in result.actions],
        "plan_text": [world.text(action) for action in result.actions],
        "items": items(world, state, goal.objects),
        "initial_text": initial_text(world, state, goal.objects),
        "human_plan_text": [action_text(step.verb, [n for n, _ in step.args]) for step in program.steps],
        "return": round(result.value, 3),
        "simulations": result.simulations,
        "seed": seed,
    }
