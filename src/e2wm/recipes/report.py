"""Report recipe: evaluation runs side by side (table + bar chart) and training curves, as markdown + PNG.

    from e2wm import ReportConfig, report
    text = report(ReportConfig(runs=["runs/eval-base", "runs/eval-ewc"], out="runs/report.md"))
"""

from pathlib import Path

from e2wm.eval.config import ReportConfig
from e2wm.eval.report import write_report


def report(config: ReportConfig) -> str:
    """Write config.out and its charts; returns the markdown. InputError on a missing or bad run directory, or
    when two runs scored different items."""
    return write_report([Path(p) for p in config.runs], [Path(p) for p in config.train_log], Path(config.out),
                        config.title, config.bootstrap_resamples, config.seed)
