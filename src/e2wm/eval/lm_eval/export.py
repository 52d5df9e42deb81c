"""E2WM evaluation files as an lm-evaluation-harness (0.4.x) task directory, generated from e2wm's task registry.

    DIR/data/<name>.jsonl   the file's items, read by the `json` builder from data_files (no Hub access)
    DIR/e2wm_<name>.yaml    one task per file: multiple_choice or generate_until, its norm or metric
    DIR/_e2wm_qa.yaml       group e2wm_qa: the multiple-choice tasks, `acc` averaged over tasks
    DIR/_e2wm_gen.yaml      group e2wm_gen: the generation tasks, `rougeL` (plans) and `lcs` (paths) over tasks
    DIR/_e2wm.yaml          group e2wm: both sub-groups
    DIR/utils.py            the task class and E2WM's scoring (this package's utils.py)

A task's kind, metric and QA normalisation are its `EvalFile.spec` (e2wm.benchmark), the strings that frame a
prompt are e2wm.eval's (" " before an option, "Answer:" for `un`, the newline that ends an answer), and the
prompt is the file's input verbatim: its shots are already in it, so num_fewshot is 0. Group means are
unweighted over tasks, as e2wm's reports average tasks. Task names carry the prefix `e2wm_`.
"""

import shutil
from dataclasses import fields
from pathlib import Path

import yaml

from e2wm.benchmark import Kind
from e2wm.eval.config import EvalConfig
from e2wm.eval.generation import STOP
from e2wm.eval.items import EvalFile, item_digest
from e2wm.eval.qa import UNCONDITIONAL_CONTEXT
from e2wm.files import write_atomic, write_jsonl

PREFIX = "e2wm_"
GROUP = "e2wm"
SUBGROUPS: dict[Kind, tuple[str, str]] = {"multiple_choice": ("e2wm_qa", "E2WM multiple choice"),
                                          "generation": ("e2wm_gen", "E2WM generation")}
METRICS = {"accuracy": ["acc"], "rougeL": ["rouge1", "rouge2", "rougeL"], "lcs": ["lcs"]}  # e2wm metric -> lm-eval's
HEADLINE = {"accuracy": "acc", "rougeL": "rougeL", "lcs": "lcs"}  # the one a group averages
DELIMITER = " "  # between a question and its option: e2wm.eval.qa scores " " + option
MAX_NEW_TOKENS = {f.name: f.default for f in fields(EvalConfig)}["max_new_tokens"]  # e2wm eval's default budget
VERSION = 1.0  # of the task definitions (lm-eval reports it per task)
TEMPLATE = Path(__file__).with_name("utils.py")
HEADER = "# Written by `e2wm export lm-eval` from e2wm's task registry (e2wm.benchmark); see docs/lm-eval.md.\n"


def lm_eval_name(name: str) -> str:
    """The lm-eval task name of an E2WM task: plan_gen -> e2wm_plan_gen."""
    return PREFIX + name


def records(task: EvalFile) -> list[dict]:
    """The file's items as JSONL records: input, options and the answer's index (multiple choice) or ref
    (generation), and sha256 (`item_digest`, which pairs a row with `e2wm eval`'s predictions)."""
    if task.kind == "multiple_choice":
        return [{"input": item.input, "options": item.options, "answer": item.answer, "sha256": item_digest(item)}
                for item in task.items]
    return [{"input": item.input, "ref": item.ref, "sha256": item_digest(item)} for item in task.items]


def task_config(task: EvalFile) -> dict:
    """The task's lm-eval config (the YAML's mapping, without the `class` line `task_yaml` adds)."""
    spec = task.spec
    config: dict = {
        "task": lm_eval_name(task.name), "task_alias": spec.label, "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": f"data/{task.name}.jsonl"}}, "test_split": "test",
        "output_type": "multiple_choice" if task.kind == "multiple_choice" else "generate_until",
        "doc_to_text": "input", "num_fewshot": 0,
    }
    metadata: dict = {"version": VERSION, "e2wm_task": task.name, "metric": spec.metric}
    if task.kind == "multiple_choice":
        config |= {"doc_to_choice": "options", "doc_to_target": "answer", "target_delimiter": DELIMITER}
        metadata["norm"] = spec.norm
        if spec.norm == "un":
            metadata["unconditional_context"] = UNCONDITIONAL_CONTEXT
    else:
        config |= {"doc_to_target": "ref",
                   "generation_kwargs": {"until": [STOP], "do_sample": False, "max_gen_toks": MAX_NEW_TOKENS}}
    config["metric_list"] = [{"metric": metric, "aggregation": "mean", "higher_is_better": True}
                             for metric in METRICS[spec.metric]]
    config["metadata"] = metadata
    return config


class Dumper(yaml.SafeDumper):
    """YAML with strings that hold a newline double-quoted ("\\n"), not folded over lines."""


Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style='"' if "\n" in text else None))


def dump(config: dict) -> str:
    return yaml.dump(config, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


def task_yaml(task: EvalFile) -> str:
    """The task's YAML text: HEADER, the `class: !function utils.E2WMTask` line, then `task_config`."""
    return HEADER + "class: !function utils.E2WMTask\n" + dump(task_config(task))


def group_configs(tasks: list[EvalFile]) -> dict[str, dict]:
    """Group name -> its config: one sub-group per kind present (averaging each headline metric of its tasks,
    unweighted), then `e2wm` holding the sub-groups."""
    groups: dict[str, dict] = {}
    for kind, (name, alias) in SUBGROUPS.items():
        members = [task for task in tasks if task.kind == kind]
        if not members:
            continue
        metrics = dict.fromkeys(HEADLINE[task.spec.metric] for task in members)  # in order, once each
        groups[name] = {"group": name, "group_alias": alias, "task": [lm_eval_name(t.name) for t in members],
                        "aggregate_metric_list": [{"metric": metric, "aggregation": "mean", "weight_by_size": False}
                                                  for metric in metrics],
                        "metadata": {"version": VERSION}}
    groups[GROUP] = {"group": GROUP, "group_alias": "E2WM", "task": list(groups), "metadata": {"version": VERSION}}
    return groups


def write_task_dir(tasks: list[EvalFile], folder: Path) -> dict[str, dict]:
    """Write the task directory (see the module doc) into folder; returns `group_configs(tasks)`."""
    for task in tasks:
        write_jsonl(folder / "data" / f"{task.name}.jsonl", records(task))
        write_atomic(folder / f"{lm_eval_name(task.name)}.yaml", task_yaml(task))
    groups = group_configs(tasks)
    for name, config in groups.items():
        write_atomic(folder / f"_{name}.yaml", HEADER + dump(config))
    shutil.copyfile(TEMPLATE, folder / "utils.py")
    return groups
