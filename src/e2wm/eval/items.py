"""E2WM evaluation files: reading and checking their items, telling multiple choice from generation.

The file's name is its task's name (`plan_gen.json` -> plan_gen); how a task is scored is in
`e2wm.benchmark`. The names e2wm, e2wm:qa, e2wm:gen and e2wm:<task> mean the released benchmark's evaluation
files in the cache (`e2wm data download`; e2wm.benchmark_data).
"""

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from e2wm import benchmark_data
from e2wm.benchmark import TASKS, Kind, TaskSpec, spec_for
from e2wm.errors import InputError, at
from e2wm.files import iter_jsonl, require, require_utf8, why_missing

logger = logging.getLogger(__name__)

SUFFIXES = (".json", ".jsonl")


@dataclass
class QAItem:
    input: str
    options: list[str]
    answer: int  # index into options
    line: int | None = None  # in its file, for error messages (None for an item made in code)


@dataclass
class GenItem:
    input: str
    ref: str
    line: int | None = None  # in its file, for error messages (None for an item made in code)
    source: str | None = None  # the record it was made from, as e2wm's own files write it (a program id, ...)


def item_digest(item: QAItem | GenItem) -> str:
    """The first 16 hex digits of the sha256 of what the model is shown: a QA item's input and options (JSON of
    [input, options]), a generation item's input. `e2wm report` pairs two runs' rows only when these agree."""
    shown = json.dumps([item.input, item.options], ensure_ascii=False) if isinstance(item, QAItem) else item.input
    return hashlib.sha256(shown.encode("utf-8")).hexdigest()[:16]


def check_options(options: list[str], path: Path, line: int) -> None:
    """Warn (logging, not refusing) about options that make an item odd to score: repeated texts, a single
    option and an empty one."""
    where = at(path, line, "answer_list")
    repeated = sorted({o for o in options if options.count(o) > 1})
    if repeated:
        logger.warning("%s repeats option(s) %s: equal options score alike, and the chance baseline counts each",
                       where, ", ".join(repr(o) for o in repeated))
    if len(options) == 1:
        logger.warning("%s has a single option: the item is always answered right", where)
    if "" in options:
        logger.warning("%s has an empty option: it is scored as a lone space", where)


@dataclass
class EvalFile:
    """One evaluation file: its task's name, its kind (from its records) and its items; a task built in code (EAI's,
    e2wm.eval.eai) has a path that is no file. stop: where a generated answer ends (a newline: the first line;
    EAI's native JSON: '}')."""

    name: str
    path: Path
    kind: Kind
    items: list = field(default_factory=list)
    stop: str = "\n"

    @property
    def spec(self) -> TaskSpec:
        return spec_for(self.name, self.kind)

    def content_digest(self) -> str:
        """sha256 of what the task's results depend on: the file's bytes, or for a task built in code its items
        (every field) and stop."""
        if self.path.is_file():
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        built = json.dumps([[asdict(item) for item in self.items], self.stop], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(built.encode("utf-8")).hexdigest()


def task_name(path: Path) -> str:
    """The task name is the file name without its suffix (plan_gen.json -> plan_gen)."""
    return path.name.removesuffix(".jsonl").removesuffix(".json")


def read_eval_file(path: Path) -> EvalFile:
    """Read and check every line; the first record's fields decide the kind (multiple choice or generation),
    which must be the task's kind when the task is known. InputError naming file, line and field otherwise."""
    items, kind, name = [], None, task_name(path)
    for line, record in iter_jsonl(path):
        if kind is None:
            kind = "multiple_choice" if ("answer_list" in record or "answer" in record) else "generation"
            if name in TASKS and TASKS[name].kind != kind:
                expected = "'answer_list' and 'answer'" if TASKS[name].kind == "multiple_choice" else "'ref'"
                raise InputError(f"{at(path, line)}: task {name} is {TASKS[name].kind.replace('_', ' ')}; "
                                 f"its records need {expected}")
        text = require(record, "input", str, path, line)
        if kind == "generation":
            if not text.strip():  # nothing to continue from: a model without a start token has no position
                raise InputError(f"{at(path, line, 'input')} is empty; a generation item needs a prompt")
            source = require(record, "source", str, path, line) if "source" in record else None
            items.append(GenItem(text, require(record, "ref", str, path, line), line, source))
            continue
        options = require(record, "answer_list", list, path, line)
        if not options:
            raise InputError(f"{at(path, line, 'answer_list')} is empty")
        if not all(isinstance(o, str) for o in options):
            raise InputError(f"{at(path, line, 'answer_list')} must hold strings only")
        check_options(options, path, line)
        answer = require(record, "answer", str, path, line)
        if answer not in options:
            raise InputError(f"{at(path, line, 'answer')} {answer!r} is not in answer_list")
        items.append(QAItem(text, options, options.index(answer), line))
    if not items:
        raise InputError(f"{path}: empty file (no records)")
    return EvalFile(name, path, kind, items)


def is_eval_file(path: Path) -> bool:
    """A .json/.jsonl file that is not one of `e2wm build`'s training files (train_*) or its stats.json."""
    return path.is_file() and path.suffix in SUFFIXES and not path.name.startswith("train_") and (
        path.name != "stats.json")


def find_eval_files(paths: list[str]) -> list[Path]:
    """Expand --data arguments: the released benchmark's names (e2wm, e2wm:qa, e2wm:gen, e2wm:<task>; a folder so
    named is ./e2wm) as its cached files, checked against their checksums (`benchmark_data.eval_files`); files as
    given; directories searched recursively for evaluation files (`is_eval_file`, so that a build folder can be
    given whole). InputError for a missing path, a folder without any, a file found twice, or a name whose files
    are not downloaded."""
    found: list[Path] = []
    for name in paths:
        if benchmark_data.is_name(name):
            found.extend(benchmark_data.eval_files(name))
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if is_eval_file(p))
            if not files:
                raise InputError(f"{path}: directory holds no evaluation files (.json or .jsonl, not train_* or "
                                 "stats.json)")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: {why_missing(path, 'file or directory')}")
    seen: set[Path] = set()
    for path in found:
        require_utf8(str(path), f"{str(path)!r}")  # a file found in a folder: its name becomes the task's
        if path.resolve() in seen:
            raise InputError(f"{path}: given twice (--data names it more than once, or also a folder that holds it)")
        seen.add(path.resolve())
    return found


def load_eval_files(paths: list[str], eai_form: str = "native") -> list[EvalFile]:
    """Every evaluation file, fully checked before any model work starts, and EAI's action sequencing when named
    (`e2wm.eval.eai`, in the prompt form eai_form; last); task names must be unique."""
    from e2wm.eval import eai  # which builds EvalFiles

    for name in paths:
        if name.startswith(eai.NAME.split(":")[0] + ":") and not eai.is_name(name):
            raise InputError(f"--data {name}: not a task of the Embodied Agent Interface's; e2wm has {eai.NAME}")
    if sum(map(eai.is_name, paths)) > 1:
        raise InputError(f"--data {eai.NAME}: given twice")
    files = [path for path in paths if not eai.is_name(path)]
    tasks = [read_eval_file(path) for path in find_eval_files(files)] if files else []
    if len(files) < len(paths):
        tasks.append(eai.eai_file(eai_form))
    seen: dict[str, Path] = {}
    for task in tasks:
        if task.name in seen:
            raise InputError(f"{task.path}: task name '{task.name}' is also used by {seen[task.name]}")
        seen[task.name] = task.path
    return tasks
