"""Elastic weight consolidation: lambda * sum over adapted weights of sum(F * dW**2).

For LoRA, dW = scaling * B @ A (transposed for fan-in-fan-out layers) is what PEFT's
`get_delta_weight(adapter)` returns, also over 8/4-bit base layers. The (layer, Fisher) pairs are
collected once, so each step costs one small matmul per adapted layer and no module lookups.
"""

from dataclasses import dataclass

import torch

PEFT_PREFIX = "base_model.model."


def lora_layers(peft_model) -> dict[str, torch.nn.Module]:
    """Base-model module name -> PEFT LoRA layer (the names match the Fisher's and the base model's)."""
    from peft.tuners.lora import LoraLayer

    return {
        name.removeprefix(PEFT_PREFIX): module
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer)
    }


@dataclass
class LoraEwc:
    """The EWC penalty on LoRA deltas: pairs of (LoRA layer, Fisher tensor on the layer's device)."""

    pairs: list[tuple[torch.nn.Module, torch.Tensor]]
    adapter: str = "default"

    @classmethod
    def build(cls, peft_model, fisher: dict[str, torch.Tensor], adapter: str = "default") -> "LoraEwc":
        layers = lora_layers(peft_model)
        pairs = [(layers[name], fisher[name].to(layers[name].lora_A[adapter].weight.device)) for name in sorted(layers)]
        return cls(pairs, adapter)

    def __call__(self) -> torch.Tensor:
        total = torch.zeros((), device=self.pairs[0][1].device)
        for layer, f in self.pairs:
            total = total + (f * layer.get_delta_weight(self.adapter).float().pow(2)).sum()
        return total


@dataclass
class FullEwc:
    """The EWC penalty of full finetuning: (weight, its starting value, Fisher) for each Fisher module."""

    triples: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]]

    @classmethod
    def build(cls, layers: dict[str, torch.nn.Module], fisher: dict[str, torch.Tensor]) -> "FullEwc":
        triples = []
        for name in sorted(layers):
            weight = layers[name].weight
            triples.append((weight, weight.detach().float().clone(), fisher[name].to(weight.device)))
        return cls(triples)

    def __call__(self) -> torch.Tensor:
        total = torch.zeros((), device=self.triples[0][2].device)
        for weight, start, f in self.triples:
            total = total + (f * (weight.float() - start).pow(2)).sum()
        return total
