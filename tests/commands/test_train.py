"""`e2wm train`: data errors, resume, NaN, overfitting, adapters for plain PEFT, two processes, checkpointing."""

import json

import pytest
import torch
from helpers.training import PAIRS

from e2wm.cli import main
from e2wm.models import ModelSpec, load_model
from e2wm.recipes import finetune
from e2wm.train.fisher import FisherHeader, save_fisher
from e2wm.train.targets import target_layers


def write_pairs(path, pairs=PAIRS, repeat=1):
    path.write_text("".join(json.dumps({"input": t, "ref": r}) + "\n" for t, r in pairs * repeat))
    return path


def run_train(capsys, *args):
    try:
        main(["train", *map(str, args)])
    except SystemExit as stop:
        return stop.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_cli_bad_input_exits_2(tiny_llama, tiny_gpt2, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json")
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data} 0.5", "--method", "lora",
                          "--out", tmp_path / "r")
    assert code == 2 and "expected pairs" in err
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {tmp_path / 'none.json'}",
                          "--method", "lora", "--out", tmp_path / "r")
    assert code == 2 and "none.json: no such file" in err
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--out", tmp_path / "r")
    assert code == 2 and "needs --fisher" in err
    # a Fisher of the GPT-2 model does not fit the Llama model: refused before any training step
    model, _ = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))
    layers = target_layers(model, ["c_attn"])
    fisher = tmp_path / "gpt2.safetensors"
    save_fisher(fisher, {n: torch.ones(layer.weight.shape) for n, layer in layers.items()},
                FisherHeader("gpt2", ["c_attn"], {}, 1, "x", 8, "float32"))
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher,
                          "--out", tmp_path / "r2")
    assert code == 2 and "no Linear/Conv1D module" in err and not (tmp_path / "r2" / "log.jsonl").exists()
    llama, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    llama_layers = target_layers(llama, ["q_proj", "v_proj"])
    wrong = {n: torch.ones(layer.weight.shape[0], 3) for n, layer in llama_layers.items()}
    save_fisher(fisher, wrong, FisherHeader("x", ["q_proj", "v_proj"], {}, 1, "x", 8, "float32"))
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher,
                          "--out", tmp_path / "r3")
    assert code == 2 and "has shape" in err and not (tmp_path / "r3" / "log.jsonl").exists()


def read_log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_resume_continues_exactly(tiny_llama, tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path / "a.json", repeat=3)
    other = write_pairs(tmp_path / "b.json", PAIRS[:2], repeat=2)
    fisher = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(tiny_llama), "--n", "2", "--max-len", "8", "--out", str(fisher)])
    common = ["--model", tiny_llama, "--train", f"1 {data} 0.7 {other}", "--fisher", fisher, "--lambda", "50",
              "--batch-size", "2", "--grad-accum", "2", "--epochs", "3", "--save-every", "2", "--lr", "5e-3"]
    assert run_train(capsys, *common, "--out", tmp_path / "whole")[0] == 0
    whole = read_log(tmp_path / "whole")
    assert len(whole) == 12 and whole[-1]["step"] == 12 and whole[-1]["ewc"] > 0  # 16 examples / 4 = 4 steps x 3

    real = finetune.append_jsonl

    def crash_at_step_7(path, record):
        if record["step"] == 7:
            raise KeyboardInterrupt
        real(path, record)

    monkeypatch.setattr(finetune, "append_jsonl", crash_at_step_7)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 130
    assert json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())["step"] == 6
    monkeypatch.setattr(finetune, "append_jsonl", real)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 2  # no silent overwrite
    assert run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")[0] == 0
    resumed = read_log(tmp_path / "cut")
    assert [r["step"] for r in resumed] == list(range(1, 13))
    assert resumed == whole  # steps 7..12, re-run from the mid-epoch step-6 checkpoint, give identical losses
    changed = [*common[:-2], "--lr", "1e-3"]
    assert "other options (lr)" in run_train(capsys, *changed, "--out", tmp_path / "cut", "--resume")[1]
    recorded = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert set(recorded["settings"]["inputs"]) == {str(data), str(other), str(fisher)}
    assert recorded["provenance"]["versions"]["torch"] and recorded["provenance"]["device"] == "cpu"
    with open(other, "a") as handle:  # the same file name with other contents is not silently reused
        handle.write(json.dumps({"input": "Walk to bedroom.", "ref": "Lie on bed."}) + "\n")
    code, err = run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")
    assert code == 2 and f"was started on other contents of {other}" in err


def test_nan_loss_stops_naming_the_step_and_keeps_checkpoint(tiny_gpt2, tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    real = finetune.weighted_nll_sum
    calls = []

    def nan_on_third_step(model, batch):
        calls.append(1)
        value = real(model, batch)
        return value * float("nan") if len(calls) == 3 else value

    monkeypatch.setattr(finetune, "weighted_nll_sum", nan_on_third_step)
    code, err = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora",
                          "--batch-size", "2", "--save-every", "2", "--out", tmp_path / "r")
    assert code == 1 and "step 3: the loss is nan" in err
    state = json.loads((tmp_path / "r" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and [r["step"] for r in read_log(tmp_path / "r")] == [1, 2]


def test_tiny_model_overfits_a_tiny_set(tiny_llama, tmp_path, capsys):
    # full finetuning: on a random 32-wide model, LoRA's low-rank deltas pass through near-zero random
    # weights and move the logits too slowly for a quick test; the loop, loss and schedule are the same
    data = write_pairs(tmp_path / "a.json", PAIRS[:2])
    fisher = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(tiny_llama), "--n", "2", "--max-len", "8", "--out", str(fisher)])
    code, _ = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--method", "full", "--lr", "1e-2",
                        "--fisher", fisher, "--lambda", "1", "--batch-size", "2", "--epochs", "30",
                        "--save-every", "100", "--out", tmp_path / "r")
    assert code == 0
    log = read_log(tmp_path / "r")
    assert len(log) == 30 and log[-1]["ce"] < 0.5 * log[0]["ce"]
    assert log[0]["ewc"] == 0.0 and log[-1]["ewc"] > 0  # EWC on the full weights of the Fisher's modules
    assert log[0]["lr"] == 1e-2 and log[-1]["lr"] == pytest.approx(1e-2 / 30)
    assert (tmp_path / "r" / "model" / "config.json").is_file()


def test_adapter_loads_with_plain_peft(tiny_gpt2, tmp_path, capsys):
    from peft import PeftModel
    from safetensors.torch import load_file

    data = write_pairs(tmp_path / "a.json")
    code, _ = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--lr", "1e-2",
                        "--batch-size", "2", "--epochs", "1", "--out", tmp_path / "r")
    assert code == 0 and [r["step"] for r in read_log(tmp_path / "r")] == [1, 2]
    base, _ = load_model(ModelSpec(str(tiny_gpt2), device="cpu"))
    loaded = PeftModel.from_pretrained(base, str(tmp_path / "r" / "adapter"))
    params = dict(loaded.named_parameters())
    saved = load_file(str(tmp_path / "r" / "checkpoint" / "trainable.safetensors"))
    assert len(saved) == 4 and all(torch.equal(params[name], value) for name, value in saved.items())
    assert any(value.abs().sum() > 0 for name, value in saved.items() if "lora_B" in name)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_cpu_processes_under_accelerate_match_one_with_accumulation(tiny_llama, tmp_path, capsys):
    import os
    import subprocess
    import sys
    from pathlib import Path

    # tiny Llama: no dropout anywhere with --lora-dropout 0 (GPT-2's own dropout draws from each process's RNG)
    data = write_pairs(tmp_path / "a.json", repeat=2)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
              "--lora-dropout", "0", "--epochs", "2", "--lr", "1e-2"]
    assert run_train(capsys, *common, "--grad-accum", "2", "--out", tmp_path / "one")[0] == 0
    config = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "cpu-2proc.yaml"
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
               "--main_process_port", str(free_port()), "-m", "e2wm", "train", *map(str, common),
               "--out", str(tmp_path / "two")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = read_log(tmp_path / "one"), read_log(tmp_path / "two")
    assert [r["step"] for r in two] == [1, 2, 3, 4]
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["lr"] == a["lr"]
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()


def test_gradient_checkpointing_gives_the_same_losses(tiny_llama, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--batch-size", "4",
              "--lora-dropout", "0", "--max-steps", "2", "--lr", "1e-2"]
    assert run_train(capsys, *common, "--out", tmp_path / "plain")[0] == 0
    assert run_train(capsys, *common, "--gradient-checkpointing", "--out", tmp_path / "ckpt")[0] == 0
    plain, ckpt = read_log(tmp_path / "plain"), read_log(tmp_path / "ckpt")
    assert [r["loss"] for r in ckpt] == pytest.approx([r["loss"] for r in plain], rel=1e-6)
