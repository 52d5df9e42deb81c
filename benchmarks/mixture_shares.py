"""Each training file's share of the loss's token weight over an epoch, per batching and loss normalisation.

    python benchmarks/mixture_shares.py [--model smollm2-135m] [--max-len 800] [--data-dir DIR]

The share (e2wm.train.loop.effective_mixture) is what a file pulls on the gradient per unit NLL: the task
mixture a training run actually follows. "expected" is each file's share of sum(weight) over all answer
tokens. Tokens are counted with --model's tokenizer (GPT-Neo's is not available offline; the shares move
little between BPE tokenizers). The released training files are read from --data-dir.
"""

import argparse
import json
from pathlib import Path

from e2wm.benchmark import paper_mixture
from e2wm.models import ModelSpec, load_model
from e2wm.train.data import load_examples, parse_mixture, ref_weight
from e2wm.train.loop import Schedule, effective_mixture

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "train"
SETTINGS = [  # batching, loss normalisation, truncation, (batch size, accumulation) pairs
    ("random", "mixture", "left", [(20, 1), (5, 4), (4, 1), (1, 1)]),
    ("length", "mixture", "left", [(20, 1), (4, 1)]),
    ("random", "step", "left", [(20, 1), (4, 1), (2, 1), (1, 1)]),
    ("random", "micro-batch", "right", [(20, 1), (10, 1), (5, 4)]),
]


def own_weight_shares(examples, tasks: dict[str, str], epochs: int = 3) -> dict[str, float]:
    """The shares of the earlier default: length-grouped batches of 20, each divided by its own sum(weight)."""
    pull = {task: 0.0 for task in tasks.values()}
    schedule = Schedule(20, 1, 1, 1, None, 0, "length", "mixture")  # its batches only
    for epoch in range(epochs):
        for batch in schedule.batches([len(e.ids) for e in examples], epoch):
            group = [examples[i] for i in batch]
            for e in group:
                pull[tasks[e.source]] += e.weight * e.predicted_refs / ref_weight(group)
    total = sum(pull.values())
    return {task: value / total for task, value in pull.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-len", type=int, default=800)
    parser.add_argument("--data-dir", type=Path, default=TRAIN, help="folder of the released train_<task>.json files")
    args = parser.parse_args()
    _, tokenizer = load_model(ModelSpec(args.model, device="cpu"))
    mixture = parse_mixture("paper", args.data_dir)
    tasks = {path: task for (_, path), task in zip(mixture, paper_mixture())}
    rows = []
    for truncation in ("left", "right"):
        examples = load_examples(mixture, tokenizer, args.max_len, truncation)
        pull = {tasks[e.source]: 0.0 for e in examples}
        for e in examples:
            pull[tasks[e.source]] += e.weight * e.predicted_refs
        total = sum(pull.values())
        rows.append({"setting": f"expected (truncation {truncation})", **{t: v / total for t, v in pull.items()}})
        for batching, norm, cut, sizes in SETTINGS:
            if cut != truncation:
                continue
            for batch_size, grad_accum in sizes:
                schedule = Schedule(batch_size, grad_accum, 1, 1, None, 0, batching, norm)
                schedule.fit(examples)
                epochs = [effective_mixture(schedule, examples, epoch) for epoch in range(3)]
                shares = {tasks[s]: sum(e[s] for e in epochs) / 3 for s in epochs[0]}
                rows.append({"setting": f"{batching} batches, {norm} norm, truncation {cut}, "
                             f"batch {batch_size} x {grad_accum}", **shares})
        if truncation == "left":
            rows.append({"setting": "length batches, each step divided by its own weight (the earlier e2wm default), "
                         "batch 20 x 1", **own_weight_shares(examples, tasks)})
    for row in rows:
        print(json.dumps(row))
    print("| setting | " + " | ".join(paper_mixture()) + " |\n|---|" + "---|" * len(paper_mixture()))
    for row in rows:
        print(f"| {row['setting']} | " + " | ".join(f"{row[t]:.1%}" for t in paper_mixture()) + " |")


if __name__ == "__main__":
    main()
