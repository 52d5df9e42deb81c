"""e2wm train: EWC penalty and weighted loss by hand, lambda 0 = LoRA, data errors, resume, NaN, overfitting."""

import json

import pytest
import torch

from e2wm.cli import main
from e2wm.errors import InputError
from e2wm.models import ModelSpec, load_model
from e2wm.recipes import finetune
from e2wm.train.data import collate, encode_example, length_grouped_batches, parse_mixture, read_pairs, ref_weight
from e2wm.train.ewc import FullEwc, LoraEwc, lora_layers
from e2wm.train.fisher import FisherHeader, save_fisher
from e2wm.train.loop import weighted_nll_sum
from e2wm.train.targets import target_layers

PAIRS = [
    ("Q: How many items are on the table?\nA:", "There are 3 items."),
    ("Walk to kitchen. Grab cup.", "Open fridge."),
    ("Given a task plan: Switch on tv. What is the name of this task?", "Watch TV"),
    ("John picked up the apple.", "kitchen, hallway"),
]


def peft_model(path, seed=0, dropout=0.0):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model(ModelSpec(str(path), device="cpu"))
    torch.manual_seed(seed)
    gpt2 = model.config.model_type == "gpt2"
    config = LoraConfig(r=4, lora_alpha=16, lora_dropout=dropout, target_modules=["c_attn"] if gpt2 else None,
                        fan_in_fan_out=gpt2, task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    for name, parameter in model.named_parameters():  # B starts at zero; give the deltas something to weigh
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    return model, tokenizer


def random_fisher(model, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.rand(layer.base_layer.weight.shape, generator=generator)
            for name, layer in lora_layers(model).items()}


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_lora_penalty_equals_hand_computation(fixture, request):
    model, _ = peft_model(request.getfixturevalue(fixture))
    fisher = random_fisher(model)
    expected = 0.0
    for name, layer in lora_layers(model).items():
        a, b = layer.lora_A["default"].weight.double(), layer.lora_B["default"].weight.double()
        delta = (16 / 4) * b @ a  # scaling = alpha / r
        if fixture == "tiny_gpt2":
            delta = delta.T  # Conv1D keeps (in, out)
        assert delta.shape == layer.base_layer.weight.shape
        expected += (fisher[name].double() * delta**2).sum().item()
    value = LoraEwc.build(model, fisher)()
    assert expected > 0 and value.item() == pytest.approx(expected, rel=1e-5)
    value.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_full_penalty_is_fisher_weighted_distance(tiny_llama):
    model, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    layers = target_layers(model, ["q_proj"])
    fisher = {name: torch.full(layer.weight.shape, 2.0) for name, layer in layers.items()}
    penalty = FullEwc.build(layers, fisher)
    assert penalty().item() == 0.0
    with torch.no_grad():
        next(iter(layers.values())).weight += 0.5
    assert penalty().item() == pytest.approx(2.0 * 0.25 * 32 * 32)


def test_weighted_loss_equals_hand_computation(tiny_llama):
    model, tokenizer = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    examples = [encode_example(tokenizer, text, ref, weight, 64) for (text, ref), weight in zip(PAIRS, [1, 0.7, 1, 2])]
    batch = collate(examples, tokenizer.pad_token_id)
    got = weighted_nll_sum(model, batch).item() / ref_weight(examples)
    numerator = denominator = 0.0
    with torch.no_grad():
        for example in examples:
            ids = torch.tensor([example.ids])
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
            for t in range(1, len(example.ids)):
                if example.is_ref[t]:
                    numerator -= example.weight * logp[t - 1, example.ids[t]].item()
                    denominator += example.weight
    assert got == pytest.approx(numerator / denominator, rel=1e-5)


def test_ref_tokens_are_the_reference(tiny_gpt2, tiny_llama):
    for path in (tiny_gpt2, tiny_llama):
        _, tokenizer = load_model(ModelSpec(str(path), device="cpu"))
        example = encode_example(tokenizer, "Walk to kitchen.", "Open fridge.", 1.0, 64)
        ref_ids = [i for i, r in zip(example.ids, example.is_ref) if r]
        assert tokenizer.decode(ref_ids).replace("<unk>", "\n").strip() == "Open fridge."  # tiny llama: no "\n"
        short = encode_example(tokenizer, "Walk to kitchen. " * 20, "Open fridge.", 1.0, 10)
        assert len(short.ids) == 10 and short.ids[-len(ref_ids):] == ref_ids  # the ref survives truncation


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_lambda_zero_gradients_equal_plain_lora(fixture, request):
    path = request.getfixturevalue(fixture)
    grads = []
    for with_penalty in (True, False):
        model, tokenizer = peft_model(path)
        examples = [encode_example(tokenizer, t, r, 1.0, 64) for t, r in PAIRS]
        loss = weighted_nll_sum(model, collate(examples, tokenizer.pad_token_id)) / ref_weight(examples)
        if with_penalty:
            loss = loss + 0.0 * LoraEwc.build(model, random_fisher(model))()
        loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name])


def test_length_grouped_batches_cover_every_example_once():
    lengths = [5, 50, 7, 48, 6, 49, 8, 47, 3]
    batches = length_grouped_batches(lengths, 2, seed=3, group=8)
    assert sorted(i for b in batches for i in b) == list(range(9))
    assert length_grouped_batches(lengths, 2, seed=3, group=8) == batches
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches if len(b) == 2]
    assert max(spreads) <= 3  # grouped: short with short, long with long


def test_mixture_parsing():
    assert parse_mixture("1 a.json 0.7 b.json") == [(1.0, "a.json"), (0.7, "b.json")]
    for bad, message in [("1 a.json 0.7", "pairs"), ("x a.json", "not a weight"), ("-1 a.json", "positive"),
                         ("", "pairs"), ("nan a.json", "positive")]:
        with pytest.raises(InputError, match=message):
            parse_mixture(bad)


def write_pairs(path, pairs=PAIRS, repeat=1):
    path.write_text("".join(json.dumps({"input": t, "ref": r}) + "\n" for t, r in pairs * repeat))
    return path


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
    config = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "cpu-2proc.yaml"
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
