"""`e2wm export lm-eval`: E2WM files as an lm-evaluation-harness task directory (recipes.lm_eval_export)."""

from e2wm.recipes.lm_eval_export import LmEvalExportConfig, export_lm_eval

CONFIG = LmEvalExportConfig


def run(config: LmEvalExportConfig) -> None:
    groups = export_lm_eval(config)
    tasks = sum(len(members) for name, members in groups.items() if name != "e2wm")
    parts = ", ".join(f"{name} ({len(members)})" for name, members in groups.items() if name != "e2wm")
    print(f"wrote {config.out}: {tasks} tasks in group e2wm: {parts}")
    print(f"run: lm_eval --model hf --model_args pretrained=MODEL --include_path {config.out} --tasks e2wm")
