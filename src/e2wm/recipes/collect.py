"""Collection recipes: embodied experiences as JSONL records (docs/formats.md), resumable.

    from e2wm import CollectPlansConfig, collect_plans
    result = collect_plans(CollectPlansConfig(programs=["file3_1"], out="plans.jsonl"))

Records are written in job order (programs as selected, episodes by number) whatever the workers' order,
so a seed gives a byte-identical file (experience.runner); each job's wall seconds go to OUT.timings.jsonl.
Records already in the output file are kept and their jobs skipped, so an interrupted run resumes, or a
collection grows by more programs or episodes. The settings a record depends on are kept beside the file
(OUT.settings.json); a run with other ones is refused rather than mixing records of two settings.
"""

import json
import logging
from dataclasses import dataclass, fields
from pathlib import Path

from e2wm.config import flag_of, result_settings, with_defaults
from e2wm.errors import InputError, at
from e2wm.experience.config import CollectExploreConfig, CollectPlansConfig
from e2wm.experience.explore import ExploreConfig, explore
from e2wm.experience.mcts import SearchConfig
from e2wm.experience.plans import plan_record
from e2wm.experience.runner import collect, done_keys
from e2wm.files import output_file, read_text, write_json
from e2wm.locks import output_lock
from e2wm.world import eai_tasks
from e2wm.world.programs import check_ids, program_ids, source_digest

logger = logging.getLogger(__name__)


@dataclass
class CollectResult:
    """What a collection run did: records found already there, records appended, and successes (plans)."""

    out: Path
    already: int
    written: int
    successes: int


def collect_plans(config: CollectPlansConfig) -> CollectResult:
    """An MCTS plan record per selected program not yet in config.out; InputError on an unknown program id."""
    out = output_file(config.out)
    selections = {"all": lambda: program_ids(config.robothow_dir), "eai": eai_tasks.program_ids}
    chosen = selections[config.programs[0]]() if config.programs in (["all"], ["eai"]) else \
        list(dict.fromkeys(config.programs))
    check_ids(chosen, config.robothow_dir)  # a program given twice is one job
    chosen = chosen[: config.max_programs] if config.max_programs else chosen
    if config.goals == "eai":
        without = [p for p in chosen if p not in set(eai_tasks.program_ids())]
        if without:
            logger.warning("--goals eai: %d of the %d programs (%s) have no EAI task; they are planned toward their "
                           "final graph's facts, and their records say goals 'final-graph'", len(without), len(chosen),
                           ", ".join(without[:3]) + (", ..." if len(without) > 3 else ""))
    with output_lock(out):  # one writer: a second collection into this --out is refused
        done = done_keys(out, "program")
        search = SearchConfig(simulations=config.simulations)
        jobs = [(p, search, config.seed, config.robothow_dir, config.goals) for p in chosen if p not in done]
        return _run(plan_record, jobs, done, config, "program", "plans")


def collect_explore(config: CollectExploreConfig) -> CollectResult:
    """Exploration episodes 0 .. episodes-1 not yet in config.out; InputError on an unknown scene."""
    if config.scene:
        check_ids([config.scene], config.robothow_dir)
    out = output_file(config.out)
    with output_lock(out):  # one writer: a second collection into this --out is refused
        done = done_keys(out, "episode")
        episode = ExploreConfig(steps=config.steps, characters=config.characters)
        jobs = [(e, config.seed, episode, config.scene, config.robothow_dir) for e in range(config.episodes)
                if e not in done]
        return _run(explore, jobs, done, config, "episode", "episodes")


SELECTION = ("programs", "max_programs", "episodes")  # choose which records there are, not what one holds


def check_settings(config: CollectPlansConfig | CollectExploreConfig, done: set) -> None:
    """Record the settings and the programs' source (`programs.source_digest`) beside the output, or, with records
    there, refuse other ones (InputError): records of two settings, or of programs whose files changed since, are
    never mixed in one file."""
    out = Path(config.out)
    kept = out.with_name(out.name + ".settings.json")
    settings = {k: v for k, v in result_settings(config).items() if k not in SELECTION}
    world = source_digest(config.robothow_dir)
    if done and not kept.is_file():
        raise InputError(f"--out {out}: it holds records but no {kept.name} saying how they were collected (a "
                         "copy, or an older e2wm); use another --out")
    if done:
        try:
            before = with_defaults(json.loads(read_text(kept)), config, results_only=True)  # (newer options)
        except json.JSONDecodeError as error:
            raise InputError(f"{at(kept, error.lineno)}: bad JSON ({error.msg})") from None
        changed = [flag_of(f) for f in fields(config) if f.name in settings and before.get(f.name) != settings[f.name]]
        if changed:
            raise InputError(f"--out {out}: its records were collected with other {', '.join(changed)}; "
                             "use another --out")
        if before.get("world", world) != world:  # (a file of an older e2wm does not say)
            raise InputError(f"--out {out}: its records were collected from other programs or another simulator "
                             f"({before['world']}; now {world}); use another --out")
    write_json(kept, {**settings, "world": world})


def _run(work, jobs: list[tuple], done: set, config: CollectPlansConfig | CollectExploreConfig, key: str,
         label: str) -> CollectResult:
    out = Path(config.out)
    check_settings(config, done)
    if done:
        logger.info("%s: %d records already there, %d to go", out, len(done), len(jobs))
    written, successes = collect(work, jobs, out, key, config.workers, config.ray, label)
    return CollectResult(out, len(done), written, successes)
