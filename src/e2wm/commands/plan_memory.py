"""`e2wm plan-memory`: expected training memory per component, from the model's config (train.memory.plan_for)."""

from e2wm.train.config import PlanMemoryConfig
from e2wm.train.memory import GIB, format_plan, plan_for

CONFIG = PlanMemoryConfig


def run(config: PlanMemoryConfig) -> None:
    plan, title = plan_for(config)
    print(format_plan(plan, title))
    print(f"expected peak: {plan.total(False) / GIB:.2f} GiB, {plan.total(True) / GIB:.2f} GiB with checkpointing")
