"""`e2wm train --adapter-kind osf` and `--optimizer mofo`: runs that resume exactly, an OSF adapter that `e2wm eval`
scores, MoFO moving only its fraction of each weight in full finetuning, and the refusals."""

import json

import pytest
from helpers.files import write
from helpers.train_runs import crash_at_step, deterministic, read_log, run_train, write_pairs
from helpers.training import TEXTS
from safetensors.torch import load_file

from e2wm.cli import main
from e2wm.eval.header import eval_run_line, training_text
from e2wm.recipes import finetune

QA = {"input": "Question: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed"],
      "answer": "sink"}


def fisher_of(model, tmp_path):
    fisher = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(model), "--n", "2", "--max-len", "8", "--out", str(fisher)])
    return fisher


def whole_and_resumed(capsys, monkeypatch, tmp_path, common: list, steps: int, crash: int) -> list[dict]:
    """Train common into whole/, and into cut/ stopped at step crash and resumed; returns whole's log after checking
    that cut's equals it (the timing fields aside)."""
    assert run_train(capsys, *common, "--out", tmp_path / "whole")[0] == 0
    whole = read_log(tmp_path / "whole")
    assert len(whole) == steps
    real = crash_at_step(crash, monkeypatch)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 130
    monkeypatch.setattr(finetune, "append_jsonl", real)
    assert run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")[0] == 0
    assert [deterministic(r) for r in read_log(tmp_path / "cut")] == [deterministic(r) for r in whole]
    return whole


def test_osf_with_ewc_and_kl_resumes_exactly_and_its_adapter_evaluates(tiny_llama, tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path / "a.json", repeat=3)
    fisher = fisher_of(tiny_llama, tmp_path)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--adapter-kind", "osf", "--regularisers", "ewc,kl",
              "--fisher", fisher, "--lambda", "50", "--batch-size", "2", "--max-steps", "5", "--save-every", "2",
              "--lr", "2e-2"]
    whole = whole_and_resumed(capsys, monkeypatch, tmp_path, common, steps=5, crash=4)
    assert whole[0]["ewc"] < 1e-9 and whole[-1]["ewc"] > 0 and whole[-1]["kl"] > 0
    assert all(row["loss"] == pytest.approx(row["loss_ce"] + row["loss_ewc"] + row["loss_kl"], rel=1e-9)
               for row in whole)
    adapter = tmp_path / "whole" / "adapter"
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "OSF"
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    assert saved and all(".osf_svd_params." in name for name in saved)
    assert "an E2WM OSF + EWC + KL anchor adapter" in (adapter / "README.md").read_text()
    qa = write(tmp_path / "data" / "housework_qa.json", [QA, QA | {"answer": "bed"}, QA | {"input": "Q: Cup?\nA:"}])
    runs = {}
    for name, extra in (("base", []), ("osf", ["--adapter", adapter]), ("again", ["--adapter", adapter])):
        main(["eval", "--model", str(tiny_llama), *map(str, extra), "--data", str(qa), "--out",
              str(tmp_path / name)])
        rows = (tmp_path / name / "predictions" / "housework_qa.jsonl").read_text().splitlines()
        runs[name] = [json.loads(row)["scores"] for row in rows]
    assert runs["osf"] != runs["base"] and runs["osf"] == runs["again"]  # the trained change, loaded the same way
    line = eval_run_line(tmp_path / "osf", "osf", json.loads((tmp_path / "osf" / "metrics.json").read_text()))
    assert "trained by `e2wm train` in " in line and ": OSF + EWC + KL anchor; lambda 50" in line
    assert "; OSF on q_proj, v_proj (half of each weight's top singular directions frozen); " in line
    assert "optimizer" not in line


def test_mofo_with_lora_resumes_exactly(tiny_llama, tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path / "a.json", repeat=3)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--optimizer", "mofo",
              "--mofo-fraction", "0.3", "--weight-decay", "0.01", "--batch-size", "2", "--grad-accum", "2",
              "--epochs", "2", "--save-every", "2", "--lr", "5e-3"]
    whole = whole_and_resumed(capsys, monkeypatch, tmp_path, common, steps=6, crash=3)
    recorded = json.loads((tmp_path / "whole" / "config.json").read_text())["options"]
    assert recorded["optimizer"] == "mofo" and recorded["mofo_fraction"] == 0.3
    adamw = [arg for arg in common if arg not in ("--optimizer", "mofo", "--mofo-fraction", "0.3")]
    assert run_train(capsys, *adamw, "--out", tmp_path / "adamw")[0] == 0
    assert read_log(tmp_path / "adamw")[-1]["ce"] != whole[-1]["ce"]
    code, err = run_train(capsys, *adamw, "--out", tmp_path / "whole", "--resume")
    assert code == 2 and "--optimizer adamw (was mofo)" in err
    card = (tmp_path / "whole" / "adapter" / "README.md").read_text()
    assert "| optimizer | mofo |" in card and "| MoFO fraction updated per step | 0.3 |" in card
    assert "MoFO fraction" not in (tmp_path / "adamw" / "adapter" / "README.md").read_text()
    text = training_text(tmp_path / "whole" / "adapter", (tmp_path / "whole", None))
    assert "; optimizer mofo (MoFO: 0.3 of each tensor's entries, those of largest momentum, updated per step); " \
        in text
    assert "optimizer" not in training_text(tmp_path / "adamw" / "adapter", (tmp_path / "adamw", None))


def test_mofo_full_finetuning_moves_only_its_fraction_of_each_weight(tiny_llama, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    assert run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--adapter-kind", "full", "--regularisers",
                     "none", "--optimizer", "mofo", "--batch-size", "2", "--max-steps", "1", "--lr", "1e-2",
                     "--out", tmp_path / "r")[0] == 0
    base = load_file(str(tiny_llama / "model.safetensors"))
    trained = load_file(str(tmp_path / "r" / "model" / "model.safetensors"))
    for name, weight in base.items():
        moved = int((trained[name] != weight).sum())
        k = max(1, round(0.15 * weight.numel()))  # the default fraction, the authors'
        assert moved <= k, name  # entries without gradient (unseen tokens' embeddings) do not move at all
        if name.endswith("q_proj.weight"):
            assert moved == k, name


@pytest.mark.parametrize("extra, message", [
    (["--osf-effective-rank", "4"], "--osf-effective-rank is read only by --adapter-kind osf (this run: lora)"),
    (["--adapter-kind", "osf", "--osf-effective-rank", "2.5"], "--osf-effective-rank 2.5: a whole number"),
    (["--adapter-kind", "osf", "--osf-effective-rank", "40"], "--osf-effective-rank 40 freezes 32 of the 32"),
    (["--adapter-kind", "osf", "--load-in-8bit"], "--adapter-kind osf decomposes the base weights by SVD"),
    (["--mofo-fraction", "0.1"], "--mofo-fraction is read only by --optimizer mofo"),
    (["--optimizer", "mofo", "--mofo-fraction", "1.5"], "--mofo-fraction must be at most 1"),
    (["--optimizer", "mofo", "--mofo-fraction", "0"], "--mofo-fraction must be above 0"),
    (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
])
def test_refusals(tiny_llama, tmp_path, capsys, extra, message):
    data = write_pairs(tmp_path / "a.json")
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--regularisers", "none",
                          "--out", tmp_path / "r", *extra)
    assert code == 2 and message in err, err
    assert not (tmp_path / "r" / "log.jsonl").exists()


def test_osf_refuses_gpt2s_conv1d_layers(tiny_gpt2, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json")
    code, err = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--adapter-kind", "osf",
                          "--regularisers", "none", "--out", tmp_path / "r")
    assert code == 2 and "c_attn is a Conv1D layer; PEFT's OSF adapts torch Linear layers only" in err
    assert not (tmp_path / "r" / "config.json").exists()


def test_kl_and_replay_with_osf_run(tiny_llama, tmp_path, capsys):
    general = write(tmp_path / "general.jsonl", [{"text": text} for text in TEXTS])
    data = write_pairs(tmp_path / "a.json", repeat=2)
    assert run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--adapter-kind", "osf", "--regularisers",
                     "kl,replay", "--replay-data", general, "--replay-ratio", "0.5", "--kl-tokens", "all",
                     "--optimizer", "mofo", "--batch-size", "2", "--max-steps", "3", "--lr", "2e-2",
                     "--out", tmp_path / "r")[0] == 0
    log = read_log(tmp_path / "r")
    assert abs(log[0]["kl"]) < 1e-6 < log[-1]["kl"] and log[-1]["replay"] > 1


def test_osf_with_a_fisher_of_other_shapes_is_refused_before_the_adapter_is_built(tiny_llama, tmp_path, capsys,
                                                                                   monkeypatch):
    """The Fisher is checked against the base layers first: OSF's SVD of every layer is not computed for nothing."""
    import peft
    from safetensors import safe_open
    from safetensors.torch import save_file

    fisher = fisher_of(tiny_llama, tmp_path)
    with safe_open(str(fisher), "pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(fisher))
    name = next(key for key in tensors if "q_proj" in key)
    tensors[name] = tensors[name][:, :-1].contiguous()  # another model's shape
    save_file(tensors, str(fisher), metadata=metadata)
    built = []
    monkeypatch.setattr(peft, "get_peft_model", lambda *args, **kwargs: built.append(args))
    data = write_pairs(tmp_path / "a.json", repeat=2)
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--adapter-kind", "osf",
                          "--regularisers", "ewc", "--fisher", fisher, "--max-steps", "1", "--out", tmp_path / "r")
    assert code == 2 and built == []
    assert f"--fisher {fisher}: {name.removesuffix('.weight')} has shape" in err
