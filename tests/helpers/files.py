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
