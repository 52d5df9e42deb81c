"""`e2wm fisher import`: turn a released Fisher checkpoint into an e2wm Fisher file (recipes.fisher.import_fisher)."""

import torch

from e2wm.recipes.fisher import import_fisher
from e2wm.train.config import FisherImportConfig

CONFIG = FisherImportConfig


def run(config: FisherImportConfig) -> None:
    header = import_fisher(config)
    values = sum(torch.Size(shape).numel() for shape in header.shapes.values())
    print(f"wrote {config.out}: {len(header.shapes)} matrices ({','.join(header.modules)}), {values:,} values, "
          f"from {config.checkpoint}")
