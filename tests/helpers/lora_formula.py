"""LoRA adapters with random weights, and the adapted model built by hand from an adapter's files: each adapted weight
W0 + s * scaling * B @ A (scaling = lora_alpha / r, or / sqrt(r) with rslora; transposed for GPT-2's Conv1D, which
stores (in, out)), independent of PEFT's layers and scale code. The reference of the --adapter-scale tests."""

import json
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from transformers.pytorch_utils import Conv1D

TEXT = "Walk to kitchen. Grab cup. Open fridge. Put cup in fridge."


def save_lora(base: Path, folder: Path, modules: list[str], seed: int = 3, **settings) -> Path:
    """A LoRA adapter of base on modules, r 4, alpha 16, with random non-zero A and B (settings: more LoraConfig
    fields), saved in folder."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(base)
    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=modules, init_lora_weights=False, **settings)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


@torch.no_grad()
def formula_model(base: Path, adapter: Path, scale: float):
    """base (float32, eval mode) with every weight the adapter adapts replaced by W0 + scale * scaling * B @ A."""
    settings = json.loads((adapter / "adapter_config.json").read_text())
    rank = settings["r"]
    scaling = settings["lora_alpha"] / (math.sqrt(rank) if settings.get("use_rslora") else rank)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    modules = dict(model.named_modules())
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    adapted = [key for key in weights if key.endswith(".lora_A.weight")]
    assert adapted and len(weights) == 2 * len(adapted)  # plain LoRA: an A and a B per layer, nothing else
    for key in adapted:
        layer = modules[key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")]
        delta = scale * scaling * weights[key.replace("lora_A", "lora_B")] @ weights[key]  # (out, in)
        layer.weight += delta.T if isinstance(layer, Conv1D) else delta
    return model


@torch.no_grad()
def logits_for(model, tokenizer, text: str = TEXT) -> torch.Tensor:
    """The model's float32 logits (tokens, vocabulary) for text."""
    return model(**tokenizer(text, return_tensors="pt").to(model.device)).logits[0].float()
