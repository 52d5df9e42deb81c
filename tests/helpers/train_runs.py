"""`e2wm train` runs in tests: training files, the command's exit code and messages, its log, a crash at a step."""

import json

from e2wm.cli import main
from e2wm.recipes import finetune
from helpers.training import PAIRS


def write_pairs(path, pairs=PAIRS, repeat=1):
    path.write_text("".join(json.dumps({"input": t, "ref": r}) + "\n" for t, r in pairs * repeat))
    return path


def run_train(capsys, *args):
    try:
        main(["train", *map(str, args)])
    except SystemExit as stop:
        return stop.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def read_log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def deterministic(row: dict) -> dict:
    """A log.jsonl row without the fields that time the step (finetune.TIMING), which differ run to run."""
    return {key: value for key, value in row.items() if key not in finetune.TIMING}


def crash_at_step(step: int, monkeypatch):
    """Make the next run stop (as Ctrl-C does) when it would log step; returns the real log writer."""
    real = finetune.append_jsonl

    def crash(path, record):
        if record["step"] == step:
            raise KeyboardInterrupt
        real(path, record)

    monkeypatch.setattr(finetune, "append_jsonl", crash)
    return real
