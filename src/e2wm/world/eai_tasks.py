"""The Embodied Agent Interface's action-sequencing tasks, as `virtualhome-eval` ships them.

EAI (Li et al., "Embodied Agent Interface", NeurIPS 2024 Datasets and Benchmarks) evaluates VirtualHome action
sequencing on 342 tasks of scene 1 in 26 activities. A task's identifier names a bundled RobotHow program: '27_2' is
`file27_2` (every one of the 342 is among e2wm's 518 bundled programs). Its goals come from the package's
`resources/virtualhome/task_state_LTL_formula_accurate.json` (`vh_goal`: node goals {id, class_name, state}, edge
goals {from_id, relation_type, to_id}, and action goals: verbs that must appear in this order, an entry such as
'TYPE or TOUCH' accepting either), its activity from `resources/virtualhome/id2task.json`, and EAI's own prompt from
`evaluation/action_sequence/prompts/helm_prompts.json`.
"""

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from pathlib import Path

from e2wm.errors import InputError
from e2wm.world.facts import Fact, edge_fact

SCENE = "scene_1"
LISTED = re.compile(r"^(\w+), id: (\d+), properties:", re.MULTILINE)  # an object line of EAI's prompt
GOALS = Path("resources", "virtualhome", "task_state_LTL_formula_accurate.json")
ACTIVITIES = Path("resources", "virtualhome", "id2task.json")
PROMPTS = Path("evaluation", "action_sequence", "prompts", "helm_prompts.json")


@dataclass(frozen=True)
class EAITask:
    """One action-sequencing task: its identifier, activity, goals and EAI's prompt for it."""

    identifier: str  # '27_2'
    activity: str  # 'Wash clothes'
    node_goals: tuple[Fact, ...]  # Fact(node id, STATE): the node must be in that state at the end
    edge_goals: tuple[Fact, ...]  # Fact(from id, RELATION, to id): the edge must hold at the end
    action_goals: tuple[str, ...]  # verbs the plan must contain, in this order ('TYPE or TOUCH': either)
    prompt: str  # EAI's own prompt (helm_prompts.json), ending in 'Output:'

    @property
    def objects(self) -> dict[str, int]:
        """The objects EAI's prompt lists ('<name>, id: <id>, properties: ...'), name -> node id: the names its
        evaluator accepts in a plan (a name listed twice: the later id, as its name-to-id map keeps)."""
        return {name: int(node) for name, node in LISTED.findall(self.prompt)}

    @property
    def program_id(self) -> str:
        """The bundled RobotHow program the task was made from: '27_2' -> 'file27_2'."""
        return f"file{self.identifier}"


def package_root() -> Path:
    """The installed `virtualhome_eval` package's folder."""
    return Path(str(resources.files("virtualhome_eval")))


def version() -> str:
    """'virtualhome-eval 0.1.1': the tasks, prompts and evaluator are fixed by the package's version."""
    return f"virtualhome-eval {metadata.version('virtualhome-eval')}"


def read_package_json(relative: Path):
    """A JSON file of the package. InputError naming the file and the package version when it is missing or
    unreadable (an install without the EAI data, or a version that moved it)."""
    path = package_root() / relative
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: EAI's data is missing or unreadable in {version()} ({error}); reinstall "
                         "virtualhome-eval (pip install --force-reinstall virtualhome-eval)") from None


def _unique(items: list) -> tuple:
    """The items without repeats, first occurrence kept (EAI's evaluator drops repeated goals too)."""
    return tuple(dict.fromkeys(items))


@cache
def load_tasks() -> tuple[EAITask, ...]:
    """The 342 tasks in the order of EAI's prompt file.

    Raises:
        InputError: the package's goal, activity or prompt file is missing or unreadable, or a prompt names a task
            that the goal file lacks.
    """
    goals = read_package_json(GOALS)[SCENE]
    activities = read_package_json(ACTIVITIES)
    tasks = []
    for entry in read_package_json(PROMPTS):
        identifier = entry["identifier"]
        activity = activities.get(identifier)
        if activity is None or identifier not in goals.get(activity, {}):
            raise InputError(f"{package_root() / PROMPTS}: task {identifier!r} has no goals in "
                             f"{package_root() / GOALS} ({version()})")
        goal = goals[activity][identifier]["vh_goal"]
        nodes = [Fact(g["id"], g["state"].upper()) for g in goal["goal"] if "state" in g]
        edges = [edge_fact(g["from_id"], g["relation_type"].upper(), g["to_id"]) for g in goal["goal"]
                 if "relation_type" in g]
        tasks.append(EAITask(identifier, activity, _unique(nodes), _unique(edges), tuple(goal["actions"]),
                             entry["llm_prompt"]))
    return tuple(tasks)


def program_ids() -> list[str]:
    """The bundled programs of the 342 tasks ('file27_2', ...), in task order: what `e2wm build --exclude-programs
    eai` keeps out of training."""
    return [task.program_id for task in load_tasks()]
