"""Training data: reference tokens, truncation, random and length-grouped batches, mixtures and bad training files."""

import logging

import pytest
import torch

from e2wm.errors import InputError
from e2wm.models import ModelSpec, load_model
from e2wm.train.data import (
    collate,
    encode_example,
    length_grouped_batches,
    load_examples,
    parse_mixture,
    random_batches,
    read_pairs,
    sequential_batches,
)
from e2wm.train.loop import weighted_nll_sum


def test_ref_tokens_are_the_reference(tiny_gpt2, tiny_llama):
    for path in (tiny_gpt2, tiny_llama):
        _, tokenizer = load_model(ModelSpec(str(path), device="cpu"))
        example = encode_example(tokenizer, "Walk to kitchen.", "Open fridge.", 1.0, 64)
        ref_ids = [i for i, r in zip(example.ids, example.is_ref) if r]
        assert tokenizer.decode(ref_ids).replace("<unk>", "\n").strip() == "Open fridge."  # tiny llama: no "\n"
        short = encode_example(tokenizer, "Walk to kitchen. " * 20, "Open fridge.", 1.0, 10)
        assert len(short.ids) == 10 and short.ids[-len(ref_ids):] == ref_ids  # the ref survives truncation


def test_right_truncation_keeps_the_start_and_can_lose_the_ref(tiny_gpt2, tmp_path, caplog):
    model, tokenizer = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))
    whole = encode_example(tokenizer, "Walk to kitchen. " * 20, "Open fridge.", 1.0, 800)
    cut = encode_example(tokenizer, "Walk to kitchen. " * 20, "Open fridge.", 1.0, 10, "right", "a.json")
    assert cut.ids == whole.ids[:10] and not any(cut.is_ref) and cut.source == "a.json"
    batch = collate([cut, cut], tokenizer.pad_token_id)
    loss = weighted_nll_sum(model, batch)  # no ref token: 0, and still differentiable (DDP needs a backward)
    loss.backward()
    assert loss.item() == 0.0 and all(torch.all(p.grad == 0) for p in model.parameters() if p.grad is not None)
    data = tmp_path / "long.json"
    data.write_text('{"input": "%s", "ref": "Open fridge."}\n{"input": "Walk.", "ref": "Sit."}\n' % ("Walk. " * 40))
    with caplog.at_level(logging.WARNING, logger="e2wm"):
        examples = load_examples([(1.0, str(data))], tokenizer, 16, "right")
    assert [any(e.is_ref) for e in examples] == [False, True]
    assert f"{data}: 1 of 2 examples keep no answer token within --max-len 16 (--truncation right)" in caplog.text
    with pytest.raises(InputError, match=r"long.json: none of its 2 examples keeps an answer token within --max-len 2"):
        load_examples([(1.0, str(data))], tokenizer, 2, "right")


def test_random_batches_are_a_seeded_shuffle_cut_in_order():
    batches = random_batches(10, 4, seed=5)
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(sum(batches, [])) == list(range(10))
    assert batches == random_batches(10, 4, seed=5) and batches != random_batches(10, 4, seed=6)
    assert random_batches(10, 2, seed=5) == [b[i : i + 2] for b in batches for i in range(0, len(b), 2)]


def test_sequential_batches_keep_the_files_order():
    assert sequential_batches(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert sequential_batches(3, 8) == [[0, 1, 2]] and sequential_batches(0, 2) == []


def test_length_grouped_batches_cover_every_example_once():
    lengths = [5, 50, 7, 48, 6, 49, 8, 47, 3]
    batches = length_grouped_batches(lengths, 2, seed=3, group=8)
    assert sorted(i for b in batches for i in b) == list(range(9))
    assert length_grouped_batches(lengths, 2, seed=3, group=8) == batches
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches if len(b) == 2]
    assert max(spreads) <= 3  # grouped: short with short, long with long


def test_mixture_parsing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.json").write_text("")
    (tmp_path / "b.json").write_text("")
    assert parse_mixture("1 a.json 0.7 b.json") == [(1.0, "a.json"), (0.7, "b.json")]
    for bad, message in [("1 a.json 0.7", "pairs"), ("x a.json", "not a weight"), ("-1 a.json", "positive"),
                         ("", "pairs"), ("nan a.json", "positive"), ("1 missing.json", "missing.json: no such file")]:
        with pytest.raises(InputError, match=message):
            parse_mixture(bad)


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ('{"input": "a", "ref": "b"}\n{"ref": "b"}\n', ":2: field 'input' is missing"),
    ('{"input": "a", "ref": 3}\n', ":1: field 'ref' must be str"),
    ('{"input": "a", "ref": "b"}\nnot json\n', ":2: bad JSON"),
])
def test_bad_training_files_name_file_line_and_field(tmp_path, content, message):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_pairs(path)
