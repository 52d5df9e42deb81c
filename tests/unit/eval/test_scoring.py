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
        for option, tokens, score in zip(item.options, enc.options, scores):
            assert tokens, option
            assert score == pytest.approx(naive_logprob(model, enc.context, tokens), abs=1e-4)


def test_shared_prefix_cache_is_restored(tiny_llama):
    model, tokenizer = load(tiny_llama)
    encoded = [qa.encode_item(tokenizer, item, 512) for item in ITEMS[:2]]
    shared = common_prefix([e.context for e in encoded])
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
    encoded = qa.EncodedItem([1], [[5], [6, 7]], False)
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
    assert len(cut.context) + max(len(o) for o in cut.options) == 40
    assert cut.context == full.context[-len(cut.context):]


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
    cached = generation.generate(model, tokenizer, prompts, max_new_tokens=12, stop=None)
    assert cached == plain
    stopped = generation.generate(model, tokenizer, prompts, max_new_tokens=12)
    for full, short in zip(plain, stopped):
        assert full.startswith(short)
        assert "\n" not in short[:-1]
        assert generation.first_line(short) == generation.first_line(full)


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_the_shared_prefix_cache_gives_plain_decoding_at_every_batch_size(fixture, request):
    """Prompts after the same worked examples, their rests of different lengths (a batch row is prefix, padding,
    rest): decoding on the prefix's cache, one at a time or 2 and 3 together, gives each prompt's plain greedy
    decode token for token."""
    model, tokenizer = load(request.getfixturevalue(fixture))
    questions = ["Question: To brush teeth, a related item could be\nAnswer:", "Q: tv?\nA:",
                 "Question: To watch tv in the living room after dinner, which item is needed most\nAnswer:"]
    prompts, _ = generation.encode_prompts(tokenizer, [SHOTS + q for q in questions], 512, 10)
    plain = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        plain.append(tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True))
    prefix = generation.shared_prefix(model, prompts)
    assert prefix is not None and len(prefix.tokens) >= len(tokenizer(SHOTS)["input_ids"]) - 1
    for batch_size in (1, 2, 3):
        assert generation.generate(model, tokenizer, prompts, max_new_tokens=10, stop=None,
                                   batch_size=batch_size) == plain
    assert generation.generate(model, tokenizer, prompts, max_new_tokens=10, stop=None, batch_size=2,
                               indices=[2, 0]) == [plain[2], plain[0]]


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


def merging_model():
    """A tiny llama whose BPE tokenizer has no pre-tokenizer, so that its merges cross spaces and the context/answer
    boundary: trained on "Answer: C" lines it learns "Answer: C" as one token, while "Answer:" alone is three
    (the shape of lm-evaluation-harness issue 1053)."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    corpus = ["Question: which one? Answer: C\n", "Answer: C\n", "Q: pick\nAnswer: D\n", "Answer: C is right.\n"] * 50
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=120, special_tokens=["<unk>", "<s>", "</s>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tokenizer.pad_token = tokenizer.eos_token
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1,
                         eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval(), tokenizer


def test_merges_across_the_boundary_score_exactly_the_option():
    model, tokenizer = merging_model()
    context = "Question: which one? Answer:"
    assert tokenizer.convert_ids_to_tokens(tokenizer("Answer: C").input_ids) == ["Answer: C"]  # the case holds
    own = tokenizer(context).input_ids
    for option in ["C", "D", "C is right."]:
        ids, scored = encode_pair(tokenizer, context, " " + option)
        assert ids == own  # every option sees the same context, all of it
        assert scored == tokenizer(" " + option).input_ids  # exactly the option's tokens
    item = QAItem(context, ["C", "D", "C is right."], 0)
    encoded = qa.encode_item(tokenizer, item, 256)
    assert encoded.options[2] == tokenizer(" C is right.").input_ids and len(encoded.options[2]) == 7
    scores = qa.option_logprobs(model, [encoded], tokenizer.pad_token_id)[0]
    for option, score in zip(item.options, scores):
        expected = naive_logprob(model, own, tokenizer(" " + option).input_ids)
        assert score == pytest.approx(expected, abs=1e-4)
    unconditional = qa.unconditional_logprobs(model, tokenizer, item.options, tokenizer.pad_token_id)
    answer = tokenizer("Answer:").input_ids
    for option in item.options:
        assert unconditional[option] == pytest.approx(naive_logprob(model, answer, tokenizer(" " + option).input_ids),
                                                      abs=1e-4)


def test_an_option_leaving_no_context_token_is_refused(tiny_gpt2):
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2)
    item = QAItem("Answer:", ["yes", "Walk to kitchen. Grab cup."], 0)
    longest = len(encode_pair(tokenizer, "Answer:", " Walk to kitchen. Grab cup.")[1])
    assert len(qa.encode_item(tokenizer, item, longest + 1).context) == 1  # one context token is enough
    with pytest.raises(ValueError, match=f"an option of {longest} tokens leaves no token of the question within "
                                         f"{longest}"):
        qa.encode_item(tokenizer, item, longest)
