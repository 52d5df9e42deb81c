"""`e2wm plan-memory`: expected training memory per component, from the model's config (no weights loaded)."""

from e2wm.errors import InputError
from e2wm.models import resolve_model_path
from e2wm.train.config import PlanMemoryConfig
from e2wm.train.memory import GIB, format_plan, model_shapes, plan_memory
from e2wm.train.targets import parse_modules

CONFIG = PlanMemoryConfig


def run(config: PlanMemoryConfig) -> None:
    from transformers import AutoConfig

    try:
        model_config = AutoConfig.from_pretrained(resolve_model_path(config.model))
    except OSError as error:
        raise InputError(f"--model {config.model}: cannot read its config ({str(error).splitlines()[0]})") from None
    shapes = model_shapes(model_config, parse_modules(config.modules))
    if not shapes.targets:
        raise InputError(f"--modules {config.modules}: no Linear/Conv1D module of the model has these names")
    quant = "8bit" if config.load_in_8bit else "4bit" if config.load_in_4bit else None
    plan = plan_memory(shapes, config.method, config.batch_size, config.max_len, config.dtype, quant,
                       config.lora_r, ewc=not config.no_ewc, attention=config.attention)
    title = (f"{config.model}: {config.method}, batch {config.batch_size} x {config.max_len} tokens, {config.dtype}"
             f"{', ' + quant if quant else ''}; {shapes.params / 1e6:.1f}M parameters, "
             f"{len(shapes.targets)} adapted matrices")
    print(format_plan(plan, title))
    print(f"expected peak: {plan.total(False) / GIB:.2f} GiB, {plan.total(True) / GIB:.2f} GiB with checkpointing")
