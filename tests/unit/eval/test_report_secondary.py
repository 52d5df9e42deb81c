"""The report's metrics beside each task's main one (e2wm.eval.secondary): a plan file's execution metrics and EAI's
executability, paired over the items both runs give a value, with the main table's interval and test."""

import json

import numpy as np
import pytest
from helpers.eai_run import eai_run, item

from e2wm.errors import InputError
from e2wm.eval.report import write_report
from e2wm.eval.secondary import compare_secondary


def plan_run(directory, steps: list[float | None], executable: list[bool | None], extra: bool = True):
    """A plan_gen run with execution metrics: per item its ROUGE-L 0.5, and its steps executed and executability
    (None: no known program, as `eval.execution` writes it: the row has no such fields)."""
    rows = []
    for index, (share, whole) in enumerate(zip(steps, executable)):
        row = {"index": index, "sha256": f"{index:016x}", "prediction": "Walk to kitchen.", "ref": f"ref {index}",
               "score": 0.5}
        row |= {"program": None} if share is None else {"program": "file1_1", "steps_executed": share,
                                                          "executable": whole}
        rows.append(row)
    known = [(s, w) for s, w in zip(steps, executable) if s is not None]
    result = {"rougeL": 0.5, "rougeL_stderr": 0.01, "rouge1": 0.5, "rouge2": 0.5, "n": len(rows), "truncated": 0}
    if extra:
        result |= {"steps_executed": sum(s for s, _ in known) / len(known),
                   "executable": sum(w for _, w in known) / len(known),
                   "execution_known": len(known), "execution_unknown": len(rows) - len(known)}
    (directory / "predictions").mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps({"plan_gen": result}))
    (directory / "predictions" / "plan_gen.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


# 24 items, the last 4 without a known program: steps executed 0.25 -> 0.75 on 20 items, 2 -> 8 executable
BASE_STEPS = [0.25] * 20 + [None] * 4
TUNED_STEPS = [0.75] * 20 + [None] * 4
BASE_WHOLE = [True] * 2 + [False] * 18 + [None] * 4
TUNED_WHOLE = [True] * 8 + [False] * 12 + [None] * 4


def secondary_rows(text: str) -> dict[str, list[str]]:
    """The 'Beside the main metric' table's rows by their first two cells."""
    section = text.split("### Beside the main metric")[1].split("###")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("|")]
    return {f"{r[0]} {r[1]}": r for r in rows[2:]}


def test_execution_metrics_are_paired_over_the_items_with_a_known_program(tmp_path):
    base = plan_run(tmp_path / "base", BASE_STEPS, BASE_WHOLE)
    tuned = plan_run(tmp_path / "tuned", TUNED_STEPS, TUNED_WHOLE)
    text = write_report([base, tuned], [], tmp_path / "r.md")
    rows = secondary_rows(text)
    assert set(rows) == {"plan_gen steps executed", "plan_gen whole plan executable"}
    steps = rows["plan_gen steps executed"]
    assert steps[2:5] == ["20", "0.2500", "0.7500"]  # the 4 unknown items are left out
    assert steps[5] == "+0.5000 [+0.5000, +0.5000]"  # every item moved by exactly +0.5
    assert steps[6].startswith("gain +200.0%")
    assert steps[7] == f"{2 / 2**20:.3g}"  # exact permutation test: 20 items, all one way
    whole = rows["plan_gen whole plan executable"]
    assert whole[2:5] == ["20", "0.1000", "0.4000"]
    assert whole[7] == f"{2 / 2**6:.3g}"  # the sign test on the 6 items that changed


def test_a_later_run_without_execution_metrics_has_no_secondary_row(tmp_path):
    base = plan_run(tmp_path / "base", BASE_STEPS, BASE_WHOLE)
    plain = plan_run(tmp_path / "plain", BASE_STEPS, BASE_WHOLE, extra=False)
    assert "Beside the main metric" not in write_report([base, plain], [], tmp_path / "r.md")
    found = compare_secondary([base, plain, base], [json.loads((p / "metrics.json").read_text())
                                                    for p in (base, plain, base)], 100, 0)
    assert [(row.metric, [pair is None for pair in row.pairs]) for row in found] == [
        ("steps_executed", [True, False]), ("executable", [True, False])]
    assert np.allclose(found[0].pairs[1].base, found[0].pairs[1].other)


def test_eai_executability_is_paired_over_the_counted_tasks(tmp_path):
    """12 tasks, the last 2 uncounted (executable there is false, never paired): 3 -> 9 executable of 10."""
    base = eai_run(tmp_path / "base", [item(executable=i < 3) for i in range(10)] + [item(counted=False)] * 2)
    tuned = eai_run(tmp_path / "tuned", [item(executable=i < 9) for i in range(10)] + [item(counted=False)] * 2)
    row = secondary_rows(write_report([base, tuned], [], tmp_path / "r.md"))["eai_action_sequence whole plan "
                                                                             "executable"]
    assert row[2:5] == ["10", "0.3000", "0.9000"]
    assert row[7] == f"{2 / 2**6:.3g}"


def test_a_bad_value_is_named_with_its_file_line_and_field(tmp_path):
    base = plan_run(tmp_path / "base", BASE_STEPS, BASE_WHOLE)
    tuned = plan_run(tmp_path / "tuned", TUNED_STEPS, TUNED_WHOLE)
    file = tuned / "predictions" / "plan_gen.jsonl"
    lines = file.read_text().splitlines()
    lines[2] = lines[2].replace('"steps_executed": 0.75', '"steps_executed": "most"')
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"plan_gen.jsonl:3.*steps_executed.*must be a number, true/false or null"):
        write_report([base, tuned], [], tmp_path / "r.md")
