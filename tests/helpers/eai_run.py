"""Hand-made `e2wm eval` runs of eai:action_sequence: metrics.json and predictions rows as e2wm.eval.eai writes
them, for the report's tests."""

import json

from e2wm.eval.statistics import wilson_interval
from e2wm.world import eai_judge

TASK = "eai_action_sequence"


def item(counted=True, success=False, executable=False, error_type=None, runtime_errors=(), goals_met=(0, 0, 0),
         goals=(2, 1, 0), parse_errors=None) -> dict:
    """A prediction row's judge fields as `e2wm eval` writes them (e2wm.eval.eai.score)."""
    row = {"counted": counted, "success": success, "executable": executable, "error_type": error_type,
           "error_action": None, "runtime_errors": list(runtime_errors), "goals_met": list(goals_met),
           "goals": list(goals)}
    if parse_errors is not None:
        row["parse_errors"] = parse_errors
    return row


def eai_run(directory, items: list[dict], form: str = "e2wm", summary: dict | None = None, limit: int | None = None,
            hash_seed: int = 0):
    """An `e2wm eval` run of eai:action_sequence written by hand: metrics.json and the predictions rows."""
    (directory / "predictions").mkdir(parents=True)
    rows = []
    for index, found in enumerate(items):
        score = float(found["success"]) if found["counted"] else None
        rows.append({"index": index, "sha256": f"{index:016x}", "prediction": "Walk to kitchen.",
                     "ref": f"ref {index}", "score": score, "eai_output": "{}", **found})
    counted = [row for row in rows if row["counted"]]
    successes = sum(row["success"] for row in counted)
    executable = sum(row["executable"] for row in counted)
    result = {"task_success": successes / len(counted) if counted else None,
              "executable": executable / len(counted) if counted else None, "eai_summary": summary,
              "eai_form": form, "eai_hash_seed": hash_seed, "eai_version": eai_judge.version(),
              "eai_counted": len(counted), "eai_not_counted": len(rows) - len(counted), "n": len(rows),
              "truncated": 0, "task_success_stderr": 0.05,
              "task_success_ci95": list(wilson_interval(successes, len(counted))) if counted else None,
              "stderr_method": "binomial"}
    if limit:
        result |= {"n_original": limit, "cut_by_limit": True}
    (directory / "metrics.json").write_text(json.dumps({TASK: result}))
    (directory / "predictions" / f"{TASK}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory
