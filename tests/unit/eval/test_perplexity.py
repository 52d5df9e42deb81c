"""Perplexity, e2wm's windows and the authors' way (`--ppl-mode paper`), against a plain loop per text."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from e2wm.eval.perplexity import PAPER_TOKENS, paper_perplexity, paper_sequences, perplexity

TEXTS = [
    "The river runs through the old town. " * 5,
    "Walk to kitchen. Grab cup. Open fridge. Put cup in fridge. Close fridge.",
    "John picked up the apple. Mary went to the office. How many items are there?",
    "Answer: hallway, dining room, bathroom, kitchen, bedroom, home office",
]


@torch.no_grad()
def paper_loop(model, tokenizer, texts: list[str], cut: int = 800) -> tuple[float, float, int]:
    """The authors' eval_ppl.py as a plain loop: no special tokens, the first `cut` tokens, one pass per text.

    Returns (2 ** mean NLL, exp(mean NLL), predicted tokens); NLL in nats, summed over positions 1.. of every text.
    """
    total, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids[:cut]
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)  # (T, V)
        total -= sum(logprobs[p - 1, ids[p]].item() for p in range(1, len(ids)))
        count += len(ids) - 1
    mean = total / count
    return 2**mean, math.exp(mean), count


def load(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_paper_mode_equals_a_plain_loop_and_takes_the_first_n_texts(fixture, request):
    model, tokenizer = load(request.getfixturevalue(fixture))
    result = paper_perplexity(model, tokenizer, TEXTS, max_texts=3, batch_size=2)
    base2, natural, tokens = paper_loop(model, tokenizer, TEXTS[:3])
    assert result["perplexity_base2"] == pytest.approx(base2, rel=1e-5)
    assert result["perplexity"] == pytest.approx(natural, rel=1e-5)
    assert result["nll"] == pytest.approx(math.log(natural), rel=1e-5)
    assert (result["tokens"], result["texts"], result["mode"]) == (tokens, 3, "paper")
    fewer = paper_perplexity(model, tokenizer, TEXTS, max_texts=2)
    assert fewer["texts"] == 2 and fewer["tokens"] < tokens
    assert fewer["perplexity_base2"] == pytest.approx(paper_loop(model, tokenizer, TEXTS[:2])[0], rel=1e-5)


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_paper_mode_cuts_each_text(fixture, request):
    model, tokenizer = load(request.getfixturevalue(fixture))
    result = paper_perplexity(model, tokenizer, TEXTS, max_tokens=8, batch_size=3)
    base2, _, tokens = paper_loop(model, tokenizer, TEXTS, cut=8)
    assert tokens == 4 * 7 and result["tokens"] == tokens  # every text is longer than 8 tokens
    assert result["perplexity_base2"] == pytest.approx(base2, rel=1e-5)


def test_paper_mode_cuts_at_800_tokens(tiny_llama):
    """Rotary positions let the tiny Llama read past its nominal 512, so the paper's own cut is tested as is."""
    model, tokenizer = load(tiny_llama)
    long = "Walk to kitchen. Grab cup. Open fridge. " * 120
    assert PAPER_TOKENS == 800 and len(tokenizer(long, add_special_tokens=False).input_ids) > 800
    result = paper_perplexity(model, tokenizer, [long, TEXTS[1]])
    base2, _, tokens = paper_loop(model, tokenizer, [long, TEXTS[1]])
    assert result["tokens"] == tokens == 799 + len(tokenizer(TEXTS[1], add_special_tokens=False).input_ids) - 1
    assert result["perplexity_base2"] == pytest.approx(base2, rel=1e-5)


def test_bos_is_left_out_in_paper_mode_and_kept_in_windows_mode(tiny_llama, tiny_gpt2):
    model, tokenizer = load(tiny_llama)  # SentencePiece-style: the tokenizer adds <s> by default
    bos = tokenizer.bos_token_id
    assert all(tokenizer(text).input_ids[0] == bos for text in TEXTS)
    assert all(ids[0] != bos for ids in paper_sequences(tokenizer, TEXTS, 10))
    windows, paper = perplexity(model, tokenizer, TEXTS, 512), paper_perplexity(model, tokenizer, TEXTS)
    assert windows["tokens"] == paper["tokens"] + len(TEXTS)  # with BOS each text's first token is predicted too
    assert windows["mode"] == "windows" and windows["nll"] != paper["nll"]
    model, tokenizer = load(tiny_gpt2)  # byte-level BPE: no BOS either way, texts under a window: the same numbers
    assert paper_sequences(tokenizer, TEXTS, 10) == [tokenizer(text).input_ids for text in TEXTS]
    windows, paper = perplexity(model, tokenizer, TEXTS, 512), paper_perplexity(model, tokenizer, TEXTS)
    assert windows["tokens"] == paper["tokens"] and windows["nll"] == pytest.approx(paper["nll"], rel=1e-5)
    assert paper["perplexity_base2"] == pytest.approx(2 ** paper["nll"])
    assert paper["perplexity_base2"] < paper["perplexity"]  # 2**x < e**x for x > 0


def test_texts_too_short_to_predict_are_dropped(tiny_gpt2):
    _, tokenizer = load(tiny_gpt2)
    assert paper_sequences(tokenizer, ["a", TEXTS[1]], 10) == [tokenizer(TEXTS[1]).input_ids]
