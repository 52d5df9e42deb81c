"""`e2wm plan-memory`'s estimate against the measured peak memory of one real training step on CPU.

The plan uses attention="eager": PyTorch's CPU attention keeps the length^2 probabilities for backward.
Each case runs in a fresh process: after the imports, the peak resident set is reset and the process
builds the model from its config (random weights: the same bytes as loaded ones), wraps it with LoRA
(or trains it fully), makes the Fisher, AdamW, and runs one step (forward, CE + EWC, backward, update).
The measured figure is the peak resident set minus the resident set before the model existed.

    python benchmarks/memory_check.py            # tiny Llama and SmolLM2-135M (its config; no weights read)
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

CASES = [
    # (model, method, batch, length, gradient checkpointing)
    ("tiny", "ewc-lora", 16, 512, False),
    ("tiny", "full", 16, 512, False),
    ("smollm2-135m", "ewc-lora", 1, 800, False),
    ("smollm2-135m", "ewc-lora", 1, 800, True),
    ("smollm2-135m", "ewc-lora", 4, 400, False),
    ("smollm2-135m", "full", 1, 800, False),
]


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def tiny_config():
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=8000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                       num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=1024)


def config_of(name: str):
    from transformers import AutoConfig

    from e2wm.models import resolve_model_path

    return tiny_config() if name == "tiny" else AutoConfig.from_pretrained(resolve_model_path(name))


def child(case: list) -> None:
    """Measure one case in this (fresh) process and print the bytes as JSON."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from e2wm.train.ewc import FullEwc, LoraEwc
    from e2wm.train.targets import default_target_names, target_layers

    name, method, batch, length, checkpointing = case
    config = config_of(name)
    torch.manual_seed(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set
    before = rss_kib("VmRSS")
    model = AutoModelForCausalLM.from_config(config)
    model.config.use_cache = False
    names = default_target_names(model)
    layers = target_layers(model, names)
    fisher = {n: torch.rand_like(layer.weight, dtype=torch.float32) for n, layer in layers.items()}
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if method == "full":
        penalty = FullEwc.build(layers, fisher)
    else:
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=32, lora_dropout=0.1, target_modules=names))
        penalty = LoraEwc.build(model, fisher)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, length))
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:]) + 2.0 * penalty()
    loss.backward()
    optimizer.step()
    print(json.dumps({"bytes": (rss_kib("VmHWM") - before) * 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    from e2wm.methods import resolve_method
    from e2wm.train.memory import GIB, model_shapes, plan_memory

    header = f"{'model':<14}{'method':<10}{'batch x len':>12}{'ckpt':>6}{'planned GiB':>13}{'measured GiB':>14}"
    print(header + f"{'ratio':>7}")
    for case in CASES:
        name, method, batch, length, checkpointing = case
        shapes = model_shapes(config_of(name))
        adapter_kind, regularisers = resolve_method(method, None, None, fisher="measured")
        planned = plan_memory(shapes, adapter_kind, batch, length, attention="eager",
                              regularisers=tuple(regularisers.split(","))).total(checkpointing)
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        measured = json.loads(out.stdout.strip().splitlines()[-1])["bytes"]
        print(f"{name:<14}{method:<10}{f'{batch} x {length}':>12}{'yes' if checkpointing else 'no':>6}"
              f"{planned / GIB:13.3f}{measured / GIB:14.3f}{planned / measured:7.2f}")


if __name__ == "__main__":
    main()
