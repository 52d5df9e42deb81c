"""A run's regularisers, assembled from its options: the one builder that `e2wm train` (e2wm.recipes.finetune)
and the Trainer/TRL plug-in (e2wm.train.trainer_plugin) share, so that the same options give the same components.

`ewc_penalty` checks a Fisher against the adapted layers, scales it and pairs it with the model's adapter kind (LoRA,
OSF, or none: full finetuning); `build_regularisers` makes the named regularisers (e2wm.train.regularisers) from
option values named as `e2wm train`'s (`RegulariserOptions`).
"""

from typing import Protocol

import torch

from e2wm.errors import InputError
from e2wm.models import pad_id
from e2wm.text import read_corpus
from e2wm.train.ewc import PEFT_PREFIX, Ewc, FullEwc, LoraEwc, OsfEwc
from e2wm.train.fisher import check_fisher
from e2wm.train.fisher_scale import scale_fisher
from e2wm.train.kl_anchor import KlAnchor
from e2wm.train.regularisers import Regulariser
from e2wm.train.rehearsal import Replay, texts_per_step, tokenise_texts
from e2wm.train.targets import is_fan_in_fan_out


class RegulariserOptions(Protocol):
    """The options the regularisers read, as `e2wm train` names them (TrainConfig; the plug-in's Penalties)."""

    lam: float
    kl_weight: float
    kl_tokens: str
    kl_direction: str
    replay_data: str | None
    replay_ratio: float
    replay_weight: float


def adapted_layers(peft_model) -> dict[str, torch.nn.Module]:
    """Base-model module name ("base_model.model." removed) -> the base layer under each of the PEFT model's adapter
    layers (LoRA's, OSF's): the layers a Fisher of the run must cover."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return {name.removeprefix(PEFT_PREFIX): module.get_base_layer() for name, module in peft_model.named_modules()
            if isinstance(module, BaseTunerLayer)}


def ewc_penalty(model, layers: dict[str, torch.nn.Module], path: str, fisher: dict[str, torch.Tensor],
                scale: str) -> LoraEwc | OsfEwc | FullEwc:
    """The EWC penalty of model on the Fisher read from path, checked against layers and scaled.

    Args:
        model: a PEFT model with a LoRA adapter (`LoraEwc`) or an OSF adapter (`OsfEwc`), or a model trained in full
            (`FullEwc` on layers' weights as they are now).
        layers: module name -> the adapted base layer (`targets.target_layers` of the base model, or
            `adapted_layers` of a PEFT model).
        path: the Fisher file, for messages. fisher: its tensors (`fisher.load_fisher`). scale: --fisher-scale.
    Raises:
        InputError: the Fisher's modules or shapes are not the adapted layers' (`fisher.check_fisher`), or the model's
            adapter is neither LoRA nor OSF.
    """
    from peft import PeftModel

    check_fisher(path, fisher, layers)
    fisher = scale_fisher(fisher, scale, {name: is_fan_in_fan_out(layer) for name, layer in layers.items()})
    if not isinstance(model, PeftModel):
        return FullEwc.build(layers, fisher)
    kind = getattr(model.peft_config[model.active_adapter].peft_type, "value", "?")
    if kind == "LORA":
        return LoraEwc.build(model, fisher, model.active_adapter)
    if kind == "OSF":
        return OsfEwc.build(model, fisher, model.active_adapter)
    raise InputError(f"--fisher {path}: the EWC penalty takes LoRA or OSF adapters or a model trained in full; this "
                     f"model's adapter is {kind}")


def build_regularisers(names: list[str], options: RegulariserOptions, penalty: LoraEwc | FullEwc | None, tokenizer,
                       *, examples_per_step: int, replay_max_len: int, seed: int, process_index: int = 0,
                       processes: int = 1, precision: torch.dtype | None = None) -> list[Regulariser]:
    """The regularisers named (in that order: e2wm.methods.REGULARISERS' for `e2wm train`) from options.

    Args:
        names: among "ewc", "kl", "replay". penalty: the EWC penalty (`ewc_penalty`), needed with "ewc".
        tokenizer: tokenises the replay texts. examples_per_step: training examples per process and optimiser step
            (batch size x accumulation), which --replay-ratio multiplies. replay_max_len: replay texts keep their
            first replay_max_len tokens. seed, process_index, processes: replay's draw (e2wm.train.rehearsal).
        precision: the autocast dtype of the run's forward passes (replay's own pass runs in it; None: the weights').
    Raises:
        InputError: when replay_data cannot be read or leaves no text, or replay_ratio rounds to 0 texts a step.
    """
    built: list[Regulariser] = []
    for name in names:
        if name == "ewc":
            built.append(Ewc(penalty, options.lam))
        elif name == "kl":
            built.append(KlAnchor(options.kl_weight, options.kl_tokens, options.kl_direction))
        elif name == "replay":
            texts = tokenise_texts(read_corpus(options.replay_data, "--replay-data"), tokenizer, replay_max_len,
                                   options.replay_data)
            built.append(Replay(texts, options.replay_weight, texts_per_step(options.replay_ratio, examples_per_step),
                                pad_id(tokenizer), seed, process_index, processes, precision=precision))
    return built
