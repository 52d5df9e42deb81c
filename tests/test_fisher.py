"""e2wm fisher: batched per-sample gradients equal a naive loop; files, headers, resume, model samples, mismatch."""

import json

import pytest
import torch
from safetensors import safe_open

from e2wm.cli import main
from e2wm.errors import InputError
from e2wm.models import ModelSpec, load_model
from e2wm.recipes import fisher as fisher_recipe
from e2wm.text import read_corpus
from e2wm.train.corpus import sample_texts
from e2wm.train.fisher import (
    accumulate,
    check_fisher,
    encode_texts,
    load_fisher,
    per_text_losses,
    prepare_for_fisher,
    zero_sums,
)
from e2wm.train.targets import default_target_names, target_layers

TEXTS = [
    "Walk to kitchen. Grab cup. Open fridge.",
    "Q: How to brush teeth? Given items include toothbrush.",
    "There are 3 items on the table.",
    "John picked up the apple. Mary went to the office. How many items are there?",
    "Answer: hallway, dining room, bathroom",
]


def naive_fisher(model, layers, sequences):
    """Mean over texts of the squared weight gradient, one backward pass per text."""
    sums = {name: torch.zeros_like(layer.weight, dtype=torch.float32) for name, layer in layers.items()}
    for ids in sequences:
        model.zero_grad(set_to_none=True)
        x = torch.tensor([ids])
        per_text_losses(model, x, torch.ones_like(x))[0].backward()
        for name, layer in layers.items():
            sums[name] += layer.weight.grad.float() ** 2
    return {name: s / len(sequences) for name, s in sums.items()}


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_batched_fisher_equals_naive_loop(fixture, request):
    model, tokenizer = load_model(ModelSpec(str(request.getfixturevalue(fixture)), device="cpu"))
    layers = target_layers(model, default_target_names(model))
    prepare_for_fisher(model, layers)
    sequences = encode_texts(tokenizer, TEXTS, max_len=12)
    assert max(len(s) for s in sequences) == 12 and min(len(s) for s in sequences) < 12  # padding exercised
    sums = zero_sums(layers)
    accumulate(model, layers, sequences, tokenizer.pad_token_id, sums, batch_size=3)
    expected = naive_fisher(model, layers, sequences)
    assert set(sums) == set(expected) and len(sums) == (4 if fixture == "tiny_llama" else 2)
    for name in sums:
        assert sums[name].dtype == torch.float32
        assert sums[name].abs().sum() > 0
        torch.testing.assert_close(sums[name] / len(sequences), expected[name], rtol=1e-4, atol=1e-10)


def write_corpus(path, texts=TEXTS):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def test_fisher_command_file_header_and_values(tiny_gpt2, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(tiny_gpt2), "--corpus", str(corpus), "--n", "4", "--max-len", "10",
          "--out", str(out)])
    header, tensors = load_fisher(out)
    assert header.modules == ["c_attn"] and header.n == 4 and header.max_len == 10 and header.dtype == "float32"
    assert header.shapes == {"transformer.h.0.attn.c_attn": [32, 96], "transformer.h.1.attn.c_attn": [32, 96]}
    with safe_open(str(out), framework="pt") as handle:
        assert json.loads(handle.metadata()["e2wm_fisher"])["corpus"] == str(corpus)
    model, tokenizer = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))
    layers = target_layers(model, ["c_attn"])
    expected = naive_fisher(model, layers, encode_texts(tokenizer, TEXTS, 10)[:4])
    for name, value in tensors.items():
        torch.testing.assert_close(value, expected[name], rtol=1e-4, atol=1e-10)
    assert not (tmp_path / "f.safetensors.partial").exists()


def test_fisher_resumes_from_partial_sums(tiny_llama, tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    args = ["fisher", "--model", str(tiny_llama), "--corpus", str(corpus), "--n", "5", "--max-len", "12",
            "--batch-size", "2", "--save-every", "2", "--modules", "q_proj,k_proj"]
    main(args + ["--out", str(tmp_path / "whole.safetensors")])
    calls = []
    real = fisher_recipe.accumulate

    def interrupted(*a, **k):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        real(*a, **k)

    monkeypatch.setattr(fisher_recipe, "accumulate", interrupted)
    with pytest.raises(SystemExit):
        main(args + ["--out", str(tmp_path / "resumed.safetensors")])
    assert (tmp_path / "resumed.safetensors.partial" / "sums.safetensors").is_file()
    monkeypatch.setattr(fisher_recipe, "accumulate", real)
    main(args + ["--out", str(tmp_path / "resumed.safetensors")])
    whole, resumed = load_fisher(tmp_path / "whole.safetensors"), load_fisher(tmp_path / "resumed.safetensors")
    assert resumed[0].modules == ["q_proj", "k_proj"] and resumed[0].n == 5
    for name in whole[1]:
        assert torch.equal(whole[1][name], resumed[1][name])


def test_model_samples_are_seeded(tiny_llama):
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    first = sample_texts(model, tokenizer, 3, max_len=8, seed=1, batch_size=2)
    assert len(first) == 3 and all(isinstance(t, str) and t for t in first)
    assert sample_texts(model, tokenizer, 3, max_len=8, seed=1, batch_size=2) == first
    assert sample_texts(model, tokenizer, 3, max_len=8, seed=2, batch_size=2) != first


def test_fisher_command_with_model_samples(tiny_llama, tmp_path):
    out = tmp_path / "f.safetensors"
    samples = tmp_path / "samples.jsonl"
    main(["fisher", "--model", str(tiny_llama), "--n", "3", "--max-len", "8", "--out", str(out),
          "--write-samples", str(samples)])
    header, tensors = load_fisher(out)
    assert header.corpus == "model-samples" and header.n == 3 and len(tensors) == 4
    assert len(read_corpus(samples)) == 3


def test_plain_text_corpus_is_split_into_paragraphs(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("One paragraph\nstill one.\n\nTwo.\n\n\n")
    assert read_corpus(path) == ["One paragraph\nstill one.", "Two."]


def test_mismatched_fisher_is_rejected(tiny_llama, tiny_gpt2, tmp_path):
    model, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    layers = target_layers(model, ["q_proj", "v_proj"])
    good = {name: torch.zeros(layer.weight.shape) for name, layer in layers.items()}
    check_fisher("f", good, layers)
    missing = dict(list(good.items())[1:])
    with pytest.raises(InputError, match="modules do not match"):
        check_fisher("f", missing, layers)
    wrong_shape = {**good, "model.layers.0.self_attn.q_proj": torch.zeros(3, 3)}
    with pytest.raises(InputError, match=r"q_proj has shape \[3, 3\]"):
        check_fisher("f", wrong_shape, layers)


def test_corpus_from_a_saved_hf_dataset(tmp_path, capsys):
    """A local Hugging Face dataset (save_to_disk) is a corpus too: its train split's "text" column."""
    from datasets import Dataset, DatasetDict

    from e2wm.cli import main

    DatasetDict({"train": Dataset.from_dict({"text": ["First text.", " ", "Second text."]}),
                 "test": Dataset.from_dict({"text": ["Other."]})}).save_to_disk(str(tmp_path / "ds"))
    assert read_corpus(tmp_path / "ds") == ["First text.", "Second text."]
    Dataset.from_dict({"body": ["x"]}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(SystemExit) as exit_info:
        main(["fisher", "--model", "unused", "--corpus", str(tmp_path / "bad"), "--out", str(tmp_path / "f")])
    assert exit_info.value.code == 2
    assert "field 'text' is missing (columns: body)" in capsys.readouterr().err
