"""`e2wm report`: eval runs side by side and training curves; the job is recipes.report.report."""

from e2wm.eval.config import ReportConfig
from e2wm.recipes.report import report

CONFIG = ReportConfig


def run(config: ReportConfig) -> None:
    print(report(config))
    print(f"wrote {config.out}")
