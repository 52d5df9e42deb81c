"""A run's regularisers, assembled from its options: the one builder that `e2wm train` (e2wm.recipes.finetune)
and the Trainer/TRL plug-in (e2wm.train.trainer_plugin) share, so that the same options give the same components.

`scaled_fisher` checks a Fisher against the adapted layers and scales it; `ewc_penalty` pairs it with the model's
adapter kind (LoRA, OSF, or none: full finetuning); `build_regularisers` makes the named regularisers
(e2wm.train.regularisers) from option values named as `e2wm train`'s (`RegulariserOptions`).
"""

from typing import Protocol

import torch

from e2wm.errors import InputError
from e2wm.models import pad_id
from e2wm.text import read_corpus
from e2wm.train.ewc import Ewc, FullEwc, LoraEwc, OsfEwc, lora_layers, osf_layers
from e2wm.train.fisher import FisherHeader, check_fisher
from e2wm.train.fisher_scale import scale_fisher
from e2wm.train.kl_anchor import KlAnchor
from e2wm.train.regularisers import Regulariser
from e2wm.train.rehearsal import Replay, texts_per_step, tokenise_texts
from e2wm.train.targets import is_fan_in_fan_out, target_layers


class RegulariserOptions(Protocol):
    """The options the regularisers read, as `e2wm train` names them (TrainConfig; the plug-in's Penalties)."""

    lam: float
    kl_weight: float
    kl_tokens: str
    kl_direction: str
    replay_data: str | None
    replay_ratio: float
    replay_weight: float


def is_peft(model) -> bool:
    """Whether model is a PEFT model (an adapter on a base model)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def adapter_kind(model) -> str:
    """The PEFT type of model's active adapter ("LORA", "OSF", ...), or "full" for a model without one."""
    if not is_peft(model):
        return "full"
    return getattr(model.peft_config[model.active_adapter].peft_type, "value", "?")


def check_kind(model, source: str) -> str:
    """model's adapter kind (`adapter_kind`) when the EWC penalty takes it: LoRA, OSF or none (full finetuning).

    source names the Fisher in messages as the user gave it ("--fisher FILE", "Penalties.fisher FILE").
    Raises InputError naming the Fisher for another adapter kind."""
    kind = adapter_kind(model)
    if kind not in ("LORA", "OSF", "full"):
        raise InputError(f"{source}: the EWC penalty takes LoRA or OSF adapters or a model trained in full; "
                         f"this model's adapter is {kind}")
    return kind


def adapted_layers(peft_model, source: str) -> dict[str, torch.nn.Module]:
    """Base-model module name ("base_model.model." removed) -> the base layer under each of the PEFT model's LoRA
    layers, or OSF layers (`check_kind`): the layers its Fisher (named source in messages) must cover. Other adapter
    layers beside them (LoRA's trainable tokens, modules_to_save) are not EWC's.

    Raises InputError for an adapter kind the EWC penalty does not take."""
    layers = lora_layers(peft_model) if check_kind(peft_model, source) == "LORA" else osf_layers(peft_model)
    return {name: layer.get_base_layer() for name, layer in layers.items()}


def fisher_layers(model, header: FisherHeader, source: str) -> dict[str, torch.nn.Module]:
    """`targets.target_layers` of the Fisher's modules (header.modules) in model: the layers a Fisher chooses when
    the run names no --modules.

    Raises InputError naming the Fisher (source, as `check_kind`) and the model it was computed on when model has
    no Linear/Conv1D layer of those names (a Fisher of another architecture)."""
    try:
        return target_layers(model, header.modules)
    except InputError:
        raise InputError(f"{source}: computed on {header.base_model} for its {','.join(header.modules)} layers; this "
                         f"model has no Linear/Conv1D layer of these names (a Fisher of another model?)") from None


def scaled_fisher(source: str, fisher: dict[str, torch.Tensor], layers: dict[str, torch.nn.Module],
                  scale: str) -> dict[str, torch.Tensor]:
    """The Fisher named source (`check_kind`; `fisher.load_fisher`'s tensors), checked to cover exactly layers with
    their shapes (`fisher.check_fisher`) and weighed by scale (--fisher-scale, `fisher_scale.scale_fisher`).

    Args:
        layers: module name -> the adapted base layer (`targets.target_layers` of the base model, or
            `adapted_layers` of a PEFT model): cheap to check before the adapter is built.
    Raises:
        InputError: the Fisher's modules or shapes are not the layers'.
    """
    check_fisher(source, fisher, layers)
    return scale_fisher(fisher, scale, {name: is_fan_in_fan_out(layer) for name, layer in layers.items()})


def ewc_penalty(model, layers: dict[str, torch.nn.Module], fisher: dict[str, torch.Tensor],
                source: str) -> LoraEwc | OsfEwc | FullEwc:
    """The EWC penalty of model on a checked and scaled Fisher (`scaled_fisher`) named source (`check_kind`):
    `LoraEwc` on a LoRA adapter's delta, `OsfEwc` on an OSF adapter's, `FullEwc` on layers' weights against their
    values now for a model without an adapter.

    Raises InputError for another adapter kind (`check_kind`)."""
    kind = check_kind(model, source)
    if kind == "full":
        return FullEwc.build(layers, fisher)
    build = LoraEwc.build if kind == "LORA" else OsfEwc.build
    return build(model, fisher, model.active_adapter)


def build_regularisers(names: list[str], options: RegulariserOptions, penalty: LoraEwc | OsfEwc | FullEwc | None,
                       tokenizer,
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
        ValueError: a name that is not a regulariser, or "ewc" without a penalty (the callers' config checks come
            first: these are programming errors).
    """
    built: list[Regulariser] = []
    for name in names:
        if name == "ewc":
            if penalty is None:
                raise ValueError("build_regularisers: the ewc regulariser needs the EWC penalty (a Fisher)")
            built.append(Ewc(penalty, options.lam))
        elif name == "kl":
            built.append(KlAnchor(options.kl_weight, options.kl_tokens, options.kl_direction))
        elif name == "replay":
            texts = tokenise_texts(read_corpus(options.replay_data, "--replay-data"), tokenizer, replay_max_len,
                                   options.replay_data)
            built.append(Replay(texts, options.replay_weight, texts_per_step(options.replay_ratio, examples_per_step),
                                pad_id(tokenizer), seed, process_index, processes, precision=precision))
        else:
            raise ValueError(f"build_regularisers: {name!r} is not a regulariser (e2wm.methods.REGULARISERS)")
    return built
