"""Which weight matrices LoRA adapts (and the Fisher covers): PEFT's defaults per architecture, or a list."""

import torch
from transformers.pytorch_utils import Conv1D

from e2wm.errors import InputError


def default_target_names(model) -> list[str]:
    """PEFT's default LoRA target module names for the model's architecture (e.g. q_proj, v_proj).

    Raises:
        InputError: when PEFT knows no defaults for model.config.model_type (pass --modules).
    """
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    model_type = model.config.model_type
    if model_type not in DEFAULTS:
        raise InputError(f"no default LoRA modules known for model type '{model_type}': pass --modules")
    return list(DEFAULTS[model_type])


def parse_modules(text: str | None) -> list[str] | None:
    """'q_proj,v_proj' -> ['q_proj', 'v_proj']; None or '' -> None (use the defaults).

    Raises:
        InputError: for a text that names no module (',,'): it would silently train the default modules.
    """
    if not text:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise InputError(f"--modules {text!r} names no module (give e.g. q_proj,v_proj, or leave it out for the "
                         f"model's defaults)")
    return names


def target_layers(model, names: list[str]) -> dict[str, torch.nn.Module]:
    """Full name -> Linear/Conv1D module for every module whose last name part is in names.

    e.g. names ["q_proj"] -> {"model.layers.0.self_attn.q_proj": Linear, ...}, in the model's module order.

    Raises:
        InputError: when no Linear/Conv1D module has one of these names.
    """
    layers = {
        full: module
        for full, module in model.named_modules()
        if full.rsplit(".", 1)[-1] in names and isinstance(module, torch.nn.Linear | Conv1D)
    }
    if not layers:
        raise no_targets(names)
    return layers


def no_targets(names: list[str]) -> InputError:
    """The error for module names that match no Linear/Conv1D layer of the model."""
    return InputError(f"--modules {','.join(names)}: no Linear/Conv1D module of the model has these names")


def is_fan_in_fan_out(module: torch.nn.Module) -> bool:
    """True for a GPT-2 style Conv1D, whose weight is (in, out); a Linear's is (out, in)."""
    return isinstance(module, Conv1D)


def weight_shape(module: torch.nn.Module) -> tuple[int, ...]:
    """The logical shape of a layer's weight: (out, in) for a Linear, (in, out) for a Conv1D.

    4-bit weights are stored packed; their quant state knows the unpacked shape.
    """
    quant_state = getattr(module.weight, "quant_state", None)
    return tuple(quant_state.shape) if quant_state is not None else tuple(module.weight.shape)
