"""The collectors' real output goes through `e2wm build` unchanged: nothing skipped as inconsistent."""

import json

import pytest
from task_formats import read_act_recog, read_count, read_obj_move, read_plan_gen, solve_path

from e2wm.cli import main

READERS = {"plan_gen": read_plan_gen, "act_recog": read_act_recog, "count": read_count, "obj_move": read_obj_move}


@pytest.mark.slow
def test_collect_then_build(tmp_path):
    main(["collect", "plans", "--out", str(tmp_path / "plans.jsonl"), "--max-programs", "5", "--simulations", "30",
          "--workers", "1"])
    main(["collect", "explore", "--out", str(tmp_path / "explore.jsonl"), "--episodes", "8", "--steps", "15",
          "--workers", "1"])
    main(["build", "--plans", str(tmp_path / "plans.jsonl"), "--explore", str(tmp_path / "explore.jsonl"),
          "--out", str(tmp_path / "out"), "--shots", "1"])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert not stats["inputs"]["plans"]["inconsistent"] and not stats["inputs"]["explore"]["inconsistent"]
    assert stats["inputs"]["explore"]["used"] == 8
    for task, read in READERS.items():
        lines = [json.loads(line) for line in (tmp_path / "out" / f"train_{task}.jsonl").read_text().splitlines()]
        assert lines or task == "obj_move", task
        for line in lines:
            blocks = read(line)
            if task == "obj_move":
                assert all(solve_path(story, obj) == rooms for story, obj, rooms in blocks)
