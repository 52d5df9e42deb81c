"""`e2wm build --exclude-programs`: EAI's programs, a file of ids or ids kept out of every file, and stats.json."""

import hashlib
import json
import re
from pathlib import Path

import pytest
from helpers.experience_fixtures import programs, write_jsonl
from helpers.task_formats import read_act_recog, read_act_recog_qa, read_plan_gen

from e2wm.cli import main
from e2wm.world import eai_tasks

EAI_IDS = eai_tasks.program_ids()
# three fixture programs renamed to EAI tasks' programs (what a collection of the bundled programs holds)
AS_EAI = {"tv_0": EAI_IDS[0], "light_1": EAI_IDS[1], "read_2": EAI_IDS[2]}


def cli(*args) -> None:
    main(["build", *map(str, args)])


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def plan_texts(record: dict) -> str:
    return " ".join(record["plan_text"])


@pytest.fixture
def plans(tmp_path) -> Path:
    records = programs()
    for record in records:
        record["program"] = AS_EAI.get(record["program"], record["program"])
    return write_jsonl(tmp_path / "plans.jsonl", records)


def built_plans(out: Path) -> set[str]:
    """Every plan told anywhere in the build: training answers and shots, and evaluation items and shots."""
    told = set()
    for path in [out / "train_plan_gen.jsonl", *sorted(out.glob("heldout/plan_gen*.jsonl"))]:
        told.update(plan for line in lines(path) for _, plan in read_plan_gen(line))
    for line in lines(out / "train_act_recog.jsonl"):
        told.update(plan for plan, _ in read_act_recog(line))
    for path in sorted(out.glob("heldout/act_recog*.jsonl")):
        told.update(plan for line in lines(path) for plan, _ in read_act_recog_qa(line))
    return told


def records_of(plans: Path, ids: set[str]) -> list[dict]:
    return [r for r in lines(plans) if r["program"] in ids]


def test_eai_keeps_the_eai_programs_out_of_every_file(plans, tmp_path):
    out = tmp_path / "out"
    cli("--plans", plans, "--out", out, "--exclude-programs", "eai", "--eval-programs", 2, "--holdout-activities", 1)
    stats = json.loads((out / "stats.json").read_text())
    digest = hashlib.sha256("\n".join(sorted(EAI_IDS)).encode()).hexdigest()
    assert stats["excluded_programs"] == {"source": "eai", "requested": 342, "found_in_records": 3,
                                         "records_dropped": 3, "sha256": digest}
    assert stats["config"]["exclude_programs"] == ["eai"]
    assert stats["inputs"]["plans"]["records"] == 12 and stats["inputs"]["plans"]["excluded"] == 3
    told = built_plans(out)
    for record in records_of(plans, set(EAI_IDS)):  # plans unique to the excluded programs
        assert plan_texts(record) not in told
    for record in records_of(plans, {"tv_1", "light_0", "read_0"}):
        assert plan_texts(record) in told
    for path in (out / "heldout").glob("*.jsonl"):
        for line in lines(path):
            assert line["source"] not in EAI_IDS, path
    # without the option: the same records give the EAI programs' plans (the test above would catch them)
    cli("--plans", plans, "--out", tmp_path / "all")
    assert {plan_texts(r) for r in records_of(plans, set(EAI_IDS))} <= built_plans(tmp_path / "all")
    assert json.loads((tmp_path / "all" / "stats.json").read_text())["excluded_programs"] is None


def test_a_file_of_ids_with_comments_and_ids_given_directly(plans, tmp_path):
    ids = tmp_path / "keep-out.txt"
    ids.write_text("# programs to keep out\n\ntv_1  # a comment after the id\nfile1003_2\n", encoding="utf-8")
    cli("--plans", plans, "--out", tmp_path / "a", "--exclude-programs", ids, "read_1")
    stats = json.loads((tmp_path / "a" / "stats.json").read_text())["excluded_programs"]
    # file1003_2 is a bundled program no record names: known, requested, not found
    assert stats["source"] == f"{ids} + ids"
    assert (stats["requested"], stats["found_in_records"], stats["records_dropped"]) == (3, 2, 2)
    assert stats["sha256"] == hashlib.sha256(b"file1003_2\nread_1\ntv_1").hexdigest()
    told = built_plans(tmp_path / "a")
    assert not {plan_texts(r) for r in records_of(plans, {"tv_1", "read_1"})} & told
    cli("--plans", plans, "--out", tmp_path / "b", "--exclude-programs", "read_1", "tv_1", "file1003_2")
    again = json.loads((tmp_path / "b" / "stats.json").read_text())["excluded_programs"]
    assert again["source"] == "ids" and again["sha256"] == stats["sha256"]  # the same set, however named
    for name in ("train_plan_gen.jsonl", "train_act_recog.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_second_build_with_another_exclusion_rewrites_everything(plans, tmp_path):
    out = tmp_path / "out"
    cli("--plans", plans, "--out", out, "--exclude-programs", "tv_1", "tv_2", "--eval-programs", 2)
    first = built_plans(out)
    cli("--plans", plans, "--out", out, "--exclude-programs", "light_0", "light_2", "--eval-programs", 2)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["config"]["exclude_programs"] == ["light_0", "light_2"]
    assert stats["excluded_programs"]["sha256"] == hashlib.sha256(b"light_0\nlight_2").hexdigest()
    told = built_plans(out)
    assert not {plan_texts(r) for r in records_of(plans, {"light_0", "light_2"})} & told
    tv = {plan_texts(r) for r in records_of(plans, {"tv_1", "tv_2"})}
    assert not tv & first and tv <= told
    cli("--plans", plans, "--out", tmp_path / "fresh", "--exclude-programs", "light_0", "light_2",
        "--eval-programs", 2)
    for path in sorted(p.relative_to(out) for p in out.rglob("*.jsonl")):
        assert (out / path).read_bytes() == (tmp_path / "fresh" / path).read_bytes(), path


@pytest.mark.parametrize("values, message", [
    (["IDS"], r"keep-out\.txt:3: 'file27_2x' is not a known program id \(--exclude-programs"),
    (["tv_9"], r"--exclude-programs tv_9: not 'eai', a file of program ids, or a known program id"),
    (["EMPTY"], r"--exclude-programs .*empty\.txt: names no program"),
    (["/no/such/keep-out.txt"], r"--exclude-programs /no/such/keep-out\.txt: no such file"),
    (["tv_0", "tv_1", "tv_2", "light_0", "light_1", "light_2", "read_0", "read_1", "read_2", "fridge_0",
      "fridge_1", "sofa_0"], r"every one of the 12 plan records in .*plans\.jsonl is of an excluded program"),
])
def test_bad_exclusions_exit_2_naming_file_and_line(tmp_path, capsys, values, message):
    plans = write_jsonl(tmp_path / "plans.jsonl", programs())
    (tmp_path / "keep-out.txt").write_text("tv_0\n# fine\nfile27_2x\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    files = {"IDS": tmp_path / "keep-out.txt", "EMPTY": tmp_path / "empty.txt"}
    with pytest.raises(SystemExit) as stop:
        cli("--plans", plans, "--out", tmp_path / "out", "--exclude-programs", *[files.get(v, v) for v in values])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "out" / "train_plan_gen.jsonl").exists()


def test_exclusion_needs_plans(tmp_path, capsys):
    explore = write_jsonl(tmp_path / "explore.jsonl", [])
    with pytest.raises(SystemExit) as stop:
        cli("--explore", explore, "--out", tmp_path / "out", "--exclude-programs", "eai")
    assert stop.value.code == 2 and "--exclude-programs eai: needs --plans" in capsys.readouterr().err


def test_ids_are_checked_against_the_programs_the_plans_were_collected_from(plans, tmp_path):
    robothow = tmp_path / "robothow"  # the collector's record names a --robothow-dir with one program
    for folder, suffix, text in (("executable_programs", ".txt", "Watch TV\nwatch\n[WALK] <tv> (1.5)\n"),
                                 ("init_and_final_graphs", ".json", "{}")):
        path = robothow / folder / "scene_1" / "results" / f"file9999_1{suffix}"
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
    Path(f"{plans}.settings.json").write_text(json.dumps({"robothow_dir": str(robothow)}), encoding="utf-8")
    cli("--plans", plans, "--out", tmp_path / "out", "--exclude-programs", "file9999_1", "tv_1")
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["excluded_programs"]["requested"] == 2
    with pytest.raises(SystemExit):  # a bundled program, but not among those the plans came from
        cli("--plans", plans, "--out", tmp_path / "out", "--exclude-programs", "file1003_2")
