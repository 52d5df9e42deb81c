"""Input that looks odd but is fine is read exactly as the clean file: a UTF-8 byte order mark (read as Python's
utf-8-sig does) and CRLF line ends, in every kind of file e2wm reads, through the readers and through commands."""

import json
from pathlib import Path

import pytest
from adversarial.support import GEN, PAIR, QA, TEXT, write_lines
from helpers.experience_fixtures import programs, random_episode

from e2wm.cli import main, parse
from e2wm.data.records import read_episodes, read_plans
from e2wm.eval.items import read_eval_file
from e2wm.text import read_corpus
from e2wm.train.data import read_pairs

BOM = b"\xef\xbb\xbf"


def variants(clean: Path) -> dict[str, Path]:
    """The clean file, and copies of the same name in folders beside it: with a byte order mark, with CRLF line
    ends, and with both."""
    data = clean.read_bytes()
    made = {"clean": clean}
    for name, text in (("bom", BOM + data), ("crlf", data.replace(b"\n", b"\r\n")),
                       ("bom+crlf", BOM + data.replace(b"\n", b"\r\n"))):
        made[name] = clean.parent / name / clean.name
        made[name].parent.mkdir(exist_ok=True)
        made[name].write_bytes(text)
    return made


READERS = {  # kind: (file name, its lines, what reading it gives)
    "plans": ("plans.jsonl", [*programs()[:3]], lambda p: list(read_plans(p))),
    "explore": ("explore.jsonl", [random_episode(0), random_episode(1)], lambda p: list(read_episodes(p))),
    "training pairs": ("train.jsonl", [PAIR, PAIR | {"ref": "Two."}], read_pairs),
    "qa file": ("count.jsonl", [QA, QA | {"answer": "Wash dishes"}], lambda p: read_eval_file(p).items),
    "generation file": ("plan_gen.jsonl", [GEN], lambda p: read_eval_file(p).items),
    "corpus jsonl": ("corpus.jsonl", [TEXT, {"text": "Second."}], read_corpus),
    "corpus text": ("corpus.txt", ["First paragraph,", "two lines.", "", "Second paragraph."], read_corpus),
}


@pytest.mark.parametrize("kind", list(READERS))
def test_bom_and_crlf_read_as_the_clean_file(kind, tmp_path):
    name, lines, read = READERS[kind]
    files = variants(write_lines(tmp_path / name, *lines))
    expected = read(files.pop("clean"))
    for variant, path in files.items():
        assert read(path) == expected, variant
    if kind == "corpus text":
        assert expected == ["First paragraph,\ntwo lines.", "Second paragraph."]


def test_build_writes_the_same_files_from_a_bom_and_crlf_input(tmp_path):
    plans = variants(write_lines(tmp_path / "plans.jsonl", *programs()))
    explore = variants(write_lines(tmp_path / "explore.jsonl", *[random_episode(e) for e in range(12)]))
    for name in ("clean", "bom+crlf"):
        main(["build", "--plans", str(plans[name]), "--explore", str(explore[name]), "--out",
              str(tmp_path / "built" / name), "--shots", "1"])
    made = sorted((tmp_path / "built" / "clean").glob("train_*.jsonl"))
    assert len(made) == 4
    for file in made:
        assert (tmp_path / "built" / "bom+crlf" / file.name).read_bytes() == file.read_bytes(), file.name


def test_a_yaml_config_with_a_bom_and_crlf(tmp_path):
    config = write_lines(tmp_path / "c.yaml", "plans: p.jsonl", "shots: 1", "out: built")
    for path in variants(config).values():
        job, _ = parse("build", ["--config", str(path)])
        assert (job.plans, job.shots, job.out) == ("p.jsonl", 1, "built")


def test_eval_scores_a_bom_and_crlf_file_as_the_clean_one(tiny_gpt2, tmp_path):
    files = variants(write_lines(tmp_path / "data" / "count.jsonl", QA, QA | {"answer": "Wash dishes"}))
    metrics = {}
    for name, path in files.items():
        main(["eval", "--model", str(tiny_gpt2), "--data", str(path), "--out", str(tmp_path / "runs" / name)])
        metrics[name] = json.loads((tmp_path / "runs" / name / "metrics.json").read_text())
    assert metrics["bom"] == metrics["crlf"] == metrics["bom+crlf"] == metrics["clean"]
