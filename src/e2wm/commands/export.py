"""`e2wm export merged`: a LoRA adapter merged into its base, saved as a transformers checkpoint
(recipes.export.export_merged)."""

from e2wm.recipes.export import export_merged
from e2wm.train.config import ExportConfig

CONFIG = ExportConfig


def run(config: ExportConfig) -> None:
    out = export_merged(config)
    pushed = f"; pushed to {config.push}" if config.push else ""
    print(f"wrote {out}: {config.model} with {config.adapter} merged in, {config.dtype}{pushed}")
