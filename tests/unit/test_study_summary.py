"""benchmarks/study.py: the accuracy without the answer prior, and the learning curve read from checkpoint evals."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from e2wm.eval.items import EvalFile, QAItem

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "study.py"
spec = importlib.util.spec_from_file_location("study", SCRIPT)
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def write_run(folder: Path, task: str, rows: list[dict]) -> Path:
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_strong_prior_hides_a_signal_that_prior_correction_recovers(tmp_path):
    # options in a different order per item; the model prefers "1" by +3 and adds +1 to the right answer
    answers = [0, 1, 2, 0, 2, 1, 2, 0]
    items, rows = [], []
    for i, gold in enumerate(answers):
        options = ["0", "1", "2"] if i % 2 else ["2", "0", "1"]
        items.append(QAItem(f"story {i}", options, options.index(str(gold))))
        scores = [3.0 * (o == "1") + 1.0 * (o == str(gold)) for o in options]
        rows.append({"index": i, "scores": scores})
    run = write_run(tmp_path / "run", "count", rows[::-1])  # a predictions file need not be in item order
    file = EvalFile("count", tmp_path / "count.json", "multiple_choice", items)
    raw = sum(max(zip(r["scores"], it.options))[1] == it.options[it.answer] for r, it in zip(rows, items)) / 8
    assert raw == pytest.approx(2 / 8)  # always "1"
    corrected = study.prior_corrected(run, file)
    assert corrected == [1.0] * 8
    base = write_run(tmp_path / "base", "count", [{"index": i, "scores": [0.0, 0.0, 0.0]} for i in range(8)])
    assert study.prior_corrected(base, file) == [float(it.options[it.answer] == "0") for it in items]
    cell = study.prior_corrected_cell(study.prior_corrected(base, file), corrected, "count")
    assert cell == "1.000: +0.625 [+0.250, +0.875] p=0.062"  # 5 of 8 items moved, all right: 2 / 2**5


def test_no_signal_beyond_the_prior_stays_at_or_below_chance(tmp_path):
    answers = [0, 1, 2, 0, 1, 2]
    items = [QAItem(f"s{i}", ["0", "1", "2"], gold) for i, gold in enumerate(answers)]
    rows = [{"index": i, "scores": [0.0, 2.0, 1.0]} for i in range(6)]  # the same scores whatever the story
    run = write_run(tmp_path / "run", "count", rows)
    file = EvalFile("count", tmp_path / "count.json", "multiple_choice", items)
    assert sum(study.prior_corrected(run, file)) / 6 <= 1 / 3


def metrics(folder: Path, accuracy: float) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"count": {
        "accuracy": accuracy, "accuracy_ci95": [accuracy - 0.1, accuracy + 0.1], "chance": 0.2, "majority": 0.5}}))


def test_learning_curve_starts_at_the_base_model_and_ends_at_the_final_eval(tmp_path):
    metrics(tmp_path / "base" / "eval", 0.5)
    metrics(tmp_path / "run" / "curve-20", 0.4)
    metrics(tmp_path / "run" / "curve-40", 0.6)
    metrics(tmp_path / "run" / "eval", 0.7)
    curve = study.learning_curve(tmp_path, "run", 60)
    assert [(p["step"], p["accuracy"]) for p in curve["count"]] == [(0, 0.5), (20, 0.4), (40, 0.6), (60, 0.7)]
    assert study.learning_curve(tmp_path, "run", 40)["count"][-1] == {
        "step": 40, "accuracy": 0.6, "ci95": [0.5, 0.7], "chance": 0.2, "majority": 0.5}


def test_a_finished_run_is_kept_across_added_options_and_refused_when_an_option_changed(tmp_path):
    from e2wm.train.config import TrainConfig

    config = TrainConfig(train="paper", out=str(tmp_path / "run"), method="lora")
    options = json.loads(json.dumps(study.asdict(config)))
    del options["max_grad_norm"]  # written by an e2wm from before the option existed
    options["lam"] = 2.0  # the old default: a lora run does not read it
    recorded = tmp_path / "config.json"
    recorded.write_text(json.dumps({"options": options}))
    assert study.unchanged(recorded, "options", config)
    del options["autocast"]  # from before --autocast: those runs computed in float32, "none", not today's "auto"
    recorded.write_text(json.dumps({"options": options}))
    with pytest.raises(SystemExit, match="finished with other autocast;"):
        study.unchanged(recorded, "options", config)
    assert study.unchanged(recorded, "options", TrainConfig(train="paper", out=str(tmp_path / "run"), method="lora",
                                                            autocast="none"))
    options["lr"] = 1e-3
    recorded.write_text(json.dumps({"options": options}))
    with pytest.raises(SystemExit, match="finished with other autocast, lr;"):
        study.unchanged(recorded, "options", config)


def test_a_run_recorded_with_method_alone_compares_by_its_resolved_method(tmp_path):
    from e2wm.train.config import TrainConfig

    config = TrainConfig(train="paper", out=str(tmp_path / "run"), method="lora")
    options = json.loads(json.dumps(study.asdict(config)))
    for key in ("adapter_kind", "regularisers", "kl_weight", "kl_tokens", "replay_data", "replay_ratio",
                "replay_weight"):
        del options[key]  # written by an e2wm from before the regularisers
    recorded = tmp_path / "config.json"
    recorded.write_text(json.dumps({"options": options}))
    assert study.unchanged(recorded, "options", config)
    assert study.unchanged(recorded, "options", TrainConfig(train="paper", out=str(tmp_path / "run"),
                                                            regularisers="none"))
    with pytest.raises(SystemExit, match="finished with other regularisers;"):
        study.unchanged(recorded, "options", TrainConfig(train="paper", out=str(tmp_path / "run"), regularisers="kl"))


def test_family_means_group_tasks_by_their_headline_metric_and_the_table_shows_every_perplexity_set(tmp_path):
    """A plan task's execution metrics do not move it out of the ROUGE-L / LCS family; the accuracy family averages
    the QA tasks as `statistics.mean_over_tasks` does; the summary has a column per further perplexity set."""
    from types import SimpleNamespace

    from e2wm.eval.report import Run
    from e2wm.eval.statistics import mean_over_tasks, paired_bootstrap

    metrics = {"count": {"accuracy": 0.5}, "act_recog": {"accuracy": 0.25},
               "plan_gen": {"rougeL": 0.3, "executable": 0.5, "goals_reached": 0.1}, "obj_move_path": {"lcs": 0.4}}
    runs = [Run("base", tmp_path / "base", metrics), Run("ewc-0.5", tmp_path / "ewc", metrics)]
    pairs = {"count": paired_bootstrap([1, 0, 1, 0], [1, 1, 1, 0], 200, 0, "count"),
             "act_recog": paired_bootstrap([0, 0, 1, 0], [0, 1, 1, 1], 200, 0, "act_recog"),
             "plan_gen": paired_bootstrap([0.2, 0.4, 0.3], [0.5, 0.4, 0.6], 200, 0, "plan_gen"),
             "obj_move_path": paired_bootstrap([0.4, 0.4], [0.5, 0.3], 200, 0, "obj_move_path")}
    means = study.family_means(runs, SimpleNamespace(tasks=pairs))
    accuracy = mean_over_tasks([pairs["count"], pairs["act_recog"]], 10_000, 1234)
    generation = mean_over_tasks([pairs["plan_gen"], pairs["obj_move_path"]], 10_000, 1234)
    assert means["accuracy"]["estimate"] == pytest.approx(accuracy.estimate) == pytest.approx(0.375)
    assert means["ROUGE-L / LCS"]["estimate"] == pytest.approx(generation.estimate) == pytest.approx(0.1)
    drift = {"estimate": -0.007, "low": -0.009, "high": -0.005, "p": 0.0001}
    row = {"name": "ewc-0.5", "method": "EWC-LoRA", "train_ce_last10": 0.65, "ewc_last": None, "means": means,
           "headline": None, "perplexity": None, "perplexities": {"ppl:prose": {"relative": drift}}, "tasks": {},
           "vs_lora": {"run": "lora", "means": means, "headline": None, "perplexity": None,
                       "perplexities": {"ppl:prose": drift}}}
    table = study.summary_table([row]).splitlines()
    assert table[0].count("|") == table[1].count("|") == table[2].count("|") and "| ppl:prose change |" in table[0]
    assert "| ewc-0.5 | EWC-LoRA | 0.650 | — |" in table[2] and "| -0.70% [-0.90%, -0.50%] p=0.0001 |" in table[2]
    assert table[-1].startswith("| ewc-0.5 | lora | ") and table[-1].endswith("| -0.70% [-0.90%, -0.50%] p=0.0001 |")
    assert "ppl:prose change vs LoRA" in table[-3]


def test_run_method_names_the_optimiser_and_the_wise_scale():
    runs = {"lora": {"regularisers": "none"}, "mofo": {"regularisers": "none", "optimizer": "mofo"},
            "kl": {"regularisers": "kl"}, "wise": {"from": "lora", "adapter_scale": 0.5}}
    spec = {"train": {"model": "m"}, "runs": runs}
    assert [study.run_method(spec, name) for name in runs] == ["LoRA", "LoRA with MoFO", "LoRA + KL anchor",
                                                                "LoRA at scale 0.5"]


def test_published_scores_keep_no_text_but_what_pairs_the_runs_again():
    qa = {"index": 3, "scores": [-2.0, -1.0], "prediction": "b", "answer": "b", "input": "a story"}
    ppl = {"index": 0, "sha256": "f718bd453f0333f9", "nll": 1170.1, "tokens": 319}
    generated = {"index": 1, "score": 0.25, "generated": "walk to kitchen"}
    assert [study.item_score(row) for row in (qa, ppl, generated)] == [
        {"index": 3, "choice": 1, "correct": True}, {"index": 0, "nll": 1170.1, "tokens": 319},
        {"index": 1, "score": 0.25}]


def test_a_wise_run_keeps_its_place_once_its_source_is_trained(tmp_path):
    runs = {"lora": {"regularisers": "none"}, "wise": {"from": "lora", "adapter_scale": 0.5},
            "kl": {"regularisers": "kl"}, "wise-kl": {"from": "kl", "adapter_scale": 0.5}}
    spec = {"runs": runs}
    assert study.phases(spec, tmp_path, list(runs)) == (["lora", "kl"], ["wise", "wise-kl"])
    (tmp_path / "lora" / "train" / "adapter").mkdir(parents=True)
    (tmp_path / "lora" / "train" / "adapter" / "adapter_config.json").write_text("{}")
    assert study.phases(spec, tmp_path, list(runs)) == (["lora", "wise", "kl"], ["wise-kl"])


def test_each_run_is_paired_with_the_lora_run_of_its_data_budget_and_seed():
    runs = {"lora": {"regularisers": "none"}, "ewc": {"regularisers": "ewc"},
            "long-lora": {"regularisers": "none", "max_steps": None, "epochs": 1},
            "long-ewc": {"regularisers": "ewc", "max_steps": None, "epochs": 1},
            "lora-seed1": {"regularisers": "none", "seed": 1}, "kl-seed1": {"regularisers": "kl", "seed": 1},
            "osf-lr": {"regularisers": "none", "adapter_kind": "osf", "lr": 2e-5},
            "mofo": {"regularisers": "none", "optimizer": "mofo"}, "wise": {"from": "lora", "adapter_scale": 0.5},
            "kl-seed2": {"regularisers": "kl", "seed": 2}, "lora-counts": {"regularisers": "none", "train": "c"},
            "ewc-counts": {"regularisers": "ewc", "train": "c"}, "kl-other": {"regularisers": "kl", "train": "o"},
            "ewc-b8": {"regularisers": "ewc", "batch_size": 8}, "kl-len": {"regularisers": "kl", "max_len": 64}}
    spec = {"train": {"model": "m", "train": "paper", "max_steps": 160, "epochs": 100, "seed": 0}, "runs": runs}
    assert {name: study.lora_reference(spec, name) for name in runs} == {
        "lora": None, "ewc": "lora", "long-lora": None, "long-ewc": "long-lora", "lora-seed1": None,
        "kl-seed1": "lora-seed1", "osf-lr": "lora", "mofo": "lora", "wise": "lora", "kl-seed2": None,
        "lora-counts": None, "ewc-counts": "lora-counts", "kl-other": None, "ewc-b8": None, "kl-len": None}


def test_a_study_of_several_budgets_also_reports_its_methods_on_the_first_loras_budget(tmp_path, monkeypatch):
    runs = {"lora": {"regularisers": "none"}, "ewc": {"regularisers": "ewc"},
            "long-lora": {"regularisers": "none", "max_steps": None, "epochs": 1},
            "long-ewc": {"regularisers": "ewc", "max_steps": None, "epochs": 1},
            "wise": {"from": "lora", "adapter_scale": 0.5}, "kl-seed1": {"regularisers": "kl", "seed": 1},
            "mofo": {"regularisers": "none", "optimizer": "mofo"}}
    spec = {"train": {"model": "m", "train": "paper", "max_steps": 160, "seed": 0}, "runs": runs,
            "report": {"drift_on": "prose"}, "title": "t"}
    assert study.same_budget(spec, list(runs)) == ["lora", "ewc", "wise", "mofo"]
    for name in ["base", *runs]:
        if name != "mofo":  # not evaluated yet: in neither report
            (tmp_path / name / "eval").mkdir(parents=True)
            (tmp_path / name / "eval" / "metrics.json").write_text("{}")
    reports = []
    monkeypatch.setattr(study, "run", lambda command, file, log: reports.append(yaml.safe_load(file.read_text())))
    study.summarise(spec, tmp_path, list(runs))
    assert [[Path(r).parent.name for r in report["runs"]] for report in reports] == [
        ["base", "lora", "ewc", "long-lora", "long-ewc", "wise", "kl-seed1"], ["base", "lora", "ewc", "wise"]]
    assert [Path(report["out"]).name for report in reports] == ["report.md", "same-budget.md"]
    assert reports[1]["drift_on"] == "prose" and reports[1]["title"] == "t: the methods on one data, budget and seed"
    reports.clear()  # one budget and seed, or no method against LoRA: the one report
    study.summarise({**spec, "runs": {n: runs[n] for n in ("lora", "ewc", "wise")}}, tmp_path, ["lora", "ewc"])
    study.summarise({**spec, "runs": {n: runs[n] for n in ("lora", "long-lora")}}, tmp_path, ["lora", "long-lora"])
    assert [Path(report["out"]).name for report in reports] == ["report.md", "report.md"]


SPEC = {"out": "OUT", "train": {"model": "m", "train": "paper", "max_steps": 2}, "eval": {"model": "m", "data": ["d"]},
        "fisher": {"model": "m", "n": 4}}


@pytest.mark.parametrize(("runs", "refusal"), [
    ({"w": {"from": "nope", "adapter_scale": 0.5}}, "run w: from: nope names no run of the study"),
    ({"a": {}, "w": {"from": "a", "adapter_scale": 0.5}, "ww": {"from": "w", "adapter_scale": 0.5}},
     "run ww: from: w is itself a `from` run; name the training run it scales"),
    ({"a": {}, "w": {"from": "a"}}, "run w: a `from` run needs adapter_scale"),
    ({"a": {}, "w": {"from": "a", "adapter_scale": 0.5, "lr": 1e-3}},
     "run w: a `from` run trains nothing and reads only adapter_scale, not lr"),
    ({"r": {"regularisers": "replay"}}, "run r: --regularisers replay needs --replay-data FILE"),
    ({"e": {"regularisers": "ewcc"}}, "run e: --regularisers ewcc: expected a comma-separated list"),
    ({"e": {"regularisers": "ewc", "lambda": "high"}}, "run e: e2wm train: error: argument --lambda: invalid float "
                                                       "value: 'high'"),
    ({"e": {"regularisers": "ewc", "kl_wieght": 2}}, "run e: .*kl_wieght"),
])
def test_every_run_is_checked_before_anything_runs_and_a_refusal_names_it(runs, refusal, tmp_path):
    with pytest.raises(SystemExit, match=f"^study.yaml: {refusal}") as stopped:
        study.check_runs({**SPEC, "out": str(tmp_path / "out"), "runs": runs}, Path("study.yaml"))
    assert "\n" not in str(stopped.value.code) and not (tmp_path / "out").exists()  # one line; nothing written


def test_an_ewc_run_needs_the_fisher_and_good_runs_pass(tmp_path):
    spec = {**SPEC, "out": str(tmp_path), "runs": {"lora": {"regularisers": "none"}, "ewc": {"regularisers": "ewc"},
                                                   "w": {"from": "ewc", "adapter_scale": 0.25}}}
    study.check_runs(spec, Path("s.yaml"))
    without = {key: value for key, value in spec.items() if key != "fisher"}
    with pytest.raises(SystemExit, match="^s.yaml: run ewc: an EWC run needs the study's 'fisher' section$"):
        study.check_runs(without, Path("s.yaml"))


def test_a_broken_or_empty_study_file_is_refused_in_one_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("out: x\ntrain: [\n")
    with pytest.raises(SystemExit, match=r"broken.yaml: line 3: not a YAML study file"):
        study.load_study(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("out: x\ntrain: {}\neval: {}\nruns: {}\n")
    with pytest.raises(SystemExit, match="empty.yaml: 'runs' names no run"):
        study.load_study(empty)


def test_a_refused_job_leaves_its_job_file_as_it_ran(tmp_path):
    options = {"model": "m", "data": ["d"], "out": str(tmp_path / "eval"), "max_new_tokens": 16}
    file, config = study.write_job(tmp_path, "eval", options)
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text("{}")
    (tmp_path / "eval" / "config.json").write_text(json.dumps({"config": json.loads(json.dumps(
        study.asdict(config)))}))
    study.evaluate(tmp_path / "eval", options, tmp_path / "log.txt")  # finished with these options: skipped
    with pytest.raises(SystemExit, match="finished with other max_new_tokens"):
        study.evaluate(tmp_path / "eval", {**options, "max_new_tokens": 32}, tmp_path / "log.txt")
    assert yaml.safe_load(file.read_text())["max_new_tokens"] == 16 and not (tmp_path / "log.txt").exists()


def test_data_made_once_is_refused_when_the_study_asks_for_other_options(tmp_path):
    made, record = tmp_path / "fisher.safetensors", tmp_path / "fisher.yaml"
    made.write_bytes(b"x")
    study.made_by(record, made, {"n": 8})  # no record (a study folder from before records): passes
    record.write_text(yaml.safe_dump({"n": 8, "seed": 0}))
    study.made_by(record, made, {"n": 8, "seed": 0})
    with pytest.raises(SystemExit, match=r"fisher.safetensors: made with other n, seed than the study's"):
        study.made_by(record, made, {"n": 16})


def test_stopping_interrupts_a_running_job_once_and_starts_no_other(tmp_path, monkeypatch):
    import threading

    python = tmp_path / "python"  # stands for `python -m e2wm ...`: SIGINT stops it as e2wm.cli.main sets it up
    python.write_text(f"#!{sys.executable}\nimport signal, sys, time\n"
                      "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
                      "open(sys.argv[0] + '.ready', 'w').close()\n"
                      "try:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n"
                      "    open(sys.argv[0] + '.log', 'a').write('interrupted\\n')\n    sys.exit(130)\n")
    python.chmod(0o755)
    monkeypatch.setattr(study.sys, "executable", str(python))
    monkeypatch.setattr(study, "STOP", threading.Event())
    outcome = []

    def job():
        try:
            study.run("train", tmp_path / "job.yaml", tmp_path / "log.txt")
        except SystemExit as error:
            outcome.append(str(error))

    worker = threading.Thread(target=job)
    worker.start()
    for _ in range(400):  # until the job has set up its SIGINT handler
        if (tmp_path / "python.ready").exists():
            break
        threading.Event().wait(0.05)
    study.stop_jobs()
    worker.join(timeout=20)
    assert not worker.is_alive() and outcome[0].startswith("[study] interrupted after")
    assert (tmp_path / "python.log").read_text() == "interrupted\n"  # one SIGINT
    with pytest.raises(SystemExit, match=r"^\[study\] not started \(interrupted\): train --config"):
        study.run("train", tmp_path / "job.yaml", tmp_path / "log.txt")


def test_a_run_missing_a_task_is_summarised_over_the_tasks_it_shares(tmp_path):
    """A run evaluated on fewer tasks than the base model (as `e2wm report`): paired over the tasks both scored, no
    mean for a family it did not score in full, and a family of one task has no mean at all."""
    from helpers.files import write_run as write_eval

    def qa(correct):
        return {"metrics": {"accuracy": sum(correct) / len(correct), "n": len(correct)},
                "rows": [{"index": i, "scores": [0.0, 0.0], "prediction": "ab"[1 - c], "answer": "a"}
                         for i, c in enumerate(correct)]}

    def gen(scores):
        return {"metrics": {"lcs": sum(scores) / len(scores), "n": len(scores)},
                "rows": [{"index": i, "prediction": "x", "ref": "y", "score": s} for i, s in enumerate(scores)]}

    evals = {"base": {"act_recog": qa([1, 0, 0, 0]), "count": qa([0, 0, 1, 1]), "obj_move_path": gen([0.2] * 4)},
             "lora": {"act_recog": qa([1, 1, 0, 0]), "count": qa([1, 0, 1, 1]), "obj_move_path": gen([0.4] * 4)},
             "ewc": {"act_recog": qa([1, 1, 1, 0]), "obj_move_path": gen([0.3] * 4)}}  # no count
    for name, tasks in evals.items():
        write_eval(tmp_path / name / "eval", tasks)
        if name != "base":
            (tmp_path / name / "train").mkdir()
            (tmp_path / name / "train" / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "ce": 1.0}))
    spec = {"train": {"model": "m", "train": "paper", "max_steps": 1}, "title": "t",
            "runs": {"lora": {"regularisers": "none"}, "ewc": {"regularisers": "ewc"}}}
    (tmp_path / "ewc" / "train" / "config.json").write_text(json.dumps(  # the resolved defaults, as train records
        {"options": {"fisher": "f.safetensors", "fisher_scale": "paper", "lam": 0.5}}))
    (tmp_path / "lora" / "train" / "config.json").write_text(json.dumps(
        {"options": {"fisher": None, "fisher_scale": "paper", "lam": 0.5}}))
    lora, ewc = study.summary_rows(spec, tmp_path, ["lora", "ewc"])
    assert (ewc["fisher_scale"], ewc["lambda"], lora["fisher_scale"], lora["lambda"]) == ("paper", 0.5, None, None)
    assert lora["means"]["accuracy"]["estimate"] == pytest.approx((0.25 + 0.25) / 2)
    assert lora["means"]["ROUGE-L / LCS"] is None  # one task: no family mean, as the report's
    assert sorted(ewc["tasks"]) == ["act_recog", "obj_move_path"] and ewc["tasks"]["act_recog"]["estimate"] == 0.5
    assert ewc["means"]["accuracy"] is None and ewc["headline"] is None  # not every task scored
    assert ewc["vs_lora"]["run"] == "lora" and ewc["vs_lora"]["means"]["accuracy"] is None
    assert "| ewc | EWC-LoRA | 1.000 | — | — |" in study.summary_table([lora, ewc])
