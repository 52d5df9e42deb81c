"""Elastic weight consolidation: lambda * sum over adapted weights of sum(F * dW**2).

For LoRA, dW = scaling * B @ A (transposed for fan-in-fan-out layers) is what PEFT's
`get_delta_weight(adapter)` returns, also over 8/4-bit base layers. The (layer, Fisher) pairs are
collected once, so each step costs one small matmul per adapted layer and no module lookups.
Source: the paper's method section (EWC-LoRA) and the authors' `run.py` (`EWCLoRAModel.forward`: the sum of
fisher * (transpose(B @ A, fan_in_fan_out) * scaling)**2 over LoRA layers, loss = ce + lambda * that sum).
`Ewc` is the regulariser (e2wm.train.regularisers) that puts lambda * the penalty into the loss.
"""

from dataclasses import dataclass

import torch

PEFT_PREFIX = "base_model.model."


def lora_layers(peft_model) -> dict[str, torch.nn.Module]:
    """Base-model module name -> PEFT LoRA layer (the names match the Fisher's and the base model's).

    "base_model.model." is removed from PEFT's names, e.g. "model.layers.0.self_attn.q_proj".
    """
    from peft.tuners.lora import LoraLayer

    return {
        name.removeprefix(PEFT_PREFIX): module
        for name, module in peft_model.named_modules()
        if isinstance(module, LoraLayer)
    }


def osf_layers(peft_model) -> dict[str, torch.nn.Module]:
    """Base-model module name ("base_model.model." removed) -> PEFT OSF layer, as `lora_layers`."""
    from peft.tuners.osf import OSFLayer

    return {name.removeprefix(PEFT_PREFIX): module for name, module in peft_model.named_modules()
            if isinstance(module, OSFLayer)}


@dataclass
class LoraEwc:
    """The EWC penalty on LoRA deltas: pairs of (LoRA layer, Fisher tensor on the layer's device)."""

    pairs: list[tuple[torch.nn.Module, torch.Tensor]]
    adapter: str = "default"

    @classmethod
    def build(cls, peft_model, fisher: dict[str, torch.Tensor], adapter: str = "default") -> "LoraEwc":
        """Pair every LoRA layer of peft_model (sorted by name) with its Fisher, moved to the layer's device.

        Args:
            fisher: name -> Fisher tensor of the base weight's shape ((out, in); (in, out) for Conv1D), as
                from `fisher.load_fisher`; `fisher.check_fisher` should have passed (a missing name is a KeyError).
            adapter: the PEFT adapter name whose delta is penalised.
        """
        layers = lora_layers(peft_model)
        pairs = [(layers[name], fisher[name].to(layers[name].lora_A[adapter].weight.device)) for name in sorted(layers)]
        return cls(pairs, adapter)

    def __call__(self) -> torch.Tensor:
        """sum over layers of sum(F * dW**2), dW = scaling * B @ A: a 0-d float32 tensor, differentiable in A and B.

        On the first layer's device (each Fisher follows its layer there if the model moved since `build`);
        multiply by lambda for the loss. 0 at the start (PEFT initialises B to 0).
        """
        total = None
        for i, (layer, f) in enumerate(self.pairs):
            # f, get_delta_weight: (out, in) ((in, out) for fan-in-fan-out layers); B: (out, r), A: (r, in)
            delta = layer.get_delta_weight(self.adapter).float()
            if f.device != delta.device:  # the model moved after build (accelerate's prepare): follow it, once
                f = f.to(delta.device)
                self.pairs[i] = (layer, f)
            term = (f * delta.pow(2)).sum()
            total = term if total is None else total + term.to(total.device)
        return total


@dataclass
class OsfEwc(LoraEwc):
    """The EWC penalty on OSF deltas (PEFT's orthogonal subspace finetuning): pairs of (OSF layer, Fisher tensor).

    An OSF layer computes with W_eff = W0 + dW, dW = U_low diag(S_low) V_low - U0 diag(S0) V0 (the trained
    singular factors minus their values at the start, PEFT's `OSFLayer.get_delta_weight`; (out, in): OSF adapts
    Linear layers only), so the penalty is sum F * (W_eff - W0)**2, LoraEwc's __call__ on these pairs.
    """

    @classmethod
    def build(cls, peft_model, fisher: dict[str, torch.Tensor], adapter: str = "default") -> "OsfEwc":
        """Pair every OSF layer of peft_model (sorted by base-model name, "base_model.model." removed) with its
        Fisher ((out, in), as from `fisher.load_fisher`; a missing name is a KeyError), moved to the layer's device."""
        layers = osf_layers(peft_model)
        pairs = [(layers[name], fisher[name].to(layers[name].osf_svd_params[adapter]["U_low"].device))
                 for name in sorted(layers)]
        return cls(pairs, adapter)


@dataclass
class FullEwc:
    """The EWC penalty of full finetuning: (weight, its starting value, Fisher) for each Fisher module."""

    triples: list[tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor]]

    @classmethod
    def build(cls, layers: dict[str, torch.nn.Module], fisher: dict[str, torch.Tensor]) -> "FullEwc":
        """Snapshot each layer's weight now (a float32 copy) with its Fisher, moved to the weight's device.

        Args:
            layers: full module name -> Linear/Conv1D layer (`targets.target_layers`), sorted by name here.
            fisher: name -> Fisher tensor of the weight's shape (a missing name is a KeyError).
        """
        triples = []
        for name in sorted(layers):
            weight = layers[name].weight
            triples.append((weight, weight.detach().float().clone(), fisher[name].to(weight.device)))
        return cls(triples)

    def __call__(self) -> torch.Tensor:
        """sum over weights of sum(F * (W - W_start)**2): a 0-d float32 tensor, differentiable in W.

        On the first weight's device (the Fisher and start follow each weight if the model moved since `build`);
        multiply by lambda for the loss.
        """
        total = None
        for i, (weight, start, f) in enumerate(self.triples):
            if f.device != weight.device:  # the model moved after build (accelerate's prepare): follow it, once
                start, f = start.to(weight.device), f.to(weight.device)
                self.triples[i] = (weight, start, f)
            term = (f * (weight.float() - start).pow(2)).sum()  # weight, start, f: the weight's shape
            total = term if total is None else total + term.to(total.device)
        return total


@dataclass
class Ewc:
    """The EWC regulariser (e2wm.train.regularisers): weight (lambda) * penalty(), once per optimiser step."""

    penalty: LoraEwc | FullEwc
    weight: float
    name = "ewc"
    per_step = True
    all_positions = False

    def start(self, step: int) -> None:
        """Nothing to do: the value is a function of the weights alone."""

    def __call__(self, model, batch=None, outputs=None) -> torch.Tensor:
        """sum F * dW^2 of the adapted weights as they are (the model is reached through the penalty's layers)."""
        return self.penalty()
