"""`e2wm build`: experience records -> the E2WM training files and evaluation files; the job is recipes.build.build."""

from pathlib import Path

from e2wm.data.config import BuildConfig
from e2wm.recipes.build import build

CONFIG = BuildConfig


def run(config: BuildConfig) -> None:
    stats = build(config)
    for path, info in stats["files"].items():
        if "baselines" in info:
            base = info["baselines"]
            chance = "—" if base["chance"] is None else f"{base['chance']:.3f}"
            print(f"{Path(config.out) / path}: {info['examples']} items ({base['metric']}: chance {chance}, "
                  f"majority {base['majority']:.3f})")
        else:
            print(f"{Path(config.out) / path}: {info['examples']} examples")
    for name, report in stats["inputs"].items():
        skipped = sum(report["inconsistent"].values()) + report.get("failed", 0)
        print(f"{name}: {report['used']} records used for training, {skipped} skipped (see stats.json)")
