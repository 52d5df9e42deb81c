"""`e2wm eval --ppl-data A B ...`: each general text its own perplexity set (ppl, ppl:<label>), saved, reused on a
re-run and recomputed when what it depends on changes; labels that collide; and the report pairing every set."""

import json
import re

import pytest
from helpers.files import write

from e2wm.cli import main

QA = {"input": "Question: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed"],
      "answer": "sink"}
GENERAL = ["The river runs through the old town.", "Mary went to the office and sat down."]
WIKI = ["Walk to kitchen. Grab cup. Open fridge.", "There are 3 items on the table.", "John picked up the apple."]


def run_eval(*args) -> None:
    main(["eval", *map(str, args)])


@pytest.fixture
def files(tmp_path):
    data = write(tmp_path / "data" / "housework_qa.json", [QA, QA | {"answer": "bed"}])
    general = write(tmp_path / "text" / "general.jsonl", [{"text": t} for t in GENERAL])
    wiki = write(tmp_path / "text" / "wiki.jsonl", [{"text": t} for t in WIKI])
    prose = write(tmp_path / "text" / "prose.txt", ["Open the door.\n\nClose the door and walk to the bedroom."])
    return data, general, wiki, prose


def rows(out, task: str) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions" / f"{task}.jsonl").read_text().splitlines()]


def counting(monkeypatch) -> list[int]:
    """Patch the windows' scorer to record the number of texts of each call (one call per set computed)."""
    from e2wm.eval import run

    calls, real = [], run.window_losses

    def window_losses(model, tokenizer, texts, *args, **kwargs):
        calls.append(len(texts))
        return real(model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(run, "window_losses", window_losses)
    return calls


def test_each_file_is_its_own_set_saved_and_reused_when_one_is_added(tiny_gpt2, files, tmp_path, capsys,
                                                                       monkeypatch):
    data, general, wiki, prose = files
    out, alone = tmp_path / "run", tmp_path / "alone"
    calls = counting(monkeypatch)
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--ppl-data", general, wiki)
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["housework_qa", "ppl", "ppl:wiki"] and calls == [2, 3]
    assert (metrics["ppl"]["texts"], metrics["ppl:wiki"]["texts"]) == (2, 3)
    assert [len(rows(out, task)) for task in ("ppl", "ppl:wiki")] == [2, 3]
    assert sum(row["tokens"] for row in rows(out, "ppl:wiki")) == metrics["ppl:wiki"]["tokens"]
    assert re.search(r"^\| ppl:wiki \| perplexity \| [\d.]+ \(\d+ tokens\) \|", (out / "results.md").read_text(), re.M)
    # a further file's set is what the file gives as the only one: computed on its own, with the same statistics
    run_eval("--model", tiny_gpt2, "--data", data, "--out", alone, "--ppl-data", wiki)
    assert json.loads((alone / "metrics.json").read_text())["ppl"] == metrics["ppl:wiki"]
    assert rows(alone, "ppl") == rows(out, "ppl:wiki")
    capsys.readouterr()
    calls.clear()
    # a file added, and an option only the E2WM tasks read: the two sets done are reused, only the new one computed
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--ppl-data", general, wiki, prose,
             "--max-new-tokens", 3)
    printed = capsys.readouterr().out
    assert calls == [2] and "ppl: already evaluated" in printed and "ppl:wiki: already evaluated" in printed
    again = json.loads((out / "metrics.json").read_text())
    assert list(again) == ["housework_qa", "ppl", "ppl:wiki", "ppl:prose"] and again["ppl:prose"]["texts"] == 2
    assert {k: again[k] for k in ("ppl", "ppl:wiki")} == {k: metrics[k] for k in ("ppl", "ppl:wiki")}
    # a setting the perplexity reads (the bootstrap's seed) recomputes every set
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--ppl-data", general, wiki, prose, "--seed", 7)
    assert calls == [2, 2, 3, 2] and "ppl: already evaluated" not in capsys.readouterr().out


def test_two_further_files_with_one_label_are_refused_before_the_model_loads(files, tmp_path, capsys):
    data, general, wiki, _ = files
    other = write(tmp_path / "elsewhere" / "wiki.jsonl", [{"text": "Another wiki."}])
    with pytest.raises(SystemExit) as stop:
        run_eval("--model", tmp_path / "no-such-model", "--data", data, "--out", tmp_path / "run", "--ppl-data",
                 general, wiki, other)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"--ppl-data {wiki} and {other} have the same label 'wiki' (task ppl:wiki: a further file's "
                        "label is its name without the extension); rename one") and "\n" not in err
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_further_file_with_nothing_to_predict_is_named(tiny_gpt2, files, tmp_path, capsys):
    data, general, _, _ = files
    short = write(tmp_path / "text" / "short.jsonl", [{"text": "Walk"}])
    with pytest.raises(SystemExit) as stop:
        run_eval("--model", tiny_gpt2, "--data", data, "--out", tmp_path / "run", "--ppl-data", general, short)
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"--ppl-data {short}: no text has two or more tokens (nothing to "
                                                    "predict; --ppl-mode windows)")


def test_the_report_pairs_every_set_and_names_its_file(tiny_gpt2, files, tmp_path):
    from conftest import build_tiny_model

    data, general, wiki, _ = files
    other = build_tiny_model(tmp_path / "other-model", style="bpe", arch="gpt2", seed=1)
    for name, model in (("base", tiny_gpt2), ("other", other)):
        run_eval("--model", model, "--data", data, "--out", tmp_path / name, "--ppl-data", general, wiki)
    out = tmp_path / "r.md"
    main(["report", str(tmp_path / "base"), str(tmp_path / "other"), "--out", str(out), "--bootstrap-resamples",
          "200"])
    text = out.read_text()
    assert f"; perplexity on 2 texts of `{general}`, `ppl:wiki` on 3 texts of `{wiki}`." in text
    base, tuned = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("base", "other"))
    for task, first in (("ppl", "perplexity (lower is better)"), ("ppl:wiki", "perplexity ppl:wiki (lower is better)")):
        line = next(line for line in text.splitlines() if line.startswith(f"| {first} |"))
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[2:5] == [str(base[task]["texts"]), f"{base[task]['perplexity']:.4f}",
                              f"{tuned[task]['perplexity']:.4f}"]
        difference = float(re.match(r"[-+]\d+\.\d+", cells[5]).group())
        assert difference == pytest.approx(tuned[task]["perplexity"] - base[task]["perplexity"], abs=1e-4)
    assert "- **perplexity** (2 texts): " in text and "- **perplexity ppl:wiki** (3 texts): " in text
    # one QA task: no family mean, so the frontier has no gain to set against the drift
    assert "No gain to set against the drift" in text


def test_a_sets_fingerprint_covers_its_texts_the_identity_and_every_setting_but_the_tasks_own():
    import copy
    import dataclasses

    from e2wm.eval.config import EvalConfig
    from e2wm.eval.run import PPL_UNREAD, ppl_fingerprint

    base = EvalConfig(data=["d"], out="o", ppl_data=["g.jsonl"])
    identity = {"model_revision": "a", "adapter_sha256": None, "device_type": "cpu"}
    key = ppl_fingerprint(GENERAL, base, identity)
    results = [f.name for f in dataclasses.fields(EvalConfig) if f.metadata.get("result", True)]
    assert set(PPL_UNREAD) < set(results)
    for name in results:  # a field added later is read unless PPL_UNREAD lists it
        changed = copy.copy(base)
        setattr(changed, name, "another value")
        assert (ppl_fingerprint(GENERAL, changed, identity) == key) == (name in PPL_UNREAD), name
    assert ppl_fingerprint(GENERAL, dataclasses.replace(base, out="elsewhere", num_processes=2), identity) == key
    assert ppl_fingerprint(GENERAL[:1], base, identity) != key
    for name in identity:
        assert ppl_fingerprint(GENERAL, base, identity | {name: "changed"}) != key, name
