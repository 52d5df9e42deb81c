"""Programs kept out of a build (`e2wm build --exclude-programs`): which ones, and what stats.json says of them.

A value of `--exclude-programs` is the word `eai` (the 342 programs of the Embodied Agent Interface's
action-sequencing tasks, `world.eai_tasks.program_ids`), a text file of program ids (one a line; `#` starts a
comment, blank lines are skipped), or a program id itself. Several values add up. Every id must be a known
program: one of the programs the plans were collected from (the bundled ones, or the `--robothow-dir` that the
collector recorded in PLANS.settings.json) or one the plan records name.
"""

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from e2wm.errors import InputError, at
from e2wm.files import read_text
from e2wm.world import eai_tasks, programs

logger = logging.getLogger(__name__)
EAI = "eai"
FLAG = "--exclude-programs"


@dataclass(frozen=True)
class Exclusion:
    """The programs kept out, and where they were named: 'eai', a file's path, 'ids', joined by ' + ' when
    several values were given."""

    source: str
    ids: frozenset[str]

    @property
    def sha256(self) -> str:
        """The sha256 of the sorted ids joined by newlines (UTF-8): the same digest for the same set, however
        it was named."""
        return hashlib.sha256("\n".join(sorted(self.ids)).encode("utf-8")).hexdigest()

    def summary(self, records: Iterable[str]) -> dict:
        """stats.json's `excluded_programs`, given the program ids of every plan record read (repeats counted):
        requested (distinct ids), found_in_records (of those, ids some record names), records_dropped (records of
        them) and sha256."""
        named = list(records)
        return {"source": self.source, "requested": len(self.ids),
                "found_in_records": len(self.ids & set(named)),
                "records_dropped": sum(program in self.ids for program in named), "sha256": self.sha256}


def collected_from(plans: str) -> str | None:
    """The `--robothow-dir` the plans were collected from, as the collector recorded it beside them
    (PLANS.settings.json, `recipes.collect.check_settings`); None for the bundled programs or when nothing was
    recorded (a hand-made file)."""
    kept = Path(plans).with_name(Path(plans).name + ".settings.json")
    if not kept.is_file():
        return None
    try:
        settings = json.loads(read_text(kept))
    except json.JSONDecodeError:
        return None  # the collector refuses such a file itself; here it only widens which ids are known
    root = settings.get("robothow_dir") if isinstance(settings, dict) else None
    return root if isinstance(root, str) else None


def known_programs(plans: str, records: Iterable[str]) -> set[str]:
    """The ids an exclusion may name: the programs the plans came from (`collected_from`; the bundled ones when
    the record does not say, or when the recorded folder is no longer readable, logged) and the records' own."""
    root = collected_from(plans)
    try:
        known = set(programs.index(root))
    except InputError as error:
        logger.warning("%s: the programs the plans came from cannot be read (%s); %s ids are checked against the "
                       "bundled programs and the records", plans, error, FLAG)
        known = set(programs.index())
    return known | set(records)


def read_ids(path: Path, known: set[str]) -> list[str]:
    """The program ids of a text file, one a line (text after '#' is a comment; blank lines are skipped).

    Raises:
        InputError: the file cannot be read, or a line (named by file and number) is not a known program id.
    """
    ids = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        program = line.split("#", 1)[0].strip()
        if not program:
            continue
        if program not in known:
            raise InputError(f"{at(path, number)}: {program!r} is not a known program id ({FLAG}; ids look like "
                             "file27_2)")
        ids.append(program)
    return ids


def resolve(values: list[str], known: set[str]) -> Exclusion:
    """The exclusion the option's values name: 'eai', files (a value that names an existing file) and ids.

    Raises:
        InputError: a value is neither 'eai', a file nor a known program id, a file holds an unknown id, or the
            values name no program at all (a file of comments only).
    """
    ids: set[str] = set()
    sources: list[str] = []
    loose = []
    for value in values:
        if value.lower() == EAI:
            ids.update(eai_tasks.program_ids())
            sources.append(EAI)
        elif Path(value).is_file():
            ids.update(read_ids(Path(value), known))
            sources.append(value)
        elif value in known:
            loose.append(value)
        elif f"file{value}" in known:  # EAI's own form of an id
            raise InputError(f"{FLAG} {value}: program ids are written file{value} (EAI's task {value} is program "
                             f"file{value})")
        elif "/" in value or "." in value:
            raise InputError(f"{FLAG} {value}: no such file (give 'eai', a file of program ids, or program ids)")
        else:
            raise InputError(f"{FLAG} {value}: not 'eai', a file of program ids, or a known program id (ids look "
                             "like file27_2)")
    if loose:
        ids.update(loose)
        sources.append("ids")
    if not ids:
        raise InputError(f"{FLAG} {' '.join(values)}: names no program")
    return Exclusion(" + ".join(dict.fromkeys(sources)), frozenset(ids))
