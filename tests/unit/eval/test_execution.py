"""Execution metrics of plan-generation items: finding an item's program, executing its plan, summaries."""

import pytest
from conftest import BENCHMARK

from e2wm.eval import execution
from e2wm.eval.items import GenItem, read_eval_file
from e2wm.eval.statistics import wilson_interval
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
    summary = execution.summarise(items, [execution.execute_item(i, p) for i, p in zip(items, predictions)],
                                  resamples=200, seed=1, name="plan_gen")
    assert summary["steps_executed"] == 0.75 and summary["goals_reached"] == pytest.approx(0.7)
    assert summary["executable"] == 0.5 and summary["executable_stderr"] == 0.5
    assert summary["executable_ci95"] == list(wilson_interval(1, 2)) and summary["n_executable"] == 2
    assert 0 < summary["steps_executed_stderr"] <= 0.25 and summary["execution_unknown"] == 2


def test_no_known_item_gives_counts_only():
    scores = execution.score([item(line=7)], [GOLD], None)
    assert scores.per_item == {} and scores.summary["execution_unknown_items"] == ["line 7"]
    assert execution.summarise([item(line=7)], [None], resamples=200, seed=1) == scores.summary


@pytest.mark.skipif(not (BENCHMARK / "eval-dev").is_dir(), reason="the released benchmark is not in ../shared")
def test_released_items_matching_a_bundled_program():
    """6 of the 59 dev plan_gen items tell a bundled program's English; their refs execute."""
    items = read_eval_file(BENCHMARK / "eval-dev" / "gen" / "plan_gen.json").items
    rows = [execution.execute_item(i, i.ref) for i in items]
    assert [row["program"] for row in rows if row] == [
        "file988_1", "file503_2", "file815_2", "file145_1", "file438_1", "file446_2"]
    assert sum(row["executable"] for row in rows if row) == 5
