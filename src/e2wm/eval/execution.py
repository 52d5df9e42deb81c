"""Execution metrics of plan-generation items: the predicted plan run in VirtualHome from its program's initial graph.

Beside ROUGE-L against one human-written plan, a plan is judged by what it does (issue 24, item 3): the share of its
steps that execute, whether all of them do, and the share of its program's goal facts it reaches (the facts gained
from the program's initial to its final graph, `facts.goal_facts`: what e2wm's MCTS aims at, `experience.goals`).

An item's program: its `source` when that names a program (e2wm's own generated files write it), else the program
whose English (`programs.plan_english` of its script) equals the item's reference, whitespace-normalised (the
released files carry no source: about one item in ten matches a bundled program; a full RobotHow release given as
`--robothow-dir` holds them all), else unknown: such items are counted and named, never scored. A plan is read
with `world.parse`, its names resolved in the program's scene and executed with `world.execute` (docstrings there:
failed steps are recorded and skipped).
"""

import logging
from dataclasses import asdict
from functools import cache, lru_cache

from e2wm.eval.items import GenItem
from e2wm.eval.metrics import Scores
from e2wm.world import programs
from e2wm.world.execute import Scene, execute_plan
from e2wm.world.facts import Fact, goal_facts
from e2wm.world.parse import parse_plan
from e2wm.world.sim import World

logger = logging.getLogger(__name__)

BINARY = "executable"  # per-item 0/1: binomial standard error and Wilson interval
SCENES_CACHED = 64  # programs whose World is kept (a scene graph's World: a few MB)


def normalise(text: str) -> str:
    """Whitespace-normalised English: runs of spaces and line breaks become one space, ends stripped."""
    return " ".join(text.split())


@cache
def english_index(root: str | None = None) -> dict[str, str]:
    """Normalised English of each program's plan (`programs.plan_english`) -> its program id.

    Reads only the script files (0.05 s for the 518 bundled programs), once per root. Programs whose scripts tell
    the same English map to the first in `programs.program_ids` order (logged).
    """
    found: dict[str, str] = {}
    repeated = 0
    for program_id in programs.program_ids(root):
        _, script, _ = programs.index(root)[program_id]
        english = normalise(programs.plan_english(programs.read_script(script)[2]))
        repeated += english in found
        found.setdefault(english, program_id)
    if repeated:
        logger.info("%d programs tell the same English as an earlier one; items matching it get the earlier",
                    repeated)
    return found


def find_program(item: GenItem, root: str | None = None) -> str | None:
    """The program id of an item: its source when that is a program id of root, else the program whose English is
    the item's reference (`english_index`), else None."""
    if item.source is not None and item.source in programs.index(root):
        return item.source
    return english_index(root).get(normalise(item.ref))


@lru_cache(maxsize=SCENES_CACHED)
def program_scene(program_id: str, root: str | None = None) -> tuple[Scene, list[Fact]]:
    """A program's scene (its initial graph's World; its script's node ids preferred among a class's instances)
    and its goal facts. Cached: building the World is most of the cost of executing a plan."""
    program = programs.load_program(program_id, root)
    prefer = frozenset(node for step in program.steps for _, node in step.args)
    return Scene(World(program.init_graph), prefer), goal_facts(program.init_graph, program.final_graph)


def execute_item(item: GenItem, prediction: str, root: str | None = None) -> dict | None:
    """The execution of one item's predicted plan, or None when its program is unknown (`find_program`).

    Returns:
        {"program": id, "steps": sentences in the plan, "steps_executed": share in [0, 1], "executable": bool,
        "goal_facts": how many, "goals_reached": share in [0, 1] (None without goal facts), "first_failure":
        {"index" (0-based), "sentence", "reason"} or None}.
    """
    program_id = find_program(item, root)
    if program_id is None:
        return None
    scene, goal = program_scene(program_id, root)
    run = execute_plan(scene, parse_plan(prediction), goal)
    failure = run.first_failure
    return {
        "program": program_id, "steps": len(run.steps), "steps_executed": run.steps_executed,
        "executable": run.executable, "goal_facts": len(goal), "goals_reached": run.goals_reached,
        "first_failure": None if failure is None else {k: asdict(failure)[k] for k in ("index", "sentence", "reason")},
    }


def label(item: GenItem, position: int) -> str:
    """How an item is named in counts: 'line N' of its file, else its position ('item N', 1-based)."""
    return f"line {item.line}" if item.line is not None else f"item {position + 1}"


def per_item_scores(rows: list[dict | None]) -> dict[str, list[float]]:
    """Metric -> per-item scores over the items with a known program (goals_reached: those with goal facts too);
    a metric without any item is left out."""
    known = [row for row in rows if row is not None]
    scores = {
        "steps_executed": [row["steps_executed"] for row in known],
        BINARY: [float(row[BINARY]) for row in known],
        "goals_reached": [row["goals_reached"] for row in known if row["goals_reached"] is not None],
    }
    return {metric: values for metric, values in scores.items() if values}


def counts(items: list[GenItem], rows: list[dict | None]) -> dict:
    """{"execution_known": items with a known program, "execution_unknown": items without,
    "execution_unknown_items": their labels (`label`)}."""
    unknown = [label(item, i) for i, (item, row) in enumerate(zip(items, rows)) if row is None]
    return {"execution_known": len(rows) - len(unknown), "execution_unknown": len(unknown),
            "execution_unknown_items": unknown}


def score(items: list[GenItem], predictions: list[str], config=None) -> Scores:
    """The scorer of `metrics.EXTRA_SCORERS["execution"]`: per item `execute_item` (programs of
    `config.robothow_dir` when the config has one, else the bundled ones).

    Returns:
        Scores with per_item = `per_item_scores` (known items only; "executable" binary), rows = per item the
        `execute_item` fields ({"program": None} for an unknown program) and summary = `counts`.
    """
    root = getattr(config, "robothow_dir", None)
    rows = [execute_item(item, prediction, root) for item, prediction in zip(items, predictions)]
    return Scores(per_item_scores(rows), rows=[row or {"program": None} for row in rows],
                  summary=counts(items, rows), binary=frozenset({BINARY}))
