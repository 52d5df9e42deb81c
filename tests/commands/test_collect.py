"""`e2wm collect plans` and `collect explore`: resumable, in processes or on Ray, bad inputs; their real output
goes through `e2wm build` unchanged (nothing skipped as inconsistent)."""

import json

import pytest
from helpers.task_formats import read_act_recog, read_count, read_obj_move, read_plan_gen, solve_path

from e2wm.cli import main
from e2wm.experience.explore import ExploreConfig, explore
from e2wm.experience.runner import done_keys

READERS = {"plan_gen": read_plan_gen, "act_recog": read_act_recog, "count": read_count, "obj_move": read_obj_move}


def test_collect_plans_resumes(tmp_path, capsys):
    out = tmp_path / "plans.jsonl"
    main(["collect", "plans", "--programs", "file3_1", "file15_2", "--out", str(out), "--workers", "1",
          "--simulations", "40"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["program"] for r in records] == ["file3_1", "file15_2"]
    first = records[0]
    assert first["success"] and first["achieved"] == first["goal"] and len(first["plan"]) == len(first["plan_text"])
    assert first["activity"] == "Relax on sofa" and first["seed"] == 0 and first["items"]
    with out.open("a") as handle:
        handle.write('{"program": "half a li')  # a kill mid-append
    main(["collect", "plans", "--programs", "file3_1", "file15_2", "file153_2", "--out", str(out), "--workers", "1",
          "--simulations", "40"])
    assert "2 records already there, 1 to go" in capsys.readouterr().out
    assert [json.loads(line)["program"] for line in out.read_text().splitlines()] == ["file3_1", "file15_2",
                                                                                      "file153_2"]
    assert done_keys(out, "program") == {"file3_1", "file15_2", "file153_2"}


def test_collect_explore_in_processes(tmp_path):
    out = tmp_path / "episodes.jsonl"
    main(["collect", "explore", "--episodes", "2", "--steps", "5", "--out", str(out), "--workers", "2",
          "--seed", "4"])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["episode"] for r in records] == [0, 1]
    assert records[1] == explore(1, 4, ExploreConfig(steps=5, characters=2))


@pytest.mark.parametrize("command", [
    ["collect", "plans", "--programs", "file3_1", "file15_2", "file153_2", "file3_1", "--simulations", "30"],
    ["collect", "explore", "--episodes", "5", "--steps", "12"],
], ids=["plans", "explore"])
def test_a_seed_gives_byte_identical_files_at_any_workers_interrupted_or_not(tmp_path, command):
    runs = {}
    for name, workers in (("first", "2"), ("again", "2"), ("one", "1")):
        runs[name] = tmp_path / f"{name}.jsonl"
        main([*command, "--out", str(runs[name]), "--workers", workers, "--seed", "3"])
    whole = runs["first"].read_bytes()
    assert whole == runs["again"].read_bytes() == runs["one"].read_bytes()
    records = [json.loads(line) for line in whole.splitlines()]
    assert len(records) == (3 if command[1] == "plans" else 5)  # a program given twice is collected once
    assert all("seconds" not in record for record in records)  # wall time lives in OUT.timings.jsonl
    timings = [json.loads(line) for line in (tmp_path / "first.jsonl.timings.jsonl").read_text().splitlines()]
    key = "program" if command[1] == "plans" else "episode"
    assert [t[key] for t in timings] == [r[key] for r in records]
    cut = tmp_path / "cut.jsonl"  # an interrupted run: two records, then a kill mid-append
    lines = whole.splitlines(keepends=True)
    cut.write_bytes(b"".join(lines[:2]) + lines[2][:10])
    (tmp_path / "cut.jsonl.settings.json").write_bytes((tmp_path / "first.jsonl.settings.json").read_bytes())
    main([*command, "--out", str(cut), "--workers", "2", "--seed", "3"])
    assert cut.read_bytes() == whole


def test_collect_on_ray(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'e2wm[ray]')")
    out = tmp_path / "ray.jsonl"
    main(["collect", "plans", "--programs", "file3_1", "--out", str(out), "--ray", "--simulations", "20"])
    assert json.loads(out.read_text())["program"] == "file3_1"


def test_bad_collect_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"program": "file3_1"}\nnot json\n')
    for argv in (["collect", "plans", "--out", str(bad)], ["collect", "explore", "--scene", "nope", "--out", "x"],
                 ["collect", "explore", "--steps", "0", "--out", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert "bad.jsonl:2: bad JSON" in err[0] and "unknown program id 'nope'" in err[1] and "--steps" in err[2]


def test_ray_missing_is_a_clear_error(tmp_path, capsys):
    try:
        import ray  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("Ray is installed: test_collect_on_ray covers the Ray path")
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "plans", "--programs", "file3_1", "--out", str(tmp_path / "x.jsonl"), "--ray"])
    assert exit_info.value.code == 2 and "--ray needs Ray: pip install 'e2wm[ray]'" in capsys.readouterr().err


@pytest.mark.slow
def test_collect_then_build(tmp_path):
    main(["collect", "plans", "--out", str(tmp_path / "plans.jsonl"), "--max-programs", "5", "--simulations", "30",
          "--workers", "1"])
    main(["collect", "explore", "--out", str(tmp_path / "explore.jsonl"), "--episodes", "8", "--steps", "15",
          "--workers", "1"])
    main(["build", "--plans", str(tmp_path / "plans.jsonl"), "--explore", str(tmp_path / "explore.jsonl"),
          "--out", str(tmp_path / "out"), "--shots", "1"])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert not stats["inputs"]["plans"]["inconsistent"] and not stats["inputs"]["explore"]["inconsistent"]
    assert stats["inputs"]["explore"]["used"] == 8
    for task, read in READERS.items():
        lines = [json.loads(line) for line in (tmp_path / "out" / f"train_{task}.jsonl").read_text().splitlines()]
        assert lines or task == "obj_move", task
        for line in lines:
            blocks = read(line)
            if task == "obj_move":
                assert all(solve_path(story, obj) == rooms for story, obj, rooms in blocks)


def test_a_collection_grows_but_never_mixes_settings(tmp_path, capsys):
    out = tmp_path / "episodes.jsonl"
    main(["collect", "explore", "--episodes", "1", "--steps", "4", "--out", str(out), "--workers", "1"])
    main(["collect", "explore", "--episodes", "2", "--steps", "4", "--out", str(out), "--workers", "1"])  # grows
    assert len(out.read_text().splitlines()) == 2
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["collect", "explore", "--episodes", "3", "--steps", "5", "--seed", "7", "--out", str(out)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "were collected with other --seed, --steps; use another --out" in err
    assert len(out.read_text().splitlines()) == 2


def test_records_without_their_settings_file_are_not_extended(tmp_path, capsys):
    out = tmp_path / "episodes.jsonl"
    main(["collect", "explore", "--episodes", "1", "--steps", "4", "--out", str(out), "--workers", "1"])
    (tmp_path / "episodes.jsonl.settings.json").unlink()  # a copied file, or one of an older e2wm
    with pytest.raises(SystemExit) as stop:
        main(["collect", "explore", "--episodes", "2", "--steps", "4", "--out", str(out), "--workers", "1"])
    assert stop.value.code == 2 and "holds records but no episodes.jsonl.settings.json" in capsys.readouterr().err


def test_records_of_programs_whose_files_changed_are_not_extended(tmp_path, capsys):
    """A --robothow-dir whose program files changed in place between two runs into one --out: refused, naming
    both sources (the records would mix two worlds); the bundled programs are named by their package's version."""
    import shutil

    from e2wm.world.programs import GRAPHS, SCRIPTS, bundled_root, index

    robothow = tmp_path / "robothow"
    for _, script, graph in list(index(None).values())[:3]:  # three programs of the bundled set
        for file, kind in ((script, SCRIPTS), (graph, GRAPHS)):
            target = robothow / kind / file.relative_to(bundled_root() / kind)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target)
    out = tmp_path / "episodes.jsonl"
    args = ["collect", "explore", "--steps", "4", "--workers", "1", "--robothow-dir", str(robothow), "--out", str(out)]
    main([*args, "--episodes", "1"])
    settings = json.loads((tmp_path / "episodes.jsonl.settings.json").read_text())
    assert settings["world"].startswith("virtualhome-eval ") and f"{robothow}: sha256 " in settings["world"]
    main([*args, "--episodes", "2"])  # the same files: the collection grows
    script = next((robothow / SCRIPTS).rglob("*.txt"))
    script.write_text(script.read_text() + "\n")  # edited in place
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([*args, "--episodes", "3"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "were collected from other programs or another simulator" in err
    assert len(out.read_text().splitlines()) == 2
