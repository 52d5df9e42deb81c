"""Export recipe: a LoRA adapter merged into its base model, saved as a standard transformers checkpoint.

    from e2wm import ExportConfig, export_merged
    export_merged(ExportConfig(model="smollm2-135m", adapter="runs/ewc-lora/adapter", out="merged"))

The base is loaded in float32 (e2wm.models.load_model), the adapter applied (apply_adapter) and folded in by PEFT's
`merge_and_unload` (each adapted weight becomes W + scaling * B @ A, transposed for fan-in-fan-out layers), cast
to --dtype and saved with the base's tokenizer and a model card (train.card.merged_card) into a staging folder
that is renamed into place, so --out either holds the whole checkpoint or does not exist. With --adapter-scale s the
adapter is scaled before merging (e2wm.models.scale_adapter: WiSE-FT's interpolation), so each adapted weight
becomes W + s * scaling * B @ A; the card says so (`train.card.merged_card`).

Tied weights (tie_word_embeddings: lm_head shares the input embeddings' matrix, as in GPT-2, SmolLM2, Llama 3.2):
base + adapter applies an adapter on lm_head to the output layer only (or one on the embeddings to the input
only), but merging into the shared matrix changes both, and a config that still says "tied" makes transformers
save one matrix and share it again on loading (peft PR 2972, transformers issue 45127). So every module gets its
own copy of a shared weight before merging; where the merge then leaves the copies different, the checkpoint is
saved untied (tie_word_embeddings false, both matrices stored), otherwise they are shared again as in the base.

Before reporting success the export checks itself (`check_logits`): base + adapter (PEFT, unmerged, at the
scale) computes the logits of CHECK_TEXT once before merging, and both the merged model in memory (float32) and the
saved checkpoint reloaded with plain transformers (`AutoModelForCausalLM.from_pretrained`, weights upcast to float32
on the same device) must give the same logits, within TOLERANCE; otherwise RunError and nothing is left at --out.
Memory: the float32 base, one extra copy of each shared matrix (the embeddings) while merging, then the reloaded
checkpoint in float32 after the first is freed: one float32 model at a time, not two; the check's compute is
two forward passes of a few tokens.
"""

import gc
import logging
import shutil
import warnings
from collections import defaultdict
from pathlib import Path

import torch

from e2wm.errors import InputError, RunError
from e2wm.files import output_folder, usual_permissions, write_atomic, writing
from e2wm.locks import output_lock
from e2wm.models import (
    DTYPES,
    ModelSpec,
    adapter_config,
    adapter_dir,
    apply_adapter,
    check_scalable,
    hub_reachable,
    load_model,
    resolve_model_path,
)
from e2wm.provenance import tree_digest
from e2wm.train.card import merged_card
from e2wm.train.config import ExportConfig

CHECK_TEXT = "Walk to the kitchen. Open the fridge. Grab the milk and put it on the table."
# largest |merged logit - base + adapter logit| allowed, as a fraction of max(1, largest |logit|), by the saved
# weights' dtype: float32 merges differ only in rounding order (about 1e-6 measured); float16 and bfloat16 round
# each weight to 11 and 8 significant bits (measured on the tests' models: 0.1% and 0.6% of the scale)
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 5e-2}

logger = logging.getLogger(__name__)


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def push_folder(folder: Path, repo: str) -> None:
    """Upload folder to the Hub model repo (created private when absent: making it public is the owner's step on
    the Hub; an existing repo keeps its visibility), with the token huggingface_hub finds.

    Raises RunError in one line when the upload fails (no token, no permission, a network error).
    """
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo, repo_type="model", exist_ok=True, private=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                          commit_message="e2wm export merged")
    except Exception as error:  # hub errors come in many types (HTTP, auth, validation, connection)
        raise RunError(f"--push {repo}: upload failed ({str(error).strip().splitlines()[0]}); the merged "
                       f"checkpoint is in {folder}") from None


def check_repo_id(repo: str) -> None:
    """InputError, before any work, for a --push name the Hub cannot hold (huggingface_hub's own rule: `name` or
    `namespace/name` of letters, digits, '-', '_', '.'); it would fail only after the merge."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as error:
        raise InputError(f"--push {repo}: not a Hub repository id ({str(error).splitlines()[0]})") from None


def untie(model: torch.nn.Module) -> list[list[str]]:
    """Give each parameter name its own copy of a parameter that several names share (tied embeddings), in place.

    Returns the groups of names that shared one parameter (the first keeps the original), for `retie`: names, not
    modules, since merging puts back other module objects where PEFT wrapped them (e.g. modules_to_save).
    """
    shared: dict[int, list[str]] = defaultdict(list)
    for name, parameter in model.named_parameters(remove_duplicate=False):
        shared[id(parameter)].append(name)
    groups = [names for names in shared.values() if len(names) > 1]
    for names in groups:
        for name in names[1:]:
            parameter = model.get_parameter(name)
            copy = torch.nn.Parameter(parameter.detach().clone(), requires_grad=parameter.requires_grad)
            holder, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(holder), attribute, copy)
    return groups


def tie_flags(model: torch.nn.Module) -> dict[int, tuple[object, bool]]:
    """id -> (config, its tie_word_embeddings) for the config of the model and of each submodel that has one."""
    from transformers import PreTrainedModel

    return {id(module.config): (module.config, module.config.tie_word_embeddings) for module in model.modules()
            if isinstance(module, PreTrainedModel) and hasattr(module.config, "tie_word_embeddings")}


def retie(model: torch.nn.Module, groups: list[list[str]], flags: dict[int, tuple[object, bool]]) -> None:
    """After merging: share each group's parameter again and restore the configs' tie flags when no group's copies
    differ; otherwise keep every copy and set tie_word_embeddings false in every config (so transformers saves each
    matrix and does not tie them on loading), and say so."""
    untied = any(not torch.equal(model.get_parameter(names[0]), model.get_parameter(name))
                 for names in groups for name in names[1:])
    for config, tied in flags.values():
        config.tie_word_embeddings = tied and not untied
    if untied:
        logger.info("the adapter changes a weight the base model shares (tied input and output embeddings): the "
                    "merged checkpoint is saved untied (tie_word_embeddings false, each matrix stored)")
        return
    for names in groups:
        for name in names[1:]:
            holder, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(holder), attribute, model.get_parameter(names[0]))


@torch.no_grad()
def logits_of(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The model's float32 logits (1, tokens, vocabulary) for input_ids."""
    return model(input_ids=input_ids).logits.float()


def check_logits(got: torch.Tensor, want: torch.Tensor, dtype: str, what: str, out: Path) -> None:
    """RunError unless got (the merged model's logits) equals want (base + adapter's) within TOLERANCE[dtype] of
    max(1, max |want|); what names the model checked."""
    scale = max(1.0, want.abs().max().item())
    if got.shape != want.shape:
        raise RunError(f"{what} gives logits of shape {tuple(got.shape)}, base + adapter {tuple(want.shape)}; "
                       f"nothing written to --out {out}")
    worst = (got - want).abs().max().item()
    if not worst <= TOLERANCE[dtype] * scale:  # NaN fails too
        raise RunError(f"{what} gives logits that differ from base + adapter by up to {worst:.3g} on "
                       f"{want.shape[1]} tokens (allowed for {dtype}: {TOLERANCE[dtype] * scale:.2g}); nothing "
                       f"written to --out {out}")


def merge_and_save(config: ExportConfig, staging: Path, tokenizer, out: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge the adapter into the base (untied where it touches a shared weight, see the module's docstring), check
    the merge in float32, cast to config.dtype and save it into staging. Returns (input ids of CHECK_TEXT, base +
    adapter's logits for them), on the model's device; the models are freed when this returns."""
    model, _ = load_model(ModelSpec(config.model, None, "float32", config.device))
    device = next(model.parameters()).device
    groups = untie(model)
    flags = tie_flags(model)
    with warnings.catch_warnings():  # PEFT's notes on tied weights in an adapter: handled here
        warnings.filterwarnings("ignore", message=".*(tie_word_embeddings|no longer tied)")
        model = apply_adapter(model, config.adapter, config.adapter_scale).eval()
        input_ids = tokenizer(CHECK_TEXT, return_tensors="pt").input_ids.to(device)
        reference = logits_of(model, input_ids)
        merged = model.merge_and_unload()
    retie(merged, groups, flags)
    check_logits(logits_of(merged, input_ids), reference, "float32", "the merged model (in memory)", out)
    merged = merged.to(DTYPES[config.dtype])
    with writing(out):  # a full disk: OSError naming --out (e2wm.cli prints it in one line)
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return input_ids, reference


def export_merged(config: ExportConfig) -> Path:
    """Merge config.adapter into config.model, check and save the result in config.out; push it when config.push.

    Returns:
        the folder written (config.out): config.json, generation_config.json, model*.safetensors, the
        tokenizer's files and README.md (`merged_card`).
    Raises:
        InputError: when --out already exists or another process is writing it, the adapter or model cannot be
            loaded, or --adapter-scale is given for an adapter other than plain LoRA (`check_scalable`).
        RunError: when the merged checkpoint, reloaded, does not compute base + adapter's logits at the scale
            (`check_logits`; nothing is written); when --push is given and the Hub is unreachable (checked before
            any work: HF_ENDPOINT, default huggingface.co), or the upload fails (the merged folder is kept).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = output_folder(config.out)  # a file above it is refused here
    with output_lock(out):  # one writer; the check that --out is new holds until the folder is there
        if out.exists():
            raise InputError(f"--out {out}: already exists; give a new directory")
        peft_config = adapter_config(adapter_dir(config.adapter), config.adapter)
        if peft_config.is_prompt_learning:  # (PEFT's merge_and_unload does not exist for them: a traceback)
            kind = getattr(peft_config.peft_type, "value", peft_config.peft_type)
            raise InputError(f"--adapter {config.adapter}: a {kind} adapter adds virtual tokens, not weights: there "
                             "is nothing to merge into the model (export merged takes LoRA-style adapters)")
        if config.adapter_scale != 1:
            check_scalable(peft_config, config.adapter, config.adapter_scale)
        if config.push:
            check_repo_id(config.push)
        if config.push and not hub_reachable():
            raise RunError(f"--push {config.push}: the Hub ({hub_endpoint()}) is unreachable (offline); export "
                           "without --push and upload the folder later")
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.model))  # as the base ships it
        staging = out.with_name(f".{out.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            input_ids, reference = merge_and_save(config, staging, tokenizer, out)
            gc.collect()  # the merged model is freed before the reload: one model in memory at a time
            reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32).to(reference.device).eval()
            check_logits(logits_of(reloaded, input_ids), reference, config.dtype,
                         "the saved checkpoint, reloaded with transformers,", out)
            del reloaded
            kind = getattr(peft_config.peft_type, "value", peft_config.peft_type)
            card = merged_card(config.model, config.adapter, tree_digest(config.adapter), config.dtype, out.name,
                               kind, config.adapter_scale)
            write_atomic(staging / "README.md", card)
            usual_permissions(staging)
            staging.rename(out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if config.push:
            push_folder(out, config.push)
        return out
