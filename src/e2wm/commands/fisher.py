"""`e2wm fisher`: the diagonal Fisher of a model's LoRA target weights; the job is recipes.fisher.compute_fisher."""

from e2wm.recipes.fisher import compute_fisher
from e2wm.train.config import FisherConfig

CONFIG = FisherConfig


def run(config: FisherConfig) -> None:
    compute_fisher(config)
