"""Training speed and memory: random batches (the default) and length-grouped ones, both with dynamic
padding, against pad-to-800, the EWC term's share of a step, per-sample gradients batched vs looped, the
Fisher's size against a whole-model copy (measured, and on paper for GPT-J-6B / GPT-Neo-1.3B), and the model
FLOPs utilisation of whole-model LoRA steps in float32 and under bf16 autocast (where the CPU has bf16), and a
profile of one such step (matrix products, dtype casts, the rest).

    python benchmarks/train_speed.py [--model smollm2-135m] [--examples 32] [--layers 2] [--only mfu|profile]

MFU = model FLOPs (e2wm.train.loop.FlopCount: PaLM's appendix-B count) / (seconds x the matmul peak measured
here, e2wm.train.loop.matmul_peak, in the dtype the matmuls run in); the step's time is split into forward,
backward and optimiser, and the padding's share of the computed tokens is given, to say where the rest goes.

Ratios are measured in this one run on the same machine. --layers keeps only the first K decoder
layers for the batching and per-sample-gradient comparisons (this CPU is slow; padding costs the
same in every layer); the EWC share and the Fisher memory use the whole model.
"""

import argparse
import json
import os
import random
import resource
import time
from pathlib import Path

import torch

from e2wm.models import ModelSpec, autocast, load_model, native_bf16
from e2wm.train.data import Example, collate, encode_example, length_grouped_batches, random_batches
from e2wm.train.ewc import LoraEwc, lora_layers
from e2wm.train.fisher import accumulate, per_text_losses, prepare_for_fisher, zero_sums
from e2wm.train.loop import FlopCount, matmul_peak, weighted_nll_sum
from e2wm.train.targets import default_target_names, target_layers

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "train"
FILES = ["train_plan_gen.json", "train_act_recog.json", "train_count.json", "train_obj_move.json"]
MAX_LEN = 800


def released_examples(tokenizer) -> list[Example]:
    pairs = [json.loads(line) for name in FILES for line in (TRAIN / name).open()]
    return [encode_example(tokenizer, p["input"], p["ref"], 1.0, MAX_LEN) for p in pairs]


def padding_efficiency(lengths: list[int], batch_size: int) -> dict[str, float]:
    """Computed tokens (batch x its longest example) over the whole released set, for each batching."""
    def computed(batches):
        return sum(max(lengths[i] for i in b) * len(b) for b in batches)

    return {"real_tokens": sum(lengths), "grouped_computed": computed(length_grouped_batches(lengths, batch_size, 0)),
            "random_computed": computed(random_batches(len(lengths), batch_size, 0)),
            "pad800_computed": MAX_LEN * len(lengths)}


def with_lora(model, seed=0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    names = default_target_names(model)
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=names,
                                            task_type="CAUSAL_LM"))


def truncate_layers(model, keep: int):
    """Keep the first `keep` decoder layers (Llama-style `model.layers`)."""
    model.model.layers = model.model.layers[:keep]
    model.config.num_hidden_layers = keep
    return model


def time_steps(model, batches: list[list[Example]], pad_id: int, pad_to: int | None) -> float:
    """Seconds for forward + backward over the batches (weights are not updated: same work every run)."""
    start = time.perf_counter()
    for batch in batches:
        data = collate(batch, pad_id)
        if pad_to:  # the same batch, padded on to pad_to tokens (masked, no loss)
            extra = pad_to - data["input_ids"].shape[1]
            data = {k: torch.nn.functional.pad(v, (0, extra), value=pad_id if k == "input_ids" else 0)
                    for k, v in data.items()}
        weighted_nll_sum(model, data).backward()
        model.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def batching(args, model, tokenizer, examples) -> dict:
    rng = random.Random(0)
    sample = rng.sample(examples, args.examples)
    lengths = [len(e.ids) for e in sample]
    grouped = [[sample[i] for i in b] for b in length_grouped_batches(lengths, args.batch_size, seed=0)]
    plain = [sample[i : i + args.batch_size] for i in range(0, len(sample), args.batch_size)]  # a random draw
    model = with_lora(truncate_layers(model, args.layers))
    model.train()
    time_steps(model, grouped[:1], tokenizer.pad_token_id, None)  # warm-up
    dynamic = time_steps(model, grouped, tokenizer.pad_token_id, None)
    random_dynamic = time_steps(model, plain, tokenizer.pad_token_id, None)
    padded = time_steps(model, plain, tokenizer.pad_token_id, MAX_LEN)
    return {"examples": len(sample), "mean_len": sum(lengths) / len(lengths), "grouped_s": dynamic,
            "random_s": random_dynamic, "pad800_s": padded, "grouped_ex_per_s": len(sample) / dynamic,
            "random_ex_per_s": len(sample) / random_dynamic, "pad800_ex_per_s": len(sample) / padded,
            "grouped_over_random": random_dynamic / dynamic, "random_over_pad800": padded / random_dynamic,
            "speedup": padded / dynamic}


def ewc_share(args, model, tokenizer, examples) -> dict:
    model = with_lora(model)
    model.train()
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.01)
    fisher = {n: torch.rand(layer.base_layer.weight.shape) for n, layer in lora_layers(model).items()}
    penalty = LoraEwc.build(model, fisher)
    batch = collate(random.Random(1).sample(examples, args.batch_size), tokenizer.pad_token_id)
    start = time.perf_counter()
    weighted_nll_sum(model, batch).backward()
    step = time.perf_counter() - start
    reps = 5
    start = time.perf_counter()
    for _ in range(reps):
        penalty().backward()
    ewc = (time.perf_counter() - start) / reps
    tokens = int(batch["attention_mask"].sum())
    return {"step_s": step, "ewc_s": ewc, "share": ewc / (step + ewc), "batch_tokens": tokens}


def fisher_memory(model, tokenizer) -> dict:
    layers = target_layers(model, default_target_names(model))
    fisher_values = sum(layer.weight.numel() for layer in layers.values())
    model_values = sum(p.numel() for p in model.parameters())
    prepare_for_fisher(model, layers)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sums = zero_sums(layers)
    texts = ["The kitchen has a fridge, a stove and a table with two cups on it. " * 4] * 4
    accumulate(model, layers, [tokenizer(t).input_ids[:64] for t in texts], tokenizer.pad_token_id, sums, 4)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"fisher_values": fisher_values, "model_values": model_values, "fisher_mb": fisher_values * 4 / 2**20,
            "model_mb": model_values * 4 / 2**20, "ratio": fisher_values / model_values,
            "peak_rss_growth_mb": (after - before) / 1024}


def fisher_speed(model, tokenizer, examples, n: int = 8) -> dict:
    """Per-sample squared gradients: our batched hooks (batch n) against one backward pass per text."""
    layers = target_layers(model, default_target_names(model))
    prepare_for_fisher(model, layers)
    texts = [e.ids[:128] for e in random.Random(2).sample(examples, n)]
    start = time.perf_counter()
    accumulate(model, layers, texts, tokenizer.pad_token_id, zero_sums(layers), batch_size=n)
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for ids in texts:
        x = torch.tensor([ids])
        per_text_losses(model, x, torch.ones_like(x))[0].backward()
        _ = [layer.weight.grad.float().pow(2) for layer in layers.values()]
        model.zero_grad(set_to_none=True)
    loop = time.perf_counter() - start
    return {"texts": n, "tokens": sum(map(len, texts)), "batched_s": batched, "loop_s": loop, "speedup": loop / batched}


def mfu(args, model, tokenizer, examples, precision) -> dict:
    """Whole-model LoRA steps (forward, backward, AdamW) on --batch-size released examples each, timed by part;
    the first step is a warm-up. precision: None (float32) or torch.bfloat16 (autocast)."""
    model = with_lora(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    count, rng = FlopCount.of(model), random.Random(3)
    peak = matmul_peak("cpu", precision or torch.float32)
    times = {"forward_s": 0.0, "backward_s": 0.0, "optimizer_s": 0.0}
    flops = tokens = computed = 0
    for step in range(args.mfu_steps + 1):
        batch = rng.sample(examples, args.batch_size)
        data = collate(batch, tokenizer.pad_token_id)
        start = time.perf_counter()
        with autocast(precision, "cpu"):
            loss = weighted_nll_sum(model, data)
        forward = time.perf_counter()
        loss.backward()
        backward = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = time.perf_counter()
        if step:  # the first is the warm-up
            for key, seconds in zip(times, (forward - start, backward - forward, done - backward)):
                times[key] += seconds
            flops += sum(count.example(len(e.ids), e.predicted_refs) for e in batch)
            tokens += sum(len(e.ids) for e in batch)
            computed += data["input_ids"].numel()
    seconds = sum(times.values())
    achieved = flops / seconds
    return {"dtype": str(precision or torch.float32), "steps": args.mfu_steps, "batch": args.batch_size,
            "tokens": tokens, "padding_share": 1 - tokens / computed, "seconds_per_step": seconds / args.mfu_steps,
            "tokens_per_s": tokens / seconds, "model_gflop_per_step": flops / 1e9 / args.mfu_steps,
            "achieved_gflop_s": achieved / 1e9, "matmul_peak_gflop_s": peak / 1e9, "mfu": achieved / peak,
            **{key: value / args.mfu_steps for key, value in times.items()},
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()}


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
           "aten::_scaled_dot_product_flash_attention_for_cpu_backward")
CASTS = ("aten::copy_", "aten::_to_copy", "aten::to")


def profile(args, model, tokenizer, examples, precision) -> dict:
    """Where one whole-model LoRA step's time goes (after a warm-up step): torch.profiler's self CPU time of each
    operator, summed into matrix products (MATMULS, attention included), dtype casts (CASTS: autocast's copies of
    weights and activations to and from bf16) and everything else (element-wise, norms, softmax, loss, optimiser),
    in seconds and as shares of the step."""
    model = with_lora(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    data = collate(random.Random(3).sample(examples, args.batch_size), tokenizer.pad_token_id)

    def step():
        with autocast(precision, "cpu"):
            loss = weighted_nll_sum(model, data)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        step()
    seconds = {"matmul": 0.0, "cast": 0.0, "other": 0.0}
    for event in profiler.key_averages():
        kind = "matmul" if event.key in MATMULS else "cast" if event.key in CASTS else "other"
        seconds[kind] += event.self_cpu_time_total / 1e6
    total = sum(seconds.values())
    return {"dtype": str(precision or torch.float32), "step_s": total,
            **{f"{kind}_s": value for kind, value in seconds.items()},
            **{f"{kind}_share": value / total for kind, value in seconds.items()},
            "threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def on_paper() -> dict:
    """Fisher (q_proj, v_proj) vs whole-model float32 values for the paper's models, from their configs."""
    from transformers import AutoModelForCausalLM, GPTJConfig, GPTNeoConfig

    configs = {
        "GPT-J-6B": GPTJConfig(n_embd=4096, n_layer=28, n_head=16, rotary_dim=64, vocab_size=50400, n_positions=2048),
        "GPT-Neo-1.3B": GPTNeoConfig(hidden_size=2048, num_layers=24, num_heads=16, vocab_size=50257,
                                     attention_types=[[["global", "local"], 12]], max_position_embeddings=2048),
    }
    rows = {}
    for name, config in configs.items():
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        total = sum(p.numel() for p in model.parameters())
        fisher = sum(m.weight.numel() for m in target_layers(model, default_target_names(model)).values())
        rows[name] = {"model_values": total, "fisher_values": fisher, "ratio": fisher / total,
                      "fisher_gb": fisher * 4 / 2**30, "model_gb": total * 4 / 2**30}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=32, help="released examples timed per batching")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2, help="decoder layers kept for the batching timing")
    parser.add_argument("--mfu-steps", type=int, default=2, help="timed LoRA steps per dtype for the MFU")
    parser.add_argument("--only", choices=["mfu", "profile"], help="run only this part")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model(ModelSpec(args.model, device="cpu"))
    examples = released_examples(tokenizer)
    for precision in (None, torch.bfloat16):
        if precision is None or native_bf16("cpu") is None:
            for part, measure in (("mfu", mfu), ("profile", profile)):
                if args.only in (None, part):
                    print(json.dumps({part: measure(args, load_model(ModelSpec(args.model, device="cpu"))[0],
                                                    tokenizer, examples, precision)}))
    if args.only:
        return
    lengths = [len(e.ids) for e in examples]
    print(json.dumps({"released": {size: padding_efficiency(lengths, size) for size in (args.batch_size, 20)}}))
    print(json.dumps({"paper_shapes": on_paper()}))
    print(json.dumps({"fisher_memory": fisher_memory(model, tokenizer)}))
    model, _ = load_model(ModelSpec(args.model, device="cpu"))
    print(json.dumps({"fisher_speed": fisher_speed(truncate_layers(model, args.layers), tokenizer, examples)}))
    model, _ = load_model(ModelSpec(args.model, device="cpu"))
    print(json.dumps({"ewc_share": ewc_share(args, model, tokenizer, examples)}))
    model, _ = load_model(ModelSpec(args.model, device="cpu"))
    print(json.dumps({"batching": batching(args, model, tokenizer, examples)}))


if __name__ == "__main__":
    main()
