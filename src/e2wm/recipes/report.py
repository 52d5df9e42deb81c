"""Report recipe: evaluation runs side by side (table + bar chart), the learning-against-forgetting frontier
(e2wm.eval.frontier) and training curves, as markdown + PNG.

    from e2wm import ReportConfig, report
    text = report(ReportConfig(runs=["runs/eval-base", "runs/eval-ewc"], out="runs/report.md"))
"""

from functools import partial
from pathlib import Path

from e2wm.errors import InputError, RunError
from e2wm.eval.config import ReportConfig
from e2wm.eval.frontier import frontier_section
from e2wm.eval.report import CHARTS, chart_file, write_report
from e2wm.locks import output_lock, writer_of
from e2wm.models import cache_dir


def run_state(run: Path) -> list[tuple]:
    """What the report reads of a run folder, as (file, inode, size, mtime in ns) of metrics.json, config.json and
    predictions/*.jsonl: an eval that rewrites any of them (atomically: a new inode) changes it."""
    files = [run / "metrics.json", run / "config.json", *sorted((run / "predictions").glob("*.jsonl"))]
    return [(f.name, s.st_ino, s.st_size, s.st_mtime_ns) for f in files if f.is_file() for s in [f.stat()]]


def leaderboard_cache(config: ReportConfig) -> Path | None:
    """The EAI leaderboard's cache folder: --eai-leaderboard-cache, else e2wm's cache folder; None with
    --no-eai-leaderboard."""
    if config.no_eai_leaderboard:
        return None
    return Path(config.eai_leaderboard_cache) if config.eai_leaderboard_cache else cache_dir()


def report(config: ReportConfig) -> str:
    """Write config.out and its charts; returns the markdown.

    Raises:
        InputError: a missing or bad run directory, a run that a live `e2wm eval` is writing (`locks.writer_of`),
            two runs that scored different items, or a --drift-on that names no perplexity set of the first run.
        RunError: a run folder changed while the report read it (an eval started on it meanwhile): what was
            written is removed, so no report mixes two states of a run.
    """
    runs = [Path(p) for p in config.runs]
    for run in runs:
        if writer := writer_of(run):
            raise InputError(f"{run}: still being written ({writer}); report it when that run has finished")
    before = [run_state(run) for run in runs]
    out = Path(config.out)
    with output_lock(out):
        frontier = partial(frontier_section, drift_on=config.drift_on, chart=chart_file(out, "frontier"))
        text = write_report(runs, [Path(p) for p in config.train_log], out, config.title,
                            config.bootstrap_resamples, config.seed, leaderboard_cache(config), (frontier,))
        changed = [run for run, state in zip(runs, before) if writer_of(run) or run_state(run) != state]
        if changed:
            for file in (out, *(chart_file(out, chart) for chart in CHARTS)):
                file.unlink(missing_ok=True)
            raise RunError(f"{changed[0]}: changed while the report read it (an `e2wm eval` wrote it meanwhile); "
                           "nothing written: report it again when that run has finished")
    return text
