"""e2wm: language models meet world models (embodied experiences, EWC-LoRA, E2WM evaluation).

The jobs, each taking its typed config (see e2wm.recipes):

    from e2wm import TrainConfig, finetune, EvalConfig, evaluate

They are imported on first use, so that `import e2wm` and `e2wm --help` stay fast.
"""

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_API = {
    "finetune": "e2wm.recipes.finetune", "TrainResult": "e2wm.recipes.finetune", "TrainConfig": "e2wm.train.config",
    "compute_fisher": "e2wm.recipes.fisher", "import_fisher": "e2wm.recipes.fisher",
    "FisherConfig": "e2wm.train.config", "FisherImportConfig": "e2wm.train.config",
    "evaluate": "e2wm.recipes.evaluate", "EvalConfig": "e2wm.eval.config",
    "collect_plans": "e2wm.recipes.collect", "collect_explore": "e2wm.recipes.collect",
    "CollectPlansConfig": "e2wm.experience.config", "CollectExploreConfig": "e2wm.experience.config",
    "build": "e2wm.recipes.build", "BuildConfig": "e2wm.data.config",
    "report": "e2wm.recipes.report", "ReportConfig": "e2wm.eval.config",
    "run_demo": "e2wm.recipes.demo", "DemoConfig": "e2wm.recipes.demo",
    "plan_for": "e2wm.train.memory", "PlanMemoryConfig": "e2wm.train.config",
    "export_merged": "e2wm.recipes.export", "ExportConfig": "e2wm.train.config",
    "TASKS": "e2wm.benchmark", "TaskSpec": "e2wm.benchmark",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'e2wm' has no attribute '{name}'")
    return getattr(importlib.import_module(_API[name]), name)
