"""`e2wm eval`: evaluate a causal LM (optionally with a LoRA adapter) on E2WM benchmark files."""

import os
import subprocess
import sys
import time
from pathlib import Path

from e2wm.errors import InputError
from e2wm.eval import vllm_backend
from e2wm.eval.perplexity import read_texts
from e2wm.eval.run import EvalSettings, Shard, evaluate
from e2wm.eval.tasks import load_tasks
from e2wm.files import write_json
from e2wm.models import add_model_arguments, context_length, load_model, resolve_model_path, spec_from_args


def add_arguments(parser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--data", nargs="+", required=True, help="E2WM .json/.jsonl files or directories")
    parser.add_argument("--out", required=True, help="run directory for metrics.json, results.md, predictions/")
    parser.add_argument("--limit", type=int, help="evaluate only the first N items of each file")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="prompts decoded together (generation) and windows per pass (perplexity)")
    parser.add_argument("--num-beams", type=int, default=1, help="beam size for generation (1: greedy)")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--norm", choices=["ln", "un"], help="override the per-task QA normalisation")
    parser.add_argument("--max-length", type=int, help="token limit of prompt + answer (default: model's)")
    parser.add_argument("--ppl-data", help="general text (JSONL with 'text', or plain text) for perplexity")
    parser.add_argument("--backend", choices=["hf", "vllm"], default="hf",
                        help="generation backend: hf (transformers) or vllm (extra e2wm[vllm], CUDA)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5,
                        help="share of GPU memory vLLM may take (the hf model for QA shares the GPU)")
    parser.add_argument("--num-processes", type=int, default=1,
                        help="shard the items over N processes (runs `accelerate launch -m e2wm eval ...`)")


def launch(num_processes: int, argv: list[str]) -> None:
    """Re-run this command under `accelerate launch` with N processes (GPUs if present, else CPU/gloo)."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    import torch

    command += ["--multi_gpu"] if torch.cuda.device_count() >= num_processes else ["--cpu"]
    command += ["-m", "e2wm", "eval", *argv]
    sys.exit(subprocess.call(command))


def current_shard() -> tuple[Shard, str | None]:
    """This process's shard and device under `accelerate launch` (one process: everything, default device)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard(), None
    from accelerate import PartialState

    state = PartialState()
    return Shard(state.process_index, state.num_processes), str(state.device)


def without_num_processes(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--num-processes":
            skip = True
        elif not arg.startswith("--num-processes="):
            kept.append(arg)
    return kept


def run(args) -> None:
    for name in ("limit", "batch_size", "num_beams", "max_new_tokens", "max_length", "num_processes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    tasks = load_tasks(args.data)  # every file checked before the model is loaded
    if args.ppl_data:
        read_texts(args.ppl_data)
    if args.backend == "vllm":
        vllm_backend.check_available()
    if args.num_processes > 1:
        launch(args.num_processes, without_num_processes(sys.argv[2:]))
    shard, device = current_shard()
    spec = spec_from_args(args)
    if device and not spec.device:
        spec.device = device
    model, tokenizer = load_model(spec)
    out = Path(args.out)
    settings = EvalSettings(args.limit, args.batch_size, args.num_beams, args.max_new_tokens, args.norm,
                            args.max_length)
    model_id = spec.model + (f" + {spec.adapter}" if spec.adapter else "")
    if shard.is_main:
        write_json(out / "config.json", {k: v for k, v in vars(args).items() if k != "config"})
    generator = None
    if args.backend == "vllm" and any(task.kind == "gen" for task in tasks):
        generator = vllm_backend.VllmGenerator(
            resolve_model_path(spec.model), spec.adapter, spec.dtype,
            args.max_length or context_length(model, tokenizer), args.gpu_memory_utilization,
        )
    start = time.time()
    evaluate(model, tokenizer, tasks, out, settings, model_id, args.ppl_data, shard, generator)
    if shard.is_main:
        print((out / "results.md").read_text())
        print(f"wrote {out / 'metrics.json'} in {time.time() - start:.0f} s")
