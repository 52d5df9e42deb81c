"""Checkpoints: the state that resumes exactly, and the evaluable model of each checkpointed step.

checkpoint/ (one, the latest) holds the trainable weights, optimiser, scheduler, step and every process's RNG;
the data order needs no saving: it is rebuilt from (seed, epoch), and the step says how far it got.
checkpoint-N/ (one per checkpointed step N, the older ones pruned by `prune_steps`) holds what
`save_pretrained` writes: a standard PEFT adapter in adapter/, or the whole model and tokenizer in model/.
Every folder is written beside the old one and swapped in by renames, so a crash keeps the last good one.
"""

import contextlib
import json
import pickle
import random
import re
import shutil
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from e2wm.errors import InputError
from e2wm.files import usual_permissions, writing

NAME = "checkpoint"
STEP = re.compile(r"checkpoint-(\d+)")  # the name of a step's folder, checkpoint-N


def trainable_state(model) -> dict[str, torch.Tensor]:
    """name -> detached, contiguous CPU copy of every parameter that requires grad (LoRA's A and B for LoRA)."""
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    """This process's RNG states: Python's random, torch's CPU generator and, when CUDA is there, every GPU's."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states `rng_state` returned (the CUDA ones only when both the state and CUDA have them)."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(accelerator, run_dir: Path, model, optimizer, scheduler, step: int) -> None:
    """Write run_dir/checkpoint (all processes call this; the main one writes the shared files).

    Layout: trainable.safetensors (`trainable_state` of the unwrapped model), optimizer.pt, scheduler.pt,
    rng-<process index>.pt (one per process) and state.json ({"step": step}). Everything is written to
    checkpoint.tmp, which then replaces checkpoint by renames; the old one is removed last. A failed write (a full
    disk: OSError naming run_dir/checkpoint, `e2wm.files.writing`) removes checkpoint.tmp and keeps checkpoint.

    Args:
        accelerator: the run's `accelerate.Accelerator` (collective: every process must call this).
        run_dir: the run's output folder.
        step: optimiser steps taken so far.
    """
    final, staging = run_dir / NAME, run_dir / f"{NAME}.tmp"
    try:
        with writing(final):
            if accelerator.is_main_process:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                save_file(trainable_state(accelerator.unwrap_model(model)), str(staging / "trainable.safetensors"))
                save_state(optimizer.state_dict(), staging / "optimizer.pt")
                save_state(scheduler.state_dict(), staging / "scheduler.pt")
            accelerator.wait_for_everyone()
            save_state(rng_state(), staging / f"rng-{accelerator.process_index}.pt")
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                (staging / "state.json").write_text(json.dumps({"step": step}) + "\n")
                swap_in(staging, final)
    except BaseException:  # a full disk: checkpoint/ stays the last whole one, and no partial staging is left
        shutil.rmtree(staging, ignore_errors=True)
        raise
    accelerator.wait_for_everyone()


def save_state(state: dict, path: Path) -> None:
    """torch.save of state into path, through a Python file object: a failed write (a full disk) then surfaces as
    the OSError behind torch's RuntimeError (`e2wm.files.os_errno`), which a path given to torch.save loses."""
    with path.open("wb") as handle:
        torch.save(state, handle)


def swap_in(staging: Path, final: Path) -> None:
    """Replace the folder final by staging with renames; the old final (final.old) is removed last.

    A final.old that a kill left behind (after the second rename) is removed first, so that the first rename
    has its name free; a kill between the two renames leaves final.old whole, which `recover` puts back.
    """
    old = final.with_name(f"{final.name}.old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def recover(run_dir: Path) -> None:
    """Put back checkpoint/ from checkpoint.old/ when a kill came between `swap_in`'s two renames (checkpoint/
    absent, checkpoint.old/ complete): the last complete state, which a resumed run continues from."""
    final, old = run_dir / NAME, run_dir / f"{NAME}.old"
    if not final.exists() and (old / "state.json").is_file():
        with contextlib.suppress(FileNotFoundError):  # another process of the run put it back first
            old.rename(final)


def save_pretrained(model, tokenizer, final: Path, inside: str | None = None) -> None:
    """Write `model.save_pretrained` (and the tokenizer's, when given) atomically; main process only.

    Everything goes to final.tmp (into its subfolder `inside`, when given), which then replaces final by
    `swap_in`; a failed write removes final.tmp and leaves final as it was (a full disk: OSError naming final,
    `e2wm.files.writing`). For a PeftModel this is a
    standard PEFT adapter (adapter_config.json and adapter_model.safetensors), for a plain model its config
    and weights.

    Args:
        model: the unwrapped model (accelerator.unwrap_model).
        tokenizer: saved beside the model, or None.
        final: the folder to write, e.g. run_dir / "adapter" or run_dir / "checkpoint-N".
        inside: the subfolder of final that holds the files, e.g. "adapter" for checkpoint-N/adapter.
    """
    staging = final.with_name(f"{final.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    target = staging / inside if inside else staging
    try:
        with writing(final):
            model.save_pretrained(target)
            if tokenizer is not None:
                tokenizer.save_pretrained(target)
        usual_permissions(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, final)


def step_folders(run_dir: Path) -> list[tuple[int, Path]]:
    """(N, run_dir/checkpoint-N) for every step folder there, by increasing N (not checkpoint/, nor .tmp/.old)."""
    found = [(int(match[1]), path) for path in run_dir.iterdir()
             if (match := STEP.fullmatch(path.name)) and path.is_dir()]
    return sorted(found)


def prune_steps(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the last `keep` (by step) checkpoint-N folders of run_dir; returns the deleted ones."""
    gone = [path for _, path in step_folders(run_dir)[:-keep]]
    for path in gone:
        shutil.rmtree(path)
    return gone


def read_state(path: Path):
    """A state torch.save wrote (optimizer.pt, scheduler.pt, rng-N.pt), loaded with `weights_only=True`.

    torch's restricted unpickler rebuilds only tensors and plain values (dicts, lists, tuples, numbers,
    strings, None), which is all an AdamW or LambdaLR state_dict and the RNG states hold; any other object a
    pickle names (a class whose __reduce__ would call a function) is refused before it is built, so a
    checkpoint folder from elsewhere cannot run code. Source: torch.load's documentation, `weights_only`.

    Raises:
        InputError: naming the file when it is missing, refused (other objects than tensors and plain values)
            or unreadable (not a torch.save file).
    """
    if not path.is_file():
        raise InputError(f"{path}: missing from the checkpoint")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not e2wm's
        raise InputError(f"{path}: cannot read (not a file torch.save wrote)")
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: refused: it holds objects other than tensors and plain values, which loading "
                         "could run as code (torch.load weights_only)") from None
    except (RuntimeError, EOFError, ValueError) as error:
        raise InputError(f"{path}: cannot read ({(str(error).strip() or type(error).__name__).splitlines()[0]})") \
            from None


def load_checkpoint(accelerator, run_dir: Path, model, optimizer, scheduler) -> int:
    """Restore the state saved by save_checkpoint; returns the step it was taken after.

    In place: the trainable weights (non-strict: weights absent from the file keep their values), the
    optimiser, the scheduler and this process's RNG states (rng-<process index>.pt). The .pt files are read
    by `read_state` (tensors and plain values only: nothing in them can run code).

    Returns:
        the number of optimiser steps taken when it was saved.
    Raises:
        InputError: naming the file when one is missing, unreadable or refused by `read_state`, or when the
            weights file is not safetensors or holds weights the model does not have.
    """
    folder = run_dir / NAME
    weights_file = folder / "trainable.safetensors"
    try:
        weights = load_file(str(weights_file))
    except FileNotFoundError:
        raise InputError(f"{weights_file}: missing from the checkpoint") from None
    except SafetensorError as error:
        raise InputError(f"{weights_file}: not a safetensors file ({error})") from None
    missing = accelerator.unwrap_model(model).load_state_dict(weights, strict=False)
    if missing.unexpected_keys:
        raise InputError(f"{weights_file}: weights the model does not have: {missing.unexpected_keys[:3]}")
    optimizer.load_state_dict(read_state(folder / "optimizer.pt"))
    scheduler.load_state_dict(read_state(folder / "scheduler.pt"))
    set_rng_state(read_state(folder / f"rng-{accelerator.process_index}.pt"))
    return json.loads((folder / "state.json").read_text())["step"]
