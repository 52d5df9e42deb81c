"""`e2wm build` end to end: files, stats.json, held-out split, duplicates, reproducibility and bad input."""

import copy
import json
import re
from pathlib import Path

import pytest
from helpers.experience_fixtures import House, inputs, programs, random_episode, write_jsonl
from helpers.task_formats import read_act_recog, read_act_recog_qa, read_plan_gen

from e2wm.cli import main

FILES = ["train_plan_gen.jsonl", "train_act_recog.jsonl", "train_count.jsonl", "train_obj_move.jsonl"]


def cli(*args: str) -> None:
    main(["build", *map(str, args)])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def activity(question: str) -> str:
    return re.match(r"Q: How to (.+?)\? Given items", question).group(1)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    return inputs(tmp_path_factory.mktemp("experience"))


def test_build_writes_four_files_and_stats(sources, tmp_path, capsys):
    plans, explore = sources
    bad = copy.deepcopy(random_episode(99))
    bad["final"]["12"]["room"] = "garden"
    write_jsonl(tmp_path / "explore.jsonl", [*lines(explore), bad])
    cli("--plans", plans, "--explore", tmp_path / "explore.jsonl", "--out", tmp_path / "out")
    assert "train_count.jsonl" in capsys.readouterr().out
    for name in FILES:
        assert lines(tmp_path / "out" / name)
    assert not (tmp_path / "out" / "heldout").exists()
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["inputs"]["plans"]["failed"] == 1
    assert stats["inputs"]["plans"]["inconsistent"] == {"plan_text does not match plan": 1}
    assert stats["inputs"]["explore"]["inconsistent"] == {"final state disagrees with the actions": 1}
    assert stats["inputs"]["explore"]["used"] == 40
    count = stats["files"]["train_count.jsonl"]
    assert count["examples"] == len(lines(tmp_path / "out" / "train_count.jsonl"))
    assert set(count["input"]["chars"]) == {"min", "p50", "p90", "p99", "max", "mean"}
    assert "tokens" not in count["input"]
    assert sum(count["answers"]["items"].values()) == count["examples"]
    assert {"0", "1"} <= set(count["answers"]["items"])
    assert stats["files"]["train_plan_gen.jsonl"]["answers"]["activity"]["read book"] == 3


def test_heldout_activities_never_reach_training(sources, tmp_path):
    plans, explore = sources
    cli("--plans", plans, "--out", tmp_path, "--holdout-activities", 2, "--seed", 5)
    held = set(json.loads((tmp_path / "stats.json").read_text())["inputs"]["plans"]["heldout"]["activities"])
    assert len(held) == 2
    for line in lines(tmp_path / "train_plan_gen.jsonl"):
        assert not {activity(q) for q, _ in read_plan_gen(line)} & held
    for line in lines(tmp_path / "train_act_recog.jsonl"):
        assert not {name for _, name in read_act_recog(line)} & held
    unseen = lines(tmp_path / "heldout" / "plan_gen_unseen.jsonl")
    assert unseen
    for line in unseen:
        pairs = read_plan_gen(line)
        assert activity(pairs[-1][0]) in held and not {activity(q) for q, _ in pairs[:-1]} & held
    for line in lines(tmp_path / "heldout" / "act_recog_unseen.jsonl"):
        pairs = read_act_recog_qa(line)
        assert line["answer"] in held and not {name for _, name in pairs[:-1]} & held


def test_shots_come_from_other_programs_and_activities(sources, tmp_path):
    plans, _ = sources
    cli("--plans", plans, "--out", tmp_path)
    for line in lines(tmp_path / "train_plan_gen.jsonl"):
        pairs = read_plan_gen(line)
        assert len({activity(q) for q, _ in pairs}) == len(pairs)  # other activities, and distinct


def test_same_seed_same_bytes_other_seed_other_stories(sources, tmp_path):
    plans, explore = sources
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        cli("--plans", plans, "--explore", explore, "--out", tmp_path / name, "--seed", seed, "--holdout-activities", 1,
            "--eval-programs", 2, "--eval-episodes", 10)
    evaluation = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a" / "heldout").iterdir())
    assert len(evaluation) == 9
    for name in [*FILES, *evaluation, "stats.json"]:
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "train_count.jsonl").read_bytes() != (tmp_path / "c" / "train_count.jsonl").read_bytes()
    # parallel collection appends records as they finish: another order of the same records, the same files
    write_jsonl(tmp_path / "plans.jsonl", lines(plans)[::-1])
    write_jsonl(tmp_path / "explore.jsonl", lines(explore)[::-1])
    cli("--plans", tmp_path / "plans.jsonl", "--explore", tmp_path / "explore.jsonl", "--out", tmp_path / "d",
        "--seed", 1, "--holdout-activities", 1, "--eval-programs", 2, "--eval-episodes", 10)
    for name in [*FILES, *evaluation]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "d" / name).read_bytes(), name


def test_duplicate_records_give_no_duplicate_examples(tmp_path):
    episodes = [random_episode(i) for i in range(12)]
    write_jsonl(tmp_path / "plans.jsonl", programs() * 2)
    write_jsonl(tmp_path / "explore.jsonl", episodes + episodes[:5])
    cli("--plans", tmp_path / "plans.jsonl", "--explore", tmp_path / "explore.jsonl", "--out", tmp_path / "out")
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    for name in FILES:
        made = lines(tmp_path / "out" / name)
        queries = [line["input"].split("\n\n" if "count" in name or "obj" in name or "act" in name else "\nQ: ")[-1]
                   for line in made]
        assert len(set(queries)) == len(queries), name
        assert stats["files"][name]["skipped"]["duplicate"] > 0, name


def test_shots_option_and_too_few_shots(tmp_path, capsys):
    house = House().grab(1, "12").walk(1, "2").put(1, "12", "21")
    write_jsonl(tmp_path / "explore.jsonl", [house.record(seed=s) for s in range(3)] + [random_episode(7)])
    cli("--explore", tmp_path / "explore.jsonl", "--out", tmp_path / "out", "--shots", 1)
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["config"]["shots"] == {"plan_gen": 1, "act_recog": 1, "count": 1, "obj_move": 1}
    for line in lines(tmp_path / "out" / "train_obj_move.jsonl"):
        assert line["input"].count("\nAnswer:") == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:  # every file empty: an error naming why, and nothing written
        cli("--explore", tmp_path / "explore.jsonl", "--out", tmp_path / "few", "--shots", 9)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "no example was built from the records (skipped: " in err
    assert " too_few_shots" in err and not (tmp_path / "few").exists()


def test_token_percentiles_with_a_tokenizer(sources, tmp_path, tiny_llama):
    plans, explore = sources
    cli("--plans", plans, "--explore", explore, "--out", tmp_path, "--tokenizer", tiny_llama)
    stats = json.loads((tmp_path / "stats.json").read_text())
    for info in stats["files"].values():
        assert 0 < info["input"]["tokens"]["p50"] <= info["input"]["tokens"]["max"]
        assert info["ref"]["tokens"]["max"] > 0


def episode_line(tmp_path: Path, text: str) -> Path:
    good = json.dumps(random_episode(0))
    path = tmp_path / "explore.jsonl"
    path.write_text(f"{good}\n{text}\n", encoding="utf-8")
    return path


def broken(field: str, value) -> str:
    """An episode line with field set to value (removed for ...)."""
    record = random_episode(1)
    record[field] = value
    if value is ...:
        del record[field]
    return json.dumps(record)


@pytest.mark.parametrize("text, message", [
    ('{"episode": 1, "seed": ', r"explore.jsonl:2: bad JSON"),
    (broken("steps", ...), r"explore.jsonl:2: field 'steps' is missing"),
    (broken("objects", {"12": 5}), r"explore.jsonl:2: field 'objects.12' must be str"),
    (broken("steps", [{"t": 0}]), r"explore.jsonl:2: field 'steps\[0\].actor' is missing"),
    (broken("initial", {"12": {"room": "kitchen"}}), r"explore.jsonl:2: field 'initial.12.holder' is missing"),
    (broken("characters", []), r"explore.jsonl:2: field 'characters' must be a non-empty list"),
])
def test_bad_episode_lines_exit_2_naming_file_and_line(tmp_path, capsys, text, message):
    with pytest.raises(SystemExit) as exit_:
        cli("--explore", episode_line(tmp_path, text), "--out", tmp_path / "out")
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err


@pytest.mark.parametrize("args, message", [
    (["--plans", "missing.jsonl"], r"missing.jsonl: no such file"),
    ([], r"give --plans, --explore or both"),
    (["--plans", "PLANS", "--holdout-activities", 4], r"--holdout-activities 4: the plans have 4 activities"),
    (["--plans", "BAD_PLAN"], r"plans.jsonl:3: field 'success' must be bool"),
])
def test_bad_options_and_plan_files_exit_2(sources, tmp_path, capsys, args, message):
    records = programs()
    records[2]["success"] = "yes"
    bad = write_jsonl(tmp_path / "plans.jsonl", records)
    args = [{"PLANS": sources[0], "BAD_PLAN": bad}.get(a, a) for a in args]
    with pytest.raises(SystemExit) as exit_:
        cli(*args, "--out", tmp_path / "out")
    assert exit_.value.code == 2
    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("options, message", [
    (["--eval-episodes", "5"], "--eval-episodes 5: needs --explore"),
    (["--eval-programs", "50", "--explore", "EXPLORE"], "--eval-programs 50: needs --plans"),
    (["--eval-episodes", "40", "--explore", "EXPLORE"], "--eval-episodes 40: 40 episodes replay consistently; at "
                                                         "least one must stay in training"),
    (["--eval-programs", "7"], "--eval-programs 7: the plans' 4 activities can spare 6 programs (each keeps one in "
                               "training)"),
])
def test_evaluation_sizes_the_records_cannot_give_exit_2(sources, tmp_path, capsys, options, message):
    plans, explore = sources
    options = [str(explore) if o == "EXPLORE" else o for o in options]
    with pytest.raises(SystemExit) as stop:
        cli(*([] if "--explore" in options else ["--plans", plans]), *options, "--out", tmp_path / "out")
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_evaluation_files_are_printed_with_their_baselines(sources, tmp_path, capsys):
    plans, explore = sources
    cli("--plans", plans, "--explore", explore, "--out", tmp_path, "--eval-episodes", 20, "--eval-programs", 2)
    out = capsys.readouterr().out
    assert re.search(r"heldout/count\.jsonl: \d+ items \(accuracy: chance 0\.200, majority 0\.\d{3}\)", out)
    assert re.search(r"heldout/plan_gen\.jsonl: \d+ items \(rougeL: chance 0\.\d{3}, majority [01]\.\d{3}\)", out)
    assert "explore: 20 records used for training" in out
