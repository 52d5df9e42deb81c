"""The report's "Embodied Agent Interface" section: the evaluated runs of `eai:action_sequence` among the LLMs whose
outputs virtualhome-eval ships, all judged by EAI's own evaluator (`e2wm.world.eai_judge`).

A run's row comes from its metrics.json (`eai_form`, `eai_counted`, `eai_hash_seed`, `eai_version`, `eai_summary`:
the evaluator's own summary of the whole set, None for a --limit subset) and its predictions rows (`counted`,
`success`, `executable`, `goals_met` / `goals` as [state, relation, action], `error_type`, `runtime_errors`, and
`parse_errors` for a parsing error); an LLM's row from `eai_judge.leaderboard` (the evaluator's summary and the
counted items). Rates are percent, as EAI reports them. The error shares are EAI's (evaluate_results.py of
virtualhome-eval): per counted task, an output that is not JSON counts twice in "parsing" (an empty one once) and
every additional step counts, so a share can exceed the share of plans with that error; a row recomputed from a
run's rows follows the same rules (`eai_judge.summary_from_items`).
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from e2wm.errors import InputError
from e2wm.eval.compare import existing_predictions, predictions_file
from e2wm.eval.statistics import wilson_interval
from e2wm.files import iter_jsonl, require
from e2wm.world import eai_judge
from e2wm.world.eai_tasks import load_tasks, version

logger = logging.getLogger(__name__)

TASK = "eai_action_sequence"  # e2wm.eval.eai.TASK (not imported here: that module patches the simulator)
FORMS = {  # --eai-form -> what its prompt was, for the section's sentence (e2wm.eval.eai)
    "native": "EAI's own prompt",
    "e2wm": "E2WM's plan question, the goals told in English, two worked examples; the English plan read back "
            "into actions",
    "e2wm-no-goals": "E2WM's plan question without the goals, two worked examples; the English plan read back "
                     "into actions",
}
GOALS = ("state", "relation", "action")  # the order of a row's goals_met / goals (node, edge, action goals)
SUMMARY_GOALS = ("state_goal", "relation_goal", "action_goal")  # their keys in the summary's goal_evaluation
ERRORS = (  # (column, the summary's trajectory_evaluation group, its key)
    ("parsing", "grammar_error", "parsing"),
    ("hallucination", "grammar_error", "hallucination"),
    ("argument number", "grammar_error", "predicate_argument_number"),
    ("wrong order", "runtime_error", "wrong_order"),
    ("missing step", "runtime_error", "missing_step"),
    ("affordance", "runtime_error", "affordance_error"),
    ("additional step", "runtime_error", "additional_step"),
)
GRAMMAR = {key: kind for kind, key in eai_judge.GRAMMAR_ERRORS.items()}  # summary key -> error_type
# EAI's task success of the shipped GPT-4o outputs, measured for e2wm: in one process, and at PYTHONHASHSEED 0 and 1
GPT4O_BY_SEED = ("64.26%", "65.25%")


@dataclass
class EaiRow:
    """One row of the section's table: an evaluated run or a shipped LLM.

    Rates in percent; goals: per goal kind (`GOALS`) the share met, None when the counted tasks have none of that
    kind; errors: per summary key (`ERRORS`) the share of counted tasks (EAI's counting)."""

    name: str
    form: str  # the prompt form (`FORMS`)
    counted: int  # tasks counted by the evaluator
    successes: int
    executable: float
    goals: dict[str, float | None]
    errors: dict[str, float]
    run: bool  # an evaluated run of this report (else a shipped LLM)
    limit: tuple[int, int] | None = None  # a --limit run: (items scored, the benchmark's items)
    tasks: tuple[str, ...] = ()  # a --limit run's counted tasks ('27_2', ...): the LLMs are compared on these

    @property
    def success(self) -> float:
        """Task success in percent."""
        return 100.0 * self.successes / self.counted


def check_eai(file: Path, task: str, result: dict) -> None:
    """InputError `FILE: task 'T': FIELD ...` unless result holds the EAI fields the section reads: `eai_form` one of
    FORMS, `eai_counted` a positive integer (a run whose judge counted no task has no task success: `check_result`
    refuses it first), `eai_hash_seed` an integer, `eai_version` a string, `eai_summary` null or the evaluator's
    summary (its goal rates and error shares, numbers)."""
    where = f"{file}: task '{task}'"
    if result.get("eai_form") not in FORMS:
        raise InputError(f"{where}: eai_form must be one of {', '.join(FORMS)}, got {result.get('eai_form')!r}")
    for key, kind in (("eai_counted", int), ("eai_hash_seed", int), ("eai_version", str)):
        if not isinstance(result.get(key), kind) or isinstance(result.get(key), bool):
            raise InputError(f"{where}: {key} must be {'an integer' if kind is int else 'a string'}, got "
                             f"{result.get(key)!r}")
    if result["eai_counted"] < 1:
        raise InputError(f"{where}: eai_counted must be at least 1, got {result['eai_counted']}")
    summary = result.get("eai_summary")
    if summary is None:
        return
    paths = [("goal_evaluation", key) for key in ("task_success_rate", *SUMMARY_GOALS)]
    paths += [("trajectory_evaluation", "execution_success_rate")]
    paths += [("trajectory_evaluation", group, key) for _, group, key in ERRORS]
    for path in paths:
        value = summary
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise InputError(f"{where}: eai_summary.{'.'.join(path)} must be a number (percent), got {value!r}")


def read_rows(run: Path) -> list[dict]:
    """The counted rows of the run's predictions/eai_action_sequence.jsonl, each checked for the fields the section
    reads.

    Raises:
        InputError: the file is missing, or a row lacks a field or holds another type (file, line and field).
    """
    file = existing_predictions(run, TASK, "reads the judge's findings per item for the EAI table")
    rows = []
    for line, row in iter_jsonl(file):
        if not require(row, "counted", bool, file, line):
            continue
        require(row, "success", bool, file, line)
        require(row, "executable", bool, file, line)
        if require(row, "error_type", (str, type(None)), file, line) == GRAMMAR["parsing"]:
            require(row, "parse_errors", int, file, line)  # how often EAI counted it in "parsing": 1 or 2
        for key in ("goals_met", "goals"):
            value = require(row, key, list, file, line)
            if len(value) != len(GOALS) or not all(isinstance(x, int) and x >= 0 for x in value):
                raise InputError(f"{file}:{line}: field '{key}' must be {len(GOALS)} counts (state, relation, "
                                 f"action), got {value!r}")
        if not all(isinstance(error, str) for error in require(row, "runtime_errors", list, file, line)):
            raise InputError(f"{file}:{line}: field 'runtime_errors' must be a list of strings")
        rows.append(row)
    return rows


def summary_rates(summary: dict) -> tuple[float, dict[str, float | None], dict[str, float]]:
    """(executable, goal rates, error shares) in percent from the evaluator's summary (a goal rate None where the
    counted tasks have no goal of its kind: `eai_judge.summary_from_items`)."""
    goals, trajectory = summary["goal_evaluation"], summary["trajectory_evaluation"]
    return (trajectory["execution_success_rate"], dict(zip(GOALS, (goals[key] for key in SUMMARY_GOALS))),
            {key: trajectory[group][key] for _, group, key in ERRORS})


def judgement(row: dict) -> eai_judge.ItemJudgement:
    """A counted prediction row (`read_rows`) as the judge's per-item result, for `eai_judge.summary_from_items`."""
    met, goals = row["goals_met"], row["goals"]
    return eai_judge.ItemJudgement(
        identifier="", counted=True, actions=None, executed=None, executable=row["executable"],
        error_type=row["error_type"], error_action=None, runtime_errors=row["runtime_errors"],
        parse_errors=row.get("parse_errors", 0), same_as_gold=False, node_goals_met=met[0], node_goals=goals[0],
        edge_goals_met=met[1], edge_goals=goals[1], action_goals_met=met[2], action_goals=goals[2],
        success=row["success"])


def run_row(label: str, run: Path, result: dict) -> EaiRow:
    """An evaluated run's row: its rates from `eai_summary` when the run judged the whole set, else recomputed from
    its rows by the evaluator's rules (`eai_judge.summary_from_items`).

    Raises:
        InputError: a bad predictions row, or rows whose counted tasks disagree with metrics.json's eai_counted.
    """
    rows = read_rows(run)
    identifiers = [task.identifier for task in load_tasks()]  # a row's index is its task's place among the 342
    if any(row["index"] >= len(identifiers) for row in rows):
        raise InputError(f"{predictions_file(run, TASK)}: an index beyond EAI's {len(identifiers)} tasks")
    if len(rows) != result["eai_counted"]:
        raise InputError(f"{predictions_file(run, TASK)}: {len(rows)} counted rows, but metrics.json says "
                         f"eai_counted {result['eai_counted']}: the files are of different runs")
    summary = result.get("eai_summary") or eai_judge.summary_from_items([judgement(row) for row in rows])
    rates = summary_rates(summary)
    limit = (result["n"], result["n_original"]) if result.get("cut_by_limit") else None
    tasks = tuple(identifiers[row["index"]] for row in rows) if limit else ()
    return EaiRow(label, result["eai_form"], len(rows), sum(row["success"] for row in rows), *rates, run=True,
                  limit=limit, tasks=tasks)


def llm_row(name: str, entry: dict) -> EaiRow:
    """A shipped LLM's row from its leaderboard entry (`eai_judge.leaderboard`): native prompt."""
    items = entry["items"]
    return EaiRow(name, "native", len(items), sum(item["success"] for item in items), *summary_rates(entry["summary"]),
                  run=False)


def leaderboard(cache: Path, hash_seed: int) -> dict[str, dict]:
    """The shipped LLMs' leaderboard at hash_seed from the cache in folder cache, scored first when it is not there
    (`eai_judge.leaderboard`: about a minute per model on one core), said in the log either way."""
    path = eai_judge.leaderboard_path(cache, hash_seed)
    if path.is_file():
        logger.info("EAI leaderboard: read from %s (a shipped model missing from it is scored now)", path)
    else:
        logger.info("EAI leaderboard: scoring the LLM outputs shipped with %s by EAI's evaluator, one model per "
                    "process (about a minute per model on one core, about 16 minutes for all; once): cached in %s. "
                    "Leave it out with --no-eai-leaderboard", version(), path)
    return eai_judge.leaderboard(cache, hash_seed)


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(rows: list[EaiRow]) -> str:
    """Markdown: the rows by task success (highest first), evaluated runs in bold, with the success's 95% Wilson
    interval, the executable share, the goal rates and EAI's error shares (percent)."""
    header = ["rank", "model or run", "prompt", "tasks", "task success [95% CI]", "executable",
              *(f"{kind} goals" for kind in GOALS), *(column for column, _, _ in ERRORS)]
    lines = ["| " + " | ".join(header) + " |", "|---:|---|---|" + "---:|" * (len(header) - 3)]
    ordered = sorted(rows, key=lambda row: -row.success)
    ranks = iter(range(1, len(rows) + 1))
    for row in ordered:
        low, high = wilson_interval(row.successes, row.counted)
        name = row.name.replace("|", "\\|")
        rank = "—" if row.limit else str(next(ranks))  # a subset's rate is not ranked among whole-set rates
        cells = [rank, f"**{name}** (evaluated)" if row.run else name, row.form,
                 f"{row.counted}" + (" (--limit)" if row.limit else ""),
                 f"{row.success:.1f} [{100 * low:.1f}, {100 * high:.1f}]", percent(row.executable),
                 *(percent(row.goals[kind]) for kind in GOALS), *(percent(row.errors[key]) for _, _, key in ERRORS)]
        if row.run:
            cells[2:] = [f"**{text}**" for text in cells[2:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def same_tasks(tasks: tuple[str, ...], board: dict[str, dict]) -> str:
    """'mistral-large-2402 58.8, ...': each shipped LLM's task success (percent) over the given counted tasks, from
    its cached per-item results, highest first."""
    wanted = set(tasks)
    rates = {name: 100.0 * sum(item["success"] for item in entry["items"] if item["identifier"] in wanted)
             / len(wanted) for name, entry in board.items()}
    return ", ".join(f"{name} {rate:.1f}" for name, rate in sorted(rates.items(), key=lambda pair: -pair[1]))


def form_sentences(runs: list[EaiRow], board: dict[str, dict]) -> list[str]:
    """Per run what its prompt was and whether its row is the leaderboard's test, and how much of the set it
    covers (with the LLMs' task success over the same tasks, when the leaderboard is shown)."""
    with_leaderboard = bool(board)
    lines = []
    for row in runs:
        if row.form == "native":
            text = f"`{row.name}` answered EAI's native prompt" + (", as the LLMs did: the same test" if
                                                                   with_leaderboard else "")
        else:
            text = (f"`{row.name}` answered another prompt ({row.form}: {FORMS[row.form]}), so its row is not the "
                    "same test as a native one")
        if row.limit:
            text += (f"; it ran with --limit and covers only {row.limit[0]} of the {row.limit[1]} tasks "
                     f"({row.counted} counted), so its rates are over those tasks, recomputed from its rows, and "
                     "not whole-benchmark rates: it is not ranked")
            if with_leaderboard:
                text += f". On the same {row.counted} counted tasks the LLMs' task success is: " + same_tasks(
                    row.tasks, board)
        lines.append(f"- {text}.")
    return lines


def eai_section(runs: list[tuple[str, Path, dict]], cache: Path | None) -> list[str]:
    """The report's EAI part, for the runs (label, folder, metrics.json) that have the task: an explanation, the
    table (with the shipped LLMs' leaderboard unless cache is None) and what separates the rows.

    Raises:
        InputError: a run's rows are bad (`run_row`); InputError or RunError from `eai_judge.leaderboard`.
    """
    evaluated = [run_row(label, path, metrics[TASK]) for label, path, metrics in runs if TASK in metrics]
    if not evaluated:
        return []
    results = [metrics[TASK] for _, _, metrics in runs if TASK in metrics]
    seeds = sorted({result["eai_hash_seed"] for result in results})
    versions = sorted({result["eai_version"] for result in results})
    board = leaderboard(cache, seeds[0]) if cache is not None else {}
    rows = evaluated + [llm_row(name, entry) for name, entry in board.items()]
    parts = ["## Embodied Agent Interface (action sequencing)", "",
             "EAI's action sequencing (Li et al., NeurIPS 2024 Datasets and Benchmarks): a plan for each of 342 "
             "VirtualHome tasks, judged by executing it with EAI's own evaluator "
             f"({', '.join(versions)}); a task counts only when its gold program passes the evaluator's own check. "
             "Rates are percent of the counted tasks (goal rates: of their goals), task success with its "
             "95% Wilson interval; the error shares are EAI's: an output that is not JSON counts twice in parsing "
             "and every additional step counts, so a share can exceed the share of plans with that error.", ""]
    if board:
        parts += [f"The {len(board)} LLM rows are the outputs shipped with {version()}, scored by the same "
                  f"evaluator (each model in its own call): they answered EAI's native prompt. Evaluated runs are in "
                  "bold, placed among them by task success.", ""]
    else:
        parts += ["The leaderboard of the LLM outputs shipped with virtualhome-eval is left out "
                  "(--no-eai-leaderboard).", ""]
    parts += form_sentences(evaluated, board) + [""]
    parts += [f"EAI's own rates move with Python's hash seed (its evaluator checks the goals in set order): GPT-4o's "
              f"shipped outputs score {GPT4O_BY_SEED[0]} task success in one process and {GPT4O_BY_SEED[1]} at "
              f"PYTHONHASHSEED 0 and 1. e2wm pins the seed: the runs were judged at hash seed "
              f"{', '.join(map(str, seeds))}" + (f", the LLMs at {seeds[0]}." if board else "."), ""]
    if len(seeds) > 1:
        parts += [f"**Warning: the runs were judged at different hash seeds ({', '.join(map(str, seeds))}): their "
                  "rates are not strictly comparable.**", ""]
    if board and versions != [version()]:
        parts += [f"**Warning: the runs were judged by {', '.join(versions)}, the leaderboard by {version()}.**", ""]
    return parts + [table(rows), ""]
