"""The CUDA paths and GPU timings in one run, for a machine with an NVIDIA GPU (CI has none: nothing here is a test).

Part 1, agreement: a tiny Llama (the test suite's SentencePiece-style fixture) runs the same commands on the CPU
and on CUDA, and the results are compared: `e2wm fisher` on the same texts (every Fisher entry; model samples
drawn with one seed differ between devices, whose generators differ, so they are drawn once on the CPU),
`e2wm train` ewc-lora with the same Fisher (the loss and EWC term of every step), `e2wm eval` on QA and
generation items (option scores, predictions, generated text); on CUDA only, training with --dtype bfloat16
and with --autocast bf16 (finite, near float32's loss).
Part 2, speed and memory (random weights of the real shapes; no download): a LoRA step (r 8, q/v) of
SmolLM2-135M at 4 x 512 tokens in float32, bf16 weights and float32 under bf16 autocast, and an EWC-LoRA step of
GPT-J-6B (bf16 weights) at several batch x length: seconds per step (median of timed steps after warm-up),
tokens per second, MFU against the matmul peak measured in the same process (e2wm.train.loop.matmul_peak), and
the peak CUDA memory against `e2wm plan-memory`'s estimate (e2wm.train.memory.plan_memory).

    python benchmarks/gpu_check.py --out DIR     # DIR/gpu_check.json, written after each part
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import build_tiny_model  # noqa: E402  (the suite's tiny-model fixture)

from e2wm.train.ewc import LoraEwc  # noqa: E402
from e2wm.train.loop import FlopCount, matmul_peak  # noqa: E402
from e2wm.train.memory import GIB, model_shapes, plan_memory  # noqa: E402
from e2wm.train.targets import default_target_names, target_layers  # noqa: E402

PAIRS = [("Q: How to brush teeth?\nA:", " Walk to bathroom. Grab toothbrush. Rinse toothbrush."),
         ("Q: How to watch tv?\nA:", " Walk to living room. Switch on tv. Sit on sofa."),
         ("There are 3 items on the table. How many items are there on the table?\nA:", " 3"),
         ("Question: What is the order of the rooms where the cup appeared?\nAnswer:", " kitchen, bedroom")]
QA = [{"input": f"There are {n} items on the desk. How many items are there on the desk?\nA:",
       "answer_list": ["0", "1", "2", "3", "4"], "answer": str(n)} for n in range(5)]
GEN = [{"input": f"Q: How to {goal}?\nA:", "ref": ref} for goal, ref in
       [("brush teeth", "Walk to bathroom. Grab toothbrush."), ("wash hands", "Walk to bathroom. Wash hands."),
        ("watch tv", "Switch on tv. Sit on sofa.")]]


def e2wm(args: list[str]) -> None:
    """An e2wm command in its own process (accelerate keeps one device per process: a cpu run then a cuda run
    in one process would be refused)."""
    subprocess.run([sys.executable, "-m", "e2wm.cli", *args], check=True)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def agreement(work: Path, other: str = "cuda") -> dict:
    """Part 1: the same commands on the cpu (run a) and on other (run b: cuda; cpu for a dry run); the largest
    differences, and the CE per step of LoRA runs on other in float32, bf16 weights and bf16 autocast."""
    from safetensors.torch import load_file

    model = str(build_tiny_model(work / "tiny", style="sentencepiece", arch="llama"))
    data = write_jsonl(work / "train.jsonl", [{"input": i, "ref": r} for i, r in PAIRS] * 4)
    write_jsonl(work / "eval" / "count.json", QA)
    write_jsonl(work / "eval" / "plan_gen.json", GEN)
    short = ["--model", model, "--train", f"1 {data}", "--batch-size", "4", "--max-steps", "12", "--lr", "5e-3",
             "--lora-dropout", "0",  # dropout masks come from the device's own generator
             "--seed", "0"]
    samples = work / "samples.jsonl"  # model samples differ by device (other generators): drawn once, on the cpu
    e2wm(["fisher", "--model", model, "--n", "8", "--max-len", "32", "--device", "cpu", "--write-samples",
          str(samples), "--samples-only", "--out", str(work / "unused.safetensors")])
    for run, device in (("a", "cpu"), ("b", other)):
        fisher = str(work / f"fisher-{run}.safetensors")
        e2wm(["fisher", "--model", model, "--corpus", str(samples), "--n", "8", "--max-len", "32", "--device",
              device, "--out", fisher])
        e2wm(["train", *short, "--fisher", str(work / "fisher-a.safetensors"), "--lambda", "50", "--device", device,
              "--out", str(work / f"train-{run}")])
        e2wm(["eval", "--model", model, "--adapter", str(work / f"train-{run}" / "adapter"), "--data",
              str(work / "eval"), "--device", device, "--max-new-tokens", "16", "--out", str(work / f"eval-{run}")])
    fishers = [load_file(work / f"fisher-{run}.safetensors") for run in "ab"]
    result: dict = {"fisher_max_relative_difference": max(
        float((fishers[0][k] - fishers[1][k]).abs().max() / fishers[0][k].abs().max().clamp_min(1e-30))
        for k in fishers[0])}
    logs = [read_jsonl(work / f"train-{run}" / "log.jsonl") for run in "ab"]
    result |= {"train_steps": len(logs[1]),
               "train_max_loss_difference": max(abs(a["loss"] - b["loss"]) for a, b in zip(*logs)),
               "train_max_ewc_difference": max(abs(a["ewc"] - b["ewc"]) for a, b in zip(*logs)),
               "train_last_loss": [logs[0][-1]["loss"], logs[1][-1]["loss"]]}
    for task in ("count", "plan_gen"):
        rows = [read_jsonl(work / f"eval-{run}" / "predictions" / f"{task}.jsonl") for run in "ab"]
        result[f"eval_{task}_same_predictions"] = f"{sum(a['prediction'] == b['prediction'] for a, b in zip(*rows))}"\
                                                  f" of {len(rows[0])}"
    rows = [read_jsonl(work / f"eval-{run}" / "predictions" / "count.jsonl") for run in "ab"]
    result["eval_count_max_score_difference"] = max(abs(x - y) for a, b in zip(*rows)
                                                    for x, y in zip(a["scores"], b["scores"]))
    for name, extra in (("fp32", []), ("bf16-weights", ["--dtype", "bfloat16"]), ("autocast-bf16", ["--autocast",
                                                                                                    "bf16"])):
        e2wm(["train", *short, "--method", "lora", "--device", other, *extra, "--out", str(work / f"lora-{name}")])
        result[f"lora_{name}_ce"] = [round(row["ce"], 4) for row in read_jsonl(work / f"lora-{name}" / "log.jsonl")]
    return result


def smollm2_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                       tie_word_embeddings=True, rope_theta=100000.0)


def gptj_config():
    from transformers import GPTJConfig

    return GPTJConfig()  # the defaults are GPT-J-6B's shapes: 28 layers, 4096 wide, vocabulary 50400


def timed_steps(config, dtype: torch.dtype, autocast: bool, batch: int, length: int, ewc: bool,
                checkpointing: bool = False, steps: int = 6) -> dict:
    """Median seconds of LoRA (r 8, default targets) training steps on random tokens; tokens/s, MFU, peak memory."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.cuda.empty_cache()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.config.use_cache = False
    attention = model.config._attn_implementation
    names = default_target_names(model)
    fisher = {n: torch.rand_like(layer.weight, dtype=torch.float32) for n, layer in target_layers(model, names).items()}
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=names))
    penalty = LoraEwc.build(model, fisher) if ewc else None
    if not ewc:
        del fisher
    model.train()
    flops = FlopCount.of(model).example(length, length) * batch
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, length), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for step in range(steps + 2):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=ids).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:])
            if penalty is not None:
                loss = loss + 0.5 * penalty()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step >= 2:  # two warm-up steps
            seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated()
    median = statistics.median(seconds)
    matmul_dtype = torch.bfloat16 if autocast else dtype
    rate = matmul_peak("cuda", matmul_dtype)
    del model, optimizer, penalty, ids, logits, loss
    torch.cuda.empty_cache()
    return {"batch": batch, "length": length, "weights": str(dtype).removeprefix("torch."), "autocast": autocast,
            "ewc": ewc, "checkpointing": checkpointing, "attention": attention, "seconds_per_step": round(median, 4),
            "tokens_per_s": round(batch * length / median), "model_tflops": round(flops / median / 1e12, 2),
            "matmul_peak_tflops": round(rate / 1e12, 1), "mfu": round(flops / median / rate, 3),
            "peak_gib": round(peak / GIB, 2)}


def speed() -> list[dict]:
    """Part 2: SmolLM2-135M's LoRA step in three precisions; GPT-J-6B's EWC-LoRA step and its memory plan."""
    rows = []
    small = smollm2_config()
    for dtype, autocast in ((torch.float32, False), (torch.bfloat16, False), (torch.float32, True)):
        rows.append({"model": "SmolLM2-135M shape", **timed_steps(small, dtype, autocast, 4, 512, ewc=False)})
    big = gptj_config()
    shapes = model_shapes(big)
    for batch, length, checkpointing in ((8, 512, False), (4, 2048, False), (4, 2048, True)):
        row = {"model": "GPT-J-6B shape", **timed_steps(big, torch.bfloat16, False, batch, length, ewc=True,
                                                         checkpointing=checkpointing, steps=4)}
        plan = plan_memory(shapes, "lora", batch, length, dtype="bfloat16").total(checkpointing)
        row |= {"planned_gib": round(plan / GIB, 2), "planned_over_measured": round(plan / GIB / row["peak_gib"], 2)}
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="part 1 with the cpu in place of cuda, no part 2")
    args = parser.parse_args()
    if not (args.dry_run or torch.cuda.is_available()):
        sys.exit("no CUDA device: this check is for a machine with an NVIDIA GPU")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(), "torch": torch.__version__}
    parts = [("agreement", lambda: agreement(args.out / "work", "cpu" if args.dry_run else "cuda"))]
    for name, part in parts + ([] if args.dry_run else [("speed", speed)]):
        started = time.perf_counter()
        try:
            report[name] = part()
        except Exception:  # a broken part is reported; the other still runs
            report[name] = {"error": traceback.format_exc()[-3000:]}
        report[f"{name}_seconds"] = round(time.perf_counter() - started, 1)
        (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str))
        print(json.dumps(report, indent=1, default=str)[-6000:], flush=True)
    if any(isinstance(report.get(n), dict) and "error" in report[n] for n in ("agreement", "speed")):
        sys.exit(1)


if __name__ == "__main__":
    main()
