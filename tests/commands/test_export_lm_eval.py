"""`e2wm export lm-eval`: a task directory generated from the task registry, the items verbatim; refusals in one line.

lm-eval itself is not needed here (tests/recipes/test_lm_eval_agreement.py runs it)."""

import json
from pathlib import Path

import pytest
import yaml
from helpers.files import write

from e2wm.benchmark import TASKS
from e2wm.cli import main
from e2wm.eval.items import item_digest, load_eval_files
from e2wm.eval.lm_eval import export

QA = {"input": "Given a task plan: Walk to sink.\nQuestion: what is the name of this task?\nAnswer:",
      "answer_list": ["wash hands", "watch tv", "read book"], "answer": "watch tv"}
GEN = {"input": "Q: How to brush teeth?\nA:", "ref": "Walk to bathroom. Grab toothbrush."}


def run(*args) -> int:
    try:
        main(["export", "lm-eval", *map(str, args)])
    except SystemExit as stop:
        return stop.code
    return 0


class Loader(yaml.SafeLoader):
    """Reads lm-eval's `!function module.name` tag as the string 'module.name'."""


Loader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def read_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=Loader)


def test_tasks_come_from_the_registry_and_the_items_are_verbatim(tmp_path, capsys):
    data = tmp_path / "dev"
    write(data / "qa" / "act_recog.json", [QA, QA | {"answer": "read book"}])
    write(data / "qa" / "housework_qa.json", [QA])
    write(data / "gen" / "plan_gen.json", [GEN])
    write(data / "gen" / "obj_move_path.json", [GEN | {"ref": "hallway, kitchen"}])
    write(data / "mine.jsonl", [QA])  # not in the registry: multiple choice with the defaults of its kind (ln)
    out = tmp_path / "tasks"
    assert run("--data", data, "--out", out) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {out}: 5 tasks in group e2wm: e2wm_qa (3), e2wm_gen (2)",
        f"run: lm_eval --model hf --model_args pretrained=MODEL --include_path {out} --tasks e2wm"]
    names = ["act_recog", "housework_qa", "mine", "obj_move_path", "plan_gen"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["_e2wm.yaml", "_e2wm_gen.yaml", "_e2wm_qa.yaml", "data", "utils.py"] + [f"e2wm_{n}.yaml" for n in names])
    assert sorted(p.name for p in (out / "data").iterdir()) == [f"{n}.jsonl" for n in names]
    assert (out / "utils.py").read_bytes() == export.TEMPLATE.read_bytes()
    assert not list(tmp_path.glob(".*"))  # no staging folder left

    for name in names:
        config = read_yaml(out / f"e2wm_{name}.yaml")
        spec = TASKS[name] if name in TASKS else TASKS["act_recog"]
        assert config["class"] == "!function utils.E2WMTask"
        assert config["task"] == f"e2wm_{name}" and config["num_fewshot"] == 0 and config["doc_to_text"] == "input"
        assert config["dataset_path"] == "json" and config["test_split"] == "test"
        assert config["dataset_kwargs"] == {"data_files": {"test": f"data/{name}.jsonl"}}
        assert config["metadata"]["metric"] == spec.metric and config["metadata"]["version"] == export.VERSION
        metrics = [m["metric"] for m in config["metric_list"]]
        if spec.kind == "multiple_choice":
            assert config["output_type"] == "multiple_choice" and metrics == ["acc"]
            assert (config["doc_to_choice"], config["doc_to_target"], config["target_delimiter"]) == (
                "options", "answer", " ")
            assert config["metadata"]["norm"] == (spec.norm if name != "mine" else "ln")
            assert config["metadata"].get("unconditional_context") == ("Answer:" if spec.norm == "un" else None)
        else:
            assert config["output_type"] == "generate_until" and config["doc_to_target"] == "ref"
            assert config["generation_kwargs"] == {"until": ["\n"], "do_sample": False, "max_gen_toks": 256}
            assert metrics == (["lcs"] if name == "obj_move_path" else ["rouge1", "rouge2", "rougeL"])
    assert TASKS["housework_qa"].norm == "un" and TASKS["act_recog"].norm == "ln"

    records = [json.loads(line) for line in (out / "data" / "act_recog.jsonl").read_text().splitlines()]
    items = load_eval_files([str(data / "qa" / "act_recog.json")])[0].items
    assert records == [{"input": QA["input"], "options": QA["answer_list"], "answer": answer,
                        "sha256": item_digest(item)} for answer, item in zip([1, 2], items)]
    assert json.loads((out / "data" / "plan_gen.jsonl").read_text()) == GEN | {
        "sha256": item_digest(load_eval_files([str(data / "gen" / "plan_gen.json")])[0].items[0])}

    assert read_yaml(out / "_e2wm.yaml") == {"group": "e2wm", "group_alias": "E2WM", "task": ["e2wm_qa", "e2wm_gen"],
                                             "metadata": {"version": export.VERSION}}
    qa_group, gen_group = read_yaml(out / "_e2wm_qa.yaml"), read_yaml(out / "_e2wm_gen.yaml")
    assert qa_group["task"] == ["e2wm_mine", "e2wm_act_recog", "e2wm_housework_qa"]  # in file order
    assert qa_group["aggregate_metric_list"] == [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}]
    assert gen_group["task"] == ["e2wm_obj_move_path", "e2wm_plan_gen"]
    assert [m["metric"] for m in gen_group["aggregate_metric_list"]] == ["lcs", "rougeL"]


def test_one_kind_only_has_one_subgroup(tmp_path, capsys):
    write(tmp_path / "plan_gen.json", [GEN])
    assert run("--data", tmp_path / "plan_gen.json", "--out", tmp_path / "tasks") == 0
    assert read_yaml(tmp_path / "tasks" / "_e2wm.yaml")["task"] == ["e2wm_gen"]
    assert not (tmp_path / "tasks" / "_e2wm_qa.yaml").exists()


@pytest.mark.parametrize(("lines", "message"), [
    ([QA | {"answer": "sleep"}], "bad.json:1: field 'answer' 'sleep' is not in answer_list"),
    ([GEN, {"input": "x"}], "bad.json:2: field 'ref'"),
])
def test_bad_files_are_one_line_and_write_nothing(tmp_path, capsys, lines, message):
    write(tmp_path / "bad.json", lines)
    out = tmp_path / "tasks"
    assert run("--data", tmp_path / "bad.json", "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("e2wm export lm-eval: error: ") and message in err, err
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_an_existing_out_is_refused(tmp_path, capsys):
    write(tmp_path / "plan_gen.json", [GEN])
    (tmp_path / "tasks").mkdir()
    assert run("--data", tmp_path / "plan_gen.json", "--out", tmp_path / "tasks") == 2
    assert capsys.readouterr().err.strip() == (f"e2wm export lm-eval: error: --out {tmp_path / 'tasks'}: already "
                                               "exists; give a new directory")


def test_the_released_dev_files(benchmark_dir, tmp_path, capsys):
    dev = benchmark_dir / "eval-dev"
    assert run("--data", dev, "--out", tmp_path / "tasks") == 0
    files = load_eval_files([str(dev)])
    assert len(files) == 11 and {f.name for f in files} <= set(TASKS)
    for task in files:
        lines = (tmp_path / "tasks" / "data" / f"{task.name}.jsonl").read_text().splitlines()
        assert len(lines) == len(task.items)
        assert [json.loads(line)["input"] for line in lines] == [item.input for item in task.items]
