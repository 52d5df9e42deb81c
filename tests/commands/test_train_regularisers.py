"""`e2wm train` with regularisers: a log row's terms add up to its loss, each regulariser's value is logged, a run
with KL and replay resumes exactly, a run recorded with --method alone resumes, and the refusals."""

import json

import pytest
from helpers.train_runs import crash_at_step, deterministic, read_log, run_train, write_pairs
from helpers.training import PAIRS, TEXTS

from e2wm.cli import main
from e2wm.recipes import finetune


@pytest.fixture
def general_text(tmp_path):
    path = tmp_path / "general.jsonl"
    path.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS))
    return path


def fisher_of(model, tmp_path):
    fisher = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(model), "--n", "2", "--max-len", "8", "--out", str(fisher)])
    return fisher


def test_a_log_rows_terms_add_up_to_its_loss(tiny_llama, tmp_path, capsys, general_text):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    other = write_pairs(tmp_path / "b.json", PAIRS[:2], repeat=2)
    fisher = fisher_of(tiny_llama, tmp_path)
    args = ["--model", tiny_llama, "--train", f"1 {data} 0.5 {other}", "--fisher", fisher, "--regularisers",
            "ewc,kl,replay", "--lambda", "20", "--kl-weight", "0.5", "--replay-data", general_text, "--replay-ratio",
            "0.5", "--replay-weight", "0.3", "--batch-size", "2", "--grad-accum", "2", "--max-steps", "4", "--lr",
            "5e-3", "--out", tmp_path / "r"]
    assert run_train(capsys, *args)[0] == 0
    log = read_log(tmp_path / "r")
    for row in log:
        terms = {key: value for key, value in row.items() if key.startswith("loss_")}
        assert set(terms) == {"loss_ce", "loss_ewc", "loss_kl", "loss_replay"}
        assert row["loss"] == pytest.approx(sum(terms.values()), rel=1e-9)
        assert terms["loss_ewc"] == pytest.approx(20 * row["ewc"], rel=1e-9)
        assert terms["loss_kl"] == pytest.approx(0.5 * row["kl"], rel=1e-9)
        assert terms["loss_replay"] == pytest.approx(0.3 * row["replay"], rel=1e-9)
        assert row["replay"] > 1  # nats per token of a random tiny model's general text
    # mixture normalisation: the CE term is not the per-token mean, and both are logged apart
    assert log[0]["loss_ce"] != pytest.approx(log[0]["ce"], rel=1e-3)
    # step 1: the adapter is new (B = 0): no drift yet, without dropout in the tiny model
    assert log[0]["ewc"] == 0 and abs(log[0]["kl"]) < 1e-6 and log[-1]["kl"] > 0 and log[-1]["ewc"] > 0
    card = (tmp_path / "r" / "adapter" / "README.md").read_text()
    assert "EWC-LoRA" not in card and "LoRA + EWC + KL anchor + replay" in card
    assert "| regularisers | ewc, kl, replay |" in card and "| KL anchor weight | 0.5 |" in card


def test_plain_lora_logs_the_ce_term_alone_and_a_measured_ewc(tiny_llama, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    fisher = fisher_of(tiny_llama, tmp_path)
    args = ["--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher, "--method", "lora", "--batch-size",
            "2", "--max-steps", "3", "--lr", "5e-3", "--out", tmp_path / "r"]
    assert run_train(capsys, *args)[0] == 0
    log = read_log(tmp_path / "r")
    assert all(row["loss"] == row["loss_ce"] and "loss_ewc" not in row for row in log)
    assert log[-1]["ewc"] > 0  # measured without gradient, the same drift measure as EWC-LoRA's


def test_kl_and_replay_resume_exactly(tiny_llama, tmp_path, capsys, monkeypatch, general_text):
    data = write_pairs(tmp_path / "a.json", repeat=3)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--regularisers", "kl,replay", "--replay-data",
              general_text, "--replay-ratio", "1", "--batch-size", "2", "--epochs", "2", "--save-every", "2",
              "--lr", "5e-3", "--kl-tokens", "all"]
    assert run_train(capsys, *common, "--out", tmp_path / "whole")[0] == 0
    whole = read_log(tmp_path / "whole")
    assert len(whole) == 12
    real = crash_at_step(5, monkeypatch)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 130
    monkeypatch.setattr(finetune, "append_jsonl", real)
    assert run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")[0] == 0
    assert [deterministic(r) for r in read_log(tmp_path / "cut")] == [deterministic(r) for r in whole]
    other = ["kl" if arg == "kl,replay" else arg for arg in common]
    other[other.index("--replay-data") : other.index("--replay-ratio") + 2] = []  # read only by replay
    code, err = run_train(capsys, *other, "--out", tmp_path / "cut", "--resume")
    assert code == 2 and "--regularisers kl (was kl,replay)" in err


def test_kl_is_the_same_split_into_micro_batches(tiny_llama, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--regularisers", "kl", "--batching", "sequential",
              "--max-steps", "2", "--lr", "5e-2", "--lora-dropout", "0"]
    assert run_train(capsys, *common, "--batch-size", "4", "--out", tmp_path / "one")[0] == 0
    assert run_train(capsys, *common, "--batch-size", "1", "--grad-accum", "4", "--out", tmp_path / "four")[0] == 0
    one, four = read_log(tmp_path / "one"), read_log(tmp_path / "four")
    assert one[1]["kl"] > 1e-4
    assert [r["kl"] for r in four] == pytest.approx([r["kl"] for r in one], rel=1e-4, abs=1e-9)
    assert [r["loss"] for r in four] == pytest.approx([r["loss"] for r in one], rel=1e-4)


def test_a_run_recorded_with_method_alone_resumes(tiny_llama, tmp_path, capsys, monkeypatch):
    """config.json of a run started before --adapter and --regularisers existed: its settings hold "method"."""
    data = write_pairs(tmp_path / "a.json", repeat=2)
    fisher = fisher_of(tiny_llama, tmp_path)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher, "--method", "ewc-lora",
              "--batch-size", "2", "--max-steps", "4", "--save-every", "2", "--lr", "5e-3"]
    real = crash_at_step(3, monkeypatch)
    assert run_train(capsys, *common, "--out", tmp_path / "r")[0] == 130
    monkeypatch.setattr(finetune, "append_jsonl", real)
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    for section in ("settings", "options"):
        for key in ("adapter_kind", "regularisers", "kl_weight", "kl_tokens", "replay_data", "replay_ratio",
                    "replay_weight"):
            del recorded[section][key]
    (tmp_path / "r" / "config.json").write_text(json.dumps(recorded))
    assert run_train(capsys, *common, "--out", tmp_path / "r", "--resume")[0] == 0
    assert [r["step"] for r in read_log(tmp_path / "r")] == [1, 2, 3, 4]
    other = [arg for arg in common if arg not in ("--method", "ewc-lora")]
    code, err = run_train(capsys, *other, "--regularisers", "ewc,kl", "--out", tmp_path / "r", "--resume")
    assert code == 2 and "--regularisers ewc,kl (was ewc)" in err


def test_refusals(tiny_llama, tmp_path, capsys, general_text):
    data = write_pairs(tmp_path / "a.json")
    base = ["--model", tiny_llama, "--train", f"1 {data}", "--out", tmp_path / "r"]
    cases = [
        (["--adapter-kind", "full", "--regularisers", "kl"], "--regularisers kl needs an adapter to disable"),
        (["--regularisers", "replay"], "--regularisers replay needs --replay-data FILE"),
        (["--regularisers", "kl", "--replay-data", general_text], "add replay to --regularisers"),
        (["--method", "lora", "--regularisers", "kl"], "--method lora means --adapter-kind lora --regularisers none"),
        (["--regularisers", "ewc,l2"], "--regularisers ewc,l2: expected a comma-separated list"),
        (["--regularisers", "none", "--kl-weight", "0.5"], "--kl-weight is read only by --regularisers kl"),
        (["--regularisers", "none", "--adapter-kind", "osf", "--lora-r", "16"],
         "--lora-r is read only by --adapter-kind lora"),
        (["--regularisers", "kl,ewc"], "--regularisers ewc (the default: EWC-LoRA) needs --fisher"),
        (["--regularisers", "replay", "--replay-data", general_text, "--replay-ratio", "0.1", "--batch-size", "2"],
         "--replay-ratio 0.1 x 2 training examples per process and step rounds to 0 replay texts"),
    ]
    for extra, message in cases:
        code, err = run_train(capsys, *base, *extra)
        assert code == 2 and message in err, (extra, err)
    assert not (tmp_path / "r" / "log.jsonl").exists()


def test_a_fisher_of_another_architecture_is_refused_naming_the_fisher(tiny_llama, tiny_gpt2, tmp_path, capsys):
    """The run names no --modules: the Fisher chose them, so the message blames the Fisher, not --modules."""
    fisher = fisher_of(tiny_gpt2, tmp_path)
    data = write_pairs(tmp_path / "a.json", repeat=2)
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher, "--max-steps", "1",
                          "--out", tmp_path / "r")
    assert code == 2
    assert (f"--fisher {fisher}: computed on {tiny_gpt2} for its c_attn layers; this model has no Linear/Conv1D "
            "layer of these names") in err


def test_a_fisher_computed_on_another_model_is_warned_about(tiny_llama, tmp_path, capsys):
    import shutil

    copy = tmp_path / "other-model"
    shutil.copytree(tiny_llama, copy)
    data = write_pairs(tmp_path / "a.json", repeat=2)
    warning = "was computed on"
    for model, warned in ((copy, True), (tiny_llama, False)):
        fisher = fisher_of(model, tmp_path)
        main(["train", "--model", str(tiny_llama), "--train", f"1 {data}", "--fisher", str(fisher), "--max-steps",
              "1", "--out", str(tmp_path / f"r-{warned}")])
        said = capsys.readouterr().out  # log records go to stdout
        assert (f"--fisher {fisher} {warning} {model}, and this run trains {tiny_llama}" in said) == warned
        assert (warning in said) == warned
