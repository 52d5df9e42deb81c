"""The report on EAI's action sequencing: the task compared item by item over the tasks both runs count, and the
"Embodied Agent Interface" section with the evaluated runs placed among the shipped LLMs' leaderboard (faked here:
the real one costs ~16 minutes), the prompt form and --limit said, rates read from EAI's summary or its rows alike."""

import json
import logging

import pytest
from helpers.eai_run import TASK, eai_run, item

from e2wm.errors import InputError
from e2wm.eval import eai_report
from e2wm.eval.eai_report import judgement, table
from e2wm.eval.report import write_report
from e2wm.eval.statistics import wilson_interval
from e2wm.world import eai_judge
from e2wm.world.eai_tasks import load_tasks


def fake_summary(success: float, executable: float, parsing: float = 0.0, missing: float = 0.0) -> dict:
    """An evaluator summary (percent) with the given rates."""
    return {"goal_evaluation": {"task_success_rate": success, "state_goal": 50.0, "relation_goal": 40.0,
                                "action_goal": 30.0, "total_goal": 45.0},
            "trajectory_evaluation": {"execution_success_rate": executable,
                                      "grammar_error": {"parsing": parsing, "hallucination": 1.0,
                                                        "predicate_argument_number": 0.0},
                                      "runtime_error": {"wrong_order": 0.0, "missing_step": missing,
                                                        "affordance_error": 2.0, "additional_step": 0.0}}}


def fake_board(models: dict[str, tuple[int, int]]) -> dict:
    """A leaderboard like `eai_judge.leaderboard`'s: model -> (successes, counted tasks)."""
    tasks = [task.identifier for task in load_tasks()]  # the first n of EAI's tasks, the first s of them succeeding
    return {name: {"summary": fake_summary(100.0 * s / n, 80.0, parsing=5.0, missing=10.0), "seconds_per_item": 0.2,
                   "items": [{"identifier": tasks[i], "success": i < s} for i in range(n)]}
            for name, (s, n) in models.items()}


@pytest.fixture
def board(monkeypatch):
    """eai_judge.leaderboard replaced by two fake models (70% and 20% task success); the calls are recorded."""
    calls = []

    def leaderboard(cache, hash_seed=0, workers=1, models=None):
        calls.append((cache, hash_seed))
        return fake_board({"strong-llm": (7, 10), "weak-llm": (2, 10)})

    monkeypatch.setattr(eai_judge, "leaderboard", leaderboard)
    return calls


def table_rows(text: str) -> list[list[str]]:
    """The EAI table's rows as cells, below its header."""
    lines = text[text.index("| rank |"):].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|")]


# 10 tasks, 8 counted: 4 succeed (50%), 6 executable; the rest fail to parse (2 each) or miss a step
RUN_ITEMS = ([item(success=True, executable=True, goals_met=(2, 1, 0))] * 4
             + [item(executable=True, goals_met=(1, 0, 0), runtime_errors=["missing_step"])] * 2
             + [item(error_type="parsing error", parse_errors=2)] * 2 + [item(counted=False)] * 2)


def test_the_run_is_placed_among_the_leaderboard_by_task_success(tmp_path, board, caplog):
    run = eai_run(tmp_path / "mine", RUN_ITEMS, form="e2wm", limit=342)
    with caplog.at_level(logging.INFO, logger="e2wm"):
        text = write_report([run], [], tmp_path / "r.md", eai_leaderboard=tmp_path / "cache")
    assert board == [(tmp_path / "cache", 0)]  # scored at the run's hash seed, cached where asked
    assert "scoring the LLM outputs shipped with" in caplog.text and "cached in" in caplog.text
    assert str(eai_judge.leaderboard_path(tmp_path / "cache", 0)) in caplog.text
    rows = table_rows(text)
    assert [row[1] for row in rows] == ["strong-llm", "**mine** (evaluated)", "weak-llm"]
    assert [row[0] for row in rows] == ["1", "—", "2"]  # a --limit run is not ranked among whole-set rates
    # the LLMs over the run's 8 counted tasks (EAI's first 8): 7 of 8 and 2 of 8
    assert "On the same 8 counted tasks the LLMs' task success is: strong-llm 87.5, weak-llm 25.0." in text
    strong, mine, weak = rows
    assert strong[2:5] == ["native", "10", "70.0 [39.7, 89.2]"]  # Wilson's interval of 7 of 10
    low, high = wilson_interval(4, 8)
    assert mine[2:5] == ["**e2wm**", "**8 (--limit)**", f"**50.0 [{100 * low:.1f}, {100 * high:.1f}]**"]
    # recomputed from the rows: 6 of 8 executable; state goals (4*2 + 2*1) / (8*2), relation 4 / 8, no action goal;
    # parsing 2 * 2 / 8, missing step 2 / 8
    assert mine[5:] == [f"**{v}**" for v in ["75.0", "62.5", "50.0", "—", "50.0", "0.0", "0.0", "0.0", "25.0",
                                             "0.0", "0.0"]]
    assert weak[5:] == ["80.0", "50.0", "40.0", "30.0", "5.0", "1.0", "0.0", "0.0", "10.0", "2.0", "0.0"]
    # the form sentence: another prompt, not the same test; the --limit run covers only its tasks
    assert "`mine` answered another prompt (e2wm: E2WM's plan question, the goals told in English" in text
    assert "so its row is not the same test as a native one" in text
    assert "covers only 10 of the 342 tasks (8 counted)" in text
    assert "The 2 LLM rows are the outputs shipped with virtualhome-eval" in text
    assert "they answered EAI's native prompt" in text
    assert "64.26% task success in one process and 65.25% at PYTHONHASHSEED 0 and 1" in text
    assert "judged at hash seed 0, the LLMs at 0." in text
    assert eai_judge.version() in text


def test_a_native_run_is_the_same_test_and_the_leaderboard_can_be_left_out(tmp_path, board):
    run = eai_run(tmp_path / "native", RUN_ITEMS, form="native")
    text = write_report([run], [], tmp_path / "r.md", eai_leaderboard=tmp_path / "cache")
    assert "`native` answered EAI's native prompt, as the LLMs did: the same test." in text
    assert "--limit" not in text.split("## Embodied Agent Interface")[1]
    alone = write_report([run], [], tmp_path / "alone.md")  # no cache folder: no leaderboard
    assert len(board) == 1  # not asked again
    assert "is left out (--no-eai-leaderboard)" in alone
    assert [row[1] for row in table_rows(alone)] == ["**native** (evaluated)"]


def test_a_whole_set_run_reads_eai_summary(tmp_path, board):
    summary = fake_summary(50.0, 75.0, parsing=12.5, missing=3.0)
    text = write_report([eai_run(tmp_path / "whole", RUN_ITEMS, summary=summary)], [], tmp_path / "r.md",
                        eai_leaderboard=tmp_path / "cache")
    mine = next(row for row in table_rows(text) if "whole" in row[1])
    assert mine[3] == "**8**"  # no --limit
    assert mine[6:] == [f"**{v}**" for v in ["50.0", "40.0", "30.0", "12.5", "1.0", "0.0", "0.0", "3.0", "2.0",
                                             "0.0"]]


def every_kind() -> set[str]:
    """EAI's tasks with node, edge and action goals (a judged set needs some: the evaluator divides by each)."""
    return {task.identifier for task in load_tasks() if task.node_goals and task.edge_goals and task.action_goals}


def shipped_rows(judgement) -> list[dict]:
    """Prediction rows' judge fields from a judgement, as e2wm.eval.eai.score writes them."""
    return [item(counted=found.counted, success=found.success, executable=found.executable,
                 error_type=found.error_type, runtime_errors=found.runtime_errors,
                 goals_met=(found.node_goals_met, found.edge_goals_met, found.action_goals_met),
                 goals=(found.node_goals, found.edge_goals, found.action_goals),
                 parse_errors=found.parse_errors if found.error_type == "parsing error" else None)
            for found in judgement.items]


def test_rates_from_rows_equal_eai_summary_on_shipped_outputs():
    """GPT-3.5-turbo's shipped outputs of 30 tasks (10 with goals of every kind, which the evaluator divides by;
    parsing and argument errors and a missing step among them) judged by EAI's evaluator: the summary recomputed
    from the prediction rows, read back as judgements, is its summary exactly (rounded as it rounds)."""
    shipped = json.loads(eai_judge.shipped_outputs()["gpt-3.5-turbo-0125"].read_text())
    outputs = shipped[:20] + [output for output in shipped[20:] if output["identifier"] in every_kind()][:10]
    judged = eai_judge.judge(outputs, name="gpt-3.5-turbo-0125")
    rows = [row for row in shipped_rows(judged) if row["counted"]]
    assert {"parsing error", "parameter error", "missing_step"} <= {row["error_type"] for row in rows}
    assert eai_judge.summary_from_items([judgement(row) for row in rows]) == judged.summary


def test_a_goal_kind_that_no_counted_row_has_is_none():
    rows = [item(success=True, executable=True, goals_met=(2, 1, 0), goals=(2, 1, 0)),
            item(executable=True, goals_met=(1, 0, 0), goals=(2, 1, 0), runtime_errors=["missing_step"])]
    summary = eai_judge.summary_from_items([judgement(row) for row in rows])
    assert summary["goal_evaluation"] == {"task_success_rate": 50.0, "state_goal": 75.0, "relation_goal": 50.0,
                                          "action_goal": None, "total_goal": 66.6667}
    assert summary["trajectory_evaluation"]["runtime_error"]["missing_step"] == 50.0


def test_a_run_reads_the_same_from_its_summary_or_its_rows(tmp_path):
    """The same judged rows as a run with EAI's summary and as a --limit run without one: the same table row."""
    outputs = [output for output in json.loads(eai_judge.shipped_outputs()["llama-3-8b-chat"].read_text())
               if output["identifier"] in every_kind()][:12]
    judged = eai_judge.judge(outputs, name="llama-3-8b-chat")
    rows = shipped_rows(judged)
    whole = eai_run(tmp_path / "whole", rows, summary=judged.summary)
    part = eai_run(tmp_path / "part", rows, limit=342)
    found = [table_rows(write_report([run], [], tmp_path / f"{run.name}.md"))[0] for run in (whole, part)]
    assert found[0][3] == found[1][3].replace(" (--limit)", "")
    assert found[0][4:] == found[1][4:]
    assert any(cell not in ("**0.0**", "**—**") for cell in found[0][7:])  # some error share to compare


def test_the_task_is_compared_over_the_items_both_runs_count(tmp_path):
    """20 tasks, the last 4 not counted: 4 of 16 succeed, then 14 of 16; rows with a null score are left out."""
    base = eai_run(tmp_path / "base", [item(success=i < 4) for i in range(16)] + [item(counted=False)] * 4)
    tuned = eai_run(tmp_path / "tuned", [item(success=i < 14) for i in range(16)] + [item(counted=False)] * 4)
    text = write_report([base, tuned], [], tmp_path / "r.md")
    line = next(line for line in text.splitlines() if line.startswith(f"| {TASK} |"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[1:3] == ["EAI task success", "16 counted of 20"]
    assert cells[3] == "0.2500 [{:.4f}, {:.4f}]".format(*wilson_interval(4, 16))  # Wilson, like an accuracy
    assert cells[4] == "0.8750 [{:.4f}, {:.4f}]".format(*wilson_interval(14, 16))
    assert cells[5].startswith("+0.6250 [")  # over the 16 counted items, not 20
    assert cells[6].startswith("gain +250.0%")
    assert cells[7] == f"{2 / 2**10:.3g}"  # the exact sign test: 10 items differ, all one way
    assert f"**{TASK}** (16 items)" in text


def test_runs_of_different_prompt_forms_are_refused_naming_the_forms(tmp_path):
    base = eai_run(tmp_path / "goals", RUN_ITEMS, form="e2wm")
    other = eai_run(tmp_path / "no-goals", RUN_ITEMS, form="e2wm-no-goals")
    with pytest.raises(InputError, match=r"different prompt forms \(--eai-form e2wm and e2wm-no-goals\).*report each "
                                         r"form's runs apart"):
        write_report([base, other], [], tmp_path / "r.md")


def test_runs_counting_other_items_are_refused(tmp_path):
    base = eai_run(tmp_path / "base", [item(success=True)] * 6 + [item(counted=False)])
    other = eai_run(tmp_path / "other", [item(counted=False)] + [item(success=True)] * 6)
    with pytest.raises(InputError, match=r"index 0 \(row 1\) is counted in .*base and not in .*other") as error:
        write_report([base, other], [], tmp_path / "r.md")
    assert str(base / "predictions" / f"{TASK}.jsonl") in str(error.value)
    assert str(other / "predictions" / f"{TASK}.jsonl") in str(error.value)


def test_a_run_whose_judge_counted_nothing_is_refused(tmp_path):
    run = eai_run(tmp_path / "none", [item(counted=False)] * 3)
    with pytest.raises(InputError, match=r"task 'eai_action_sequence': task_success is null: the judge counted none "
                                         r"of its 3 items"):
        write_report([run], [], tmp_path / "r.md")


@pytest.mark.parametrize("field, value, message", [
    ("eai_form", "json", "eai_form must be one of native, e2wm, e2wm-no-goals"),
    ("eai_counted", "8", "eai_counted must be an integer"),
    ("eai_summary", {"goal_evaluation": {}}, "eai_summary.goal_evaluation.task_success_rate must be a number"),
])
def test_bad_eai_fields_are_named(tmp_path, field, value, message):
    run = eai_run(tmp_path / "bad", RUN_ITEMS)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics[TASK][field] = value
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(InputError, match=message):
        write_report([run], [], tmp_path / "r.md")


def test_a_parsing_error_row_needs_its_count(tmp_path):
    run = eai_run(tmp_path / "old", [item(success=True)] * 3 + [item(error_type="parsing error")])
    with pytest.raises(InputError, match=r"eai_action_sequence.jsonl:4: field 'parse_errors' is missing"):
        write_report([run], [], tmp_path / "r.md")


def test_table_orders_by_success_and_keeps_runs_bold():
    rows = [eai_report.EaiRow("a|b", "e2wm-no-goals", 4, 1, 50.0, dict.fromkeys(eai_report.GOALS),
                              dict.fromkeys([key for _, _, key in eai_report.ERRORS], 0.0), run=True),
            eai_report.EaiRow("llm", "native", 4, 3, 75.0, dict.fromkeys(eai_report.GOALS, 10.0),
                              dict.fromkeys([key for _, _, key in eai_report.ERRORS], 1.0), run=False)]
    lines = table(rows).splitlines()
    assert lines[2].startswith("| 1 | llm | native | 4 | 75.0 [")
    assert lines[3].startswith("| 2 | **a\\|b** (evaluated) | **e2wm-no-goals** | **4** | **25.0 [")


def test_the_task_name_is_the_eval_task():
    from e2wm.eval import eai

    assert eai_report.TASK == eai.TASK
