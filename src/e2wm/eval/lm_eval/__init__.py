"""The E2WM benchmark as lm-evaluation-harness tasks: `export` writes a task directory (YAML per file, JSONL data,
groups) from e2wm's task registry; `utils.py` is copied into it and scores as `e2wm eval` does (docs/lm-eval.md)."""
