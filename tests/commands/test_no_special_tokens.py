"""A tokenizer with neither a pad, an EOS nor a BOS token (lm-evaluation-harness issue 434, OpenCompass PR 287):
eval, fisher and train work, padding with id 0, a plain token that is never scored, and give what unpadded
forward passes give; the Fisher's model samples, which need a start token, are refused in one line."""

import json
import math

import pytest
import torch
from adversarial.support import refused
from helpers.decoding import naive_greedy
from helpers.files import write
from helpers.training import PAIRS, TEXTS, naive_fisher
from safetensors.torch import load_file

from e2wm.cli import main
from e2wm.models import ModelSpec, load_model, pad_id
from e2wm.train.data import collate, encode_example
from e2wm.train.fisher import encode_texts, prepare_for_fisher
from e2wm.train.loop import weighted_nll_sums
from e2wm.train.targets import default_target_names, target_layers

QA = [{"input": "Question: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed", "tv"],
       "answer": "sink"},
      {"input": "Question: How many items are on the table?\nAnswer:", "answer_list": ["3", "12", "one hundred"],
       "answer": "3"}]
GEN = [{"input": p, "ref": "Walk to kitchen."} for p in ("Q: How to brush teeth?\nA:", "Walk to kitchen. Grab",
                                                          "Question: How many items are there?\nAnswer:")]


@pytest.fixture(scope="module")
def no_specials(tmp_path_factory):
    """A tiny GPT-2 whose byte-level BPE tokenizer has no special token at all; config and generation config
    name no bos, eos or pad id. Its id 0 is an ordinary byte token ("!")."""
    from conftest import CORPUS
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, GPT2Config, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("no-specials")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=[],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(directory)
    config = GPT2Config(vocab_size=tok.get_vocab_size(), n_embd=32, n_layer=2, n_head=4, n_positions=512,
                        bos_token_id=None, eos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    return directory


@torch.no_grad()
def logprob(model, context: list[int], continuation: list[int]) -> float:
    """log p(continuation | context) from one unpadded forward pass, in nats."""
    logits = model(torch.tensor([context + continuation])).logits[0]
    steps = torch.log_softmax(logits[len(context) - 1 : -1], dim=-1)
    return float(steps.gather(1, torch.tensor(continuation)[:, None]).sum())


def option_ids(tokenizer, context: str, option: str) -> tuple[list[int], list[int]]:
    whole, ids = tokenizer(context + " " + option).input_ids, tokenizer(context).input_ids
    assert whole[: len(ids)] == ids
    return ids, whole[len(ids):]


def test_the_fixture_has_no_special_token(no_specials):
    _, tokenizer = load_model(ModelSpec(str(no_specials), device="cpu"))
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (None, None, None)
    assert pad_id(tokenizer) == 0 and tokenizer.decode([0], skip_special_tokens=True) == "!"  # a plain token
    assert len(tokenizer) == 400  # nothing added to the vocabulary


@pytest.mark.parametrize("batch_size", [1, 3])
def test_eval_equals_unpadded_forward_passes(no_specials, tmp_path, batch_size):
    write(tmp_path / "data" / "qa" / "count.json", QA)  # ln
    write(tmp_path / "data" / "qa" / "housework_qa.json", QA)  # un
    write(tmp_path / "data" / "gen" / "plan_gen.json", GEN)
    texts = ["Walk to kitchen. Grab cup. Open fridge.", "There are 3 items on the table.", "John went."]
    ppl = write(tmp_path / "ppl.jsonl", [{"text": t} for t in texts])
    out = tmp_path / "run"
    main(["eval", "--model", str(no_specials), "--data", str(tmp_path / "data"), "--ppl-data", str(ppl),
          "--max-new-tokens", "8", "--batch-size", str(batch_size), "--out", str(out)])
    model, tokenizer = load_model(ModelSpec(str(no_specials), device="cpu"))

    def rows(name):
        return [json.loads(line) for line in (out / "predictions" / f"{name}.jsonl").read_text().splitlines()]

    for row, item in zip(rows("count"), QA):  # ln: log-prob per option token
        pairs = [option_ids(tokenizer, item["input"], o) for o in item["answer_list"]]
        assert row["scores"] == pytest.approx([logprob(model, c, o) / len(o) for c, o in pairs], abs=1e-4)
    for row, item in zip(rows("housework_qa"), QA):  # un: minus log p(option | "Answer:")
        expected = [logprob(model, *option_ids(tokenizer, item["input"], o))
                    - logprob(model, *option_ids(tokenizer, "Answer:", o)) for o in item["answer_list"]]
        assert row["scores"] == pytest.approx(expected, abs=1e-4)
    assert [r["prediction"] for r in rows("plan_gen")] == [naive_greedy(model, tokenizer, g["input"], 8) for g in GEN]
    nll = [-logprob(model, ids[:1], ids[1:]) for ids in (tokenizer(t).input_ids for t in texts)]
    tokens = sum(len(tokenizer(t).input_ids) - 1 for t in texts)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ppl"]["perplexity"] == pytest.approx(math.exp(sum(nll) / tokens), rel=1e-5)


def test_fisher_equals_per_text_gradients(no_specials, tmp_path):
    corpus = write(tmp_path / "corpus.jsonl", [{"text": t} for t in TEXTS])
    out = tmp_path / "fisher.safetensors"
    main(["fisher", "--model", str(no_specials), "--corpus", str(corpus), "--n", "5", "--batch-size", "3",
          "--max-len", "12", "--out", str(out)])
    model, tokenizer = load_model(ModelSpec(str(no_specials), device="cpu"))
    layers = target_layers(model, default_target_names(model))
    prepare_for_fisher(model, layers)
    sequences = encode_texts(tokenizer, TEXTS, max_len=12)
    assert len({len(s) for s in sequences}) > 1  # padding exercised
    saved, expected = load_file(str(out)), naive_fisher(model, layers, sequences)
    assert set(expected) <= set(saved)
    for name, value in expected.items():
        torch.testing.assert_close(saved[name], value, rtol=1e-4, atol=1e-10)


def test_training_loss_never_scores_the_padding(no_specials, tmp_path, capsys):
    model, tokenizer = load_model(ModelSpec(str(no_specials), device="cpu"))
    examples = [encode_example(tokenizer, text, ref, 1.0, 64) for text, ref in PAIRS]
    assert len({len(e.ids) for e in examples}) > 1  # padding exercised
    with torch.no_grad():
        padded = weighted_nll_sums(model, collate(examples, pad_id(tokenizer)))
        other_pad = weighted_nll_sums(model, collate(examples, 7))
        alone = torch.cat([weighted_nll_sums(model, collate([e], 0)) for e in examples])
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(padded, other_pad, rtol=1e-5, atol=1e-6)
    data = write(tmp_path / "pairs.jsonl", [{"input": t, "ref": r} for t, r in PAIRS])
    main(["train", "--model", str(no_specials), "--train", f"1 {data}", "--method", "lora", "--max-steps", "2",
          "--batch-size", "3", "--out", str(tmp_path / "run")])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "loss" in row] == [1, 2]
    assert all(math.isfinite(row["loss"]) for row in log if "loss" in row)


def test_model_samples_need_a_start_token(no_specials, tmp_path, capsys):
    line = refused(["fisher", "--model", no_specials, "--n", "2", "--out", tmp_path / "f.safetensors"], tmp_path,
                   capsys)
    assert "--corpus model-samples: the tokenizer has neither a BOS nor an EOS token" in line


def test_empty_qa_input_needs_a_start_token(no_specials, tmp_path, capsys):
    data = write(tmp_path / "count.jsonl", [{"input": "", "answer_list": ["3", "4"], "answer": "3"}])
    line = refused(["eval", "--model", no_specials, "--data", data, "--out", tmp_path / "run"], tmp_path, capsys)
    assert "count.jsonl:1" in line and "neither a BOS nor an EOS token" in line
