"""RobotHow programs: the 518 bundled with `virtualhome-eval`, or a user's directory with the same layout.

A program is `executable_programs/<scene>/<group>/fileN_M.txt` (line 1 the activity, line 2 its
description, then script lines such as `[WALK] <dining_room> (1.201)`, the node id after the dot) and
`init_and_final_graphs/<scene>/<group>/fileN_M.json` (`{"init_graph": ..., "final_graph": ...}`).
"""

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from e2wm.errors import InputError, at
from e2wm.world.english import action_text
from e2wm.world.parse import script_line

SCRIPTS, GRAPHS = "executable_programs", "init_and_final_graphs"


@dataclass(frozen=True)
class Step:
    """One script line: a verb and its (name, node id) arguments."""

    verb: str
    args: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Program:
    """A human program with the scene graphs before and after it."""

    id: str
    scene: str
    activity: str
    description: str
    steps: list[Step]
    init_graph: dict
    final_graph: dict


def bundled_root() -> Path:
    """The program directory shipped inside the `virtualhome-eval` package."""
    return Path(str(resources.files("virtualhome_eval") / "dataset" / "programs_processed_precond_nograb_morepreconds"))


def parse_step(text: str, where: str) -> Step:
    """'[PUTBACK] <cup> (1.12) <table> (1.45)' -> Step('PUTBACK', (('cup', 12), ('table', 45)))."""
    parsed = script_line(text)
    if parsed is None:
        raise InputError(f"{where}: cannot parse script line {text.strip()!r}")
    verb, args = parsed
    return Step(verb, tuple((name, int(node)) for name, node in args))


def source_digest(root: str | None = None) -> str:
    """What identifies the programs (and the simulator that runs them): `virtualhome-eval VERSION` for the bundled
    ones, whose bytes the version fixes; for a user's directory, the sha256 of its script and graph files' bytes
    (`provenance.tree_digest`; a whole RobotHow release is some GB: seconds to minutes, once per collection run)
    with the simulator's version."""
    from importlib import metadata

    from e2wm.provenance import tree_digest

    version = f"virtualhome-eval {metadata.version('virtualhome-eval')}"
    if root is None:
        return version
    return f"{version}; {root}: sha256 {tree_digest(root, (f'{SCRIPTS}/**/*.txt', f'{GRAPHS}/**/*.json'))}"


@cache
def index(root: str | None = None) -> dict[str, tuple[str, Path, Path]]:
    """Program id -> (scene, script file, graph file).

    Ids are file stems, or `scene/stem` for a stem that several scenes share."""
    base = Path(root) if root else bundled_root()
    scripts, graphs = base / SCRIPTS, base / GRAPHS
    if not scripts.is_dir() or not graphs.is_dir():
        raise InputError(f"{base}: not a RobotHow directory (expected {SCRIPTS}/ and {GRAPHS}/ inside)")
    pairs: dict[str, list[tuple[Path, Path]]] = {}
    for script in sorted(scripts.rglob("*.txt")):
        relative = script.relative_to(scripts)
        graph = (graphs / relative).with_suffix(".json")
        if graph.is_file():  # a script without its graphs is not an executable program: left out
            pairs.setdefault(script.stem, []).append((script, graph))
    if not pairs:
        raise InputError(f"{base}: no program has both {SCRIPTS}/.../NAME.txt and {GRAPHS}/.../NAME.json")
    ids = {}
    for stem, found in pairs.items():
        for script, graph in found:
            scene = script.relative_to(scripts).parts[0]
            ids[stem if len(found) == 1 else f"{scene}/{stem}"] = (scene, script, graph)
    return ids


def program_ids(root: str | None = None) -> list[str]:
    """All program ids, sorted by file number then variant (file2_1 before file10_1)."""
    return sorted(index(root), key=lambda pid: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", pid)])


def read_script(path: Path) -> tuple[str, str, list[Step]]:
    """A script file's activity (line 1), description (line 2) and steps; InputError naming the file and line of
    a line that does not parse, or of a file without its two header lines."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 2:
        raise InputError(f"{path}: expected a title line and a description line")
    steps = [parse_step(text, at(path, number)) for number, text in enumerate(lines, start=1) if text.startswith("[")]
    return lines[0].strip(), lines[1].strip(), steps


def plan_english(steps: list[Step]) -> str:
    """A program's steps as e2wm tells a plan: 'Walk to kitchen. Grab cup. Put cup in fridge.'"""
    return " ".join(action_text(step.verb, [name for name, _ in step.args]) for step in steps)


def load_graphs(path: Path) -> tuple[dict, dict]:
    """The initial and final graph of a graph file; a file that does not parse raises InputError."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(f"{at(path, error.lineno)}: bad graph JSON ({error.msg})") from None
    for key in ("init_graph", "final_graph"):
        graph = data.get(key) if isinstance(data, dict) else None
        if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list) or not isinstance(
            graph.get("edges"), list
        ):
            raise InputError(f"{at(path, field=key)} must be a graph with 'nodes' and 'edges' lists")
    return data["init_graph"], data["final_graph"]


def check_ids(program_ids: list[str], root: str | None = None) -> None:
    """Raise InputError naming the first id that is not a program."""
    programs = index(root)
    for program_id in program_ids:
        if program_id not in programs:
            where = root or "the bundled programs"
            raise InputError(f"unknown program id '{program_id}' (not in {where}; ids look like file1003_2)")


def load_program(program_id: str, root: str | None = None) -> Program:
    """Read one program and its graphs; an unknown id raises InputError."""
    check_ids([program_id], root)
    scene, script, graph = index(root)[program_id]
    activity, description, steps = read_script(script)
    init_graph, final_graph = load_graphs(graph)
    return Program(program_id, scene.removesuffix("_graph"), activity, description, steps, init_graph, final_graph)
