"""Execution metrics of plan-generation items: finding an item's program, executing its plan, summaries."""

from pathlib import Path

import pytest
from conftest import BENCHMARK

from e2wm.eval import execution
from e2wm.eval.config import EvalConfig
from e2wm.eval.items import EvalFile, GenItem, read_eval_file
from e2wm.eval.run import unused_options
from e2wm.world.programs import load_program, plan_english

GOLD = "Walk to dining room. Walk to freezer. Find food food. Grab food food. Open freezer. Put food food in freezer."


def item(ref="Walk to kitchen.", source=None, line=None):
    return GenItem("Q: How to put groceries in fridge?\nA:", ref, line, source)


def test_the_program_is_found_by_source_then_by_english():
    assert plan_english(load_program("file1004_2").steps) == GOLD
    assert execution.find_program(item(source="file1004_2")) == "file1004_2"  # e2wm's own files
    assert execution.find_program(item(ref=f" {GOLD.replace('. ', '.  ')}\n")) == "file1004_2"  # released files
    assert execution.find_program(item(ref=GOLD, source="episode-3")) == "file1004_2"  # a source that is no program
    assert execution.find_program(item(ref="Walk to kitchen. Grab cup.")) is None
    assert execution.find_program(item(ref=GOLD.lower())) is None  # exact English, only whitespace normalised


def test_items_execute_from_their_programs_initial_graph():
    row = execution.execute_item(item(source="file1004_2"), GOLD)
    assert row == {"program": "file1004_2", "steps": 6, "steps_executed": 1.0, "executable": True, "goal_facts": 5,
                   "goals_reached": 1.0, "first_failure": None}
    row = execution.execute_item(item(ref=GOLD), "Walk to food food. Grab food food. Fly.")
    assert (row["steps_executed"], row["executable"]) == (pytest.approx(2 / 3), False)
    assert row["first_failure"] == {"index": 2, "sentence": "Fly.", "reason": "no verb matches"}
    assert execution.execute_item(item(), GOLD) is None


def test_score_counts_and_names_unknown_items():
    items = [item(source="file1004_2", line=1), item(ref=GOLD, line=2), item(line=3), item()]
    predictions = [GOLD, "Grab food food. Walk to freezer.", GOLD, GOLD]
    scores = execution.score(items, predictions, None)
    assert scores.per_item == {"steps_executed": [1.0, 0.5], "executable": [1.0, 0.0], "goals_reached": [1.0, 0.4]}
    assert scores.binary == {"executable"}
    assert scores.summary == {"execution_known": 2, "execution_unknown": 2,
                              "execution_unknown_items": ["line 3", "item 4"]}
    assert [row["program"] for row in scores.rows] == ["file1004_2", "file1004_2", None, None]


def test_no_known_item_gives_counts_only():
    scores = execution.score([item(line=7)], [GOLD], None)
    assert scores.per_item == {} and scores.summary["execution_unknown_items"] == ["line 7"]


@pytest.mark.skipif(not (BENCHMARK / "eval-dev").is_dir(), reason="the released benchmark is not in ../shared")
def test_released_items_matching_a_bundled_program():
    """6 of the 59 dev plan_gen items tell a bundled program's English; their refs execute."""
    items = read_eval_file(BENCHMARK / "eval-dev" / "gen" / "plan_gen.json").items
    rows = [execution.execute_item(i, i.ref) for i in items]
    assert [row["program"] for row in rows if row] == [
        "file988_1", "file503_2", "file815_2", "file145_1", "file438_1", "file446_2"]
    assert sum(row["executable"] for row in rows if row) == 5


def test_plan_tasks_write_execution_metrics_beside_rouge(tiny_llama, tmp_path):
    """e2wm eval of a plan_gen file: metrics.json has the execution metrics of the items whose program is known,
    with their standard errors and Wilson interval, and each prediction row its program and execution."""
    import json

    from e2wm.eval.config import EvalConfig
    from e2wm.eval.items import EvalFile
    from e2wm.eval.run import evaluate_model
    from e2wm.models import ModelSpec, load_model

    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    items = [item(source="file1004_2", line=1), item(ref=GOLD, line=2), item(line=3)]
    task = EvalFile("plan_gen", tmp_path / "plan_gen.json", "generation", items)
    config = EvalConfig(model=str(tiny_llama), data=["x"], out=str(tmp_path / "run"), max_new_tokens=8)
    result = evaluate_model(model, tokenizer, [task], config, identity={})["plan_gen"]
    assert result["execution_known"] == 2 and result["execution_unknown_items"] == ["line 3"]
    assert result["executable"] == 0.0 and result["executable_ci95"][0] == 0.0  # 8 random tokens do not execute
    assert {"rougeL", "steps_executed", "steps_executed_stderr", "executable_stderr"} <= set(result)
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions" / "plan_gen.jsonl").read_text().splitlines()]
    assert [row["program"] for row in rows] == ["file1004_2", "file1004_2", None]
    assert rows[0]["steps_executed"] == 0.0 and "score" in rows[2]


def test_generated_answers_are_kept_before_scoring(tiny_llama, tmp_path, monkeypatch):
    """The decoded texts are saved before any scorer runs: a scorer (a judge) that fails costs no generation on the
    re-run, which scores the saved texts; a changed setting decodes again."""
    import dataclasses

    from e2wm.eval import execution, generation, run
    from e2wm.eval.config import EvalConfig
    from e2wm.eval.items import EvalFile
    from e2wm.eval.run import evaluate_model
    from e2wm.models import ModelSpec, load_model

    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    task = EvalFile("plan_gen", tmp_path / "plan_gen.json", "generation", [item(source="file1004_2", line=1)])
    config = EvalConfig(model=str(tiny_llama), data=["x"], out=str(tmp_path / "run"), max_new_tokens=6)
    calls, real_generate, real_score = [], generation.generate, execution.score
    monkeypatch.setattr(generation, "generate", lambda *a, **k: calls.append(1) or real_generate(*a, **k))

    def failing(*args, **kwargs):
        raise RuntimeError("the judge failed")

    monkeypatch.setattr(execution, "score", failing)
    with pytest.raises(RuntimeError, match="the judge failed"):
        evaluate_model(model, tokenizer, [task], config, identity={})
    assert calls == [1] and (tmp_path / "run" / "tasks" / "plan_gen.generated.json").is_file()
    monkeypatch.undo()
    monkeypatch.setattr(generation, "generate", lambda *a, **k: calls.append(1) or real_generate(*a, **k))
    first = evaluate_model(model, tokenizer, [task], config, identity={})["plan_gen"]
    assert calls == [1] and first["execution_known"] == 1  # scored from the saved texts
    monkeypatch.setattr(run, "METRICS_VERSION", run.METRICS_VERSION + 1)  # a scoring change: re-scored, not decoded
    scored = []
    monkeypatch.setattr(execution, "score", lambda *a, **k: scored.append(1) or real_score(*a, **k))
    assert evaluate_model(model, tokenizer, [task], config, identity={})["plan_gen"] == first
    assert calls == [1] and scored == [1]
    old, new = ({"software": {"versions": {"e2wm": "0.1.0", "torch": "2"}, "git_commit": commit}} for commit in "ab")
    evaluate_model(model, tokenizer, [task], config, identity=old)
    assert evaluate_model(model, tokenizer, [task], config, identity=new)["plan_gen"] == first
    assert calls == [1, 1] and scored == [1, 1, 1]  # another e2wm commit: re-scored from the saved answers
    evaluate_model(model, tokenizer, [task], config, identity={"software": {"versions": {"torch": "3"}}})
    assert calls == [1, 1, 1]  # another torch: decoded again
    evaluate_model(model, tokenizer, [task], dataclasses.replace(config, max_new_tokens=5), identity={})
    assert calls == [1, 1, 1, 1]  # another setting: decoded again


def test_options_that_no_task_reads_are_named():
    """--eai-form without EAI's task and --robothow-dir without a plan task change nothing: eval warns of them."""
    plans = EvalFile("plan_gen", Path("p.json"), "generation")
    count = EvalFile("count", Path("c.json"), "multiple_choice")
    eai = EvalFile("eai_action_sequence", Path("eai:action_sequence"), "generation")
    config = EvalConfig(model="m", data=["x"], out="o", eai_form="e2wm", robothow_dir="/rh")
    assert unused_options([plans], config) == ["--eai-form e2wm (only --data eai:action_sequence reads it)"]
    assert unused_options([count], config) == ["--eai-form e2wm (only --data eai:action_sequence reads it)",
                                               "--robothow-dir /rh (only plan-generation tasks read it)"]
    assert unused_options([plans, eai], config) == []
    assert unused_options([count], EvalConfig(model="m", data=["x"], out="o")) == []
