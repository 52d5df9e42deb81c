"""`e2wm fisher`: files and headers, resume from partial sums, model samples, a saved dataset as corpus."""

import json

import pytest
import torch
from helpers.training import TEXTS, naive_fisher
from safetensors import safe_open

from e2wm.cli import main
from e2wm.models import ModelSpec, load_model
from e2wm.recipes import fisher as fisher_recipe
from e2wm.text import read_corpus
from e2wm.train.fisher import encode_texts, load_fisher
from e2wm.train.targets import target_layers


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


def interrupt_after(chunks: int, monkeypatch) -> None:
    """Make the next `e2wm fisher` stop (as Ctrl-C does) after chunks partial saves."""
    calls, real = [], fisher_recipe.accumulate

    def interrupted(*a, **k):
        if len(calls) == chunks:
            monkeypatch.setattr(fisher_recipe, "accumulate", real)  # the rerun computes normally
            raise KeyboardInterrupt
        calls.append(1)
        real(*a, **k)

    monkeypatch.setattr(fisher_recipe, "accumulate", interrupted)


@pytest.mark.parametrize("changed", ["corpus", "model"])
def test_partial_sums_of_a_corpus_or_model_changed_in_place_are_recomputed(changed, tiny_gpt2, tmp_path,
                                                                             monkeypatch, capsys):
    """The corpus file (or the model's weights) replaced under the same name between an interrupted run and its
    rerun: the partial sums are of other inputs, so the Fisher is computed afresh and equals an uninterrupted
    run on the new inputs (it was 67-86% off when they were resumed)."""
    import shutil

    from conftest import build_tiny_model

    model = shutil.copytree(tiny_gpt2, tmp_path / "model")
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    args = ["fisher", "--model", str(model), "--corpus", str(corpus), "--n", "5", "--max-len", "12",
            "--batch-size", "2", "--save-every", "2"]
    interrupt_after(1, monkeypatch)
    with pytest.raises(SystemExit):
        main(args + ["--out", str(tmp_path / "f.safetensors")])
    assert (tmp_path / "f.safetensors.partial" / "sums.safetensors").is_file()
    if changed == "corpus":
        write_corpus(corpus, [text.upper() for text in reversed(TEXTS)])
    else:
        other = build_tiny_model(tmp_path / "retrained", style="bpe", arch="gpt2", seed=1)
        shutil.copy(other / "model.safetensors", model / "model.safetensors")
    capsys.readouterr()
    main(args + ["--out", str(tmp_path / "f.safetensors")])
    assert "partial sums were computed from another corpus or model content" in capsys.readouterr().out
    main(args + ["--out", str(tmp_path / "clean.safetensors")])
    resumed, clean = load_fisher(tmp_path / "f.safetensors")[1], load_fisher(tmp_path / "clean.safetensors")[1]
    for name in clean:
        assert torch.equal(resumed[name], clean[name])
    assert not (tmp_path / "f.safetensors.partial").exists()


def test_fisher_command_with_model_samples(tiny_llama, tmp_path):
    out = tmp_path / "f.safetensors"
    samples = tmp_path / "samples.jsonl"
    main(["fisher", "--model", str(tiny_llama), "--n", "3", "--max-len", "8", "--out", str(out),
          "--write-samples", str(samples)])
    header, tensors = load_fisher(out)
    assert header.corpus == "model-samples" and header.n == 3 and len(tensors) == 4
    assert len(read_corpus(samples)) == 3


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


def test_fisher_and_adapter_files_get_the_usual_permissions(tiny_gpt2, tmp_path):
    """safetensors writes 0600 files (a temporary renamed into place); e2wm's outputs get 0666 less the umask, so
    that others on a shared machine can read them as they read the rest of a run."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        corpus = write_corpus(tmp_path / "corpus.jsonl")
        main(["fisher", "--model", str(tiny_gpt2), "--corpus", str(corpus), "--n", "2", "--max-len", "10",
              "--out", str(tmp_path / "f.safetensors")])
        pairs = tmp_path / "a.jsonl"
        pairs.write_text(json.dumps({"input": "Q: Walk?\nA:", "ref": "Walk to kitchen."}) + "\n")
        main(["train", "--model", str(tiny_gpt2), "--train", f"1 {pairs}", "--method", "lora", "--max-steps", "1",
              "--batch-size", "1", "--out", str(tmp_path / "run")])
    finally:
        os.umask(mask)
    for file in [tmp_path / "f.safetensors", *(tmp_path / "run" / "adapter").iterdir()]:
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file
