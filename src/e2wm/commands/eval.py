"""`e2wm eval`: evaluate a causal LM on E2WM files; the job is recipes.evaluate.evaluate."""

from e2wm.eval.config import EvalConfig
from e2wm.recipes.evaluate import evaluate

CONFIG = EvalConfig


def run(config: EvalConfig) -> None:
    evaluate(config)
