"""Evaluation recipe: a causal LM (optionally with a LoRA adapter) on E2WM files, plus general-text perplexity.

    from e2wm import EvalConfig, evaluate
    metrics = evaluate(EvalConfig(model="smollm2-135m", data=["eval-dev"], limit=8, out="runs/eval-base"))

Every file is checked before the model loads. With num_processes > 1 the job re-runs itself under
`accelerate launch` (GPUs when there are enough, else CPU processes over gloo), each process scoring a
strided shard; the main process writes what one process would.
"""

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, replace

from e2wm.chat import check_template
from e2wm.config import to_argv
from e2wm.errors import RunError
from e2wm.eval import generation, vllm_backend
from e2wm.eval.compare import ppl_tasks
from e2wm.eval.config import EvalConfig
from e2wm.eval.items import load_eval_files
from e2wm.eval.perplexity import read_texts
from e2wm.eval.prefix_cache import model_device
from e2wm.eval.run import Shard, check_limits, evaluate_model, token_limit
from e2wm.files import output_folder, write_json
from e2wm.locks import output_lock
from e2wm.models import describe, load_model, load_tokenizer, resolve_model_path
from e2wm.provenance import environment, git_commit, model_fingerprint, model_revision, package_versions, tree_digest
from e2wm.world import programs

logger = logging.getLogger(__name__)


def launch(num_processes: int, argv: list[str]) -> None:
    """Run `e2wm eval argv` under `accelerate launch` with N processes (GPUs if present, else CPU/gloo).

    Raises RunError when a process fails.
    """
    import torch

    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--multi_gpu"] if torch.cuda.device_count() >= num_processes else ["--cpu"]
    code = subprocess.call([*command, "-m", "e2wm", "eval", *argv])
    if code != 0:
        raise RunError(f"`accelerate launch` of {num_processes} eval processes exited with code {code}")


def current_shard() -> tuple[Shard, str | None]:
    """This process's shard and device under `accelerate launch` (one process: everything, default device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard(), None
    from accelerate import PartialState

    state = PartialState()
    return Shard(state.process_index, state.num_processes), str(state.device)


def model_identity(config: EvalConfig, model) -> dict:
    """What changes scores beyond the config's text: the base model's Hub revision (or, for a local or the
    embedded model, the digest of its files), the adapter's digest, the device type, and the software
    (e2wm's and the libraries' versions, the git commit of a checkout: a scoring fix recomputes)."""
    return {
        "model": describe(config.model),
        "model_revision": model_revision(model) or model_fingerprint(config.model),
        "adapter_sha256": tree_digest(config.adapter) if config.adapter else None,
        "device_type": model_device(model).type,
        "software": {"versions": package_versions(), "git_commit": git_commit()},
    }


def evaluate(config: EvalConfig) -> dict:
    """Evaluate as config says; returns {task: metrics} (also in OUT/metrics.json, with results.md).

    Raises InputError on a bad file, option or model (with --chat-template, a tokenizer without a chat
    template), two --ppl-data files with the same label (`compare.ppl_tasks`), or limits that contradict each
    other (`check_limits`), before any scoring starts or any file is written.
    """
    out = output_folder(config.out)
    tasks = load_eval_files(config.data, config.eai_form)  # every file checked before the model is loaded
    if config.robothow_dir:
        programs.index(config.robothow_dir)  # not a RobotHow directory: InputError now, not after generating
    ppl_texts = [read_texts(file) for _, file in ppl_tasks(config.ppl_data or [])]  # two labels alike: InputError
    if config.chat_template:  # the general-text perplexity stays raw text: only the task prompts are wrapped
        check_template(load_tokenizer(config.model), config.model)
    with output_lock(out):  # one writer: a second eval of this --out is refused
        if config.backend == "vllm":
            vllm_backend.check_available()
        if config.num_processes > 1:
            launch(config.num_processes, to_argv(replace(config, num_processes=1)))
            return json.loads((out / "metrics.json").read_text())
        shard, device = current_shard()
        spec = config.model_spec(config.adapter, config.adapter_scale)
        if device and not spec.device:
            spec.device = device
        began = time.time()
        model, tokenizer = load_model(spec)
        max_length = token_limit(model, tokenizer, config)
        check_limits(tokenizer, tasks, config, max_length, ppl_texts)  # before the model runs or anything is written
        identity = model_identity(config, model)
        ignored = (generation.ignored_model_settings(model, tokenizer, config.max_new_tokens, config.num_beams)
                   if any(task.kind == "generation" for task in tasks) else {})
        if ignored and shard.is_main:
            logger.info("decoding with e2wm's options only; the model's generation_config.json settings ignored: %s",
                        json.dumps(ignored))
        record = {"config": asdict(config), "identity": identity, "provenance": environment(str(model_device(model))),
                  "ignored_generation_config": ignored}
        if shard.is_main:
            for stale in ("metrics.json", "results.md"):  # an earlier run's, until this one writes its own
                (out / stale).unlink(missing_ok=True)
            write_json(out / "config.json", record)
        generator = None
        if config.backend == "vllm" and any(task.kind == "generation" for task in tasks):
            generator = vllm_backend.VllmGenerator(
                resolve_model_path(spec.model), spec.adapter, spec.dtype, max_length, config.gpu_memory_utilization,
            )
        start = time.time()
        results = evaluate_model(model, tokenizer, tasks, config, identity, shard, generator)
        if shard.is_main:
            record["provenance"]["wall_seconds"] = round(time.time() - began, 3)  # model loading included
            write_json(out / "config.json", record)
            logger.info("%s", (out / "results.md").read_text())
            logger.info("wrote %s in %.0f s", out / "metrics.json", time.time() - start)
        return results
