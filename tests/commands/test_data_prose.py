"""`e2wm data prose`: the passages written from a fake of the Debian package's R database (helpers.rdata, its
checksums made the pinned ones), what the command prints, the file read back by `--ppl-data`'s reader, and the
one-line refusals: the package not installed (naming the install command), a file not the pinned one (naming it)."""

import pytest
from helpers.files import command_output
from helpers.rdata import write_database

from e2wm import prose
from e2wm.eval.perplexity import read_texts
from e2wm.files import read_jsonl

PARAGRAPH = "{book} paragraph {number} was written by a person, in hard-wrapped lines, and it has sixteen words."


def novel(book: str, paragraphs: int) -> list[str]:
    """A novel in the package's layout: title page, a chapter of paragraphs of 16 words wrapped at 40 columns."""
    lines = [book.upper(), "", "By Jane Austen", "", "", "CHAPTER I", "", ""]
    for number in range(paragraphs):
        text = PARAGRAPH.format(book=book, number=number)
        cut = text.rfind(" ", 0, 40)
        lines += [text[:cut], text[cut + 1 :], ""]
    return [*lines, "", "THE END"]


@pytest.fixture
def package(tmp_path, monkeypatch):
    """The six novels of 5 paragraphs each, as the installed package: 30 passages at --min-words 16."""
    folder = tmp_path / "janeaustenr" / "data"
    monkeypatch.setattr(prose, "DIGESTS", write_database(folder, {book: novel(book, 5) for book in prose.BOOKS}))
    monkeypatch.setattr(prose, "INSTALLED", folder)
    return folder


def run(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `e2wm data prose args`."""
    return command_output(capsys, ["data", "prose", *args])


def test_writes_the_drawn_passages_and_says_what_they_are(package, tmp_path, capsys):
    out = tmp_path / "prose.jsonl"
    code, stdout, _ = run(capsys, "--out", out, "--n", 12, "--min-words", 16, "--max-words", 20, "--seed", 7)
    assert code == 0
    records = read_jsonl(out)
    assert len(records) == 12
    for record in records:
        book, number = record["source"].split("#")
        assert book in prose.BOOKS  # paragraph k of a novel is its block 3 + k (title, byline, heading before)
        assert record["text"] == PARAGRAPH.format(book=book, number=int(number) - 3)
    assert read_texts(out) == [r["text"] for r in records]
    assert f"wrote 12 texts, 192 words (16 a text) to {out}" in stdout
    assert "source: Jane Austen's six novels (Debian package r-cran-janeaustenr 1.0.0-1)" in stdout
    assert "license: the novels (1811-1818) are in the public domain" in stdout
    assert "keep it out of `e2wm fisher --corpus`" in stdout
    # the same seed draws the same passages; another seed others; the whole set at --n 30
    run(capsys, "--out", tmp_path / "again.jsonl", "--n", 12, "--min-words", 16, "--max-words", 20, "--seed", 7)
    assert read_jsonl(tmp_path / "again.jsonl") == records
    run(capsys, "--out", tmp_path / "other.jsonl", "--n", 12, "--min-words", 16, "--max-words", 20, "--seed", 8)
    assert read_jsonl(tmp_path / "other.jsonl") != records
    run(capsys, "--out", tmp_path / "all.jsonl", "--n", 30, "--min-words", 16, "--max-words", 20)
    assert len({r["source"] for r in read_jsonl(tmp_path / "all.jsonl")}) == 30


def test_passages_join_paragraphs_up_to_the_bounds(package, tmp_path, capsys):
    """At 30 to 40 words two paragraphs make a passage: 2 per novel (the fifth paragraph is left alone)."""
    code, stdout, _ = run(capsys, "--out", tmp_path / "p.jsonl", "--n", 12, "--min-words", 30, "--max-words", 40)
    texts = {r["source"]: r["text"] for r in read_jsonl(tmp_path / "p.jsonl")}
    assert code == 0 and sorted(texts) == sorted(f"{book}#{i}" for book in prose.BOOKS for i in (3, 5))
    first = PARAGRAPH.format(book="emma", number=0) + "\n\n" + PARAGRAPH.format(book="emma", number=1)
    assert texts["emma#3"] == first and "wrote 12 texts, 384 words (32 a text)" in stdout


def test_refusals_are_one_line(package, tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "--out", tmp_path / "p.jsonl", "--n", 31, "--min-words", 16, "--max-words", 20)
    assert code == 2 and err.count("\n") == 1 and "--n 31: there are only 30 passages of the chosen length" in err
    (package / "Rdata.rdx").write_bytes((package / "Rdata.rdx").read_bytes() + b"\0")
    code, _, err = run(capsys, "--out", tmp_path / "p.jsonl")
    assert code == 2 and err.count("\n") == 1 and f"{package / 'Rdata.rdx'}: sha256 " in err
    monkeypatch.setattr(prose, "INSTALLED", tmp_path / "missing")
    code, _, err = run(capsys, "--out", tmp_path / "p.jsonl")
    assert code == 2 and err.count("\n") == 1
    assert "is not installed" in err and "`apt-get install --no-install-recommends r-cran-janeaustenr`" in err
    code, _, err = run(capsys, "--out", tmp_path / "p.jsonl", "--min-words", 50, "--max-words", 40)
    assert code == 2 and "--max-words must be at least --min-words (50), got 40" in err
    assert not (tmp_path / "p.jsonl").exists()
