"""Experience records as read from `e2wm collect` output (schema: docs/formats.md).

Reading checks structure and types only: a malformed line raises InputError naming file, line and field
(the CLI exits 2). Whether a record is *consistent* (its trajectory agrees with its actions, its plan
reached its goal) is the task builders' business: they skip and count such records.
Object and room names are read as English: class names like 'kitchen_table' become 'kitchen table'.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from e2wm.errors import InputError, at
from e2wm.files import iter_jsonl, require


class Inconsistent(Exception):
    """A well-formed record that contradicts itself; the message is a short reason (a stats.json key)."""


@dataclass(frozen=True)
class PlanRecord:
    """One program's MCTS outcome: the plan in script and English, and the prompt material."""

    program: str
    activity: str
    success: bool
    goal: list[str]
    achieved: list[str]
    plan: list[str]
    plan_text: list[str]
    items: list[str]
    initial_text: list[str]


@dataclass(frozen=True)
class Place:
    """Where an object is: its room, and who holds it or what it is on or inside (ids as strings)."""

    room: str | None
    holder: int | None
    on: str | None
    inside: str | None


@dataclass(frozen=True)
class Step:
    actor: int
    action: str
    success: bool
    actor_room: str | None
    state: dict[str, Place]


@dataclass(frozen=True)
class Episode:
    """One random-exploration episode: the objects, their initial and final places, and every step."""

    episode: int | str
    seed: int
    characters: list[int]
    objects: dict[str, str]
    rooms: dict[str, str]
    initial: dict[str, Place]
    steps: list[Step]
    final: dict[str, Place]

    @property
    def key(self) -> str:
        """A stable identity for seeding and for keeping an episode out of its own shots."""
        return f"{self.episode}/{self.seed}"


def english(name: str | None) -> str | None:
    """'kitchen_table' -> 'kitchen table'."""
    return None if name is None else " ".join(name.replace("_", " ").split())


def _strings(record: dict, field: str, path: Path, line: int) -> list[str]:
    values = require(record, field, list, path, line)
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise InputError(f"{at(path, line, f'{field}[{i}]')} must be str, got {type(value).__name__}")
    return values


def _optional(value, kinds: tuple[type, ...], path: Path, line: int, field: str):
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise InputError(f"{at(path, line, field)} must be {' or '.join(k.__name__ for k in kinds)} or null")
    return value


def _place(value, path: Path, line: int, field: str) -> Place:
    if not isinstance(value, dict):
        raise InputError(f"{at(path, line, field)} must be an object, got {type(value).__name__}")
    for key in ("room", "holder", "on", "inside"):
        if key not in value:
            raise InputError(f"{at(path, line, f'{field}.{key}')} is missing")
    return Place(
        room=english(_optional(value["room"], (str,), path, line, f"{field}.room")),
        holder=_optional(value["holder"], (int,), path, line, f"{field}.holder"),
        on=_optional(value["on"], (str,), path, line, f"{field}.on"),
        inside=_optional(value["inside"], (str,), path, line, f"{field}.inside"),
    )


def _places(record: dict, field: str, path: Path, line: int) -> dict[str, Place]:
    places = require(record, field, dict, path, line)
    return {key: _place(value, path, line, f"{field}.{key}") for key, value in places.items()}


def _names(record: dict, field: str, path: Path, line: int) -> dict[str, str]:
    names = require(record, field, dict, path, line)
    for key, value in names.items():
        if not isinstance(value, str):
            raise InputError(f"{at(path, line, f'{field}.{key}')} must be str, got {type(value).__name__}")
    return {key: english(value) for key, value in names.items()}


def _step(value, path: Path, line: int, field: str) -> Step:
    if not isinstance(value, dict):
        raise InputError(f"{at(path, line, field)} must be an object, got {type(value).__name__}")

    def need(key: str, kind):
        if key not in value:
            raise InputError(f"{at(path, line, f'{field}.{key}')} is missing")
        if not isinstance(value[key], kind) or (kind is int and isinstance(value[key], bool)):
            raise InputError(f"{at(path, line, f'{field}.{key}')} must be {kind.__name__}")
        return value[key]

    return Step(
        actor=need("actor", int),
        action=need("action", str),
        success=need("success", bool),
        actor_room=english(_optional(value.get("actor_room"), (str,), path, line, f"{field}.actor_room")),
        state={k: _place(v, path, line, f"{field}.state.{k}") for k, v in need("state", dict).items()},
    )


def read_plans(path: str | Path) -> Iterator[PlanRecord]:
    """Plan records of a `collect plans` file, in file order."""
    path = Path(path)
    for line, record in iter_jsonl(path):
        yield PlanRecord(
            program=str(require(record, "program", (str, int), path, line)),
            activity=require(record, "activity", str, path, line),
            success=require(record, "success", bool, path, line),
            goal=_strings(record, "goal", path, line),
            achieved=_strings(record, "achieved", path, line),
            plan=_strings(record, "plan", path, line),
            plan_text=_strings(record, "plan_text", path, line),
            items=_strings(record, "items", path, line),
            initial_text=_strings(record, "initial_text", path, line),
        )


def read_episodes(path: str | Path) -> Iterator[Episode]:
    """Exploration episodes of a `collect explore` file, in file order."""
    path = Path(path)
    for line, record in iter_jsonl(path):
        characters = require(record, "characters", list, path, line)
        if not characters or not all(isinstance(c, int) and not isinstance(c, bool) for c in characters):
            raise InputError(f"{at(path, line, 'characters')} must be a non-empty list of character ids")
        steps = require(record, "steps", list, path, line)
        yield Episode(
            episode=require(record, "episode", (int, str), path, line),
            seed=require(record, "seed", int, path, line),
            characters=characters,
            objects=_names(record, "objects", path, line),
            rooms=_names(record, "rooms", path, line),
            initial=_places(record, "initial", path, line),
            steps=[_step(step, path, line, f"steps[{i}]") for i, step in enumerate(steps)],
            final=_places(record, "final", path, line),
        )
