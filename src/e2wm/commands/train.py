"""`e2wm train`: EWC-LoRA (or plain LoRA, or full) finetuning; the job is recipes.finetune.finetune."""

from e2wm.recipes.finetune import finetune
from e2wm.train.config import TrainConfig

CONFIG = TrainConfig


def run(config: TrainConfig) -> None:
    finetune(config)
