"""lm-eval export recipe: E2WM evaluation files as a self-contained lm-evaluation-harness task directory.

    from e2wm.recipes.lm_eval_export import LmEvalExportConfig, export_lm_eval
    export_lm_eval(LmEvalExportConfig(data=["eval-dev"], out="e2wm-lm-eval"))

then `lm_eval --model hf --model_args pretrained=M --include_path e2wm-lm-eval --tasks e2wm`. Every file is
read and checked first (as `e2wm eval` reads it); the folder is written as a hidden staging folder renamed into
place, so --out holds the whole task directory or does not exist. What is written: e2wm.eval.lm_eval.export.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

from e2wm import config
from e2wm.config import option
from e2wm.errors import InputError
from e2wm.eval.items import load_eval_files
from e2wm.eval.lm_eval.export import GROUP, SUBGROUPS, lm_eval_name, write_task_dir
from e2wm.files import output_folder
from e2wm.locks import output_lock


@dataclass(kw_only=True)
class LmEvalExportConfig:
    """`e2wm export lm-eval`: E2WM files as lm-eval tasks (group e2wm) that score as `e2wm eval` scores."""

    data: list[str] = option(help="E2WM .json/.jsonl files, or directories searched for them (training files "
                             "train_* and stats.json left out)")
    out: str = option(help="new directory for the lm-eval task folder (must not exist); pass it to lm_eval as "
                      "--include_path")

    def __post_init__(self) -> None:
        config.check(self)


def export_lm_eval(config: LmEvalExportConfig) -> dict[str, list[str]]:
    """Write config.data's files as lm-eval tasks in config.out.

    Returns:
        group name -> its members (lm-eval task names, or the sub-groups for `e2wm`).
    Raises:
        InputError: when --out already exists or lies inside a --data folder, a file is missing or malformed
            (naming file, line and field), given twice, or a file's task name would be a group's (qa.json ->
            e2wm_qa).
    """
    out = output_folder(config.out)  # a file above it is refused here
    with output_lock(out):  # one writer; the check that --out is new holds until the folder is there
        if out.exists():
            raise InputError(f"--out {out}: already exists; give a new directory")
        for data in map(Path, config.data):
            if data.is_dir() and out.resolve().is_relative_to(data.resolve()):
                raise InputError(f"--out {out} is inside --data {data}: reading {data} again would take the exported "
                                 "JSONL for evaluation files; give a folder outside it")
        tasks = load_eval_files(config.data)
        groups = {GROUP, *(name for name, _ in SUBGROUPS.values())}
        for task in tasks:
            if lm_eval_name(task.name) in groups:
                raise InputError(f"{task.path}: its lm-eval task name {lm_eval_name(task.name)} is a group's name "
                                 f"({', '.join(sorted(groups))}); rename the file")
        staging = out.with_name(f".{out.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            groups = write_task_dir(tasks, staging)
            staging.rename(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return {name: group["task"] for name, group in groups.items()}
