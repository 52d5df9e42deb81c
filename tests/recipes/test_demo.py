"""The demo recipe end to end at a tiny scale: a tiny random model, a few programs and episodes, a few steps."""

import json
import logging
import re
from dataclasses import replace

import pytest

import e2wm.recipes.demo
from e2wm.recipes.demo import DemoConfig, Job, run_stages, spread

STAGES = ["collect", "build", "fisher", "train", "eval", "report"]


class Lines(logging.Handler):
    """Keeps the messages of the loggers it is added to."""

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def tiny(model, out, **changes) -> DemoConfig:
    settings = DemoConfig(model=str(model), out=str(out), num_programs=6, simulations=20, episodes=6,
                          holdout_activities=1, fisher_n=4, fisher_len=32, train_steps=3, batch_size=2, max_len=128,
                          limit=2, max_new_tokens=8, workers=2)
    return replace(settings, **changes)


@pytest.mark.slow
def test_demo_pipeline_end_to_end_and_skips_done_stages(tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setattr(e2wm.recipes.demo, "DEV_SLICE", tmp_path / "absent")  # use the held-out generated split
    out = tmp_path / "demo"
    lines = Lines()
    logger = logging.getLogger("e2wm")
    monkeypatch.setattr(logger, "level", logging.INFO)
    logger.addHandler(lines)
    seconds = run_stages(tiny(tiny_llama, out))
    assert list(seconds) == STAGES and all(s > 0 for s in seconds.values())
    assert len((out / "collect" / "plans.jsonl").read_text().splitlines()) == 6
    assert len((out / "collect" / "explore.jsonl").read_text().splitlines()) == 6
    assert (out / "build" / "train_plan_gen.jsonl").is_file() and (out / "build" / "heldout").is_dir()
    assert (out / "fisher" / "fisher.safetensors").stat().st_size > 0
    log = [json.loads(line) for line in (out / "train" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [1, 2, 3] and log[0]["ewc"] == 0.0 and log[-1]["ewc"] > 0
    assert (out / "train" / "adapter" / "adapter_config.json").is_file()
    base = json.loads((out / "eval" / "base" / "metrics.json").read_text())
    tuned = json.loads((out / "eval" / "finetuned" / "metrics.json").read_text())
    assert set(base) == set(tuned) == {"plan_gen_unseen", "act_recog_unseen", "ppl"}
    assert base["ppl"]["tokens"] == tuned["ppl"]["tokens"] > 500  # the general-text paragraphs
    assert base["ppl"]["perplexity"] != tuned["ppl"]["perplexity"]  # the adapter changed the model
    report = (out / "report" / "report.md").read_text()
    for task in ("plan_gen_unseen", "act_recog_unseen", "perplexity (lower is better)"):
        assert f"| {task} |" in report
    # a few items per task: the report warns, and says per task what so few items can show
    assert re.search(r"\*\*Warning: fewer than 30 items in act_recog_unseen \(\d\), plan_gen_unseen \(\d\)", report)
    for task in ("plan_gen_unseen", "act_recog_unseen"):
        assert re.search(rf"- \*\*{task}\*\* \(\d items?\): ", report)
    assert re.search(r"\*\*Warning: fewer than 30 items in .*, ppl \(\d+ texts\)", report)  # a few paragraphs
    assert re.search(r"- \*\*perplexity\*\* \(\d+ texts\): .* \(p = [\d.e-]+\)\.", report)
    assert "paired bootstrap interval" in report and "paired permutation test" in report
    assert (out / "report" / "report.png").stat().st_size > 10_000
    assert (out / "report" / "report-train.png").stat().st_size > 10_000
    assert any(line.startswith("    $ e2wm train --model") for line in lines.messages)

    lines.messages.clear()  # a second run skips everything
    seconds = run_stages(tiny(tiny_llama, out))
    assert all(s == 0 for s in seconds.values())
    assert sum("skipped" in line for line in lines.messages) == 6

    logger.removeHandler(lines)

    # a changed training budget redoes train and what follows it, nothing before it
    seconds = run_stages(tiny(tiny_llama, out, train_steps=4))
    assert [name for name, s in seconds.items() if s > 0] == ["train", "eval", "report"]
    assert len((out / "train" / "log.jsonl").read_text().splitlines()) == 4


def test_interrupted_train_stage_resumes(tiny_llama, tmp_path, monkeypatch):
    """A stage left unfinished (stage.json says done: false) resumes: train continues from its checkpoint."""
    calls = []
    monkeypatch.setattr(Job, "run", lambda job: calls.append(job.argv()))
    settings = tiny(tiny_llama, tmp_path / "demo")
    run_stages(settings)
    stage = tmp_path / "demo" / "train"
    marker = json.loads((stage / "stage.json").read_text())
    marker["done"] = False
    (stage / "stage.json").write_text(json.dumps(marker))
    (stage / "checkpoint").mkdir()
    (stage / "checkpoint" / "state.json").write_text("{}")
    stale = tmp_path / "demo" / "eval" / "base" / "metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    calls.clear()
    seconds = run_stages(settings)
    assert [name for name, s in seconds.items() if s > 0] == ["train", "eval", "report"]
    assert calls[0][0] == "train" and calls[0][-1] == "--resume"
    assert not stale.exists()  # downstream of a re-run stage starts clean


def test_a_changed_input_file_reruns_its_stage(tiny_llama, tmp_path, monkeypatch):
    """Same command lines but other contents in a file a stage reads: that stage and the later ones run again."""
    monkeypatch.setattr(Job, "run", lambda job: None)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "housework_qa.json").write_text('{"input": "Q?", "answer_list": ["a", "b"], "answer": "a"}\n')
    settings = tiny(tiny_llama, tmp_path / "demo", eval_data=str(dev))
    run_stages(settings)
    assert all(s == 0 for s in run_stages(settings).values())  # nothing changed: skipped
    marker = json.loads((tmp_path / "demo" / "eval" / "stage.json").read_text())
    assert str(dev) in marker["inputs"] and len(marker["inputs"][str(dev)]) == 64
    (dev / "housework_qa.json").write_text('{"input": "Q?", "answer_list": ["a", "b"], "answer": "b"}\n')
    seconds = run_stages(settings)
    assert [name for name, s in seconds.items() if s > 0] == ["eval", "report"]
    assert all(s == 0 for s in run_stages(replace(settings, workers=1)).values())  # workers cannot change a result


def test_spread_mixes_the_list():
    assert spread([str(i) for i in range(10)], 3) == ["0", "3", "6"]
    assert spread(["a", "b"], 5) == ["a", "b"]
