"""The newline stop: e2wm's StopAt criterion against transformers' own `stop_strings`, same run.

Both end each sequence at its first newline; stop_strings matches the decoded text, StopAt the
ids of the tokens whose text holds a newline (found once per tokenizer). Prints seconds per prompt for
each (greedy, batch 1, no prefix cache, so that only the stop differs; the fastest of alternating rounds),
the ratio, each one's set-up, and whether the first lines agree.

    python benchmarks/stop_strings.py --model smollm2-135m --limit 5
"""

import argparse
import time
from pathlib import Path

import torch

from e2wm.eval import generation
from e2wm.eval.items import read_eval_file
from e2wm.models import ModelSpec, context_length, load_model

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "e2wm-benchmark" / "eval-dev" / "gen" / "plan_gen.json"


@torch.no_grad()
def decode(model, tokenizer, prompts: list[list[int]], max_new_tokens: int, ours: bool) -> tuple[list[str], float]:
    """(continuations, seconds) with one of the two stops; the first call of each pays its set-up."""
    kwargs = {"generation_config": generation.decoding_config(tokenizer, max_new_tokens, 1)}
    if ours:
        kwargs["stopping_criteria"] = generation.StoppingCriteriaList([generation.StopAt(tokenizer)])
    else:
        kwargs.update(stop_strings=[generation.STOP], tokenizer=tokenizer)
    texts, start = [], time.perf_counter()
    for prompt in prompts:
        ids = torch.tensor([prompt])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        texts.append(tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True))
    return texts, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="an E2WM generation file")
    parser.add_argument("--limit", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model, tokenizer = load_model(ModelSpec(args.model, device="cpu"))
    items = read_eval_file(Path(args.data)).items[: args.limit]
    prompts, _ = generation.encode_prompts(tokenizer, [i.input for i in items], context_length(model, tokenizer),
                                           args.max_new_tokens)
    setup = time.perf_counter()
    generation.stop_token_ids(tokenizer)
    ours_setup = time.perf_counter() - setup
    decode(model, tokenizer, prompts[:1], 8, ours=True)  # warm the model up
    _, first_s = decode(model, tokenizer, prompts[:1], 1, ours=False)  # stop_strings' set-up, 1 token
    ours_s = theirs_s = float("inf")
    for _ in range(args.rounds):  # alternate, keep each one's fastest round: load from other work drifts
        ours, seconds = decode(model, tokenizer, prompts, args.max_new_tokens, ours=True)
        ours_s = min(ours_s, seconds)
        theirs, seconds = decode(model, tokenizer, prompts, args.max_new_tokens, ours=False)
        theirs_s = min(theirs_s, seconds)
    same = [generation.first_line(a) == generation.first_line(b) for a, b in zip(ours, theirs)]
    print(f"{len(prompts)} prompts, greedy, up to {args.max_new_tokens} new tokens, torch threads "
          f"{torch.get_num_threads()}")
    print(f"StopAt:        {ours_s / len(prompts):.3f} s per prompt (+ {ours_setup:.2f} s once per tokenizer)")
    print(f"stop_strings:  {theirs_s / len(prompts):.3f} s per prompt (first call with 1 token: {first_s:.2f} s)")
    print(f"stop_strings / StopAt time: {theirs_s / ours_s:.2f}x; same first lines: {sum(same)}/{len(same)}")


if __name__ == "__main__":
    main()
