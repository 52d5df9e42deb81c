"""`e2wm train`: data errors, resume, NaN, overfitting, adapters for plain PEFT, two processes, checkpointing,
evaluable checkpoint-N adapters, the forgetting curve (--eval-every), the gradient norm and its clipping."""

import json

import pytest
import torch
from helpers.files import RunsCode
from helpers.train_runs import crash_at_step, deterministic, read_log, run_train, write_pairs
from helpers.training import PAIRS, TEXTS

from e2wm.cli import main
from e2wm.eval.perplexity import perplexity, read_texts
from e2wm.models import ModelSpec, load_model
from e2wm.recipes import finetune
from e2wm.train.data import encode_example
from e2wm.train.fisher import FisherHeader, save_fisher
from e2wm.train.targets import target_layers


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
    assert code == 2 and f"--fisher {fisher}: computed on gpt2 for its c_attn layers; this model has no Linear/Conv1D" \
        in err and not (tmp_path / "r2" / "log.jsonl").exists()
    llama, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    llama_layers = target_layers(llama, ["q_proj", "v_proj"])
    wrong = {n: torch.ones(layer.weight.shape[0], 3) for n, layer in llama_layers.items()}
    save_fisher(fisher, wrong, FisherHeader("x", ["q_proj", "v_proj"], {}, 1, "x", 8, "float32"))
    code, err = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher,
                          "--out", tmp_path / "r3")
    assert code == 2 and "has shape" in err and not (tmp_path / "r3" / "log.jsonl").exists()


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

    real = crash_at_step(7, monkeypatch)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 130
    assert json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())["step"] == 6
    monkeypatch.setattr(finetune, "append_jsonl", real)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 2  # no silent overwrite
    assert run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")[0] == 0
    resumed = read_log(tmp_path / "cut")
    assert [r["step"] for r in resumed] == list(range(1, 13))
    # steps 7..12, re-run from the mid-epoch step-6 checkpoint, give identical losses, per-file CEs and counts
    assert [deterministic(r) for r in resumed] == [deterministic(r) for r in whole]
    assert [sorted(r) for r in resumed] == [sorted(r) for r in whole]  # the timings too, with their own values
    changed = [*common[:-2], "--lr", "1e-3"]
    refused = run_train(capsys, *changed, "--out", tmp_path / "cut", "--resume")[1]
    assert "was started with other --lr 0.001 (was 0.005);" in refused
    recorded = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert set(recorded["settings"]["inputs"]) == {str(data), str(other), str(fisher)}
    assert recorded["provenance"]["versions"]["torch"] and recorded["provenance"]["device"] == "cpu"
    assert recorded["provenance"]["wall_seconds"] > 0
    with open(other, "a") as handle:  # the same file name with other contents is not silently reused
        handle.write(json.dumps({"input": "Walk to bedroom.", "ref": "Lie on bed."}) + "\n")
    code, err = run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")
    assert code == 2 and f"was started with other contents of {other};" in err


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(tiny_llama, tmp_path, capsys, monkeypatch):
    """A kill or a full disk before the first checkpoint: nothing to resume from, but the run is there (config.json,
    log rows); --resume starts it again and ends as an uninterrupted run (it was refused: 'no checkpoint')."""
    data = write_pairs(tmp_path / "a.json", repeat=2)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--batch-size", "2", "--max-steps", "4",
              "--save-every", "3", "--method", "lora", "--lr", "5e-3"]
    assert run_train(capsys, *common, "--out", tmp_path / "whole")[0] == 0
    real = crash_at_step(2, monkeypatch)
    assert run_train(capsys, *common, "--out", tmp_path / "cut")[0] == 130
    assert not (tmp_path / "cut" / "checkpoint").exists() and len(read_log(tmp_path / "cut")) == 1
    monkeypatch.setattr(finetune, "append_jsonl", real)
    code, err = run_train(capsys, *common, "--out", tmp_path / "cut", "--resume")
    assert code == 0, err
    assert [deterministic(r) for r in read_log(tmp_path / "cut")] == \
        [deterministic(r) for r in read_log(tmp_path / "whole")]


def test_resume_says_when_auto_autocast_resolves_otherwise(tiny_gpt2, tmp_path, capsys):
    """--autocast auto is recorded as "auto": a run resumed on a machine whose choice differs (bf16 there,
    float32 here) continues, saying so (on standard output, with the other log lines)."""
    data = write_pairs(tmp_path / "a.json", repeat=2)
    args = ["train", "--model", str(tiny_gpt2), "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
            "--out", str(tmp_path / "r"), "--save-every", "1", "--max-steps", "1"]
    main(args)
    main([*args, "--resume"])
    assert "computed its matrix products in" not in capsys.readouterr().out  # the same choice: no word
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    assert recorded["provenance"]["matmul_peak"]["dtype"] == "torch.float32"
    recorded["provenance"]["matmul_peak"]["dtype"] = "torch.bfloat16"  # as a machine with native bf16 records it
    (tmp_path / "r" / "config.json").write_text(json.dumps(recorded))
    main([*args, "--resume"])
    assert "computed its matrix products in torch.bfloat16, this machine in torch.float32 (--autocast auto)" in \
        capsys.readouterr().out


def spoil_third_step(monkeypatch, spoil) -> None:
    """Make the third micro-batch's weighted NLL go through spoil (value -> value) before training uses it."""
    real, calls = finetune.weighted_nll_outputs, []

    def patched(model, batch, all_positions=False):
        calls.append(1)
        value, outputs = real(model, batch, all_positions)
        return (spoil(value) if len(calls) == 3 else value), outputs

    monkeypatch.setattr(finetune, "weighted_nll_outputs", patched)


def test_nan_loss_stops_naming_the_step_and_keeps_checkpoint(tiny_gpt2, tmp_path, capsys, monkeypatch):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    spoil_third_step(monkeypatch, lambda value: value * float("nan"))
    code, err = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora",
                          "--batch-size", "2", "--save-every", "2", "--out", tmp_path / "r")
    assert code == 1 and "step 3: the loss is nan" in err and "stopped before updating" in err
    state = json.loads((tmp_path / "r" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and [r["step"] for r in read_log(tmp_path / "r")] == [1, 2]


def test_nan_gradients_stop_before_the_update(tiny_gpt2, tmp_path, capsys, monkeypatch):
    """A finite loss with non-finite gradients (an overflowing step) stops before AdamW applies them."""
    from safetensors.torch import load_file

    def nan_gradients(value):
        value.register_hook(lambda grad: grad * float("nan"))  # the loss stays finite, its gradients do not
        return value

    data = write_pairs(tmp_path / "a.json", repeat=2)
    spoil_third_step(monkeypatch, nan_gradients)
    code, err = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora",
                          "--batch-size", "2", "--save-every", "1", "--out", tmp_path / "r")
    assert code == 1 and "step 3: the loss is" in err and "the loss is nan" not in err and "gradient norm nan" in err
    assert [r["step"] for r in read_log(tmp_path / "r")] == [1, 2]  # no NaN row in log.jsonl
    state = load_file(str(tmp_path / "r" / "checkpoint" / "trainable.safetensors"))
    assert all(torch.isfinite(t).all() for t in state.values())


def test_resume_refuses_other_base_model_files(tiny_gpt2, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_gpt2, model)
    data = write_pairs(tmp_path / "a.json", repeat=2)
    args = ["--model", model, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2", "--out", tmp_path / "r"]
    assert run_train(capsys, *args, "--max-steps", "1")[0] == 0
    (model / "config.json").write_text((model / "config.json").read_text().replace("}", ', "e2wm_test": 1}', 1))
    code, err = run_train(capsys, *args, "--max-steps", "1", "--resume")
    assert code == 2 and "base model files" in err

def test_resume_accepts_options_added_since_at_their_default(tiny_gpt2, tmp_path, capsys):
    """A run started by an e2wm without an option (its config.json lacks the setting) resumes when the option is
    at its default, and is refused when it is not."""
    data = write_pairs(tmp_path / "a.json", repeat=2)
    args = ["--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2", "--out",
            tmp_path / "r", "--save-every", "1"]
    assert run_train(capsys, *args, "--max-steps", "1")[0] == 0
    recorded = json.loads((tmp_path / "r" / "config.json").read_text())
    del recorded["settings"]["max_grad_norm"], recorded["settings"]["truncation"]  # as if added after the run
    (tmp_path / "r" / "config.json").write_text(json.dumps(recorded))
    code, err = run_train(capsys, *args, "--max-steps", "1", "--max-grad-norm", "0.5", "--resume")
    assert code == 2 and "was started with other --max-grad-norm 0.5 (was None)" in err
    code, err = run_train(capsys, *args, "--max-steps", "1", "--resume")  # the finished run: nothing left to do
    assert code == 0, err
    assert [row["step"] for row in read_log(tmp_path / "r")] == [1]


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
    step = tmp_path / "r" / "checkpoint-30" / "model"  # full finetuning: each checkpoint-N holds model and tokenizer
    assert (step / "config.json").is_file() and (step / "tokenizer.json").is_file()


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


@pytest.mark.parametrize("method", [["--method", "lora"], ["--regularisers", "kl", "--kl-tokens", "all"],
                                    ["--regularisers", "none", "--adapter-kind", "osf"],
                                    ["--method", "lora", "--optimizer", "mofo", "--mofo-fraction", "0.3"]],
                         ids=["lora", "kl", "osf", "mofo"])
def test_two_cpu_processes_under_accelerate_match_one_with_accumulation(method, tiny_llama, tmp_path, capsys):
    """DDP over two gloo processes gives the losses of one process accumulating two micro-batches; with the KL
    anchor (its base pass on the DDP-wrapped model's module, its sums divided by the whole step's tokens), with
    OSF (PEFT's gradient projection, linear, commutes with DDP's all-reduce) and with MoFO (its moments from the
    all-reduced gradient, the same on every process) too."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    # tiny Llama: no dropout anywhere with --lora-dropout 0 (GPT-2's own dropout draws from each process's RNG)
    data = write_pairs(tmp_path / "a.json", repeat=2)
    dropout = [] if "osf" in method else ["--lora-dropout", "0"]  # OSF has no dropout (the option is refused)
    common = ["--model", tiny_llama, "--train", f"1 {data}", *method, "--batch-size", "2", *dropout,
              "--epochs", "2", "--lr", "1e-2",
              "--autocast", "none"]  # the launched processes are not under the suite's float32 pin (conftest)
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
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)  # the norm of the all-reduced gradient
        assert b.get("kl", 0.0) == pytest.approx(a.get("kl", 0.0), rel=1e-4, abs=1e-9)
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()


def test_gradient_checkpointing_gives_the_same_losses(tiny_llama, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--batch-size", "4",
              "--lora-dropout", "0", "--max-steps", "2", "--lr", "1e-2"]
    assert run_train(capsys, *common, "--out", tmp_path / "plain")[0] == 0
    assert run_train(capsys, *common, "--gradient-checkpointing", "--out", tmp_path / "ckpt")[0] == 0
    plain, ckpt = read_log(tmp_path / "plain"), read_log(tmp_path / "ckpt")
    assert [r["loss"] for r in ckpt] == pytest.approx([r["loss"] for r in plain], rel=1e-6)


def write_qa(path, items):
    path.write_text("".join(json.dumps({"input": q, "answer_list": o, "answer": a}) + "\n" for q, o, a in items))
    return path


DEV = [
    ("There are 3 items on the table. How many items are there?", ["1", "2", "3", "4"], "3"),
    ("John picked up the apple and the cup. How many items does John hold?", ["1", "2", "3", "4"], "2"),
    ("Mary went to the office. She took a pen. How many items are there?", ["1", "2", "3", "4"], "1"),
    ("The plate, the apple, the cup and the fork are in the kitchen. How many items?", ["1", "2", "3", "4"], "4"),
]


def test_checkpoints_evaluate_and_log_the_forgetting_curve(tiny_llama, tmp_path, capsys):
    from safetensors.torch import load_file

    data = write_pairs(tmp_path / "a.json", repeat=2)
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    dev = write_qa(tmp_path / "count.jsonl", DEV)
    run = tmp_path / "r"
    code, _ = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--lr", "1e-2",
                        "--batch-size", "2", "--epochs", "2", "--max-steps", "5", "--save-every", "2",
                        "--eval-every", "2", "--eval-ppl-data", general, "--eval-data", dev, "--out", run)
    assert code == 0
    log = {row["step"]: row for row in read_log(run)}
    assert list(log) == [1, 2, 3, 4, 5] and all(row["grad_norm"] > 0 for row in log.values())
    assert [s for s, row in log.items() if "eval_ppl" in row] == [2, 4, 5]  # every 2 steps and the last
    assert [s for s, row in log.items() if "eval_accuracy" in row] == [2, 4, 5]
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("checkpoint")) == [
        "checkpoint", "checkpoint-2", "checkpoint-4", "checkpoint-5"]
    texts, curve = read_texts(general), []
    for step in (2, 4, 5):  # the logged point is the perplexity of the adapter saved at that step
        model, tokenizer = load_model(ModelSpec(str(tiny_llama), adapter=str(run / f"checkpoint-{step}" / "adapter"),
                                                device="cpu"))
        curve.append(perplexity(model, tokenizer, texts, 512)["perplexity"])  # 512: the tiny model's context
        assert curve[-1] == pytest.approx(log[step]["eval_ppl"], rel=1e-5)
    assert len(set(curve)) == 3  # the adapter moves the general-text perplexity
    # the exact-resume state at the last step holds the same weights as checkpoint-5/adapter
    params = dict(model.named_parameters())
    state = load_file(str(run / "checkpoint" / "trainable.safetensors"))
    assert state and all(torch.equal(params[name], value) for name, value in state.items())
    # `e2wm eval --adapter RUN/checkpoint-4/adapter` scores what the run measured on its model at step 4
    main(["eval", "--model", str(tiny_llama), "--adapter", str(run / "checkpoint-4" / "adapter"), "--data", str(dev),
          "--ppl-data", str(general), "--out", str(tmp_path / "eval")])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["count"]["accuracy"] == log[4]["eval_accuracy"] and metrics["count"]["n"] == 4
    assert metrics["ppl"]["perplexity"] == pytest.approx(log[4]["eval_ppl"], rel=1e-5)


def test_keep_last_leaves_one_checkpoint_step(tiny_gpt2, tmp_path, capsys):
    from safetensors.torch import load_file

    data = write_pairs(tmp_path / "a.json")
    run = tmp_path / "r"
    code, _ = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--lr", "1e-2",
                        "--batch-size", "2", "--epochs", "2", "--save-every", "1", "--keep-last", "1", "--out", run)
    assert code == 0 and [r["step"] for r in read_log(run)] == [1, 2, 3, 4]
    assert sorted(p.name for p in run.iterdir()) == ["adapter", "checkpoint", "checkpoint-4", "config.json",
                                                     "log.jsonl"]
    last = load_file(str(run / "checkpoint-4" / "adapter" / "adapter_model.safetensors"))
    final = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert last.keys() == final.keys() and all(torch.equal(last[k], final[k]) for k in last)


def test_resume_refuses_a_checkpoint_that_would_run_code(tiny_gpt2, tmp_path, capsys):
    import pickle

    data = write_pairs(tmp_path / "a.json")
    run = tmp_path / "r"
    common = ["--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2", "--epochs", "2",
              "--save-every", "2", "--out", run]
    assert run_train(capsys, *common)[0] == 0
    marker = tmp_path / "marker"
    hostile = {"state": {0: RunsCode(marker)}, "param_groups": []}
    pickle.loads(pickle.dumps(hostile))  # the plant works: plain unpickling runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    def refusal(*args) -> str:  # the one error line (stderr also holds the model's loading bar)
        code, err = run_train(capsys, *args)
        errors = [line for line in err.splitlines() if "error" in line]
        assert code == 2 and len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err
        return errors[0]

    for name in ["optimizer.pt", "scheduler.pt", "rng-0.pt"]:
        planted = run / "checkpoint" / name
        original = planted.read_bytes()
        torch.save(hostile, planted)
        assert refusal(*common, "--resume") == (
            f"e2wm train: error: {planted}: refused: it holds objects other than tensors and plain values, which "
            "loading could run as code (torch.load weights_only)")
        assert not marker.exists()
        planted.write_bytes(b"not a torch file")
        assert refusal(*common, "--resume").startswith(f"e2wm train: error: {planted}: cannot read (")
        planted.write_bytes(original)
    weights = run / "checkpoint" / "trainable.safetensors"
    weights.write_bytes(b"not safetensors")
    assert refusal(*common, "--resume").startswith(f"e2wm train: error: {weights}: not a safetensors file (")
    weights.unlink()
    assert refusal(*common, "--resume") == f"e2wm train: error: {weights}: missing from the checkpoint"


def hand_grad_norm(model_dir) -> float:
    """The L2 norm of the gradient of the mean ref-token NLL over PAIRS (weight 1 each), one text at a time."""
    model, tokenizer = load_model(ModelSpec(str(model_dir), device="cpu"))
    total, count = torch.zeros(()), 0
    for text, ref in PAIRS:
        example = encode_example(tokenizer, text, ref, 1.0, 800)
        logp = torch.log_softmax(model(input_ids=torch.tensor([example.ids])).logits[0].float(), -1)  # (T, V)
        for t in range(1, len(example.ids)):
            if example.is_ref[t]:
                total = total - logp[t - 1, example.ids[t]]
                count += 1
    (total / count).backward()
    return sum(p.grad.double().pow(2).sum().item() for p in model.parameters() if p.grad is not None) ** 0.5


def test_grad_norm_is_the_gradients_l2_norm_and_max_grad_norm_clips(tiny_llama, tmp_path, capsys, monkeypatch):
    # full finetuning of the tiny Llama (no dropout): one step of all four pairs, the whole gradient by hand
    data = write_pairs(tmp_path / "a.json")
    expected = hand_grad_norm(tiny_llama)
    seen = []  # the gradient's norm when AdamW steps, i.e. what the update uses
    real_step = torch.optim.AdamW.step

    def spy(optimizer, *args, **kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item())
        return real_step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--method", "full", "--batch-size", "4",
              "--max-steps", "1", "--lr", "1e-3"]
    assert run_train(capsys, *common, "--out", tmp_path / "plain")[0] == 0
    logged = read_log(tmp_path / "plain")[0]["grad_norm"]
    assert logged == pytest.approx(expected, rel=1e-5) and seen == [pytest.approx(expected, rel=1e-5)]
    limit = expected / 4
    assert run_train(capsys, *common, "--max-grad-norm", limit, "--out", tmp_path / "clipped")[0] == 0
    assert read_log(tmp_path / "clipped")[0]["grad_norm"] == pytest.approx(logged, rel=1e-6)  # before clipping
    assert seen[1] == pytest.approx(limit, rel=1e-5)  # the optimiser stepped with the clipped gradient


def test_bad_eval_and_distributed_options_exit_2(tiny_llama, tmp_path, capsys, monkeypatch):
    import accelerate
    from accelerate.utils import DistributedType

    data = write_pairs(tmp_path / "a.json")
    general = tmp_path / "general.txt"
    general.write_text("\n\n".join(TEXTS))
    generation = tmp_path / "plan_gen.jsonl"
    generation.write_text(json.dumps({"input": "Q: How to watch TV?", "ref": "Switch on tv."}) + "\n")
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--out", tmp_path / "r"]
    cases = [
        (["--eval-every", "2"], "--eval-every needs --eval-ppl-data FILE"),
        (["--eval-data", generation], "--eval-data needs --eval-every N"),
        (["--eval-every", "2", "--eval-ppl-data", general, "--eval-data", generation], "a generation file"),
        (["--eval-every", "2", "--eval-ppl-data", tmp_path / "none.jsonl"], "--eval-ppl-data"),
        (["--max-grad-norm", "0"], "--max-grad-norm must be above 0, got 0.0"),
        (["--keep-last", "0"], "--keep-last must be at least 1, got 0"),
    ]
    for options, message in cases:
        code, err = run_train(capsys, *common, *options)
        assert code == 2 and message in err and err.strip().count("\n") == 0, (options, err)

    class Fsdp(accelerate.Accelerator):
        @property
        def distributed_type(self):
            return DistributedType.FSDP

    monkeypatch.setattr(accelerate, "Accelerator", Fsdp)
    code, err = run_train(capsys, *common)
    assert code == 2 and "accelerate's FSDP is not supported yet" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "r").exists()


def test_a_forgetting_curve_that_cannot_be_measured_is_refused_before_training(tiny_gpt2, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json")
    general = tmp_path / "general.jsonl"
    general.write_text('{"text": "Walk"}\n{"text": "cup"}\n')  # one token each (no BOS): nothing to predict
    dev = write_qa(tmp_path / "act_recog.jsonl", [("Answer:", ["yes", "Walk to kitchen. " * 200], "yes")])
    common = ["--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--eval-every", "2", "--out"]
    code, err = run_train(capsys, *common, tmp_path / "r1", "--eval-ppl-data", general)
    assert code == 2 and err.strip().splitlines()[-1].endswith(
        f"--eval-ppl-data {general}: no text has two or more tokens (nothing to predict)")
    general.write_text('{"text": "Walk to kitchen."}\n')
    code, err = run_train(capsys, *common, tmp_path / "r2", "--eval-ppl-data", general, "--eval-data", dev)
    last = err.strip().splitlines()[-1]
    assert code == 2 and f"{dev}:1: field 'answer_list': an option of " in last, err
    assert last.endswith("(the model's context of 512 tokens)")
    assert not (tmp_path / "r2" / "log.jsonl").exists()  # no step was taken


@pytest.mark.parametrize(("scale", "method"), [("paper", "ewc-lora"), ("mean", "ewc-lora"), ("paper", "lora")])
def test_the_logged_penalty_uses_the_scaled_fisher(tiny_llama, tmp_path, capsys, scale, method):
    """Step 2's logged EWC term equals sum(scaled F * dW**2) with dW from the step-1 checkpoint's adapter; plain
    LoRA with a Fisher logs it too (measured, not in its loss)."""
    from safetensors.torch import load_file

    from e2wm.train.fisher import load_fisher
    from e2wm.train.fisher_scale import scale_fisher

    data = write_pairs(tmp_path / "a.json", repeat=2)
    fisher = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(tiny_llama), "--n", "2", "--max-len", "8", "--out", str(fisher)])
    code, _ = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher, "--fisher-scale",
                        scale, "--lambda", "1", "--batch-size", "2", "--max-steps", "2", "--save-every", "1",
                        "--lr", "1e-2", "--lora-dropout", "0", "--method", method, "--out", tmp_path / "r")
    assert code == 0
    weights = load_file(str(tmp_path / "r" / "checkpoint-1" / "adapter" / "adapter_model.safetensors"))
    scaled = scale_fisher(load_fisher(fisher)[1], scale)
    expected = 0.0
    for name, f in scaled.items():
        prefix = f"base_model.model.{name}"
        a, b = weights[f"{prefix}.lora_A.weight"].double(), weights[f"{prefix}.lora_B.weight"].double()
        expected += float((f.double() * ((32 / 8) * b @ a) ** 2).sum())  # scaling alpha / r
    row = read_log(tmp_path / "r")[1]
    assert expected > 0 and row["ewc"] == pytest.approx(expected, rel=1e-4)
    if method == "lora":  # measured only: the same run without the Fisher trains and logs the same losses
        code, _ = run_train(capsys, "--model", tiny_llama, "--train", f"1 {data}", "--batch-size", "2",
                            "--max-steps", "2", "--lr", "1e-2", "--lora-dropout", "0", "--method", "lora",
                            "--out", tmp_path / "plain")
        plain = read_log(tmp_path / "plain")
        assert code == 0 and [r["loss"] for r in plain] == [r["loss"] for r in read_log(tmp_path / "r")]
        assert not any("ewc" in r for r in plain)  # nothing measured it: no value rather than a 0


def test_scheduler_steps_sizes_the_decay(tiny_gpt2, tmp_path, capsys):
    data = write_pairs(tmp_path / "a.json", repeat=2)
    code, _ = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
                        "--max-steps", "4", "--scheduler-steps", "16", "--lr", "1e-3", "--out", tmp_path / "r")
    assert code == 0
    assert [round(row["lr"], 8) for row in read_log(tmp_path / "r")] == [1e-3, 9.375e-4, 8.75e-4, 8.125e-4]


@pytest.mark.parametrize("norm", ["mixture", "step", "micro-batch"])
def test_logged_ce_is_each_normalisation_on_the_same_batches(tiny_llama, tmp_path, capsys, norm):
    """Step 1 (before any update: LoRA's B is 0, so the model is the base) against an independent computation:
    the seeded shuffle cut into 2 micro-batches of 2, per-token NLL from one forward per example. The logged ce
    is always sum(w * NLL) / sum(w) over the step; the logged loss (lambda 0) is the normalised objective:
    mixture: sum(w * NLL) / (the mean sum(w) of a step over all examples); step: the same as ce; micro-batch:
    the mean over micro-batches of sum(w * NLL) / answer tokens."""
    import random

    other = [("Sit on the sofa. Turn on the TV.", "Watch TV"), ("Grab the towel.", "bathroom, bedroom")]
    a, b = write_pairs(tmp_path / "a.json"), write_pairs(tmp_path / "b.json", other)
    code, _ = run_train(capsys, "--model", tiny_llama, "--train", f"1 {a} 0.5 {b}", "--method", "lora",
                        "--batch-size", "2", "--grad-accum", "2", "--max-steps", "1", "--loss-norm", norm,
                        "--lora-dropout", "0", "--out", tmp_path / "r")
    assert code == 0
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    examples = [encode_example(tokenizer, t, r, w, 800) for w, pairs in ((1.0, PAIRS), (0.5, other)) for t, r in pairs]
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)  # seed 0, epoch 0
    sums, counts, weights = [], [], []
    with torch.no_grad():
        for index in order[:4]:
            example = examples[index]
            logp = torch.log_softmax(model(input_ids=torch.tensor([example.ids])).logits[0].double(), -1)
            refs = [t for t in range(1, len(example.ids)) if example.is_ref[t]]
            sums.append(-example.weight * sum(logp[t - 1, example.ids[t]].item() for t in refs))
            counts.append(len(refs))
            weights.append(example.weight * len(refs))
    everything = sum(e.weight * sum(e.is_ref[1:]) for e in examples)
    objective = {
        "mixture": sum(sums) / (everything * 4 / len(examples)),
        "step": sum(sums) / sum(weights),
        "micro-batch": ((sums[0] + sums[1]) / (counts[0] + counts[1]) + (sums[2] + sums[3]) / (counts[2] + counts[3]))
        / 2,
    }
    row = read_log(tmp_path / "r")[0]
    assert row["ce"] == pytest.approx(sum(sums) / sum(weights), rel=1e-5)
    assert row["loss"] == pytest.approx(objective[norm], rel=1e-5) and "ewc" not in row
    assert len({round(v, 6) for v in objective.values()}) == 3  # the three formulas differ on this step


def test_weight_decay_and_length_batching_reach_the_optimiser(tiny_gpt2, tmp_path, capsys):
    from e2wm.recipes.finetune import FinetuneRecipe
    from e2wm.train.config import TrainConfig

    data = write_pairs(tmp_path / "a.json", repeat=2)
    recipe = FinetuneRecipe(TrainConfig(model=str(tiny_gpt2), train=f"1 {data}", method="lora", weight_decay=0.01,
                                        batching="length", out=str(tmp_path / "r")))
    recipe.setup()
    assert recipe.optimizer.param_groups[0]["weight_decay"] == 0.01
    assert recipe.schedule.mean_step_weight == pytest.approx(
        sum(sum(e.is_ref[1:]) for e in recipe.examples) * 4 / len(recipe.examples))
    code, err = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batching",
                          "length", "--loss-norm", "micro-batch", "--out", tmp_path / "r2")
    assert code == 2 and "--batching length needs --loss-norm mixture" in err


def test_sequential_batching_trains_in_the_files_order_every_epoch(tiny_gpt2, tmp_path, capsys):
    # a curriculum: the file lists short examples first; each step's token count follows the file's order
    pairs = [(" ".join(["word"] * n), "yes") for n in (2, 2, 6, 6, 12, 12)]
    data = write_pairs(tmp_path / "a.json", pairs)
    code, _ = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
                        "--batching", "sequential", "--epochs", "2", "--out", tmp_path / "r")
    tokens = [row["tokens"] for row in read_log(tmp_path / "r")]
    assert code == 0 and len(tokens) == 6 and tokens[:3] == tokens[3:]
    assert tokens[0] < tokens[1] < tokens[2]
    code, _ = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
                        "--epochs", "2", "--out", tmp_path / "r2")
    assert code == 0 and [row["tokens"] for row in read_log(tmp_path / "r2")] != tokens  # random: shuffled


def test_the_adapter_has_a_model_card_naming_the_public_base(tiny_gpt2, tmp_path, capsys):
    import yaml

    from e2wm.train.card import model_card

    data = write_pairs(tmp_path / "a.json", repeat=2)
    code, _ = run_train(capsys, "--model", tiny_gpt2, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
                        "--max-steps", "2", "--save-every", "1", "--out", tmp_path / "r")
    assert code == 0
    for adapter in (tmp_path / "r" / "adapter", tmp_path / "r" / "checkpoint-1" / "adapter"):
        card = (adapter / "README.md").read_text()
        metadata = yaml.safe_load(card.split("---")[1])
        assert metadata["base_model"] == str(tiny_gpt2) and metadata["library_name"] == "peft"
        assert "| adapter kind | lora |" in card and "| regularisers | none |" in card
        assert "`a.json`: `" in card and "@inproceedings{xiang2023language" in card
        assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny_gpt2)
    assert "2 optimiser steps" in (tmp_path / "r" / "adapter" / "README.md").read_text()
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text(json.dumps({
        "count": {"accuracy": 0.5, "accuracy_stderr": 0.1, "n": 26},
        "plan_gen": {"rougeL": 0.4, "rougeL_stderr": 0.02, "n": 59},
        "ppl": {"perplexity": 37.4, "tokens": 883},
        "my_paths": {"lcs": 0.25, "lcs_stderr": 0.05, "n": 9},  # a user's own file: its metric from the table
        "eai_action_sequence": {"task_success": None, "n": 3}}))  # a --limit run the judge counted none of
    card = model_card(tmp_path / "r", evaluation)
    assert "| my paths | lcs | 0.250 ± 0.050 | 9 |" in card
    assert "| EAI action sequencing | task_success | — | 3 |" in card
    assert "| counting | accuracy | 0.500 ± 0.100 | 26 |" in card
    assert "| plan generation | rougeL | 0.400 ± 0.020 | 59 |" in card
    assert "| general text | perplexity | 37.40 | 883 tokens |" in card


def test_the_embedded_base_is_named_by_its_hub_id():
    from e2wm.models import EMBEDDED_NAME
    from e2wm.train.card import hub_name

    assert hub_name(EMBEDDED_NAME) == "HuggingFaceTB/SmolLM2-135M-Instruct" and hub_name("gpt2") == "gpt2"
