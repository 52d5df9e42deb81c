"""Evaluation speed: our cached scoring and generation against the naive way, in one process.

QA: the naive way scores each option (and each unconditional "Answer:" option) with its own full
forward pass, as the paper's script did; ours runs each file's shared prefix once, each item's context
once, and all options of an item as one batch on the broadcast cache. Scores must agree to 1e-3.
Generation: stopping at the first newline against decoding the full 256-token budget, and the shared
prefix cache against none.

    python benchmarks/eval_speed.py --model smollm2-135m --limit 4
"""

import argparse
import time
from pathlib import Path

import torch

from e2wm.eval import generation, qa
from e2wm.eval.items import load_eval_files
from e2wm.models import ModelSpec, context_length, load_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "eval-dev"


@torch.no_grad()
def naive_option_logprob(model, context: list[int], continuation: list[int]) -> float:
    ids = torch.tensor([context + continuation])
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    start = len(context) - 1
    return sum(logprobs[start + i, t].item() for i, t in enumerate(continuation))


def naive_qa(model, tokenizer, task, encoded) -> list[list[float]]:
    """Per item, per option: log p(o|input) - (log p(o|Answer:) for 'un' tasks), each by its own full pass."""
    from e2wm.eval.encoding import encode_pair

    norm = task.spec.norm
    results = []
    for item, enc in zip(task.items, encoded):
        scores = []
        for option, tokens in zip(item.options, enc.options):
            score = naive_option_logprob(model, enc.context, tokens)
            if norm == "un":
                score -= naive_option_logprob(model, *encode_pair(tokenizer, "Answer:", " " + option))
            scores.append(score)
        results.append(scores)
    return results


def cached_qa(model, tokenizer, task, encoded, share_file_prefix: bool) -> list[list[float]]:
    norm = task.spec.norm
    logprobs = qa.option_logprobs(model, encoded, tokenizer.pad_token_id, share_file_prefix=share_file_prefix)
    if norm == "un":
        options = [o for item in task.items for o in item.options]
        unconditional = qa.unconditional_logprobs(model, tokenizer, options, tokenizer.pad_token_id)
        logprobs = [[lp - unconditional[o] for lp, o in zip(lps, item.options)]
                    for lps, item in zip(logprobs, task.items)]
    return logprobs


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--limit", type=int, default=4, help="items per file")
    parser.add_argument("--gen-limit", type=int, default=3, help="plan_gen items for the generation part")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, tokenizer = load_model(ModelSpec(args.model))
    max_length = context_length(model, tokenizer)
    tasks = load_eval_files([args.data])
    for task in tasks:
        task.items = task.items[: args.limit]
    qa_tasks = [t for t in tasks if t.kind == "multiple_choice"]
    encoded = [[qa.encode_item(tokenizer, item, max_length) for item in t.items] for t in qa_tasks]
    options = sum(len(item.options) for t in qa_tasks for item in t.items)
    print(f"model {args.model}; {len(qa_tasks)} QA files x {args.limit} items, {options} options; "
          f"torch threads {torch.get_num_threads()}")

    seconds = {"naive": {}, "item": {}, "file": {}}
    worst = 0.0
    for task, enc in zip(qa_tasks, encoded):  # the three ways in turn on each file, so load drifts hit all
        naive, seconds["naive"][task.name] = timed(naive_qa, model, tokenizer, task, enc)
        item, seconds["item"][task.name] = timed(cached_qa, model, tokenizer, task, enc, share_file_prefix=False)
        ours, seconds["file"][task.name] = timed(cached_qa, model, tokenizer, task, enc, share_file_prefix=True)
        for xs, ys, zs in zip(naive, item, ours):
            for x, y, z in zip(xs, ys, zs):
                worst = max(worst, abs(x - y), abs(x - z))
        spent = [seconds[way][task.name] for way in ("naive", "item", "file")]
        print(f"  {task.name:<18} options/item {len(task.items[0].options)}: naive {spent[0]:7.1f} s,"
              f" item cache {spent[1]:6.1f} s, + file prefix {spent[2]:6.1f} s")
    assert worst < 1e-3, f"scores disagree by {worst}"

    def report(label: str, names: list[str]) -> None:
        naive_s = sum(seconds["naive"][n] for n in names)
        item_s = sum(seconds["item"][n] for n in names)
        file_s = sum(seconds["file"][n] for n in names)
        print(f"QA {label}: naive {naive_s:.1f} s; item cache {item_s:.1f} s ({naive_s / item_s:.2f}x); "
              f"+ shared file prefix {file_s:.1f} s ({naive_s / file_s:.2f}x)")

    report("all files", [t.name for t in qa_tasks])
    report("4-option files", [t.name for t in qa_tasks if all(len(i.options) == 4 for i in t.items)])
    print(f"QA largest score difference against naive {worst:.2e} (must be < 1e-3)")

    gen = next(t for t in tasks if t.name == "plan_gen")
    prompts, _ = generation.encode_prompts(tokenizer, [i.input for i in gen.items[: args.gen_limit]], max_length, 256)
    full, full_s = timed(generation.generate, model, tokenizer, prompts, stop_at_newline=False, batch_size=2)
    stop, stop_s = timed(generation.generate, model, tokenizer, prompts, stop_at_newline=True, batch_size=2)
    cached, cached_s = timed(generation.generate, model, tokenizer, prompts, stop_at_newline=True)
    assert [generation.first_line(t) for t in full] == [generation.first_line(t) for t in stop]
    assert [generation.first_line(t) for t in cached] == [generation.first_line(t) for t in stop]
    print(f"GEN {len(prompts)} plan_gen prompts: 256 tokens, no stop {full_s:.1f} s; stop at newline {stop_s:.1f} s "
          f"({full_s / stop_s:.1f}x); + shared prefix cache {cached_s:.1f} s ({full_s / cached_s:.1f}x); "
          f"same first lines")


if __name__ == "__main__":
    main()
