"""`e2wm report`: training-log curves, bad run directories exit 2, and the header naming what each run was."""

import json
import re

import pytest
from helpers.benchmark import write_release

from e2wm import benchmark_data
from e2wm.cli import main


def test_train_log_curves(tmp_path):
    run = tmp_path / "train"
    run.mkdir()
    rows = [{"step": s, "loss": 3.0 - 0.1 * s, "ce": 3.0 - 0.1 * s - 0.01, "ewc": 0.005 * s, "lr": 8e-4 * (1 - s / 10)}
            for s in range(1, 11)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "train.md"
    main(["report", "--train-log", str(run), "--out", str(out)])
    text = out.read_text()
    assert re.search(r"\| train \| 10 \| 2\.9000 \| 2\.0000 \| 2\.8900 \| 1\.9900 \| 0\.05 \|", text)
    assert (tmp_path / "train-train.png").stat().st_size > 10_000
    assert not (tmp_path / "train.png").exists()


def write_log(run, rows):
    run.mkdir()
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_two_runs_forgetting_curves(tmp_path):
    """EWC-LoRA against LoRA: eval_ppl and eval_accuracy at every 2nd step (and the last) of both runs."""
    def rows(ppl_rise, accuracy_gain, steps=9):
        out = []
        for s in range(1, steps + 1):
            row = {"step": s, "loss": 2.0, "ce": 2.0, "ewc": 0.0, "lr": 1e-3, "grad_norm": 0.5}
            if s % 2 == 0 or s == steps:
                row.update(eval_ppl=20.0 + ppl_rise * s, eval_accuracy=0.25 + accuracy_gain * s)
            out.append(row)
        return out

    ewc = write_log(tmp_path / "ewc-lora", rows(0.1, 0.02))
    lora = write_log(tmp_path / "lora", rows(1.0, 0.03))
    out = tmp_path / "curves.md"
    main(["report", "--train-log", str(ewc), str(lora), "--out", str(out)])
    text = out.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| run |"))
    assert header.endswith("| last lr | last eval_ppl | last eval_accuracy |")
    assert text.count("---:|") == 9  # one alignment row: 7 training columns and the 2 curve columns
    assert re.search(r"\| ewc-lora \| 9 \|.*\| 20\.9000 \| 0\.4300 \|$", text, re.M)  # 20 + 0.1 * 9, 0.25 + 0.18
    assert re.search(r"\| lora \| 9 \|.*\| 29\.0000 \| 0\.5200 \|$", text, re.M)
    chart = tmp_path / "curves-eval.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    assert "](curves-eval.png)" in text and "](curves-train.png)" in text


def test_timed_logs_add_throughput_mfu_and_a_panel_of_each_files_ce(tmp_path):
    from PIL import Image

    rows = [{"step": s, "loss": 2.0, "ce": 2.0, "ewc": 0.0, "lr": 1e-3, "grad_norm": 0.5, "examples": 4,
             "tokens": 400, "seconds": 2.0 * s, "tokens_per_s": 200.0 / s, "mfu": 0.1 / s} for s in range(1, 6)]
    for row in rows[1::2] + rows[-1:]:  # windows of 2 steps and the last
        row["task_ce"] = {"count": 3.0 - 0.2 * row["step"], "plan_gen": 2.5 - 0.1 * row["step"]}
    timed = write_log(tmp_path / "timed", rows)
    plain = write_log(tmp_path / "plain", [{k: r[k] for k in ("step", "loss", "ce", "ewc", "lr")} for r in rows])
    out = tmp_path / "timed.md"
    main(["report", "--train-log", str(timed), str(plain), "--out", str(out)])
    text = out.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| run |"))
    assert header.endswith("| last lr | median tokens/s | median MFU | last CE per file |")
    # medians over the 5 steps: 200 / 3 tokens/s and 0.1 / 3 MFU; the last window at step 5
    assert re.search(r"\| timed \| 5 \|.*\| 66\.7 \| 3\.33% \| count 2\.0000, plan_gen 2\.0000 \|$", text, re.M)
    assert re.search(r"\| plain \| 5 \|.*\| — \| — \| — \|$", text, re.M)  # an older log: no timings
    with Image.open(tmp_path / "timed-train.png") as chart:
        assert chart.width == round((14 + 4.7) * 120)  # four panels: the per-file CE beside loss, CE and EWC


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d.mkdir(), "no metrics.json"),
        (lambda d: (d.mkdir(), (d / "metrics.json").write_text("{bad")), "metrics.json:1: bad JSON"),
        (lambda d: (d.mkdir(), (d / "metrics.json").write_text('{"t": {"x": 1}}')), "task 't' has no accuracy"),
        (lambda d: None, "no such run directory"),
    ],
)
def test_bad_run_dirs_exit_2(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(run), "--out", str(tmp_path / "r.md")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("e2wm report: error:") and message in err and "\n" not in err
    assert not (tmp_path / "r.md").exists()


def test_a_negative_seed_is_refused_up_front(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--out", str(tmp_path / "r.md"), "--seed", "-1"])
    assert exit_info.value.code == 2
    assert "--seed must be at least 0, got -1" in capsys.readouterr().err


def test_eval_runs_compared_item_by_item_and_different_limits_rejected(tiny_gpt2, tmp_path, capsys):
    """Two real `e2wm eval` runs on the same items compare; a run with another --limit stops the report (exit 2)."""
    data = tmp_path / "data"
    data.mkdir()
    qa = {"input": "Q: To wash dishes, a related item could be\nAnswer:", "answer_list": ["sink", "bed"]}
    (data / "housework_qa.json").write_text("".join(
        json.dumps(qa | {"answer": answer}) + "\n" for answer in ["sink", "bed", "sink", "sink", "bed"]))
    (data / "plan_gen.json").write_text("".join(
        json.dumps({"input": f"Q: How to {w}?\nA:", "ref": "Walk to kitchen."}) + "\n" for w in ("cook", "read")))
    runs = {}
    for name, limit in (("a", 5), ("b", 5), ("short", 3)):
        runs[name] = tmp_path / name
        main(["eval", "--model", str(tiny_gpt2), "--data", str(data), "--out", str(runs[name]), "--limit", str(limit),
              "--max-new-tokens", "4"])
    capsys.readouterr()
    out = tmp_path / "r.md"
    main(["report", str(runs["a"]), str(runs["b"]), "--out", str(out), "--bootstrap-resamples", "500"])
    text = out.read_text()
    # the same model twice: every item alike, so no change, and nothing is claimed
    assert re.search(r"\| housework_qa \| accuracy \| 5 \| [\d.]+ \[[\d.]+, [\d.]+\] \| [\d.]+ \[[\d.]+, [\d.]+\] \| "
                     r"\+0\.0000 \[\+0\.0000, \+0\.0000\] \| no change \| 1 \|", text)
    assert "**housework_qa** (5 items): both runs score every item alike" in text
    assert "fewer than 30 items in housework_qa (5), plan_gen (2)" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(runs["a"]), str(runs["short"]), "--out", str(tmp_path / "bad.md")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "scored different items" in err
    assert (f"task housework_qa: {runs['a'] / 'predictions' / 'housework_qa.jsonl'} (5 items) and "
            f"{runs['short'] / 'predictions' / 'housework_qa.jsonl'} (3 items)") in err
    assert not (tmp_path / "bad.md").exists()


def test_the_header_says_what_each_run_evaluated_and_how_it_was_trained(tiny_gpt2, tmp_path, capsys, monkeypatch):
    """Train by task name and evaluate by name on the fixture release in the cache: the report's top names each
    run's model, adapter and training (method, steps and examples, LoRA rank and targets, mixture, seed), data and
    item counts."""
    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(benchmark_data, "RELEASED", write_release(tmp_path / "repo"))
    benchmark_data.download(benchmark_data.DownloadConfig(source=str(tmp_path / "repo")))
    train = tmp_path / "train"
    main(["train", "--model", str(tiny_gpt2), "--train", "1 e2wm:plan_gen 1 count", "--method", "lora",
          "--max-steps", "2", "--batch-size", "1", "--grad-accum", "2", "--seed", "3", "--save-every", "1",
          "--out", str(train)])
    for name, adapter in (("base", []), ("tuned", ["--adapter", str(train / "adapter")]),
                          ("step1", ["--adapter", str(train / "checkpoint-1" / "adapter")])):
        main(["eval", "--model", str(tiny_gpt2), *adapter, "--data", "e2wm:qa", "--out", str(tmp_path / name)])
    capsys.readouterr()
    out = tmp_path / "r.md"
    main(["report", *(str(tmp_path / name) for name in ("base", "tuned", "step1")), "--train-log", str(train),
          "--out", str(out), "--bootstrap-resamples", "100"])
    text = out.read_text()
    lines = text.split("## Runs\n\n")[1].split("\n\n")[0].splitlines()
    data = (f"data `e2wm:qa` (the released E2WM benchmark, github.com/{benchmark_data.REPOSITORY} at commit 57c9000, "
            "sha256-checked): 2 files, 4 items.")
    cache = tmp_path / "cache" / "data" / "e2wm" / "train"
    trained = (f"trained by `e2wm train` in {train}: LoRA; no EWC penalty; LoRA rank 8 (alpha 32) on c_attn; "
               "{steps} of 2 examples (batch 1 x accumulation 2; {seen} examples drawn per process); mixture "
               "`1 e2wm:plan_gen 1 "
               "count` (train_plan_gen.json 2, train_count.json 1: 3 examples in all); seed 3")
    assert str(cache) in str(json.loads((train / "config.json").read_text())["settings"]["inputs"])
    assert lines == [
        f"- `base` ({tmp_path / 'base'}): model `{tiny_gpt2}`; no adapter; {data}",
        f"- `tuned` ({tmp_path / 'tuned'}): model `{tiny_gpt2}`; adapter `{train / 'adapter'}`, "
        + trained.format(steps="2 optimiser steps", seen=4) + f"; {data}",
        f"- `step1` ({tmp_path / 'step1'}): model `{tiny_gpt2}`; adapter `{train / 'checkpoint-1' / 'adapter'}`, "
        + trained.format(steps="1 optimiser step", seen=2) + f"; {data}",
        f"- `train` (--train-log): model `{tiny_gpt2}`, " + trained.format(steps="2 optimiser steps", seen=4) + "."]
    assert "| **mean accuracy** | unweighted, 2 QA tasks |" in text and "**mean**" not in text


def test_eai_leaderboard_cache_option_and_leaving_it_out(tmp_path, monkeypatch):
    """`e2wm report` on an EAI run: the leaderboard (faked: the real one costs ~16 minutes) is cached in
    --eai-leaderboard-cache, by default in e2wm's cache folder ($E2WM_CACHE); --no-eai-leaderboard leaves it out."""
    from helpers.eai_run import eai_run, item

    from e2wm.world import eai_judge

    asked = []

    def leaderboard(cache, hash_seed=0, workers=1, models=None):
        asked.append(cache)
        return {"some-llm": {"summary": {"goal_evaluation": {"task_success_rate": 100.0, "state_goal": 100.0,
                                                             "relation_goal": 100.0, "action_goal": 100.0},
                                         "trajectory_evaluation": {
                                             "execution_success_rate": 100.0,
                                             "grammar_error": {"parsing": 0.0, "hallucination": 0.0,
                                                               "predicate_argument_number": 0.0},
                                             "runtime_error": {"wrong_order": 0.0, "missing_step": 0.0,
                                                               "affordance_error": 0.0, "additional_step": 0.0}}},
                             "seconds_per_item": 0.2, "items": [{"success": True}]}}

    monkeypatch.setattr(eai_judge, "leaderboard", leaderboard)
    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "e2wm-cache"))
    run = eai_run(tmp_path / "eai", [item(success=True, executable=True), item()])
    main(["report", str(run), "--out", str(tmp_path / "a.md"), "--eai-leaderboard-cache", str(tmp_path / "board")])
    main(["report", str(run), "--out", str(tmp_path / "b.md")])
    assert [str(path) for path in asked] == [str(tmp_path / "board"), str(tmp_path / "e2wm-cache")]
    assert "| 1 | some-llm | native | 1 | 100.0 [" in (tmp_path / "a.md").read_text()
    main(["report", str(run), "--out", str(tmp_path / "c.md"), "--no-eai-leaderboard"])
    assert len(asked) == 2
    text = (tmp_path / "c.md").read_text()
    assert "| 1 | **eai** (evaluated) | **e2wm** | **2** | **50.0 [" in text and "some-llm" not in text
