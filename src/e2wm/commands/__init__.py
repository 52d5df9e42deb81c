"""The `e2wm` commands, one module each: CONFIG (the job's config dataclass) and run(config). See e2wm.cli."""
