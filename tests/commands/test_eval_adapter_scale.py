"""`e2wm eval --adapter-scale S`: scale 0 scores as the base model, a resumed run at another scale recomputes, the
scale is recorded (config.json, results.md, the report's header), several processes agree, and the refusals."""

import json
import subprocess
import sys

import pytest
from helpers.files import write
from helpers.lora_formula import save_lora

from e2wm.cli import main
from e2wm.eval.header import eval_run_line

QA = {"input": "Question: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed"],
      "answer": "sink"}
GEN = {"input": "Q: How to watch tv?\nA:", "ref": "Walk to home office. Switch on tv."}


def run_eval(*args) -> None:
    main(["eval", *map(str, args)])


def scores(out) -> list[list[float]]:
    rows = (out / "predictions" / "housework_qa.jsonl").read_text().splitlines()
    return [json.loads(row)["scores"] for row in rows]


@pytest.fixture
def setup(tiny_gpt2, tmp_path):
    """(the base, an adapter of it, a data folder of a QA file and a generation file)."""
    data = tmp_path / "data"
    write(data / "housework_qa.json", [QA, QA | {"answer": "bed"}, QA | {"input": "Q: Cup?\nA:"}])
    write(data / "plan_gen.json", [GEN, GEN | {"input": "Q: How to cook?\nA:"}])
    return tiny_gpt2, save_lora(tiny_gpt2, tmp_path / "adapter", ["c_attn"], fan_in_fan_out=True), data


def test_scales_are_scored_recorded_and_resumed_apart(setup, tmp_path, capsys):
    base, adapter, data = setup
    common = ["--model", base, "--data", data, "--max-new-tokens", 4]
    run_eval(*common, "--out", tmp_path / "base")
    run_eval(*common, "--adapter", adapter, "--out", tmp_path / "full")
    run_eval(*common, "--adapter", adapter, "--adapter-scale", 0, "--out", tmp_path / "zero")
    assert scores(tmp_path / "zero") == scores(tmp_path / "base")  # exactly the base model's log-likelihoods
    assert scores(tmp_path / "full") != scores(tmp_path / "base")
    for name in ("housework_qa", "plan_gen"):
        zero = (tmp_path / "zero" / "predictions" / f"{name}.jsonl").read_text()
        assert zero == (tmp_path / "base" / "predictions" / f"{name}.jsonl").read_text()
    out = tmp_path / "half"
    run_eval(*common, "--adapter", adapter, "--adapter-scale", 0.5, "--out", out)
    half = scores(out)
    assert half not in (scores(tmp_path / "full"), scores(tmp_path / "base"))
    record = json.loads((out / "config.json").read_text())["config"]
    assert record["adapter_scale"] == 0.5 and record["adapter"] == str(adapter)
    assert (out / "results.md").read_text().startswith(f"# E2WM evaluation: {base} + {adapter} at --adapter-scale 0.5")
    assert "at --adapter-scale" not in (tmp_path / "full" / "results.md").read_text().splitlines()[0]
    line = eval_run_line(out, "half", json.loads((out / "metrics.json").read_text()))
    assert "; the adapter's change scaled by 0.5 (--adapter-scale: W0 + 0.5 * delta, WiSE-FT interpolation); " in line
    assert "scaled by" not in eval_run_line(tmp_path / "full", "full", {})
    capsys.readouterr()
    run_eval(*common, "--adapter", adapter, "--adapter-scale", 0.25, "--out", out)  # resumed at another scale
    assert "already evaluated" not in capsys.readouterr().out
    assert scores(out) != half
    run_eval(*common, "--adapter", adapter, "--adapter-scale", 0.25, "--out", out)  # the same scale: reused
    printed = capsys.readouterr().out
    assert "housework_qa: already evaluated" in printed and "plan_gen: already evaluated" in printed


def test_two_processes_score_the_scale_as_one(setup, tmp_path):
    """`--num-processes 2` hands the scale to each process (the argv `to_argv` rebuilds)."""
    base, adapter, data = setup
    common = ["--model", base, "--data", data, "--max-new-tokens", 4, "--adapter", adapter, "--adapter-scale", 0.5]
    run_eval(*common, "--out", tmp_path / "one")
    done = subprocess.run([sys.executable, "-m", "e2wm", "eval", *map(str, common), "--out", str(tmp_path / "two"),
                           "--num-processes", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = scores(tmp_path / "one"), scores(tmp_path / "two")
    assert [row == pytest.approx(other, abs=1e-4) for row, other in zip(one, two)] == [True] * 3
    plan = "predictions/plan_gen.jsonl"
    assert (tmp_path / "one" / plan).read_text() == (tmp_path / "two" / plan).read_text()
    assert json.loads((tmp_path / "two" / "config.json").read_text())["config"]["adapter_scale"] == 0.5


@pytest.mark.parametrize(("args", "message"), [
    (["--adapter-scale", "0.5"], "e2wm eval: error: --adapter-scale 0.5 needs --adapter: it scales an adapter's "
                                 "change to the base weights"),
    (["--adapter", "ADAPTER", "--adapter-scale", "0.5", "--backend", "vllm"],
     "--adapter-scale 0.5 with --backend vllm: vLLM applies an adapter at its trained scale; use --backend hf, or "
     "merge the scaled adapter first (`e2wm export merged --adapter-scale S`) and evaluate that model with vllm"),
    (["--adapter", "ADAPTER", "--adapter-scale", "-1"], "--adapter-scale must be at least 0, got -1.0"),
])
def test_refusals_are_one_line_before_any_work(setup, tmp_path, capsys, args, message):
    base, adapter, data = setup
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        run_eval("--model", base, "--data", data, "--out", tmp_path / "o",
                 *[str(adapter) if arg == "ADAPTER" else arg for arg in args])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o").exists()
