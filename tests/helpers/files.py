"""Writing small input files line by line, for the command tests; a pickle that would run code."""

import json
from pathlib import Path


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


class RunsCode:
    """A pickled object whose loading would call Path.write_text(marker, "ran"): what a hostile weights or state
    file holds. torch.save({"x": RunsCode(marker)}, path) plants it; plain unpickling writes the marker."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "ran")


def write_run(directory: Path, tasks: dict[str, dict]) -> Path:
    """An `e2wm eval` run directory: metrics.json and predictions/<task>.jsonl, from {task: {"metrics", "rows"}}."""
    (directory / "predictions").mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps({name: task["metrics"] for name, task in tasks.items()}))
    for name, task in tasks.items():
        (directory / "predictions" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in task["rows"]))
    return directory


def command_output(capsys, argv: list) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `e2wm ARGV` run in this process."""
    from e2wm.cli import main

    try:
        main([str(arg) for arg in argv])
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
