"""Generation: greedy (or beam) decoding that stops at the first newline; prediction = first line, stripped.
(EAI's native prompts ask for a JSON object instead, possibly over several lines: those stop at its first '}',
and the prediction is the text up to it; `cut`.)

Source: the authors' `eval_gen.py` (up to 256 new tokens, prediction `pred.split('\\n')[0].strip()`). It decodes
the whole 256-token budget with 4 beams and cuts at the newline afterwards; e2wm decodes greedily by default
and stops each sequence at its first newline (`--beam-stop newline`). With beams the two can differ: a
beam that reaches a newline is finished then and scored by its first line alone (length-normalised), so
the winning beam need not be the one whose whole 256 tokens score best. `--beam-stop full`
(stop=None) decodes as the authors did. Under greedy decoding both give the same first line
(the tokens up to the first newline are chosen the same way; stopping only drops what follows).

Decoding follows e2wm's options only (`decoding_config`), never the model's generation_config.json: Hub models often
ship sampling settings there (do_sample, temperature, top-k/p, repetition penalties, no-repeat n-grams, minimum
lengths, forced or suppressed tokens), and transformers' `generate` fills every field the passed config leaves unset
from the model's (transformers 5.x `_prepare_generation_config`), so "greedy" would not be greedy (transformers
issue 29080). `decoding.own_settings_only` hides the model's file during a call; `decoding.ignored_settings` says
what it held that e2wm did not follow (logged and recorded in the eval run's config.json).
"""

import copy
from functools import cache

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from e2wm.chat import user_turn
from e2wm.decoding import ignored_settings, own_settings_only
from e2wm.eval.encoding import encode, encode_rendered
from e2wm.eval.prefix_cache import Prefix, broadcast, common_prefix, model_device, run_tokens, supports_prefix_cache
from e2wm.models import pad_id

STOP = "\n"


def first_line(text: str) -> str:
    """The prediction: text before the first newline, stripped of surrounding whitespace."""
    return text.split(STOP, 1)[0].strip()


def cut(text: str, stop: str = STOP) -> str:
    """The prediction of a decoded text: its first line (stop a newline), else the text up to and including the
    first stop string (EAI's JSON ends at '}'), stripped; the whole text, stripped, when the stop never comes."""
    if stop == STOP:
        return first_line(text)
    head, found, _ = text.partition(stop)
    return (head + found).strip()


def encode_prompts(tokenizer, prompts: list[str], max_length: int, max_new_tokens: int, chat: bool = False):
    """Prompt ids cut from the left so that prompt + new tokens fit; also how many were cut.

    Args:
        prompts: the items' input texts; each is encoded here with `encode` (leading special tokens kept).
        max_length: the model's context, in tokens.
        max_new_tokens: the decoding budget, in tokens.
        chat: each prompt is first rendered as the user's turn of the tokenizer's chat template, the assistant's
            turn opened (`chat.user_turn`), and encoded with `encode_rendered` (a BOS the template wrote is not
            doubled): lm-evaluation-harness's `--apply_chat_template` for generate_until.
    Returns:
        (per prompt its last max_length - max_new_tokens token ids, the number of prompts that were cut).
    """
    budget = max_length - max_new_tokens
    encoded = ([encode_rendered(tokenizer, user_turn(tokenizer, prompt)) for prompt in prompts] if chat
               else [encode(tokenizer, prompt) for prompt in prompts])
    truncated = sum(len(ids) > budget for ids in encoded)
    return [ids[max(0, len(ids) - budget):] for ids in encoded], truncated


@cache
def stop_token_ids(tokenizer, stop: str = STOP) -> tuple[int, ...]:
    """Ids of every token whose text contains the stop string (found once per tokenizer and stop by decoding all V
    tokens)."""
    return tuple(i for i in range(len(tokenizer)) if stop in tokenizer.decode([i]))


class StopAt(StoppingCriteria):
    """Finish a sequence as soon as it produces a token containing the stop string (a newline by default)."""

    def __init__(self, tokenizer, stop: str = STOP):
        self.ids = torch.tensor(stop_token_ids(tokenizer, stop))

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        """input_ids: (B, T) long, prompts + tokens so far -> (B,) bool: the last token holds the stop string."""
        return torch.isin(input_ids[:, -1], self.ids.to(input_ids.device))  # (B,) bool


def decoding_config(tokenizer, max_new_tokens: int, num_beams: int) -> GenerationConfig:
    """e2wm's decoding as a GenerationConfig: greedy (num_beams 1) or beam search, never sampling.

    max_new_tokens is in tokens; pad (`models.pad_id`) and EOS ids come from the tokenizer (no EOS: decoding stops
    at the newline or after max_new_tokens). Every other field is left unset, so that transformers' neutral
    defaults apply (no penalty, no forced or suppressed token) under `decoding.own_settings_only`.
    """
    return GenerationConfig(max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
                            pad_token_id=pad_id(tokenizer), eos_token_id=tokenizer.eos_token_id)


def ignored_model_settings(model, tokenizer, max_new_tokens: int, num_beams: int) -> dict:
    """What the model's generation_config.json sets that e2wm's decoding with these options does not follow
    (`decoding.ignored_settings` of `decoding_config`): field -> the model's value; {} for a plain file."""
    return ignored_settings(model, decoding_config(tokenizer, max_new_tokens, num_beams))


def shared_prefix(model, prompts: list[list[int]]) -> Prefix | None:
    """All the prompts' common token prefix run once (`run_tokens`), stopping one token short of the shortest
    prompt so that every prompt has a token left to run; None when it has under 8 tokens or the model's cache is
    not a plain dynamic one (`supports_prefix_cache`)."""
    shared = common_prefix(prompts)[: min(len(p) for p in prompts) - 1]
    if len(shared) < 8:
        return None
    prefix = run_tokens(model, shared)
    return prefix if supports_prefix_cache(prefix.cache) else None


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int = 256, num_beams: int = 1,
             batch_size: int = 1, stop: str | None = STOP, progress=None,
             indices: list[int] | None = None) -> list[str]:
    """Decoded continuations (full text, not yet cut at the newline) of the prompts at indices (default all).

    Greedy decoding runs all the prompts' common prefix once (`shared_prefix`: the E2WM files' worked examples, EAI's
    2,000-token instructions) and decodes every prompt on its cache: deep-copied per prompt at batch size 1; at
    larger batch sizes broadcast along the batch (`prefix_cache.broadcast`, no copy), each row the prefix, then left
    padding, then the prompt's rest (the padding is masked out; positions count the real tokens only, so a row sees
    what it would alone). Beam search decodes whole prompts, left-padded.

    Args:
        prompts: token ids of every prompt of the file (from `encode_prompts`); the shared prefix is taken
            over all of them, so that a shard computes what the whole would.
        max_new_tokens: the most tokens generated per prompt.
        num_beams: 1 for greedy decoding, K for beam search (no prefix cache then).
        batch_size: prompts decoded together.
        stop: stop each sequence at its first token holding this string (a newline; `--beam-stop newline`); None
            decodes the whole max_new_tokens budget, as the authors' eval_gen.py did (`--beam-stop full`).
        progress: called with the number of prompts done after each prompt or batch.
        indices: positions in prompts to decode (a process's shard); None for all.
    Returns:
        one string per chosen prompt, in order: the new tokens decoded with special tokens skipped.
    """
    kwargs = {"generation_config": decoding_config(tokenizer, max_new_tokens, num_beams)}
    if stop is not None:
        kwargs["stopping_criteria"] = StoppingCriteriaList([StopAt(tokenizer, stop)])
    device = model_device(model)
    chosen = prompts if indices is None else [prompts[i] for i in indices]
    outputs: list[str] = []
    with own_settings_only(model):
        prefix = shared_prefix(model, prompts) if num_beams == 1 and chosen else None
        if batch_size == 1:
            for prompt in chosen:
                ids = torch.tensor([prompt], device=device)  # (1, T) long
                extra = {"cache": copy.deepcopy(prefix.cache)} if prefix is not None else {}
                out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs, **extra)
                outputs.append(tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True))  # (1, T + new)
                if progress is not None:
                    progress(1)
            return outputs
        pad = pad_id(tokenizer)
        head = prefix.tokens if prefix is not None else []  # P tokens, cached
        for start in range(0, len(chosen), batch_size):
            rests = [p[len(head):] for p in chosen[start : start + batch_size]]
            width = max(len(r) for r in rests)
            ids = torch.tensor([head + [pad] * (width - len(r)) + r for r in rests], device=device)  # (B, P + W)
            mask = torch.tensor([[1] * len(head) + [0] * (width - len(r)) + [1] * len(r) for r in rests],
                                device=device)  # (B, P + W), 0 on the padding
            extra = {"cache": broadcast(prefix.cache, len(rests))} if prefix is not None else {}
            out = model.generate(input_ids=ids, attention_mask=mask, **kwargs, **extra)  # (B, P + W + new) long
            outputs.extend(tokenizer.decode(row[ids.shape[1]:], skip_special_tokens=True) for row in out)
            if progress is not None:
                progress(len(rests))
    return outputs
