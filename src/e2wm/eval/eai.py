"""The Embodied Agent Interface's action sequencing as an e2wm task: `e2wm eval --data eai:action_sequence`.

EAI (Li et al., NeurIPS 2024 D&B; the `virtualhome-eval` package) asks for a plan that takes scene 1 from a task's
initial state to its goals, and judges the plan by executing it (SPEC 6b). Its 342 tasks are told in one of three
prompt forms (`--eai-form`), recorded in the results:

- `native`: EAI's own prompt (helm_prompts.json), answered by a JSON object of actions that EAI's own code parses:
  the leaderboard's setting, comparable with the 15 LLMs' outputs the package ships.
- `e2wm`: the task in E2WM's plan-generation words ("Q: How to <activity>? Given items include ... <initial state>"),
  the goal facts told in English after it, and two fixed worked examples from bundled programs outside the 342.
  The model's English plan is read back into script actions by the inverse of e2wm's English grammar
  (`e2wm.world.parse`) and handed to the judge in EAI's own output format (a JSON object of verbs in order, repeated
  verbs written as repeated keys, as the LLMs' outputs write them); a plan with a sentence that does not parse is
  handed over as it was written, so the judge counts it as a parsing error: never silently dropped.
- `e2wm-no-goals`: the `e2wm` form without the goal sentences (an ablation: what the question alone conveys).

The judge is EAI's evaluator itself, run by `e2wm.world.eai_judge` in a child process with a pinned hash seed.
"""

import json
import logging
import re
from functools import cache
from pathlib import Path

from e2wm.data.plan_gen import question
from e2wm.data.records import PlanRecord, read_plans
from e2wm.errors import InputError
from e2wm.eval.config import EAI_FORMS as FORMS
from e2wm.eval.items import EvalFile, GenItem
from e2wm.eval.metrics import Scores
from e2wm.world import eai_judge, eai_tasks
from e2wm.world.describe import initial_text, relevant_objects
from e2wm.world.describe import items as item_names
from e2wm.world.english import fact_text, verb_phrase
from e2wm.world.facts import goal_facts
from e2wm.world.parse import class_key, parse_plan, script_line
from e2wm.world.programs import index, load_program, plan_english, program_ids, read_script
from e2wm.world.sim import World

logger = logging.getLogger(__name__)

NAME = "eai:action_sequence"
TASK = "eai_action_sequence"  # the task's name in results (e2wm.benchmark.TASKS)
UNPARSED = "e2wm: a plan outside the English grammar: "  # before an e2wm-form answer that was not read back
HASH_SEED = 0  # the judge's PYTHONHASHSEED: EAI's evaluator's rates depend on it (docs/eai.md)
ALTERNATIVES = re.compile(r"\||\s+or\s+", re.IGNORECASE)  # between the verbs of one action goal
FIRST_COUNTED = 5  # the first task (in EAI's order) that its evaluator counts at hash seed 0 is the 5th
PADDING = 6  # tasks judged beside a subset, so that every goal kind is counted (`padding`)
SHOTS = 2  # worked examples before an e2wm-form question, as the released plan_gen files have
SHOT_STEPS = (4, 8)  # a worked example's plan length, in steps: short enough to read, long enough to show a plan


def is_name(text: str) -> bool:
    """Whether a --data item names EAI's action sequencing."""
    return text == NAME


def goal_sentences(task: eai_tasks.EAITask, world: World) -> list[str]:
    """The task's node and edge goals in English ('The washing machine is closed.'), then its action goals."""
    sentences = [fact_text(fact, world.names, world.rooms) for fact in (*task.node_goals, *task.edge_goals)]
    if task.action_goals:  # 'RINSE|WASH' -> 'rinse or wash' (the package writes alternatives with '|')
        phrases = [" or ".join(verb_phrase(verb.strip().upper()) for verb in ALTERNATIVES.split(goal))
                   for goal in task.action_goals]
        sentences.append(f"The plan must include: {', then '.join(phrases)}.")
    return sentences


def shown_objects(task: eai_tasks.EAITask, world: World) -> list[int]:
    """The objects EAI's own prompt lists ('<name>, id: <id>, properties: ...' under 'Objects in the scene'), the
    character and rooms aside, with the goal objects and their containers (`relevant_objects`): the e2wm forms show
    what the native one shows, also for tasks whose only goals are actions."""
    listed = set(task.objects.values()) & set(world.nodes)
    listed -= set(world.characters) | world.rooms
    return sorted(listed | set(relevant_objects(world, [*task.node_goals, *task.edge_goals])))


def e2wm_question(activity: str, world: World, objects: list[int], goals: list[str]) -> str:
    """E2WM's question about a scene: the objects, their rooms and initial state (`world.describe`), then the goal
    sentences, if any, after 'Goal:'."""
    state = world.initial_state()
    told = initial_text(world, state, objects) + ([f"Goal: {' '.join(goals)}"] if goals else [])
    return question(" ".join(activity.split()).lower(), item_names(world, state, objects), told)


@cache
def shot_programs() -> tuple[str, ...]:
    """The worked examples' programs: the first bundled programs (in `program_ids` order) outside EAI's 342 whose
    script has SHOT_STEPS steps, of different activities; fixed, so that every run shows the same examples."""
    excluded, chosen, activities = set(eai_tasks.program_ids()), [], set()
    for program_id in program_ids():
        if program_id in excluded:
            continue
        activity, _, steps = read_script(index()[program_id][1])
        if SHOT_STEPS[0] <= len(steps) <= SHOT_STEPS[1] and activity.lower() not in activities:
            chosen.append(program_id)
            activities.add(activity.lower())
        if len(chosen) == SHOTS:
            return tuple(chosen)
    raise InputError(f"fewer than {SHOTS} bundled programs outside EAI's tasks have {SHOT_STEPS} steps")


@cache
def shot_text(program_id: str, with_goals: bool) -> str:
    """One worked example: the program's question (its goal facts told as goals, when asked) and its own script in
    English as the answer."""
    program = load_program(program_id)
    world = World(program.init_graph)
    facts = goal_facts(program.init_graph, program.final_graph)
    goals = [fact_text(fact, world.names, world.rooms) for fact in facts] if with_goals else []
    objects = relevant_objects(world, facts)
    return f"{e2wm_question(program.activity, world, objects, goals)} {plan_english(program.steps)}"


def prompt(task: eai_tasks.EAITask, form: str) -> str:
    """The task's prompt in a form (`FORMS`)."""
    if form == "native":
        return task.prompt
    with_goals = form == "e2wm"
    program = load_program(task.program_id)
    world = World(program.init_graph)
    goals = goal_sentences(task, world) if with_goals else []
    shots = [shot_text(program_id, with_goals) for program_id in shot_programs()]
    return "\n".join([*shots, e2wm_question(task.activity, world, shown_objects(task, world), goals)])


def eai_file(form: str) -> EvalFile:
    """The 342 tasks as an evaluation task: per item its prompt in the form, the gold program's English as ref
    and the task identifier as source; the native form's answers end at the JSON object's '}'.

    Raises:
        InputError: an unknown form, or the package's EAI data missing (`eai_tasks.load_tasks`).
    """
    if form not in FORMS:
        raise InputError(f"--eai-form {form!r}: choose one of {', '.join(FORMS)}")
    items = [GenItem(prompt(task, form), plan_english(read_script(index()[task.program_id][1])[2]),
                     source=task.identifier) for task in eai_tasks.load_tasks()]
    return EvalFile(TASK, Path(NAME), "generation", items, stop="}" if form == "native" else "\n")


def to_eai_output(plan: str) -> tuple[str, list[list[str]] | None]:
    """An English plan as EAI's output: (llm_output, the actions [verb, object class names...] or None).

    Every sentence read back (`parse_plan`): a JSON object whose keys are the verbs in plan order, repeated verbs
    repeated (EAI's parser then keeps the last of equal keys, as for every LLM's output), objects as class names
    ('kitchen cabinet' -> 'kitchen_cabinet'). A plan with a sentence that does not parse, or no sentence, is
    returned as written after UNPARSED (so that it is never read as JSON, even when it is JSON) with None: EAI's
    evaluator counts it as a parsing error.
    """
    steps = parse_plan(plan)
    if not steps or any(step.error for step in steps):
        return UNPARSED + plan, None
    actions = [[step.verb, *(class_key(name).replace(" ", "_") for name in step.names)] for step in steps]
    return eai_json(actions), actions


def eai_json(actions: list[list[str]]) -> str:
    """Actions [verb, object names...] as EAI's output: one JSON object, the verbs as keys in order, repeated verbs
    repeated (EAI's parser keeps the last of equal keys)."""
    return "{" + ", ".join(f"{json.dumps(verb)}: {json.dumps(objects)}" for verb, *objects in actions) + "}"


def script_output(lines: list[str]) -> str:
    """Script lines ('[PUTBACK] <cup> (12) <table> (45)') as EAI's output by name: '{"PUTBACK": ["cup", "table"]}',
    repeated verbs repeated as keys (as `to_eai_output`). InputError for a line that is not a script line."""
    actions = []
    for line in lines:
        parsed = script_line(line)
        if parsed is None:
            raise InputError(f"not a script line: {line!r}")
        verb, args = parsed
        actions.append([verb, *(name for name, _ in args)])
    return eai_json(actions)


def plan_outputs(plans: Path) -> list[dict]:
    """e2wm's MCTS plans (`e2wm collect plans` records) as EAI outputs, one per EAI task, by name
    (`script_output`): what a model that imitates them could reach. A task whose program has no record gets an
    empty output (EAI counts it as a parsing error); a successful record is preferred to another of the same
    program."""
    best: dict[str, PlanRecord] = {}
    for record in read_plans(plans):
        if record.program not in best or (record.success and not best[record.program].success):
            best[record.program] = record
    return [{"identifier": task.identifier,
             "llm_output": script_output(best[task.program_id].plan) if task.program_id in best else ""}
            for task in eai_tasks.load_tasks()]


def padding(requested: set[str]) -> list[str]:
    """Tasks to judge beside a subset of the 342 (`--limit`): EAI's evaluator divides by the counted tasks' node,
    edge and action goals, so a subset without one kind stops it; PADDING other tasks that have all three kinds are
    judged with it (an empty output: no execution, so a fraction of a second each) and left out of every result.
    None for the whole set."""
    tasks = eai_tasks.load_tasks()
    if len(requested) == len(tasks):
        return []
    full = [task.identifier for task in tasks if task.node_goals and task.edge_goals and task.action_goals]
    return [identifier for identifier in full if identifier not in requested][:PADDING]


def score(items: list[GenItem], predictions: list[str], config) -> Scores:
    """EAI's evaluator on the predictions (`eai_judge.judge`, hash seed HASH_SEED).

    Returns:
        per item task_success and executable (0/1; None for a task the evaluator does not count: its gold program
        fails the evaluator's own check), its rows (the output handed to the judge, the actions read back in the
        e2wm forms, and the judge's findings: the script lines it made of the output, `judge_actions`, which keep
        one of repeated verbs as EAI's JSON reading does, and those that executed), and as summary the evaluator's
        own summary of the whole set (`eai_summary`, in percent as EAI reports it; None for a subset, whose rates
        are the per-item means), the prompt form, the hash seed, the package version and the counted items.
    """
    form = getattr(config, "eai_form", "native")
    outputs, parsed = [], []
    for item, prediction in zip(items, predictions):
        text, actions = (prediction, None) if form == "native" else to_eai_output(prediction)
        outputs.append({"identifier": item.source, "llm_output": text})
        parsed.append(actions)
    extra = padding({item.source for item in items})
    judgement = eai_judge.judge(outputs + [{"identifier": i, "llm_output": ""} for i in extra], hash_seed=HASH_SEED)
    judged = judgement.items[: len(outputs)]
    success, executable, rows = [], [], []
    for output, actions, found in zip(outputs, parsed, judged):
        success.append(float(found.success) if found.counted else None)
        executable.append(float(found.executable) if found.counted else None)
        row = {"eai_output": output["llm_output"], "counted": found.counted, "executable": found.executable,
               "error_type": found.error_type, "parse_errors": found.parse_errors,
               "error_action": found.error_action,
               "runtime_errors": found.runtime_errors, "goals_met": [found.node_goals_met, found.edge_goals_met,
                                                                     found.action_goals_met],
               "goals": [found.node_goals, found.edge_goals, found.action_goals], "success": found.success,
               "judge_actions": found.actions, "executed": found.executed}
        if form != "native":
            row["actions"] = actions
        rows.append(row)
    counted = sum(found.counted for found in judged)
    if extra and counted:  # the judge's own log line counted the padding too
        logger.info("EAI task success of these %d tasks: %.2f%% of the %d counted (the %d padding tasks left out)",
                    len(items), 100.0 * sum(found.success for found in judged if found.counted) / counted, counted,
                    len(extra))
    if not counted:
        logger.warning("EAI's evaluator counts none of these %d tasks (their gold programs fail its own check), so "
                       "there is no score: the first %d of the 342 are such tasks; --limit %d is the least that "
                       "counts one", len(items), FIRST_COUNTED - 1, FIRST_COUNTED)
    summary = {"eai_summary": None if extra else judgement.summary, "eai_form": form,
               "eai_hash_seed": judgement.hash_seed, "eai_version": judgement.version, "eai_counted": counted,
               "eai_not_counted": len(items) - counted}
    return Scores({"task_success": success, "executable": executable}, rows, summary,
                  frozenset({"task_success", "executable"}))
