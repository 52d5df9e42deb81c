"""Export recipe: a LoRA adapter merged into its base model, saved as a standard transformers checkpoint.

    from e2wm import ExportConfig, export_merged
    export_merged(ExportConfig(model="smollm2-135m", adapter="runs/ewc-lora/adapter", out="merged"))

The base is loaded in float32 with the adapter applied (e2wm.models.load_model), folded in by PEFT's
`merge_and_unload` (each adapted weight becomes W + scaling * B @ A, transposed for fan-in-fan-out layers),
cast to --dtype and saved with the base's tokenizer and a model card (train.card.merged_card) into a staging
folder that is renamed into place, so --out either holds the whole checkpoint or does not exist.
"""

import shutil
from pathlib import Path

from e2wm.errors import InputError, RunError
from e2wm.files import output_folder, write_atomic
from e2wm.models import DTYPES, ModelSpec, adapter_dir, hub_reachable, load_model, resolve_model_path
from e2wm.provenance import tree_digest
from e2wm.train.card import merged_card
from e2wm.train.config import ExportConfig


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


def export_merged(config: ExportConfig) -> Path:
    """Merge config.adapter into config.model and save the result in config.out; push it when config.push.

    Returns:
        the folder written (config.out): config.json, generation_config.json, model*.safetensors, the
        tokenizer's files and README.md (`merged_card`).
    Raises:
        InputError: when --out already exists, the adapter or model cannot be loaded.
        RunError: when --push is given and the Hub is unreachable (checked before any work: HF_ENDPOINT,
            default huggingface.co), or the upload fails (the merged folder is kept).
    """
    from transformers import AutoTokenizer

    out = output_folder(config.out)  # a file above it is refused here
    if out.exists():
        raise InputError(f"--out {out}: already exists; give a new directory")
    adapter_dir(config.adapter)
    if config.push:
        check_repo_id(config.push)
    if config.push and not hub_reachable():
        raise RunError(f"--push {config.push}: the Hub ({hub_endpoint()}) is unreachable (offline); export "
                       "without --push and upload the folder later")
    model, _ = load_model(ModelSpec(config.model, config.adapter, "float32", config.device))
    merged = model.merge_and_unload().to(DTYPES[config.dtype])
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(config.model))  # as the base ships it
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        write_atomic(staging / "README.md", merged_card(config.model, config.adapter, tree_digest(config.adapter),
                                                        config.dtype, out.name))
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if config.push:
        push_folder(out, config.push)
    return out
