"""Log-likelihood scoring with shared prefix caches equals a naive full-sequence computation."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from e2wm.eval import generation, qa
from e2wm.eval.encoding import encode_pair, special_prefix
from e2wm.eval.items import QAItem
from e2wm.eval.prefix_cache import common_prefix, run_tokens

SHOTS = "Question: To wash dishes, a related item could be\nAnswer: sink\n\n" * 3
ITEMS = [
    QAItem(SHOTS + "Question: To brush teeth, a related item could be\nAnswer:", ["toothbrush", "fridge", "tv"], 0),
    QAItem(SHOTS + "Question: To watch tv, a related item could be\nAnswer:", ["television", "cup", "a", "bed"], 0),
    QAItem("How many items are there on the table?\nA:", ["0", "1", "2", "3", "4"], 2),
]


def load(path):
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


@torch.no_grad()
def naive_logprob(model, context: list[int], continuation: list[int]) -> float:
    """Each option by its own full forward pass, as the paper's script did."""
    ids = torch.tensor([context + continuation])
    logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    positions = range(len(context) - 1, len(context) + len(continuation) - 1)
    return sum(logprobs[p, t].item() for p, t in zip(positions, continuation))


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_option_logprobs_equal_naive(fixture, request):
    model, tokenizer = load(request.getfixturevalue(fixture))
    encoded = [qa.encode_item(tokenizer, item, 512) for item in ITEMS]
    fast = qa.option_logprobs(model, encoded, tokenizer.pad_token_id)
    for item, enc, scores in zip(ITEMS, encoded, fast):
        assert len(scores) == len(item.options)
        for option, context, tokens, score in zip(item.options, enc.contexts, enc.options, scores):
            assert tokens, option
            assert score == pytest.approx(naive_logprob(model, context, tokens), abs=1e-4)


def test_shared_prefix_cache_is_restored(tiny_llama):
    model, tokenizer = load(tiny_llama)
    encoded = [qa.encode_item(tokenizer, item, 512) for item in ITEMS[:2]]
    shared = common_prefix([c for e in encoded for c in e.contexts])
    assert len(shared) > qa.MIN_SHARED_TOKENS  # the few-shot block really is shared
    first = qa.option_logprobs(model, encoded, tokenizer.pad_token_id)
    again = qa.option_logprobs(model, list(reversed(encoded)), tokenizer.pad_token_id)
    for a, b in zip(first, reversed(again)):
        assert a == pytest.approx(b, abs=1e-5)


def test_unconditional_logprobs_equal_naive(tiny_gpt2):
    model, tokenizer = load(tiny_gpt2)
    scores = qa.unconditional_logprobs(model, tokenizer, ["sink", "cup", "sink", "kitchen table"], 0)
    assert sorted(scores) == ["cup", "kitchen table", "sink"]
    for option, score in scores.items():
        context, tokens = encode_pair(tokenizer, "Answer:", " " + option)
        assert score == pytest.approx(naive_logprob(model, context, tokens), abs=1e-4)


def test_normalisations_by_hand():
    item = QAItem("q", ["a", "bb"], 1)
    encoded = qa.EncodedItem([[1], [1]], [[5], [6, 7]], False)
    assert qa.normalise(item, encoded, [-2.0, -3.0], "ln", None) == [-2.0, -1.5]
    assert qa.normalise(item, encoded, [-2.0, -3.0], "un", {"a": -1.0, "bb": -4.0}) == [-1.0, 1.0]
    assert qa.argmax([-1.0, 1.0]) == 1


def test_space_boundary_bpe(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    context, continuation = encode_pair(tokenizer, "Answer:", " yes")
    assert special_prefix(tokenizer) == []
    assert tokenizer.decode(context) == "Answer:"
    assert tokenizer.decode(continuation) == " yes"
    assert tokenizer.convert_ids_to_tokens(continuation)[0].startswith("Ġ")
    # a trailing space on the context moves to the continuation: the same tokens either way
    assert encode_pair(tokenizer, "Answer: ", "yes") == (context, continuation)


def test_space_boundary_sentencepiece(tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    context, continuation = encode_pair(tokenizer, "Answer:", " yes")
    assert context[0] == tokenizer.bos_token_id  # Llama-style BOS kept in front of the context
    assert special_prefix(tokenizer) == [tokenizer.bos_token_id]
    assert tokenizer.convert_ids_to_tokens(continuation)[0].startswith("▁")
    assert tokenizer.decode(continuation).strip() == "yes"
    assert encode_pair(tokenizer, "Answer: ", "yes") == (context, continuation)
    # the whole sequence is exactly the tokenizer's own encoding of context + continuation
    assert context + continuation == tokenizer("Answer: yes").input_ids


def test_truncation_from_the_left(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    item = QAItem("Walk to kitchen. " * 50 + "Answer:", ["yes", "no"], 0)
    full = qa.encode_item(tokenizer, item, 10_000)
    cut = qa.encode_item(tokenizer, item, 40)
    assert not full.truncated and cut.truncated
    assert all(len(c) + max(len(o) for o in cut.options) <= 40 for c in cut.contexts)
    assert cut.contexts[0] == full.contexts[0][-len(cut.contexts[0]):]


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_generation_paths_agree_and_stop_at_newline(fixture, request):
    model, tokenizer = load(request.getfixturevalue(fixture))
    prompts, _ = generation.encode_prompts(tokenizer, [i.input for i in ITEMS], 512, 12)
    plain = []
    for prompt in prompts:  # reference: one plain greedy decode per prompt, no stop criterion
        ids = torch.tensor([prompt])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=12,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        plain.append(tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True))
    cached = generation.generate(model, tokenizer, prompts, max_new_tokens=12, stop_at_newline=False)
    assert cached == plain
    stopped = generation.generate(model, tokenizer, prompts, max_new_tokens=12)
    for full, short in zip(plain, stopped):
        assert full.startswith(short)
        assert "\n" not in short[:-1]
        assert generation.first_line(short) == generation.first_line(full)


def test_batched_generation_matches_single(tiny_gpt2):
    model, tokenizer = load(tiny_gpt2)
    prompts, _ = generation.encode_prompts(tokenizer, [i.input for i in ITEMS], 512, 8)
    single = generation.generate(model, tokenizer, prompts, max_new_tokens=8)
    batched = generation.generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=3)
    assert [generation.first_line(t) for t in batched] == [generation.first_line(t) for t in single]


def test_run_tokens_extends_prefix(tiny_llama):
    model, _ = load(tiny_llama)
    prefix = run_tokens(model, [1, 5, 6, 7])
    whole = run_tokens(model, [1, 5, 6, 7, 8, 9], prefix)
    direct = run_tokens(model, [1, 5, 6, 7, 8, 9])
    assert torch.allclose(whole.next_logprobs, direct.next_logprobs, atol=1e-5)
