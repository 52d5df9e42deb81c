"""One program's plan record (docs/formats.md): its goal, the MCTS plan, and the prompt material."""

from functools import cache

from e2wm.errors import InputError
from e2wm.experience.goals import KINDS, Goal, eai_goal, make_goal
from e2wm.experience.mcts import SearchConfig, plan
from e2wm.world import eai_tasks
from e2wm.world.describe import initial_text, items
from e2wm.world.english import action_text
from e2wm.world.facts import fact_string
from e2wm.world.programs import load_program


@cache
def _eai_task_of() -> dict[str, eai_tasks.EAITask]:
    """EAI's tasks by the program they were made from ('file27_2' -> task '27_2')."""
    return {task.program_id: task for task in eai_tasks.load_tasks()}


def program_goal(program_id: str, goals: str = KINDS[0], root: str | None = None) -> Goal:
    """The goal a program is planned toward: with goals 'eai', EAI's goals of the task made from it (`eai_goal`) when
    there is one (the 342 programs of EAI's tasks); otherwise, and with 'final-graph', its final graph's facts
    (`make_goal`). InputError for an unknown kind."""
    if goals not in KINDS:
        raise InputError(f"--goals {goals!r}: choose one of {', '.join(KINDS)}")
    task = _eai_task_of().get(program_id) if goals == "eai" else None
    return eai_goal(task, root) if task is not None else make_goal(load_program(program_id, root))


def plan_record(program_id: str, config: SearchConfig, seed: int, root: str | None = None,
                goals: str = KINDS[0]) -> dict:
    """Plan one program with MCTS (seeded by seed and program id) toward its goal (`program_goal`) and describe the
    result; `goals` names what the plan aimed at, and a record of EAI's goals also has its action goals and how many
    of them the plan met in order.

    The record holds only what the seed fixes (its wall seconds are measured by experience.runner), so the same
    seed gives the same record."""
    program = load_program(program_id, root)
    goal = program_goal(program_id, goals, root)
    world = goal.world
    result = plan(goal, config, seed=f"{seed}:{program_id}")
    state = world.initial_state()
    aimed = {"goals": goal.kind}
    if goal.kind == "eai":
        aimed.update(action_goals=list(goal.action_names), action_goals_met=result.met)
    return {
        "program": program.id,
        "activity": program.activity,
        "description": program.description,
        "scene": program.scene,
        **aimed,
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
