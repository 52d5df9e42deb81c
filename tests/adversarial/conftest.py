"""Fixtures of the adversarial tests: the Hub kept offline, and foreign artefacts (an adapter and a Fisher of
other models)."""

import shutil

import pytest
import torch
from adversarial.support import Foreign, lora_adapter


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test here reaches for the Hub: an unknown model name is refused at once."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def foreign(tiny_llama, tiny_gpt2, tmp_path_factory) -> Foreign:
    from transformers import AutoConfig, AutoModelForCausalLM

    from e2wm.train.fisher import FisherHeader, save_fisher
    from e2wm.train.targets import target_layers, weight_shape

    root = tmp_path_factory.mktemp("foreign")
    wide = root / "wide-llama"
    config = AutoConfig.from_pretrained(tiny_llama)
    config.hidden_size, config.intermediate_size = 48, 96
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config).save_pretrained(wide)
    for file in tiny_llama.iterdir():
        if "token" in file.name:
            shutil.copy(file, wide / file.name)
    layers = target_layers(AutoModelForCausalLM.from_pretrained(wide), ["q_proj", "v_proj"])
    fisher = root / "wide.safetensors"
    save_fisher(fisher, {name: torch.ones(weight_shape(layer)) for name, layer in layers.items()},
                FisherHeader(str(wide), ["q_proj", "v_proj"], {}, 1, "x", 8, "float32"))
    return Foreign(tiny_llama, tiny_gpt2, wide, lora_adapter(wide, root / "wide-adapter", ["q_proj", "v_proj"]),
                   lora_adapter(tiny_gpt2, root / "gpt2-adapter", ["c_attn"]), fisher,
                   lora_adapter(tiny_llama, root / "llama-adapter", ["q_proj", "v_proj"]))
