"""Reports: comparison tables, relative changes, moving averages and PNG charts, from fixture runs."""

import json

import pytest

from e2wm.errors import InputError
from e2wm.eval.report import TrainLog, curve_keys, moving_average, relative_change, train_table, write_report

BASE = {
    "act_recog": {"accuracy": 0.5, "n": 16, "norm": "ln", "truncated": 0},
    "count": {"accuracy": 0.25, "n": 16, "norm": "ln", "truncated": 0},
    "plan_gen": {"rouge1": 0.4, "rouge2": 0.2, "rougeL": 0.3, "n": 16, "truncated": 1},
    "obj_move_path": {"lcs": 0.0, "n": 16, "truncated": 0},
    "ppl": {"perplexity": 10.0, "nll": 2.302585, "tokens": 500},
}
TUNED = {
    "act_recog": {"accuracy": 0.75, "n": 16, "norm": "ln", "truncated": 0},
    "count": {"accuracy": 0.2, "n": 16, "norm": "ln", "truncated": 0},
    "plan_gen": {"rouge1": 0.5, "rouge2": 0.3, "rougeL": 0.45, "n": 16, "truncated": 1},
    "obj_move_path": {"lcs": 0.5, "n": 16, "truncated": 0},
    "ppl": {"perplexity": 11.0, "nll": 2.397895, "tokens": 500},
}


def write_run(directory, metrics):
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    return directory


def row(text: str, task: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {task} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_table_has_every_task_and_the_right_changes(tmp_path):
    base = write_run(tmp_path / "base", BASE)
    tuned = write_run(tmp_path / "tuned", TUNED)
    out = tmp_path / "out" / "report.md"
    text = write_report([base, tuned], [], out)
    assert out.read_text() == text
    for task in ("act_recog", "count", "plan_gen", "obj_move_path"):
        assert f"| {task} |" in text
    assert row(text, "act_recog") == ["act_recog", "accuracy", "16", "0.5000", "0.7500", "+50.0%"]
    assert row(text, "count") == ["count", "accuracy", "16", "0.2500", "0.2000", "-20.0%"]
    assert row(text, "plan_gen") == ["plan_gen", "ROUGE-L F1", "16", "0.3000", "0.4500", "+50.0%"]
    assert row(text, "obj_move_path")[-1] == "n/a"  # the base scored 0: no relative change
    assert row(text, "perplexity (lower is better)")[3:] == ["10.0000", "11.0000", "+10.0%"]
    # mean of (0.5, 0.25, 0.3, 0.0) = 0.2625 and of (0.75, 0.2, 0.45, 0.5) = 0.475: +81.0%
    assert row(text, "**mean**")[3:] == ["0.2625", "0.4750", "+81.0%"]
    chart = out.with_name("report.png")
    assert chart.stat().st_size > 10_000
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](report.png)" in text


def test_three_runs_missing_tasks_and_repeated_folder_names(tmp_path):
    a = write_run(tmp_path / "a" / "eval", BASE)
    b = write_run(tmp_path / "b" / "eval", {"act_recog": {"accuracy": 1.0, "n": 8}})
    c = write_run(tmp_path / "c" / "eval", TUNED)
    text = write_report([a, b, c], [], tmp_path / "r.md")
    header = next(line for line in text.splitlines() if line.startswith("| task"))
    assert "a/eval" in header and "Δ vs a/eval" in header
    assert row(text, "act_recog")[2:] == ["16/8", "0.5000", "1.0000", "+100.0%", "0.7500", "+50.0%"]
    assert row(text, "count")[4:6] == ["—", "—"]  # b has no count
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_moving_average():
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([2.0, 4.0], 1) == [2.0, 4.0]


def test_relative_change():
    assert relative_change(0.6, 0.4) == pytest.approx(0.5)
    assert relative_change(1.0, 0.0) is None


def test_bad_requests(tmp_path):
    with pytest.raises(InputError, match="give run directories"):
        write_report([], [], tmp_path / "r.md")
    with pytest.raises(InputError, match="ending in .md"):
        write_report([write_run(tmp_path / "a", BASE)], [], tmp_path / "r.txt")
    with pytest.raises(InputError, match="no log.jsonl"):
        write_report([], [tmp_path / "a"], tmp_path / "r.md")


def test_train_table_adds_the_last_curve_values_only_when_a_log_has_them():
    plain = TrainLog("lora", None, [{"step": s, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "lr": 1e-3} for s in (1, 2, 3)])
    curve = TrainLog("ewc", None, [{"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0},
                                   {"step": 2, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "eval_ppl": 12.5},
                                   {"step": 3, "loss": 1.0, "ce": 1.0, "ewc": 0.0}])
    assert curve_keys([plain]) == [] and "eval" not in train_table([plain])
    assert curve_keys([plain, curve]) == ["eval_ppl"]
    lines = train_table([plain, curve]).splitlines()
    assert lines[0].endswith("| last lr | last eval_ppl |") and lines[1].count("---:|") == 8
    assert lines[2].endswith("| — |") and lines[3].endswith("| 12.5000 |")  # the last row that has it: step 2
    assert curve.last("eval_ppl") == 12.5 and curve.last("eval_accuracy") is None


def test_curve_chart_only_when_the_logs_have_eval_fields(tmp_path):
    rows = [{"step": s, "loss": 1.0, "ce": 1.0, "ewc": 0.0, "eval_accuracy": 0.1 * s} for s in (1, 2)]
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report([], [run], tmp_path / "r.md")
    assert (tmp_path / "r-eval.png").stat().st_size > 10_000 and "](r-eval.png)" in text
    assert "| last eval_accuracy |" in text and "last eval_ppl" not in text
    (run / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "ce": 1.0, "ewc": 0.0}) + "\n")
    text = write_report([], [run], tmp_path / "plain.md")
    assert not (tmp_path / "plain-eval.png").exists() and "eval" not in text
