"""E2WM evaluation files: reading and checking them, telling QA from generation, naming tasks."""

from dataclasses import dataclass, field
from pathlib import Path

from e2wm.errors import InputError, at
from e2wm.files import iter_jsonl, require

LN_TASKS = {"act_recog", "count", "obj_move"}  # sum log-prob / option tokens
UN_TASKS = {"housework_qa", "neg_housework_qa", "act_infer"}  # log p(o|input) - log p(o|"Answer:")
SUFFIXES = (".json", ".jsonl")


@dataclass
class QAItem:
    input: str
    options: list[str]
    answer: int  # index into options


@dataclass
class GenItem:
    input: str
    ref: str


@dataclass
class TaskFile:
    name: str
    path: Path
    kind: str  # "qa" or "gen"
    items: list = field(default_factory=list)


def task_name(path: Path) -> str:
    """The task name is the file name without its suffix (plan_gen.json -> plan_gen)."""
    return path.name.removesuffix(".jsonl").removesuffix(".json")


def generation_metric(name: str) -> str:
    """'lcs' for object-path files, 'rouge' for plan generation and anything not known."""
    return "lcs" if name.startswith("obj_move_path") else "rouge"


def qa_norm(name: str, override: str | None) -> tuple[str, bool]:
    """(normalisation, known): the SPEC's per-task choice, `--norm` winning; unknown tasks get 'ln'."""
    if override:
        return override, True
    if name in UN_TASKS:
        return "un", True
    return "ln", name in LN_TASKS


def read_task_file(path: Path) -> TaskFile:
    """Read and check every line; the first record's fields decide the kind (QA or generation)."""
    items, kind = [], None
    for line, record in iter_jsonl(path):
        if kind is None:
            kind = "qa" if ("answer_list" in record or "answer" in record) else "gen"
        text = require(record, "input", str, path, line)
        if kind == "gen":
            items.append(GenItem(text, require(record, "ref", str, path, line)))
            continue
        options = require(record, "answer_list", list, path, line)
        if not options:
            raise InputError(f"{at(path, line, 'answer_list')} is empty")
        if not all(isinstance(o, str) for o in options):
            raise InputError(f"{at(path, line, 'answer_list')} must hold strings only")
        answer = require(record, "answer", str, path, line)
        if answer not in options:
            raise InputError(f"{at(path, line, 'answer')} {answer!r} is not in answer_list")
        items.append(QAItem(text, options, options.index(answer)))
    if not items:
        raise InputError(f"{path}: empty file (no records)")
    return TaskFile(task_name(path), path, kind, items)


def find_task_files(paths: list[str]) -> list[Path]:
    """Expand --data arguments: files as given, directories searched recursively for .json/.jsonl."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
            if not files:
                raise InputError(f"{path}: directory holds no .json or .jsonl files")
            found.extend(files)
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return found


def load_tasks(paths: list[str]) -> list[TaskFile]:
    """Every task file, fully checked before any model work starts; task names must be unique."""
    tasks = [read_task_file(path) for path in find_task_files(paths)]
    seen: dict[str, Path] = {}
    for task in tasks:
        if task.name in seen:
            raise InputError(f"{task.path}: task name '{task.name}' is also used by {seen[task.name]}")
        seen[task.name] = task.path
    return tasks
