"""Does the EWC penalty bite? Compare trained adapters: perplexity on held-out general text and the
Fisher-weighted squared weight change sum(F * dW**2), raw and on the authors' 8-bit codes (paper scale).

    python benchmarks/ewc_check.py --fisher fisher.safetensors --texts heldout.jsonl \\
        --run lora=runs/lora --run ewc=runs/ewc [--model smollm2-135m]

Each run is an `e2wm train` directory (adapter/, log.jsonl); the base model is measured too. Prints a JSON
table: perplexity (exp of the mean NLL in nats over the texts' tokens), the two sums, and the training CE.
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from e2wm.eval.perplexity import perplexity
from e2wm.files import read_jsonl
from e2wm.models import ModelSpec, load_model
from e2wm.recipes.demo import GENERAL_TEXT
from e2wm.text import read_corpus
from e2wm.train.fisher import load_fisher
from e2wm.train.fisher_scale import paper_codes


def weighted_change(adapter: Path, fisher: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(sum F dW^2, sum codes dW^2) with dW = (alpha / r) B @ A from the saved adapter (Linear layers)."""
    config = json.loads((adapter / "adapter_config.json").read_text())
    scaling = config["lora_alpha"] / config["r"]
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    raw = codes = 0.0
    for name, f in fisher.items():
        prefix = f"base_model.model.{name}"
        delta = scaling * weights[f"{prefix}.lora_B.weight"].double() @ weights[f"{prefix}.lora_A.weight"].double()
        raw += float((f.double() * delta**2).sum())
        codes += float((paper_codes(f).double() * delta**2).sum())
    return raw, codes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--fisher", required=True, help="the raw Fisher file the runs were trained with")
    parser.add_argument("--texts", required=True, help="held-out general text (the demo's paragraphs are added)")
    parser.add_argument("--run", action="append", required=True, metavar="NAME=DIR")
    args = parser.parse_args()
    fisher = load_fisher(args.fisher)[1]
    texts = read_corpus(args.texts) + [record["text"] for record in read_jsonl(Path(str(GENERAL_TEXT)))]
    table = {}
    for name, run in [("base", None), *(item.split("=", 1) for item in args.run)]:
        adapter = Path(run) / "adapter" if run else None
        model, tokenizer = load_model(ModelSpec(args.model, adapter=str(adapter) if adapter else None, device="cpu"))
        row = perplexity(model, tokenizer, texts, 1024, 4)
        if adapter:
            row["sum_F_dW2_raw"], row["sum_codes_dW2"] = weighted_change(adapter, fisher)
            log = read_jsonl(Path(run) / "log.jsonl")
            row["ce_last10_mean"] = sum(r["ce"] for r in log[-10:]) / len(log[-10:])
        table[name] = row
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
