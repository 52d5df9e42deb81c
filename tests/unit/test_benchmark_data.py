"""The released benchmark's names resolve everywhere once it is in the cache: `--data e2wm`, `e2wm:qa`, `e2wm:gen`,
`e2wm:<task>` in eval, task names and `e2wm:<task>` in a training mixture (option or config mapping), `--train
paper` without --data-dir; a missing or changed cache is one line. Fixture files and their table stand in for the
release (helpers.benchmark)."""

import json

import pytest
from helpers.benchmark import write_release
from helpers.files import write

from e2wm import benchmark_data
from e2wm.cli import main, parse
from e2wm.errors import InputError
from e2wm.eval.items import load_eval_files
from e2wm.train.data import parse_mixture


@pytest.fixture
def cached(tmp_path, monkeypatch):
    """The fixture release downloaded into a fresh cache; returns the cache's benchmark folder."""
    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(benchmark_data, "RELEASED", write_release(tmp_path / "repo"))
    benchmark_data.download(benchmark_data.DownloadConfig(source=str(tmp_path / "repo")))
    return tmp_path / "cache" / "data" / "e2wm"


def names(data: list[str]) -> list[tuple[str, int]]:
    return [(task.name, len(task.items)) for task in load_eval_files(data)]


def test_eval_names_mean_the_cached_files(cached, tmp_path):
    assert names(["e2wm"]) == [("count", 3), ("act_recog", 1), ("plan_gen", 2), ("obj_move_path", 1)]
    assert names(["e2wm:qa"]) == [("count", 3), ("act_recog", 1)]
    assert names(["e2wm:gen"]) == [("plan_gen", 2), ("obj_move_path", 1)]
    mine = write(tmp_path / "mine" / "my_quiz.jsonl", [{"input": "Q", "answer_list": ["a", "b"], "answer": "a"}])
    assert names(["e2wm:count", str(mine)]) == [("count", 3), ("my_quiz", 1)]
    assert [task.path for task in load_eval_files(["e2wm:plan_gen"])] == [cached / "eval" / "gen" / "plan_gen.json"]
    with pytest.raises(InputError, match=r"^--data e2wm:train_count: not a part of the E2WM benchmark; the names are "
                                         r"e2wm \(every evaluation file\), e2wm:qa, e2wm:gen, e2wm:count, "):
        load_eval_files(["e2wm:train_count"])


def test_a_cached_file_that_changed_is_refused_by_name(cached):
    path = cached / "eval" / "qa" / "count.json"
    path.write_text(path.read_text().replace('"answer": "3"', '"answer": "1"'))
    with pytest.raises(InputError) as error:
        load_eval_files(["e2wm:qa"])
    assert str(error.value).startswith(f"{path}: sha256 ") and str(error.value).endswith(
        "; not used: run `e2wm data download` to replace it")
    assert names(["e2wm:gen"]) == [("plan_gen", 2), ("obj_move_path", 1)]  # the others are still used


def test_without_the_download_each_name_says_to_run_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "data" / "e2wm"
    with pytest.raises(InputError) as error:
        load_eval_files(["e2wm"])
    assert str(error.value) == (
        f"--data e2wm: the E2WM benchmark is not in {folder} (missing: eval/gen/obj_move_path.json and 10 more): run "
        "`e2wm data download` (or `e2wm data download --from DIR` with a copy of the data/ folder of "
        "github.com/szxiangjn/world-model-for-language-model at commit 57c9000)")
    with pytest.raises(InputError, match=r"^--train 'paper': task plan_gen \(no --data-dir\): the E2WM benchmark is "
                                         r"not in .* \(missing: train/train_plan_gen.json\): run `e2wm data download`"):
        parse_mixture("paper")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--train", "1 e2wm:count", "--method", "lora", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith("e2wm train: error: --train e2wm:count: the E2WM benchmark is not in ") and (
        "run `e2wm data download`" in err)


def test_training_names_find_the_cached_files(cached, tmp_path):
    train = cached / "train"
    assert parse_mixture("paper") == [(1.0, str(train / "train_plan_gen.json")),
                                      (0.7, str(train / "train_act_recog.json")),
                                      (1.0, str(train / "train_count.json")), (1.0, str(train / "train_obj_move.json"))]
    write(tmp_path / "built" / "train_count.jsonl", [{"input": "Q", "ref": "A"}])
    assert parse_mixture("1 e2wm:plan_gen 0.5 count", tmp_path / "built") == [  # --data-dir: task names look there
        (1.0, str(train / "train_plan_gen.json")), (0.5, str(tmp_path / "built" / "train_count.jsonl"))]
    with pytest.raises(InputError, match=r"^--train: e2wm:housework_qa: the E2WM benchmark has no such training file; "
                                         r"it has e2wm:plan_gen, e2wm:act_recog, e2wm:count, e2wm:obj_move "
                                         r"\(or --train paper: "):
        parse_mixture("1 e2wm:housework_qa")


def test_a_config_mapping_names_released_tasks(cached, tmp_path):
    config_file = tmp_path / "train.yaml"
    config_file.write_text("train:\n  e2wm:plan_gen: 1.0\n  count: 0.5\nmethod: lora\nout: runs/x\n")
    config, _ = parse("train", ["--config", str(config_file)])
    assert config.train == "1.0 e2wm:plan_gen 0.5 count" and config.data_dir is None
    assert parse_mixture(config.train, config.data_dir) == [(1.0, str(cached / "train" / "train_plan_gen.json")),
                                                            (0.5, str(cached / "train" / "train_count.json"))]


def test_eval_runs_on_a_name(cached, tiny_gpt2, tmp_path, capsys):
    main(["eval", "--model", str(tiny_gpt2), "--data", "e2wm:count", "--out", str(tmp_path / "run")])
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert list(metrics) == ["count"] and metrics["count"]["n"] == 3 and recorded["config"]["data"] == ["e2wm:count"]
