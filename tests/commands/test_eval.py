"""`e2wm eval` end to end with a tiny model: outputs, resume, and every bad input (exit 2, one clear line)."""

import hashlib
import json
import logging

import pytest
from helpers.files import write

from e2wm.cli import main

QA = {"input": "Question: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed"],
      "answer": "sink"}
GEN = {"input": "Q: How to watch tv?\nA:", "ref": "Walk to home office. Switch on tv."}


def run_eval(*args) -> None:
    main(["eval", *map(str, args)])


def fails(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_eval(*args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_eval_end_to_end_and_resume(tiny_gpt2, tmp_path, capsys):
    data = tmp_path / "data"
    write(data / "qa" / "housework_qa.json", [QA, QA | {"answer": "bed"}])
    write(data / "qa" / "my_quiz.jsonl", [QA])
    write(data / "gen" / "plan_gen.json", [GEN, GEN])
    write(data / "gen" / "obj_move_path.json", [{"input": "Where?\nAnswer:", "ref": "kitchen, hallway"}])
    ppl = write(tmp_path / "general.jsonl", [{"text": "The river runs through the old town. " * 5}])
    out = tmp_path / "run"
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--max-new-tokens", 6, "--ppl-data", ppl)
    printed = capsys.readouterr().out
    assert "my_quiz: task not known, using length-normalised scores (ln)" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"housework_qa", "my_quiz", "plan_gen", "obj_move_path", "ppl"}
    assert metrics["housework_qa"]["accuracy"] == 0.5  # same input, both answers: exactly one is right
    assert metrics["housework_qa"]["norm"] == "un" and metrics["my_quiz"]["norm"] == "ln"
    assert set(metrics["plan_gen"]) >= {"rouge1", "rouge2", "rougeL", "n"} and metrics["plan_gen"]["n"] == 2
    assert set(metrics["obj_move_path"]) >= {"lcs", "n"}
    assert metrics["ppl"]["perplexity"] > 1 and metrics["ppl"]["tokens"] > 10
    rows = [json.loads(line) for line in (out / "predictions" / "housework_qa.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1] and len(rows[0]["scores"]) == 2
    assert rows[0]["prediction"] == rows[1]["prediction"] and rows[1]["answer"] == "bed"
    # each row's digest of what the model was shown: the same input and options, so the same digest
    shown = json.dumps([QA["input"], QA["answer_list"]], ensure_ascii=False).encode("utf-8")
    assert rows[0]["sha256"] == rows[1]["sha256"] == hashlib.sha256(shown).hexdigest()[:16]
    gen_rows = [json.loads(line) for line in (out / "predictions" / "plan_gen.jsonl").read_text().splitlines()]
    assert gen_rows[0]["ref"] == GEN["ref"]
    assert gen_rows[0]["sha256"] == hashlib.sha256(GEN["input"].encode("utf-8")).hexdigest()[:16]
    assert metrics["plan_gen"]["rougeL"] == pytest.approx(sum(r["score"] for r in gen_rows) / 2)  # per-item scores
    assert metrics["plan_gen"]["bootstrap_resamples"] == 10_000 and metrics["plan_gen"]["seed"] == 1234
    # one answer for both items, right once: stderr sqrt(0.5 * 0.5 / (2 - 1)), chance 1/2, majority 'sink' (a tie,
    # the first gold answer), and a flag
    qa = metrics["housework_qa"]
    assert (qa["accuracy_stderr"], qa["chance"], qa["majority"], qa["majority_answer"]) == (0.5, 0.5, 0.5, "sink")
    assert qa["accuracy_ci95"] == [pytest.approx(0.094531, abs=1e-6), pytest.approx(0.905469, abs=1e-6)]  # Wilson
    assert qa["constant_prediction"] and qa["answers"]["gold"] == {"sink": 1, "bed": 1}
    assert qa["answers"]["predicted"] == {rows[0]["prediction"]: 2} and qa["cut_by_limit"] is False
    text = (out / "results.md").read_text()
    assert "| housework_qa | accuracy | 0.5000 | 0.0945-0.9055 | 0.5000 | 0.5000 | 0.5000 | 2 | 0 |" in text
    assert f"housework_qa: the model gave the same answer ('{rows[0]['prediction']}') to all 2 items" in text
    assert "](answers.png)" in text and (out / "answers.png").read_bytes()[:4] == b"\x89PNG"
    texts = [json.loads(line) for line in (out / "predictions" / "ppl.jsonl").read_text().splitlines()]
    assert len(texts) == 1 and texts[0]["tokens"] == metrics["ppl"]["tokens"]
    assert texts[0]["nll"] / texts[0]["tokens"] == pytest.approx(metrics["ppl"]["nll"])
    assert metrics["ppl"]["nll_stderr"] is None  # one text: no spread to resample

    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--max-new-tokens", 6)
    assert "housework_qa: already evaluated" in capsys.readouterr().out
    again = json.loads((out / "metrics.json").read_text())
    assert again["plan_gen"] == metrics["plan_gen"] and "ppl" not in again


def test_eval_on_released_dev_slice(tiny_llama, benchmark_dir, tmp_path):
    out = tmp_path / "dev"
    run_eval("--model", tiny_llama, "--data", benchmark_dir / "eval-dev", "--out", out, "--limit", 2,
             "--max-new-tokens", 4)
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics) == 11
    assert {m.get("norm") for name, m in metrics.items() if "accuracy" in m} == {"ln", "un"}
    assert metrics["count"]["truncated"] == 2  # 3,000-character prompts exceed the tiny model's 512 positions
    assert all(m["n"] == 2 for m in metrics.values())


def test_config_file_supplies_options(tiny_gpt2, tmp_path):
    data = write(tmp_path / "count.json", [QA])
    config = tmp_path / "eval.yaml"
    config.write_text(f"model: {tiny_gpt2}\ndata: [{data}]\nout: {tmp_path / 'run'}\nnorm: un\n")
    run_eval("--config", config)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["count"]["norm"] == "un"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"input": "x", "answer_list": ["a"], "answer": "a"}', "{not json"], "bad.json:2: bad JSON"),
        ([{"answer_list": ["a"], "answer": "a"}], "bad.json:1: field 'input' is missing"),
        ([QA, {"input": "x", "answer_list": ["a", "b"], "answer": "c"}], "bad.json:2: field 'answer' 'c' is not in"),
        ([{"input": "x", "answer_list": [], "answer": "a"}], "bad.json:1: field 'answer_list' is empty"),
        ([GEN, {"input": "x"}], "bad.json:2: field 'ref' is missing"),
        ([{"input": 3, "ref": "x"}], "bad.json:1: field 'input' must be str"),
        ([], "bad.json: empty file"),
    ],
)
def test_bad_data_exits_2_with_file_line_field(tmp_path, capsys, lines, message):
    data = write(tmp_path / "bad.json", lines)
    out = tmp_path / "run"
    err = fails(capsys, "--model", tmp_path / "no-model-needed", "--data", data, "--out", out)
    assert message in err
    assert not out.exists()  # nothing written for a failed file (and no model was loaded)


def test_odd_options_are_warned_about_not_refused(tmp_path, caplog):
    from e2wm.eval.items import read_eval_file

    lines = [QA, {"input": "x", "answer_list": ["a", "b", "a"], "answer": "a"},
             {"input": "y", "answer_list": ["a"], "answer": "a"},
             {"input": "z", "answer_list": ["", "b"], "answer": "b"}]
    with caplog.at_level(logging.WARNING, logger="e2wm"):
        task = read_eval_file(write(tmp_path / "quiz.json", lines))
    assert len(task.items) == 4
    file = tmp_path / "quiz.json"
    assert [record.getMessage() for record in caplog.records] == [
        f"{file}:2: field 'answer_list' repeats option(s) 'a': equal options score alike, and the chance baseline "
        "counts each",
        f"{file}:3: field 'answer_list' has a single option: the item is always answered right",
        f"{file}:4: field 'answer_list' has an empty option: it is scored as a lone space",
    ]


def test_bad_paths_exit_2(tmp_path, capsys, tiny_gpt2):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "directory holds no evaluation files" in fails(capsys, "--data", empty, "--out", tmp_path / "o")
    data = write(tmp_path / "count.json", [QA])
    assert "no such directory" in fails(capsys, "--model", tmp_path / "missing", "--data", data, "--out", tmp_path)
    err = fails(capsys, "--model", tiny_gpt2, "--adapter", tmp_path / "nope", "--data", data, "--out", tmp_path / "o")
    assert "not a PEFT adapter directory" in err
    assert "need a CUDA GPU" in fails(capsys, "--model", tiny_gpt2, "--load-in-4bit", "--data", data, "--out", tmp_path)
    assert "--limit must be at least 1" in fails(capsys, "--data", data, "--out", tmp_path, "--limit", 0)
    assert "--seed must be at least 0, got -1" in fails(capsys, "--data", data, "--out", tmp_path, "--seed", -1)
    config = write(tmp_path / "c.yaml", ["colour: red"])
    assert "field 'colour' is not an option" in fails(capsys, "--config", config)


def test_two_processes_write_what_one_writes(tiny_gpt2, tmp_path):
    """`--num-processes 2` (accelerate launch, gloo on CPU) shards items and gathers them in order."""
    data = tmp_path / "data"
    items = [QA | {"input": QA["input"].replace("wash dishes", w)} for w in ("cook", "sleep", "read", "bathe", "eat")]
    write(data / "housework_qa.json", items)
    write(data / "plan_gen.json", [GEN | {"input": f"Q: How to {w}?\nA:"} for w in ("cook", "sleep", "read")])
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--model", tiny_gpt2, "--data", data, "--max-new-tokens", 5]
    run_eval(*common, "--out", one)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "e2wm", "eval", *map(str, common), "--out", str(two),
                           "--num-processes", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((one / "metrics.json").read_text()) == json.loads((two / "metrics.json").read_text())
    assert (one / "predictions" / "plan_gen.jsonl").read_text() == (two / "predictions" / "plan_gen.jsonl").read_text()
    rows_one = [json.loads(x) for x in (one / "predictions" / "housework_qa.jsonl").read_text().splitlines()]
    rows_two = [json.loads(x) for x in (two / "predictions" / "housework_qa.jsonl").read_text().splitlines()]
    assert [r["index"] for r in rows_two] == list(range(5))
    for a, b in zip(rows_one, rows_two):  # thread counts differ per process: float sums may differ in the 6th digit
        assert a["prediction"] == b["prediction"]
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-4)


def test_vllm_backend_fails_clearly_without_vllm_or_gpu(tmp_path, capsys):
    data = write(tmp_path / "plan_gen.json", [GEN])
    err = fails(capsys, "--data", data, "--out", tmp_path / "o", "--backend", "vllm")
    assert "--backend vllm needs" in err
    assert not (tmp_path / "o").exists()


def adapter_for(model_dir, target, seed):
    """A LoRA adapter saved at target with seeded non-zero weights (a 'retrained' adapter is another seed)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from e2wm.models import ModelSpec, load_model

    model, _ = load_model(ModelSpec(str(model_dir), device="cpu"))
    model = get_peft_model(model, LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True,
                                             task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(target)


def test_adapter_retrained_in_place_is_evaluated_again(tiny_gpt2, tmp_path, capsys):
    data = write(tmp_path / "housework_qa.json", [QA, QA | {"answer": "bed"}, QA | {"input": "Q: Cup?\nA:"}])
    adapter, out = tmp_path / "adapter", tmp_path / "run"
    adapter_for(tiny_gpt2, adapter, seed=1)
    run_eval("--model", tiny_gpt2, "--adapter", adapter, "--data", data, "--out", out)
    first = json.loads((out / "predictions" / "housework_qa.jsonl").read_text().splitlines()[0])["scores"]
    run_eval("--model", tiny_gpt2, "--adapter", adapter, "--data", data, "--out", out)
    assert "housework_qa: already evaluated" in capsys.readouterr().out  # same adapter: reused
    adapter_for(tiny_gpt2, adapter, seed=2)  # retrained at the same path
    run_eval("--model", tiny_gpt2, "--adapter", adapter, "--data", data, "--out", out)
    assert "already evaluated" not in capsys.readouterr().out
    second = json.loads((out / "predictions" / "housework_qa.jsonl").read_text().splitlines()[0])["scores"]
    assert second != first


@pytest.mark.parametrize(("option", "value"), [
    ("--limit", "1"), ("--batch-size", "2"), ("--num-beams", "2"), ("--max-new-tokens", "3"), ("--norm", "ln"),
    ("--max-len", "100"), ("--dtype", "bfloat16"), ("--beam-stop", "full"),
])
def test_each_result_setting_changes_the_fingerprint(tiny_gpt2, tmp_path, capsys, option, value):
    data = write(tmp_path / "housework_qa.json", [QA, QA | {"answer": "bed"}])
    out = tmp_path / "run"
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--max-new-tokens", 4)
    capsys.readouterr()
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--max-new-tokens", 4, option, value)
    assert "already evaluated" not in capsys.readouterr().out


def test_fingerprint_covers_every_result_field_and_the_identity(tmp_path):
    import dataclasses

    from e2wm.eval.config import EvalConfig
    from e2wm.eval.items import EvalFile, GenItem, read_eval_file
    from e2wm.eval.run import fingerprint

    task = read_eval_file(write(tmp_path / "housework_qa.json", [QA]))
    base = EvalConfig(data=["d"], out="o")
    identity = {"model_revision": "a", "adapter_sha256": None, "device_type": "cpu"}
    key = fingerprint(task, base, identity)
    changed = {"model": "other", "dtype": "bfloat16", "load_in_8bit": True, "load_in_4bit": True, "adapter": "x",
               "limit": 3, "batch_size": 3, "num_beams": 3, "max_new_tokens": 3, "norm": "un", "max_len": 64,
               "backend": "vllm", "beam_stop": "full", "bootstrap_resamples": 500, "seed": 7, "autocast": "bf16",
               "chat_template": True}
    perplexity_only = {"ppl_data": "g.jsonl", "ppl_mode": "paper", "ppl_texts": 3}  # the perplexity is always redone
    other_tasks_only = {"eai_form": "e2wm", "robothow_dir": "r"}  # EAI's task; the plan tasks' execution
    result_fields = {f.name for f in dataclasses.fields(EvalConfig) if f.metadata.get("result", True)}
    assert result_fields - {"data", "adapter_scale"} == set(changed) | set(perplexity_only) | set(other_tasks_only)
    with_adapter = dataclasses.replace(base, adapter="x")  # the scale needs an adapter
    assert fingerprint(task, dataclasses.replace(with_adapter, adapter_scale=0.5), identity) != \
        fingerprint(task, with_adapter, identity)
    for name, value in changed.items():
        assert fingerprint(task, dataclasses.replace(base, **{name: value}), identity) != key, name
    assert fingerprint(task, dataclasses.replace(base, **other_tasks_only), identity) == key
    plans = read_eval_file(write(tmp_path / "plan_gen.json", [{"input": "Q: How to x?\nA:", "ref": "Walk to y."}]))
    eai_task = EvalFile("eai_action_sequence", tmp_path / "eai", "generation", [GenItem("p", "r", source="11_1")])
    for reader, name in ((plans, "robothow_dir"), (eai_task, "eai_form")):
        changed_one = dataclasses.replace(base, **{name: other_tasks_only[name]})
        assert fingerprint(reader, changed_one, identity) != fingerprint(reader, base, identity), name
    for name in identity:
        assert fingerprint(task, base, identity | {name: "changed"}) != key, name
    assert fingerprint(task, dataclasses.replace(base, out="elsewhere", num_processes=2), identity) == key
    assert fingerprint(task, dataclasses.replace(base, **perplexity_only), identity) == key


def test_a_task_saved_by_an_older_metrics_version_is_recomputed(tmp_path, monkeypatch):
    from e2wm.eval import run
    from e2wm.eval.config import EvalConfig
    from e2wm.eval.items import read_eval_file

    task, config = read_eval_file(write(tmp_path / "housework_qa.json", [QA])), EvalConfig(data=["d"], out="o")
    key = run.fingerprint(task, config, {})
    monkeypatch.setattr(run, "METRICS_VERSION", run.METRICS_VERSION - 1)  # saved before the statistics existed
    assert run.fingerprint(task, config, {}) != key


def test_outputs_carry_provenance_and_limit_warning(tiny_gpt2, tmp_path):
    data = write(tmp_path / "housework_qa.json", [QA, QA | {"answer": "bed"}, QA])
    out = tmp_path / "run"
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--limit", 2)
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["config"]["limit"] == 2 and recorded["identity"]["device_type"] == "cpu"
    assert len(recorded["identity"]["model_revision"]) == 64  # a local model: the digest of its files
    versions = recorded["provenance"]["versions"]
    assert versions["torch"] and versions["transformers"] and versions["peft"] and versions["e2wm"]
    assert recorded["provenance"]["date"].endswith("Z") and recorded["provenance"]["device"] == "cpu"
    assert recorded["provenance"]["wall_seconds"] > 0 and "smollm2" not in recorded["identity"]["model"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["housework_qa"]["n"], metrics["housework_qa"]["n_original"]) == (2, 3)
    assert metrics["housework_qa"]["cut_by_limit"] is True
    assert "Warning: --limit 2 scored only the first 2 items of 1 file(s) (housework_qa)" in (
        out / "results.md").read_text()


def test_a_build_folder_evaluates_its_heldout_files_only(tmp_path):
    from e2wm.eval.items import find_eval_files

    write(tmp_path / "train_plan_gen.jsonl", [GEN])
    (tmp_path / "stats.json").write_text('{\n  "config": {}\n}\n')
    write(tmp_path / "heldout" / "plan_gen_unseen.jsonl", [GEN])
    assert find_eval_files([str(tmp_path)]) == [tmp_path / "heldout" / "plan_gen_unseen.jsonl"]


def test_an_interrupted_rerun_leaves_no_earlier_metrics(tiny_gpt2, tmp_path, capsys, monkeypatch):
    from e2wm.recipes import evaluate as recipe

    data = write(tmp_path / "housework_qa.json", [QA])
    out = tmp_path / "run"
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out)
    assert (out / "metrics.json").is_file()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "evaluate_model", interrupted)
    with pytest.raises(SystemExit):
        run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--limit", 1)
    assert not (out / "metrics.json").exists() and not (out / "results.md").exists()  # config.json is the new run's
    assert json.loads((out / "config.json").read_text())["config"]["limit"] == 1


def test_messages_are_printed_once_even_with_a_root_handler(tiny_gpt2, tmp_path, capsys):
    import logging

    root = logging.getLogger()
    handler = logging.StreamHandler()  # what a library such as absl adds
    root.addHandler(handler)
    try:
        run_eval("--model", tiny_gpt2, "--data", write(tmp_path / "my_quiz.json", [QA]), "--out", tmp_path / "r")
    finally:
        root.removeHandler(handler)
    captured = capsys.readouterr()
    assert captured.out.count("my_quiz: task not known") == 1 and "task not known" not in captured.err


def test_beam_stop_and_ppl_options_are_in_the_help(capsys):
    with pytest.raises(SystemExit):
        run_eval("--help")
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--beam-stop {newline,full}", "(default: newline)", "greedy decoding gives the same first line",
                  "--ppl-mode {windows,paper}", "(default: windows)", "--ppl-texts PPL_TEXTS", "(default: 5000)"):
        assert shown in text, shown


def newline_prone(tiny_gpt2, target):
    """A copy of the tiny GPT-2 whose (tied) newline embedding is scaled up, so that it does write newlines."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from e2wm.eval.generation import stop_token_ids

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2)
    with torch.no_grad():
        for i in stop_token_ids(tokenizer):
            model.transformer.wte.weight[i] *= 3
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return model.eval(), tokenizer


def test_beam_stop_full_decodes_as_the_paper(tiny_gpt2, tmp_path):
    """Greedy: newline and full give the same first lines. 4 beams: full equals a plain model.generate with no
    stopping criterion, cut at the first newline afterwards (the authors' eval_gen.py); newline can differ."""
    import torch

    from e2wm.eval.generation import first_line

    model, tokenizer = newline_prone(tiny_gpt2, tmp_path / "model")
    prompts = [f"Q: How to {w}?\nA:" for w in ("cook", "sleep", "read", "watch tv", "wash dishes", "brush teeth")]
    data = write(tmp_path / "plan_gen.json", [GEN | {"input": prompt} for prompt in prompts])
    predictions = {}
    for beams in (1, 4):
        for stop in ("newline", "full"):
            out = tmp_path / f"run-{beams}-{stop}"
            run_eval("--model", tmp_path / "model", "--data", data, "--out", out, "--max-new-tokens", 24,
                     "--num-beams", beams, "--beam-stop", stop)
            rows = (out / "predictions" / "plan_gen.jsonl").read_text().splitlines()
            predictions[beams, stop] = [json.loads(row)["prediction"] for row in rows]
    assert predictions[1, "newline"] == predictions[1, "full"]
    direct = []
    for prompt in prompts:
        ids = torch.tensor([tokenizer(prompt).input_ids])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=24, num_beams=4,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
        direct.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    assert sum("\n" in text for text in direct) >= 3  # the whole beams do go past a newline
    assert predictions[4, "full"] == [first_line(text) for text in direct]
    assert predictions[4, "newline"] != predictions[4, "full"]  # stopping at the newline picks other beams here


def test_ppl_mode_paper_through_the_command(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from e2wm.eval.perplexity import paper_perplexity

    texts = ["The river runs through the old town.", "Walk to kitchen. Grab cup.", "Mary went to the office."]
    ppl = write(tmp_path / "general.jsonl", [{"text": text} for text in texts])
    data = write(tmp_path / "housework_qa.json", [QA])
    run_eval("--model", tiny_llama, "--data", data, "--out", tmp_path / "run", "--ppl-data", ppl,
             "--ppl-mode", "paper", "--ppl-texts", 2)
    got = json.loads((tmp_path / "run" / "metrics.json").read_text())["ppl"]
    assert set(got) == {"perplexity", "perplexity_base2", "nll", "tokens", "texts", "mode", "nll_stderr",
                        "perplexity_ci95", "bootstrap_resamples", "seed"}
    low, high = got["perplexity_ci95"]
    assert low < got["perplexity"] < high and got["nll_stderr"] > 0
    assert got["mode"] == "paper" and got["texts"] == 2
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    expected = paper_perplexity(model, AutoTokenizer.from_pretrained(tiny_llama), texts[:2])
    assert got["tokens"] == expected["tokens"]
    assert got["perplexity_base2"] == pytest.approx(expected["perplexity_base2"], rel=1e-5)
    assert f"(paper's 2**NLL {got['perplexity_base2']:.4f})" in (tmp_path / "run" / "results.md").read_text()
    run_eval("--model", tiny_llama, "--data", data, "--out", tmp_path / "run", "--ppl-data", ppl)
    windows = json.loads((tmp_path / "run" / "metrics.json").read_text())["ppl"]
    assert windows["mode"] == "windows" and windows["texts"] == 3 and "perplexity_base2" not in windows


def test_a_shipped_adapter_is_found_by_name(tmp_path, monkeypatch):
    from e2wm import models
    from e2wm.errors import InputError
    from e2wm.eval.config import EvalConfig

    shipped = tmp_path / "adapters"
    (shipped / "tiny-e2wm").mkdir(parents=True)
    (shipped / "tiny-e2wm" / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(models, "SHIPPED_ADAPTERS", shipped)
    config = EvalConfig(data=["x.json"], out="o", adapter="tiny-e2wm")
    assert config.adapter == str(shipped / "tiny-e2wm")
    assert EvalConfig(data=["x.json"], out="o", adapter=str(tmp_path)).adapter == str(tmp_path)  # a path wins
    with pytest.raises(InputError, match="nor an adapter shipped with e2wm: tiny-e2wm"):
        models.adapter_dir("tiny")


def fails_after_loading(capsys, *args) -> str:
    """Like `fails` for a refusal after the model loaded: stderr then also holds transformers' loading bar, and the
    error is its one line that is not a progress bar."""
    with pytest.raises(SystemExit) as exit_info:
        run_eval(*args)
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines()
             if line.strip() and not line.startswith("Loading weights")]
    assert len(lines) == 1, lines
    return lines[0]


def short_context_copy(model_dir, target, positions: int):
    """A copy of a tiny model whose config says its context is `positions` tokens."""
    import shutil

    shutil.copytree(model_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["max_position_embeddings"] = positions
    (target / "config.json").write_text(json.dumps(config))
    return target


def test_limits_that_leave_no_prompt_token_are_refused_before_the_model_runs(tiny_llama, tmp_path, capsys):
    gen = write(tmp_path / "plan_gen.jsonl", [GEN])
    out = tmp_path / "run"
    err = fails_after_loading(capsys, "--model", tiny_llama, "--data", gen, "--out", out, "--max-len", 256)
    assert err.endswith(f"{gen}: --max-new-tokens 256 leaves no prompt token within --max-len 256; lower "
                        "--max-new-tokens below 256")
    short = short_context_copy(tiny_llama, tmp_path / "llama256", 256)
    err = fails_after_loading(capsys, "--model", short, "--data", gen, "--out", out)
    assert err.endswith("--max-new-tokens 256 leaves no prompt token within the model's context of 256 tokens; "
                        "lower --max-new-tokens below 256")
    assert fails_after_loading(capsys, "--model", tiny_llama, "--data", gen, "--out", out, "--max-len", 513).endswith(
        "--max-len 513 exceeds the model's context of 512 tokens")
    qa_file = write(tmp_path / "act_recog.jsonl", ["", QA | {"answer_list": ["sink", "a kitchen sink by the window"]}])
    err = fails_after_loading(capsys, "--model", tiny_llama, "--data", qa_file, "--out", out, "--max-len", 3)
    assert f"{qa_file}:2: field 'answer_list': an option of " in err and err.endswith("(--max-len 3)")
    assert not out.exists()  # nothing written, not even config.json
    # one token of prompt is enough: the limit is exact
    capsys.readouterr()
    run_eval("--model", tiny_llama, "--data", gen, "--out", out, "--max-len", 257, "--max-new-tokens", 256)
    assert json.loads((out / "metrics.json").read_text())["plan_gen"]["truncated"] == 1
    said = capsys.readouterr().out  # the command logs on standard output (cli.configure_logging)
    assert "plan_gen: 1 of 1 prompts were cut from the left to fit 1 tokens" in said  # said, not only counted


def test_perplexity_with_nothing_to_predict_is_one_line(tiny_gpt2, tmp_path, capsys):
    data = write(tmp_path / "count.jsonl", [QA])
    ppl = write(tmp_path / "general.jsonl", [{"text": "Walk"}, {"text": "cup"}])  # one token each
    out = tmp_path / "run"
    common = ["--model", tiny_gpt2, "--data", data, "--out", out, "--ppl-data", ppl]
    err = fails_after_loading(capsys, *common)
    assert err.endswith(f"--ppl-data {ppl}: no text has two or more tokens (nothing to predict; --ppl-mode windows)")
    err = fails_after_loading(capsys, *common, "--ppl-mode", "paper")
    assert err.endswith("no text of its first 5000 has two or more tokens (nothing to predict; --ppl-mode paper)")
    assert not out.exists()
    # one text with a token to predict is enough; the one-token texts are left out of the count
    write(ppl, [{"text": "Walk"}, {"text": "Walk to kitchen."}])
    run_eval("--model", tiny_gpt2, "--data", data, "--out", out, "--ppl-data", ppl)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["ppl"]["texts"] == 1 and metrics["count"]["n"] == 1


def test_the_shipped_adapter_resolves_by_name_and_has_a_complete_card():
    from pathlib import Path

    import yaml

    from e2wm.eval.config import EvalConfig

    config = EvalConfig(data=["x.json"], out="o", adapter="smollm2-135m-e2wm")
    folder = Path(config.adapter)
    assert (folder / "adapter_model.safetensors").is_file() and folder.name == "smollm2-135m-e2wm"
    card = (folder / "README.md").read_text()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and metadata["license"] == "apache-2.0"
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == metadata["base_model"]
    assert "de-quantised from the Q4_1 GGUF" in card and "## Against the base model and plain LoRA" in card
    assert "/root/" not in card and ".cache" not in card  # no local path of the machine that trained it


def test_eval_says_when_it_computes_under_bf16_autocast(tiny_gpt2, tmp_path, capsys, monkeypatch):
    """As train does: a score computed under bf16 may differ from float32's, so the choice is printed."""
    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"fpu", "avx512_bf16"})
    data = write(tmp_path / "my_quiz.json", [QA])
    run_eval("--model", tiny_gpt2, "--data", data, "--out", tmp_path / "bf16", "--autocast", "bf16")
    assert "--autocast bf16: matrix products in torch.bfloat16, weights float32" in capsys.readouterr().out
    run_eval("--model", tiny_gpt2, "--data", data, "--out", tmp_path / "fp32")
    assert "--autocast" not in capsys.readouterr().out  # the default none: float32, nothing to say
