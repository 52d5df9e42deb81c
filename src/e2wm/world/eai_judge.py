"""EAI's own action-sequencing evaluator, called from e2wm, with what it lacks wrapped around it.

The judge is `virtualhome_eval.evaluation.action_sequence.scripts.evaluate_results.evaluate_results` (Li et al.,
"Embodied Agent Interface", NeurIPS 2024 Datasets and Benchmarks), unchanged. Around it:

- a pinned hash seed: the evaluator does `list(set(action goals))` and checks the goals in that order, so its task
  success depends on Python's hash seed (GPT-4o's shipped outputs: 64.26% or 65.25%). Each call runs in one child
  process, `python -m e2wm.world.eai_judge FOLDER`, with PYTHONHASHSEED set to `hash_seed` (a plain interpreter,
  not a multiprocessing spawn, which would re-run the caller's main script: its imports, or a whole script
  without a `__main__` guard);
- the package's original simulator: the child does not import `e2wm.world.sim` (whose import patches the
  simulator, `e2wm.world.fast`), and it refuses to run if the simulator's classes were patched;
- quiet logging: the evaluator's loggers are at WARNING in the child, its prints go nowhere, and its output folder
  is a temporary one (`agent_evaluation` is not used: it writes logs/ into the working folder);
- per-item results, which the evaluator returns only in part (`error_info`): for the call only, the evaluator
  module's `construct_planner`, `scene_evaluate_wID`, `TemporalOrderChecker` and `json` are replaced by recording
  wrappers that call the originals unchanged; `check_items` proves that the items reproduce its summary;
- one model per call: the evaluator's runtime-error counters are created once per call, outside its loop over
  models, so with several models in one folder the later models' error shares accumulate (`leaderboard`).

The evaluator's own quirks, kept as they are (evaluate_results.py of virtualhome-eval 0.1.1): 37 of the 342 tasks
fail its gold check and are not counted; a prediction equal to the gold actions counts as executable but is not
run, so it meets no goal and does not succeed; an output that is not JSON counts twice in "parsing" (an empty plan
once); an additional-step error does not stop execution and is counted for every such step; the execution rate is
rounded to 0.1, the other rates to 0.0001 (percent); only the first edge goal met is counted (`scene_evaluate_wID`
breaks out of its loop), so a task with two edge goals never passes the gold check.
"""

import contextlib
import dataclasses
import json
import logging
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from e2wm.errors import InputError, RunError
from e2wm.files import read_json, write_json
from e2wm.world.eai_tasks import load_tasks, package_root, version

logger = logging.getLogger(__name__)

OUTPUTS = Path("llm_response", "action_sequence")  # the shipped LLM outputs, <model>_outputs.json
DATASET = Path("dataset", "programs_processed_precond_nograb_morepreconds")  # the programs the evaluator runs
GRAMMAR_ERRORS = {"parsing error": "parsing", "hallucination error": "hallucination",
                  "parameter error": "predicate_argument_number"}  # error_info's type -> the summary's key
RUNTIME_ERRORS = {0: "wrong_order", 1: "missing_step", 2: "affordance_error", 4: "additional_step"}  # checker codes
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]*(_[A-Za-z0-9.\-]+)*")  # a file name part without '/'
RESULT = "result.pickle"  # what the child process leaves in its folder


@dataclass(frozen=True)
class ItemJudgement:
    """What EAI's evaluator computed for one output.

    Fields past `counted` are meaningful for counted items only (an uncounted task is dropped from every rate)."""

    identifier: str  # the task, '27_2'
    counted: bool  # the task's gold program passed the evaluator's gold check
    actions: list[str] | None  # the script lines the evaluator made of the output; None if it failed a grammar check
    executed: list[str] | None  # the lines that executed, in order (None: not run: grammar error or a gold copy)
    executable: bool  # counted as executable (a gold copy is, without running)
    error_type: str | None  # the evaluator's class: 'parsing error', ..., 'missing_step', ...; None if executable
    error_action: str | None  # the line that failed (a runtime error)
    runtime_errors: list[str]  # every error the checker gave, in order: wrong_order, missing_step, ...
    parse_errors: int  # how often the output was counted in "parsing": 2 (not JSON), 1 (empty), 0
    same_as_gold: bool  # the lines equal the gold program's: executable, but no goal is checked
    node_goals_met: int
    node_goals: int
    edge_goals_met: int
    edge_goals: int
    action_goals_met: int
    action_goals: int
    success: bool  # all goals met (the task success rate's numerator)
    stops_evaluator: str | None = None  # why the output was judged as unreadable instead (`evaluator_stopper`)


@dataclass(frozen=True)
class Judgement:
    """The evaluator's summary of one model's outputs and the per-item results behind it."""

    summary: dict  # the evaluator's own summary, as it returns it (percent)
    items: list[ItemJudgement]  # in input order
    hash_seed: int  # PYTHONHASHSEED of the evaluator's process
    version: str  # 'virtualhome-eval 0.1.1'
    seconds: float  # wall time of the evaluator's process


def _require_original_simulator() -> None:
    """Raise RuntimeError if a class of the loaded virtualhome_eval modules has a method of e2wm's (the speed-ups of
    e2wm.world.fast, installed by importing e2wm.world.sim, e.g. from a main module the child re-imports)."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("virtualhome_eval."):
            continue
        for cls in [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == name]:
            for attribute, value in vars(cls).items():
                source = getattr(value, "__module__", None) or ""
                if callable(value) and source.split(".")[0] == "e2wm":
                    raise RuntimeError(f"{cls.__name__}.{attribute} comes from {source}: the simulator is patched "
                                       "(was e2wm.world.sim imported by the main module?)")


def _recorders(module, records: dict, current: list) -> dict:
    """Recording wrappers for the evaluator module's globals: each calls the original unchanged and notes, in
    records[task id], what was computed; current[0] is the task being judged."""
    construct_planner, scene_evaluate = module.construct_planner, module.scene_evaluate_wID
    checker_class, real_json = module.TemporalOrderChecker, module.json

    def recording_planner(*args, **kwargs):
        planner, relevant_id, gold_actions, task_name, description = construct_planner(*args, **kwargs)
        current[0] = kwargs["script_id"]
        entry = records[current[0]] = {"gold": list(gold_actions), "runtime": [], "parse_failed": False,
                                       "prediction": None}
        goals_of = planner.get_symbolic_goal_nl

        def recording_goals(node_goals, edge_goals, action_goals=None):
            entry["action_goals"] = len(action_goals or [])
            return goals_of(node_goals, edge_goals, action_goals=action_goals)

        planner.get_symbolic_goal_nl = recording_goals
        return planner, relevant_id, gold_actions, task_name, description

    def recording_evaluate(*args, **kwargs):
        result = scene_evaluate(*args, **kwargs)
        entry = records[current[0]]
        if "action_seq" in kwargs:  # the prediction's final state and executed lines
            entry["prediction"] = {"executed": list(kwargs["action_seq"]), "node": result[0], "edge": result[1],
                                   "action": result[2], "success": result[3]}
        else:  # the gold check: the gold program's final state against the node and edge goals
            entry.update(counted=result[3], node_goals=len(args[1]), edge_goals=len(args[2]))
        return result

    class RecordingChecker:
        def __init__(self, *args, **kwargs):
            self.checker = checker_class(*args, **kwargs)

        def run_checker(self):
            info = self.checker.run_checker()
            records[current[0]]["runtime"].append(info.get_error_type())
            return info

    class RecordingJson:
        def __getattr__(self, name):
            return getattr(real_json, name)

        def loads(self, text, *args, **kwargs):
            try:
                return real_json.loads(text, *args, **kwargs)
            except Exception:
                records[current[0]]["parse_failed"] = True
                raise

    return {"construct_planner": recording_planner, "scene_evaluate_wID": recording_evaluate,
            "TemporalOrderChecker": RecordingChecker, "json": RecordingJson()}


def _child(folder: str, record: bool) -> None:
    """The evaluator's process: evaluate_results on folder/LLM; writes folder/result.pickle, ('ok', results, records)
    or ('error', its last error line)."""
    current = [None]
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            logging.getLogger("virtualhome_eval").setLevel(logging.WARNING)
            from virtualhome_eval.evaluation.action_sequence.scripts import evaluate_results as module

            _require_original_simulator()
            records: dict = {}
            wrappers = _recorders(module, records, current) if record else {}
            originals = {name: getattr(module, name) for name in wrappers}
            root = package_root()
            args = SimpleNamespace(dataset="virtualhome", llm_response_path=os.path.join(folder, "LLM"),
                                   resource_dir=str(root / "resources"), dataset_dir=str(root / "dataset"),
                                   output_dir=os.path.join(folder, "output"), scene_id=1,
                                   evaluation_dir=str(root / "evaluation"))
            try:
                vars(module).update(wrappers)
                results = module.evaluate_results(args)
            finally:
                vars(module).update(originals)
        message = ("ok", results, records)
    except BaseException as error:  # the parent raises RunError with this line
        where = f" (last task begun: {current[0]})" if current[0] else ""
        message = ("error", f"{type(error).__name__}: {error}{where}")
    with open(os.path.join(folder, RESULT), "wb") as file:
        pickle.dump(message, file)


def _check_outputs(outputs: list[dict], name: str) -> None:
    """InputError unless outputs are EAI records of known, distinct tasks."""
    where = f"outputs of {name!r}"
    if not MODEL_NAME.fullmatch(name) or "_outputs" in name:  # the evaluator reads the name up to '_outputs'
        raise InputError(f"{where}: the model name must be letters, digits, '.', '-' and inner '_', without "
                         "'_outputs' (it names the evaluator's file)")
    if not isinstance(outputs, list) or not outputs:
        raise InputError(f"{where}: expected a non-empty list of {{'identifier', 'llm_output'}} records")
    known = {task.identifier for task in load_tasks()}
    seen = set()
    for index, output in enumerate(outputs):
        for field in ("identifier", "llm_output"):
            if not isinstance(output, dict) or not isinstance(output.get(field), str):
                raise InputError(f"{where}: item {index}: field '{field}' must be a string")
        identifier = output["identifier"]
        if identifier not in known or identifier in seen:
            problem = "is not one of EAI's 342 tasks" if identifier not in known else "is repeated"
            raise InputError(f"{where}: item {index}: field 'identifier': {identifier!r} {problem}")
        seen.add(identifier)
    if not (package_root() / DATASET).is_dir():
        raise InputError(f"{package_root() / DATASET}: EAI's data is missing in {version()}; reinstall "
                         "virtualhome-eval (pip install --force-reinstall virtualhome-eval)")


def _run(outputs_by_model: dict[str, list[dict]], hash_seed: int, record: bool) -> tuple[dict, dict, float]:
    """One evaluate_results call on every model's outputs in a child process at PYTHONHASHSEED=hash_seed: its
    results ({model: [summary, error_info]}), the wrappers' records and the seconds it took.

    Raises:
        RunError: the child died or the evaluator raised (its last error line).
    """
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="e2wm-eai-") as folder:
        for name, outputs in outputs_by_model.items():
            write_json(Path(folder, "LLM", "action_sequence", f"{name}_outputs.json"), outputs)
        env = dict(os.environ, PYTHONHASHSEED=str(hash_seed))
        command = [sys.executable, "-m", __name__, folder, "record" if record else "plain"]
        done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              errors="replace")
        result = Path(folder, RESULT)
        if not result.is_file():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RunError(f"EAI's evaluator process died (exit code {done.returncode}) before it returned: {last}")
        with open(result, "rb") as file:
            message = pickle.load(file)  # written by our own child, in a folder only this call knows
    if message[0] == "error":
        hint = ("; it divides by the number of counted tasks (those passing its gold check) and of their node, edge "
                "and action goals, so judge a set whose counted tasks have goals of each kind"
                if message[1].startswith("ZeroDivisionError") else "")
        raise RunError(f"EAI's evaluator failed: {message[1]}{hint}")
    return message[1], message[2], time.perf_counter() - start


def run_evaluator(outputs_by_model: dict[str, list[dict]], hash_seed: int = 0) -> dict[str, dict]:
    """EAI's evaluator alone, the package's way: all models' outputs in one folder, one evaluate_results call, no
    wrappers (in a child process at PYTHONHASHSEED=hash_seed). Returns {model: its summary}. With several models the
    later ones' runtime-error shares include the earlier ones' errors (the evaluator's counters); use `judge`.

    Raises:
        InputError: bad outputs or missing package data. RunError: the evaluator failed.
    """
    for name, outputs in outputs_by_model.items():
        _check_outputs(outputs, name)
    results, _, _ = _run(outputs_by_model, hash_seed, record=False)
    return {name: summary for name, (summary, _) in results.items()}


def _item(identifier: str, record: dict, error_info: dict) -> ItemJudgement:
    """One output's judgement from the wrappers' record and the evaluator's error_info."""
    totals = {"node_goals": record["node_goals"], "edge_goals": record["edge_goals"],
              "action_goals": record["action_goals"]}
    if not record["counted"]:
        return ItemJudgement(identifier, False, None, None, False, None, None, [], 0, False, node_goals_met=0,
                             edge_goals_met=0, action_goals_met=0, success=False, **totals)
    runtime = [RUNTIME_ERRORS[code] for code in record["runtime"]]
    info = error_info.get(identifier)
    if info is None:  # not run: the lines equal the gold program's
        return ItemJudgement(identifier, True, record["gold"], None, True, None, None, runtime, 0, True,
                             node_goals_met=0, edge_goals_met=0, action_goals_met=0, success=False, **totals)
    grammar = info["error_type"] in GRAMMAR_ERRORS
    parse_errors = (2 if record["parse_failed"] else 1) if info["error_type"] == "parsing error" else 0
    prediction = record["prediction"] or {"executed": None, "node": 0, "edge": 0, "action": 0, "success": False}
    return ItemJudgement(identifier, True, None if grammar else list(info["actions"]), prediction["executed"],
                         info["executable"], info["error_type"], info["error_action"], runtime, parse_errors, False,
                         node_goals_met=prediction["node"], edge_goals_met=prediction["edge"],
                         action_goals_met=prediction["action"], success=prediction["success"], **totals)


def summary_from_items(items: list[ItemJudgement]) -> dict:
    """The evaluator's summary recomputed from per-item results, with its formulas and rounding (percent of the
    counted items, or of their goals; evaluate_results.py). A goal rate is None where the counted items have no goal
    of its kind (the evaluator would divide by zero: it judges only sets with every kind, `eval.eai.padding`).

    Raises:
        ZeroDivisionError: no item is counted (there is no rate).
    """
    counted = [item for item in items if item.counted]
    n = len(counted)

    def share(count: int, digits: int = 4) -> float:
        return round(100.0 * count / n, digits)

    def ratio(met: int, total: int) -> float | None:
        return round(100.0 * met / total, 4) if total else None

    def rate(met: str, total: str) -> float | None:
        return ratio(sum(getattr(i, met) for i in counted), sum(getattr(i, total) for i in counted))

    met_all = sum(i.node_goals_met + i.edge_goals_met + i.action_goals_met for i in counted)
    goals_all = sum(i.node_goals + i.edge_goals + i.action_goals for i in counted)
    grammar = {key: share(sum(i.error_type == kind for i in counted)) for kind, key in GRAMMAR_ERRORS.items()}
    grammar["parsing"] = share(sum(i.parse_errors for i in counted))
    return {
        "goal_evaluation": {
            "task_success_rate": share(sum(i.success for i in counted)),
            "state_goal": rate("node_goals_met", "node_goals"),
            "relation_goal": rate("edge_goals_met", "edge_goals"),
            "action_goal": rate("action_goals_met", "action_goals"),
            "total_goal": ratio(met_all, goals_all),
        },
        "trajectory_evaluation": {
            "execution_success_rate": share(sum(i.executable for i in counted), 1),
            "grammar_error": grammar,
            "runtime_error": {key: share(sum(i.runtime_errors.count(key) for i in counted))
                              for key in RUNTIME_ERRORS.values()},
        },
    }


def _differences(expected, found, where: str = "") -> list[str]:
    """'path: expected x, found y' for every number of two nested summaries that differs by over 1e-9."""
    if isinstance(expected, dict) and isinstance(found, dict) and expected.keys() == found.keys():
        return [line for key in expected for line in _differences(expected[key], found[key], f"{where}/{key}")]
    if isinstance(expected, (int, float)) and isinstance(found, (int, float)) and abs(expected - found) <= 1e-9:
        return []
    return [f"{where or '/'}: expected {expected!r}, found {found!r}"]


def check_items(judgement: Judgement) -> None:
    """RunError unless the items reproduce the evaluator's summary exactly (task success, execution, goal rates,
    grammar and runtime error shares): a difference means the recording wrappers misread the evaluator."""
    differences = _differences(judgement.summary, summary_from_items(judgement.items))
    if differences:
        raise RunError("the per-item results do not reproduce EAI's summary (the judge misreads "
                       f"{version()}): " + "; ".join(differences))


def evaluator_stopper(llm_output: str, names: set[str] | dict) -> str | None:
    """Why EAI's evaluator would raise on an output instead of classifying it, or None (it classifies it).

    The output goes through the evaluator's own steps (evaluate_results.py, eval_utils.py): read as it reads it (a
    ```json prefix dropped, stripped, line breaks removed, ' made ", json.loads; a failure or an empty plan is its
    parsing error); then `.items()` of the plan (JSON that is no object raises); a verb whose upper case is not an
    action is its hallucination error; then each verb's objects in order, iterated and looked up among the task's
    names (objects that cannot be iterated or looked up raise; an unknown name is its hallucination error); then the
    argument counts, with the verb looked up as written (a verb valid only in upper case raises).

    Args:
        names: the names the task's prompt lists (`EAITask.objects`), which the evaluator accepts.
    """
    from virtualhome_eval.simulation.evolving_graph.eval_utils import valid_actions

    text = llm_output[7:] if llm_output.startswith("```json") else llm_output
    try:
        actions = json.loads(text.strip().replace("\n", "").replace("'", '"'))
    except (ValueError, RecursionError):
        return None  # the evaluator's own parsing error (it catches every exception here)
    if actions is None or (hasattr(actions, "__len__") and len(actions) == 0):
        return None
    if not isinstance(actions, dict):
        return f"a JSON {type(actions).__name__} where EAI expects an object of actions"
    if any(verb.upper() not in valid_actions for verb in actions):
        return None  # its hallucination error
    for verb, objects in actions.items():
        if isinstance(objects, (int, float, bool)) or objects is None:
            return f"the objects of {verb!r} are not a list of names"
        for name in objects:
            if isinstance(name, (list, dict)):
                return f"an object of {verb!r} is not a name"
            if name not in names:
                return None  # its hallucination error
    for verb, objects in actions.items():
        if not isinstance(objects, list):
            return f"the objects of {verb!r} are not a list of names"
        if verb not in valid_actions:
            return f"the verb {verb!r} is not in upper case"
    return None


UNREADABLE = "e2wm: an output EAI's evaluator cannot read"  # what a stopping output is replaced by (not JSON)
RETRIES = 5  # outputs that stop the evaluator in its run (a checker error code it asserts against) replaced in turn
_STOPPED_AT = re.compile(r"^(AssertionError|AttributeError|KeyError|TypeError|IndexError|ValueError): .*"
                         r"\(last task begun: ([^)]+)\)$")


def judge(outputs: list[dict], hash_seed: int = 0, name: str = "model") -> Judgement:
    """Score one model's outputs with EAI's evaluator (one call, a child process at PYTHONHASHSEED=hash_seed).

    An output that would stop the evaluator (`evaluator_stopper`), or that stops it during its run (at most RETRIES
    such, found one per run), is replaced by a text that is not JSON, so that it is judged a parsing error and the
    others are judged; its item's `stops_evaluator` says why.

    Args:
        outputs: EAI's records {"identifier": '27_2', "llm_output": the text the evaluator parses (a JSON object
            of actions, ```json prefix allowed)}, at most one per task.
        hash_seed: the child's PYTHONHASHSEED (the evaluator's task success depends on it).
        name: the model's name (the evaluator's file name: <name>_outputs.json).

    Raises:
        InputError: outputs are not records of distinct EAI tasks, or the package's data is missing.
        RunError: the evaluator failed (its last error line; a subset whose counted tasks lack a goal kind divides
            by zero), or the per-item results do not reproduce its summary.
    """
    _check_outputs(outputs, name)
    tasks = {task.identifier: task for task in load_tasks()}
    stopped = {o["identifier"]: why for o in outputs
               if (why := evaluator_stopper(o["llm_output"], tasks[o["identifier"]].objects))}
    for attempt in range(RETRIES + 1):
        judged = [{"identifier": o["identifier"], "llm_output": UNREADABLE} if o["identifier"] in stopped else o
                  for o in outputs]
        try:
            results, records, seconds = _run({name: judged}, hash_seed, record=True)
            break
        except RunError as error:
            found = _STOPPED_AT.match(str(error).removeprefix("EAI's evaluator failed: "))
            if attempt == RETRIES or found is None or found.group(2) in stopped:
                raise
            stopped[found.group(2)] = f"it stopped EAI's evaluator ({found.group(1)})"
    summary, error_info = results[name]
    items = [dataclasses.replace(_item(o["identifier"], records[o["identifier"]], error_info),
                                 stops_evaluator=stopped.get(o["identifier"])) for o in outputs]
    judgement = Judgement(summary, items, hash_seed, version(), seconds)
    check_items(judgement)
    if stopped:
        logger.warning("%s: %d output(s) would stop EAI's evaluator and were judged as parsing errors (%s)", name,
                       len(stopped), "; ".join(f"{k}: {v}" for k, v in sorted(stopped.items())[:3]))
    logger.info("judged %d outputs of %s in %.1f s: task success %.2f%% over all of them", len(outputs), name,
                seconds, summary["goal_evaluation"]["task_success_rate"])
    return judgement


def shipped_outputs() -> dict[str, Path]:
    """The 15 LLM output files shipped in virtualhome_eval/llm_response/action_sequence: model name -> path.

    Raises:
        InputError: the folder is missing or holds none.
    """
    folder = package_root() / OUTPUTS
    files = sorted(folder.glob("*_outputs.json")) if folder.is_dir() else []
    if not files:
        raise InputError(f"{folder}: EAI's shipped LLM outputs are missing in {version()}; reinstall virtualhome-eval "
                         "(pip install --force-reinstall virtualhome-eval)")
    return {path.name.removesuffix("_outputs.json"): path for path in files}


def leaderboard_path(cache: Path, hash_seed: int = 0) -> Path:
    """The leaderboard's cache file: its name carries the package version and the hash seed."""
    return Path(cache) / f"eai_leaderboard-{version().replace(' ', '-')}-hashseed{hash_seed}.json"


def _cached(path: Path, hash_seed: int) -> dict:
    """The models already scored in path's cache; {} (and a warning) when it is stale or corrupt."""
    if not path.exists():
        return {}
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
        models = cache["models"]
        if cache["version"] != version() or cache["hash_seed"] != hash_seed or not all(
                isinstance(entry["summary"], dict) and isinstance(entry["items"], list) for entry in models.values()):
            raise ValueError("another version or hash seed")
        return models
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        logger.warning("%s: stale or unreadable leaderboard cache (%s); rebuilding it", path, error)
        return {}


def _score(path: Path, hash_seed: int, name: str) -> dict:
    """One model's leaderboard entry: the evaluator's summary, its counted items and the seconds per item."""
    outputs = read_json(path)
    judgement = judge(outputs, hash_seed, name)
    return {"summary": judgement.summary, "seconds_per_item": judgement.seconds / len(outputs),
            "items": [dataclasses.asdict(item) for item in judgement.items if item.counted]}


def leaderboard(cache: Path, hash_seed: int = 0, workers: int = 1,
                models: dict[str, Path] | None = None) -> dict[str, dict]:
    """Every shipped model scored by `judge`, each in its own evaluator call (the evaluator's runtime-error counters
    are not reset between the models of one call), cached in `leaderboard_path(cache, hash_seed)`.

    The cache is rewritten atomically after each model; a model already in it is not rescored, and a stale or
    corrupt file is rebuilt.

    Args:
        cache: the folder of the cache file.
        hash_seed: PYTHONHASHSEED of the evaluator's processes.
        workers: models scored at once (each in its own process).
        models: model name -> output file (default: `shipped_outputs()`).

    Returns:
        {model: {"summary": the evaluator's, "seconds_per_item": s, "items": the counted items as dicts}}.

    Raises:
        InputError, RunError: as `judge`.
    """
    if workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    models = shipped_outputs() if models is None else models
    path = leaderboard_path(cache, hash_seed)
    scored = {name: entry for name, entry in _cached(path, hash_seed).items() if name in models}
    missing = [name for name in models if name not in scored]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each thread waits on its own evaluator process
        futures = {pool.submit(_score, models[name], hash_seed, name): name for name in missing}
        for future in as_completed(futures):
            scored[futures[future]] = future.result()
            write_json(path, {"version": version(), "hash_seed": hash_seed, "models": dict(sorted(scored.items()))})
    return {name: scored[name] for name in models}


if __name__ == "__main__":  # the child process of `_run`: python -m e2wm.world.eai_judge FOLDER record|plain
    _child(sys.argv[1], sys.argv[2] == "record")
