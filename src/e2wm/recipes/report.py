"""Report recipe: evaluation runs side by side (table + bar chart) and training curves, as markdown + PNG.

    from e2wm import ReportConfig, report
    text = report(ReportConfig(runs=["runs/eval-base", "runs/eval-ewc"], out="runs/report.md"))
"""

from pathlib import Path

from e2wm.errors import InputError
from e2wm.eval.config import ReportConfig
from e2wm.eval.report import write_report
from e2wm.locks import output_lock, writer_of


def report(config: ReportConfig) -> str:
    """Write config.out and its charts; returns the markdown. InputError on a missing or bad run directory, a
    run that a live `e2wm eval` is still writing (`locks.writer_of`), or when two runs scored different items."""
    runs = [Path(p) for p in config.runs]
    for run in runs:
        if writer := writer_of(run):
            raise InputError(f"{run}: still being written ({writer}); report it when that run has finished")
    with output_lock(config.out):
        return write_report(runs, [Path(p) for p in config.train_log], Path(config.out), config.title,
                            config.bootstrap_resamples, config.seed)
