"""`e2wm train`'s log: per-step work, time, throughput and MFU; each training file's CE per window; the same
values in TensorBoard (read back from the event files); bf16 autocast on the CPU, detected or refused."""

import importlib.util
import json

import pytest
import torch
from helpers.training import PAIRS

from e2wm.cli import main
from e2wm.models import ModelSpec, load_model
from e2wm.recipes import finetune
from e2wm.train.config import TrainConfig
from e2wm.train.data import collate, encode_example, load_examples, parse_mixture, ref_weight
from e2wm.train.loop import FlopCount, weighted_nll_sum


def write_pairs(path, pairs):
    path.write_text("".join(json.dumps({"input": t, "ref": r}) + "\n" for t, r in pairs))
    return path


def train(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `e2wm train ARGS`."""
    try:
        main(["train", *map(str, args)])
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_log(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def deterministic(row: dict) -> dict:
    return {key: value for key, value in row.items() if key not in finetune.TIMING}


@pytest.fixture
def mixture(tmp_path):
    """Two files of two pairs each: a batch of 4 takes all of both, so every step sees the same examples."""
    count, other = write_pairs(tmp_path / "train_count.jsonl", PAIRS[:2]), write_pairs(tmp_path / "b.jsonl", PAIRS[2:])
    return f"1 {count} 0.5 {other}"


def base_ce(model_dir, pairs) -> float:
    """The untrained model's mean NLL per ref token on pairs (nats), computed apart from the training loop."""
    model, tokenizer = load_model(ModelSpec(str(model_dir), device="cpu"))
    examples = [encode_example(tokenizer, text, ref, 1.0, 800) for text, ref in pairs]
    with torch.no_grad():
        return weighted_nll_sum(model, collate(examples, tokenizer.pad_token_id)).item() / ref_weight(examples)


def test_rows_give_work_time_mfu_and_each_files_ce(tiny_llama, tmp_path, capsys, mixture):
    common = ["--model", tiny_llama, "--train", mixture, "--method", "lora", "--lora-dropout", "0", "--batch-size",
              "4", "--epochs", "3", "--lr", "1e-2"]
    assert train(capsys, *common, "--log-every", "1", "--out", tmp_path / "every")[0] == 0
    rows = read_log(tmp_path / "every")
    config = TrainConfig(model=str(tiny_llama), train=mixture, method="lora", lora_dropout=0, batch_size=4,
                         out=str(tmp_path / "x"))
    model, tokenizer, _ = finetune.build_model(config, "cpu")
    examples = load_examples(parse_mixture(mixture), tokenizer, 800, "left")
    flops = sum(FlopCount.of(model).example(len(e.ids), e.predicted_refs) for e in examples)
    peak = json.loads((tmp_path / "every" / "config.json").read_text())["provenance"]["matmul_peak"]
    assert peak["dtype"] == "torch.float32" and peak["flops_per_s"] > 0
    for row in rows:  # each step takes all four examples
        assert row["examples"] == 4 and row["tokens"] == sum(len(e.ids) for e in examples)
        assert row["seconds"] > 0 and row["tokens_per_s"] == pytest.approx(row["tokens"] / row["seconds"], rel=1e-3)
        assert row["mfu"] == pytest.approx(flops / (row["seconds"] * peak["flops_per_s"]), rel=2e-3)
    # step 1 runs the untrained model (LoRA's B is 0): each file's CE is the base model's CE on that file
    assert rows[0]["task_ce"] == {"count": pytest.approx(base_ce(tiny_llama, PAIRS[:2]), rel=1e-5),
                                  "b": pytest.approx(base_ce(tiny_llama, PAIRS[2:]), rel=1e-5)}
    for row in rows:  # the step's CE is the files' CEs weighted by their sum(weight x ref tokens)
        weights = {"count": ref_weight(examples[:2]), "b": ref_weight(examples[2:])}
        mixed = sum(row["task_ce"][k] * w for k, w in weights.items()) / sum(weights.values())
        assert row["ce"] == pytest.approx(mixed, rel=1e-5)

    # windows of 2 steps (and the last): the mean over the window's ref tokens, here the steps' mean
    assert train(capsys, *common, "--log-every", "2", "--out", tmp_path / "windows")[0] == 0
    windows = read_log(tmp_path / "windows")
    assert [deterministic({k: v for k, v in r.items() if k != "task_ce"}) for r in windows] == \
        [deterministic({k: v for k, v in r.items() if k != "task_ce"}) for r in rows]
    assert [("task_ce" in r) for r in windows] == [False, True, True]
    for name in ("count", "b"):
        assert windows[1]["task_ce"][name] == pytest.approx((rows[0]["task_ce"][name] + rows[1]["task_ce"][name]) / 2,
                                                            rel=1e-6)
        assert windows[2]["task_ce"][name] == pytest.approx(rows[2]["task_ce"][name], rel=1e-6)


def test_flop_count_is_palms_formula_on_the_tiny_llama(tiny_llama, tmp_path):
    model, _ = load_model(ModelSpec(str(tiny_llama), device="cpu"))
    c = model.config
    width = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    d, attention = c.hidden_size, c.num_attention_heads * width
    per_layer = d * attention * 2 + d * c.num_key_value_heads * width * 2 + 3 * d * c.intermediate_size
    n, head = c.num_hidden_layers * per_layer, c.vocab_size * d
    full = FlopCount.of(model)
    assert (full.frozen, full.trainable, full.head) == (0, n, head)
    tokens, predicted = 10, 3
    palm = 6 * n * tokens + 12 * c.num_hidden_layers * attention * tokens * tokens  # appendix B, per example
    assert full.example(tokens, predicted) == palm + 6 * head * predicted
    config = TrainConfig(model=str(tiny_llama), train="1 x", method="lora", out=str(tmp_path / "x"))
    lora, _, _ = finetune.build_model(config, "cpu")
    count = FlopCount.of(lora)
    adapters = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert (count.frozen, count.trainable, count.head_trained) == (n, adapters, False)
    assert count.example(tokens, predicted) == (4 * n + 6 * adapters + 12 * c.num_hidden_layers * attention
                                                * tokens) * tokens + 4 * head * predicted


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard is not installed (the optional extra e2wm[tensorboard])")
def test_tensorboard_gets_each_step_once_after_a_resume(tiny_llama, tmp_path, capsys, monkeypatch, mixture):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    common = ["--model", tiny_llama, "--train", mixture, "--method", "lora", "--batch-size", "2", "--epochs", "2",
              "--save-every", "2", "--log-every", "2", "--report-to", "tensorboard", "--out", tmp_path / "r"]
    real = finetune.append_jsonl

    def crash_at_step_4(path, record):  # steps 1-3 reach TensorBoard, the checkpoint holds step 2
        if record["step"] == 4:
            raise KeyboardInterrupt
        real(path, record)

    monkeypatch.setattr(finetune, "append_jsonl", crash_at_step_4)
    assert train(capsys, *common)[0] == 130
    monkeypatch.setattr(finetune, "append_jsonl", real)
    assert train(capsys, *common, "--resume")[0] == 0
    rows = read_log(tmp_path / "r")
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    events.Reload()
    for key in ("loss", "ce", "grad_norm", "tokens", "mfu", "seconds"):
        scalars = events.Scalars(key)
        assert [s.step for s in scalars] == [1, 2, 3, 4], key  # step 3 logged twice, the first one purged
        assert [s.value for s in scalars] == pytest.approx([r[key] for r in rows], rel=1e-6), key
    for name in ("count", "b"):
        assert [(s.step, s.value) for s in events.Scalars(f"task_ce/{name}")] == \
            [(r["step"], pytest.approx(r["task_ce"][name], rel=1e-6)) for r in rows if "task_ce" in r]


def test_a_tracker_that_is_not_installed_is_refused_before_anything_is_written(tiny_gpt2, tmp_path, capsys,
                                                                                monkeypatch, mixture):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    code, _, err = train(capsys, "--model", tiny_gpt2, "--train", mixture, "--method", "lora", "--report-to", "wandb",
                         "--out", tmp_path / "r")
    assert code == 2 and err.strip() == ("e2wm train: error: --report-to wandb: the wandb package is not installed "
                                         "(pip install wandb)")
    assert not (tmp_path / "r").exists()


def test_bf16_autocast_trains_close_to_float32_with_float32_weights(tiny_llama, tmp_path, capsys, monkeypatch,
                                                                     mixture):
    from safetensors.torch import load_file

    common = ["--model", tiny_llama, "--train", mixture, "--method", "lora", "--batch-size", "2", "--epochs", "2",
              "--lr", "1e-2"]
    assert train(capsys, *common, "--out", tmp_path / "fp32")[0] == 0
    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"fpu", "avx512_bf16"})  # detected as on this machine
    code, out, _ = train(capsys, *common, "--autocast", "bf16", "--out", tmp_path / "bf16")
    assert code == 0 and "computing in float32" not in out
    fp32, bf16 = read_log(tmp_path / "fp32"), read_log(tmp_path / "bf16")
    assert [r["ce"] for r in bf16] == pytest.approx([r["ce"] for r in fp32], rel=2e-2)  # bf16's 8-bit mantissa
    assert [r["ce"] for r in bf16] != [r["ce"] for r in fp32]  # and bf16 was used
    weights = load_file(str(tmp_path / "bf16" / "adapter" / "adapter_model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}
    recorded = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert recorded["provenance"]["matmul_peak"]["dtype"] == "torch.bfloat16"
    assert recorded["settings"]["autocast"] == "bf16"  # a result setting: --resume refuses another one

    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"fpu", "avx2"})  # no bf16 instructions: float32
    code, out, _ = train(capsys, *common, "--autocast", "bf16", "--out", tmp_path / "fallback")
    assert code == 0 and ("--autocast bf16: this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag in "
                          "/proc/cpuinfo); computing in float32") in out
    assert [deterministic(r) for r in read_log(tmp_path / "fallback")] == [deterministic(r) for r in fp32]


def test_auto_autocast_is_bf16_only_on_a_bf16_cpu_with_float32_weights(tiny_llama, tmp_path, capsys, monkeypatch,
                                                                         mixture, float32_by_default):
    """The default --autocast auto: bf16 where the CPU has it and the weights are float32, else float32, silently."""
    import e2wm.models

    monkeypatch.setattr(e2wm.models, "auto_bf16", float32_by_default)  # the real choice, not the suite's pin
    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"fpu", "avx512_bf16"})
    assert e2wm.models.autocast_dtype("auto", "cpu") == torch.bfloat16
    assert e2wm.models.autocast_dtype("auto", "cpu", "bfloat16") is None  # bf16 weights: nothing to autocast
    assert e2wm.models.autocast_dtype("auto", "meta") is None  # not a CPU: the weights' dtype decides
    common = ["--model", tiny_llama, "--train", mixture, "--method", "lora", "--batch-size", "2", "--max-steps", "2"]
    code, out, _ = train(capsys, *common, "--out", tmp_path / "auto")
    assert code == 0 and "--autocast auto: matrix products in torch.bfloat16" in out
    recorded = json.loads((tmp_path / "auto" / "config.json").read_text())
    assert recorded["settings"]["autocast"] == "auto"
    assert recorded["provenance"]["matmul_peak"]["dtype"] == "torch.bfloat16"
    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"fpu", "avx2"})
    code, out, _ = train(capsys, *common, "--out", tmp_path / "plain")
    assert code == 0 and "--autocast" not in out  # no bf16 here: float32, without a warning
    recorded = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert recorded["provenance"]["matmul_peak"]["dtype"] == "torch.float32"


def test_eval_under_bf16_autocast_scores_close_to_float32_and_is_not_reused_as_float32(tiny_gpt2, tmp_path, capsys,
                                                                                        monkeypatch):
    data = tmp_path / "count.jsonl"
    data.write_text("".join(json.dumps({"input": q, "answer_list": ["1", "2", "3"], "answer": "2"}) + "\n"
                            for q in ("There are two cups.", "John holds a pen and a cup.", "Two apples lie here.")))
    main(["eval", "--model", str(tiny_gpt2), "--data", str(data), "--out", str(tmp_path / "e")])
    fp32 = [json.loads(line) for line in (tmp_path / "e" / "predictions" / "count.jsonl").read_text().splitlines()]
    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"avx512_bf16"})
    capsys.readouterr()
    main(["eval", "--model", str(tiny_gpt2), "--data", str(data), "--autocast", "bf16", "--out", str(tmp_path / "e")])
    assert "already evaluated" not in capsys.readouterr().out  # another result setting: scored again
    bf16 = [json.loads(line) for line in (tmp_path / "e" / "predictions" / "count.jsonl").read_text().splitlines()]
    for a, b in zip(fp32, bf16):
        assert b["scores"] == pytest.approx(a["scores"], rel=3e-2) and b["scores"] != a["scores"]


def test_the_autocast_line_names_the_weights_dtype(tiny_llama, tmp_path, capsys, monkeypatch, mixture):
    """--dtype bfloat16 --autocast bf16 keeps bf16 weights: the line says so (it said 'weights float32')."""
    monkeypatch.setattr("e2wm.models.cpu_flags", lambda: {"fpu", "avx512_bf16"})
    code, out, _ = train(capsys, "--model", tiny_llama, "--train", mixture, "--method", "lora", "--batch-size", "2",
                         "--max-steps", "1", "--dtype", "bfloat16", "--autocast", "bf16", "--out", tmp_path / "r")
    assert code == 0 and "--autocast bf16: matrix products in torch.bfloat16, weights bfloat16" in out
