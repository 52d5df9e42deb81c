"""e2wm.prose: the R database read without R, the novels cut into clean passages, the seeded selection, the checks
of the source; on a fake of the Debian package's database (helpers.rdata), and on the real one where installed."""

import re
import struct

import pytest
from helpers.rdata import write_database

from e2wm import prose
from e2wm.errors import InputError
from e2wm.files import read_jsonl
from e2wm.prose import Passage, ProseConfig, chapters, make_prose, passages, read_database, select
from e2wm.text import read_corpus

# a novel as the package stores it: a title page, hard-wrapped lines, _italics_, double spaces, headings, an
# editorial note, a paragraph too long for a passage, a line of spaces, a section break, the end and a note after it
EMMA = [
    "EMMA", "", "By Jane Austen", "", "", "VOLUME I", "", "", "CHAPTER I", "", "",   # blocks 0-3
    "Emma Woodhouse, handsome,  clever, and", "rich, with a _comfortable_ home.", "",  # 4: 10 words
    "She was the youngest.", "",  # 5: 4 words
    "Her father", "was fond.", "",  # 6: 4 words
    "[At this point in the first edition, Volume 1 ends.]", "",  # 7: a note
    "The real evils were these: too much of her own", "way, and a wish to think too well of herself.", "",  # 8: 20
    "Sixteen years had passed.", "    ", "Miss Taylor was a friend.", "",  # 9, 10: 4 + 5 words
    "                          * * * * *", "",  # 11: a break
    "A short one.", "", "", "",  # 12: 3 words, alone before the heading
    "CHAPTER II.", "",  # 13
    "Mr. Weston was a native of Highbury,", "", "born of a respectable family.", "",  # 14, 15: 7 + 5 words
    "He had a small independence.", "",  # 16: 5 words
    "THE END", "", "A NOTE ON THE TEXT", "", "Spelling has been brought into conformity with modern usage."]
# the passages of 8 to 12 words of EMMA (by block), by hand: 4 alone (10 words); 5 + 6 (8); the note 7 ends the run
# and 8 is too long; 9 + 10 (9); the break 11 ends the run and 12 (3) is left alone; 14 + 15 (12), and 16 (5) alone
EXPECTED = [
    ("emma#4", "Emma Woodhouse, handsome, clever, and rich, with a comfortable home."),
    ("emma#5", "She was the youngest.\n\nHer father was fond."),
    ("emma#9", "Sixteen years had passed.\n\nMiss Taylor was a friend."),
    ("emma#14", "Mr. Weston was a native of Highbury,\n\nborn of a respectable family."),
]


def novel(title: str, paragraphs: int) -> list[str]:
    """A short novel in the package's layout: a title, one chapter of paragraphs of 10 words each."""
    lines = [title.upper(), "", "by Jane Austen", "", "Chapter 1", ""]
    for number in range(paragraphs):
        lines += [f"{title} paragraph {number} has words,", "wrapped onto a second line.", ""]
    return lines


def fake_package(folder, monkeypatch) -> dict[str, list[str]]:
    """The six novels (EMMA and five short ones of 3 passages each at 8-12 words) as the package's database in
    folder, with the checksum table made that of these files."""
    objects = {book: novel(book, 3) for book in prose.BOOKS}
    objects["emma"] = EMMA
    monkeypatch.setattr(prose, "DIGESTS", write_database(folder, objects))
    return objects


def test_the_r_database_reads_back_every_line(tmp_path, monkeypatch):
    objects = fake_package(tmp_path / "data", monkeypatch)
    assert read_database(tmp_path / "data") == objects


def test_a_novel_is_cut_into_clean_passages_of_whole_paragraphs():
    found = passages("emma", EMMA, 8, 12)
    assert [(p.source, p.text) for p in found] == EXPECTED
    assert [p.words for p in found] == [10, 8, 9, 12]


def test_chapters_leave_out_front_matter_headings_notes_and_what_follows_the_end():
    runs = chapters(EMMA)
    assert [[index for index, _ in run] for run in runs] == [[4, 5, 6], [8, 9, 10], [12], [14, 15, 16]]
    texts = [text for run in runs for _, text in run]
    assert not any(mark in text for text in texts for mark in ("_", "  ", "CHAPTER", "[", "*", "Spelling"))


@pytest.mark.parametrize(("min_words", "max_words", "sources"), [
    (4, 4, ["emma#5", "emma#6", "emma#9"]),  # exactly 4 words: single paragraphs
    (20, 40, ["emma#8"]),  # the long paragraph alone: 10 + 4 + 4 words do not reach 20 before the note
    (1, 1000, ["emma#4", "emma#5", "emma#6", "emma#8", "emma#9", "emma#10", "emma#12", "emma#14", "emma#15",
               "emma#16"]),
])
def test_the_word_bounds_choose_the_passages(min_words, max_words, sources):
    assert [p.source for p in passages("emma", EMMA, min_words, max_words)] == sources


def test_the_selection_is_seeded_nested_and_in_the_novels_order():
    found = [Passage(text=f"text {i}", book="emma", paragraph=i) for i in range(20)]
    five = select(found, 5, 0)
    assert five == select(found, 5, 0) and five != select(found, 5, 1)
    assert [p.paragraph for p in five] == sorted(p.paragraph for p in five)
    assert set(five) < set(select(found, 10, 0))
    assert select(found, 20, 3) == found
    with pytest.raises(InputError, match="--n 21: there are only 20 passages"):
        select(found, 21, 0)


def test_make_prose_writes_the_drawn_passages_that_read_as_general_text(tmp_path, monkeypatch):
    fake_package(tmp_path / "data", monkeypatch)
    config = ProseConfig(out=str(tmp_path / "prose.jsonl"), source=str(tmp_path / "data"), n=19, min_words=8,
                         max_words=12, seed=0)
    done = make_prose(config)
    records = read_jsonl(tmp_path / "prose.jsonl")
    assert len(records) == done.texts == 19 and all(set(r) == {"text", "source"} for r in records)
    # 4 passages of EMMA and 3 of each other novel (one paragraph of 10 words each, from block 3 on), all drawn
    expected = {source: text for source, text in EXPECTED}
    for book in prose.BOOKS:
        if book != "emma":
            expected |= {f"{book}#{3 + i}": f"{book} paragraph {i} has words, wrapped onto a second line."
                         for i in range(3)}
    assert {r["source"]: r["text"] for r in records} == expected
    assert [r["source"].split("#")[0] for r in records] == sorted(
        (r["source"].split("#")[0] for r in records), key=prose.BOOKS.index)
    assert done.words == sum(len(text.split()) for text in expected.values()) == 10 + 8 + 9 + 12 + 15 * 10
    assert read_corpus(tmp_path / "prose.jsonl", "--ppl-data") == [r["text"] for r in records]


def test_a_missing_package_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(prose, "INSTALLED", tmp_path / "nowhere")
    with pytest.raises(InputError) as error:
        make_prose(ProseConfig(out=str(tmp_path / "p.jsonl")))
    assert f"no {tmp_path / 'nowhere' / 'Rdata.rdx'}" in str(error.value)
    assert "apt-get install --no-install-recommends r-cran-janeaustenr" in str(error.value)
    assert "dpkg-deb -x r-cran-janeaustenr_1.0.0-1_all.deb DIR" in str(error.value)
    assert not (tmp_path / "p.jsonl").exists()


def test_a_file_that_is_not_the_pinned_one_is_named(tmp_path, monkeypatch):
    fake_package(tmp_path / "data", monkeypatch)
    data = tmp_path / "data" / "Rdata.rdb"
    data.write_bytes(data.read_bytes() + b"\0")
    with pytest.raises(InputError, match=f"^{re.escape(str(data))}: sha256 [0-9a-f]{{12}}\\.\\.\\. where "
                                         f"r-cran-janeaustenr 1.0.0-1 has {prose.DIGESTS['Rdata.rdb'][:12]}"):
        make_prose(ProseConfig(out=str(tmp_path / "p.jsonl"), source=str(tmp_path / "data")))


def test_a_source_without_the_database_and_bad_bounds_are_refused(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match=f"--source {tmp_path / 'data'}: no Rdata.rdx there"):
        make_prose(ProseConfig(out=str(tmp_path / "p.jsonl"), source=str(tmp_path / "data")))
    with pytest.raises(InputError, match=r"--max-words must be at least --min-words \(100\), got 50"):
        ProseConfig(out="p.jsonl", max_words=50)


@pytest.mark.skipif(not all((prose.INSTALLED / name).is_file() for name in prose.DIGESTS),
                    reason="the Debian package r-cran-janeaustenr is not installed "
                           "(apt-get install --no-install-recommends r-cran-janeaustenr)")
def test_the_installed_package_gives_the_study_passages(tmp_path):
    novels = read_database(prose.INSTALLED)
    found = [p for book in prose.BOOKS for p in passages(book, novels[book], 100, 400)]
    assert len(found) == 4099 and all(100 <= p.words <= 400 for p in found)
    assert found[0].source == "sensesensibility#4" and found[0].text.startswith(
        "The family of Dashwood had long been settled in Sussex. Their estate was large,")
    done = make_prose(ProseConfig(out=str(tmp_path / "prose.jsonl")))
    texts = read_corpus(tmp_path / "prose.jsonl", "--ppl-data")
    assert done.texts == len(texts) == 256 and done.words == sum(len(t.split()) for t in texts)
    assert not any(mark in text for text in texts for mark in ("_", "  ", "[", "Gutenberg", "CHAPTER"))


def test_a_prose_file_is_recognised_so_that_the_fisher_can_warn(tmp_path, tiny_llama, capsys):
    from e2wm.cli import main

    ours = tmp_path / "prose.jsonl"
    ours.write_text('{"text": "It is a truth universally acknowledged.", "source": "prideprejudice#3"}\n')
    other = tmp_path / "general.jsonl"
    other.write_text('{"text": "It is a truth universally acknowledged.", "source": "news#3"}\n')
    assert prose.is_prose_file(ours) and not prose.is_prose_file(other)
    assert not prose.is_prose_file(tmp_path / "missing.jsonl") and not prose.is_prose_file(tiny_llama)
    main(["fisher", "--model", str(tiny_llama), "--corpus", str(ours), "--n", "1", "--max-len", "8", "--out",
          str(tmp_path / "f.safetensors")])
    assert "the human-written prose of `e2wm data prose`, the drift measure" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["a negative length", "a reference to no symbol", "bytes that end early"])
def test_malformed_serializations_are_named_not_raised_bare(tmp_path, damage):
    """RReader parses defensively: bytes that are not a well-formed serialization raise an InputError naming the file,
    never a bare IndexError or struct.error (`make_prose` only parses bytes with the pinned digests)."""
    header = b"X\n" + struct.pack(">i", 2) + b"\0" * 8
    body = {"a negative length": struct.pack(">ii", prose.STRSXP, -5),
            "a reference to no symbol": struct.pack(">i", prose.REFSXP | 7 << 8),
            "bytes that end early": struct.pack(">ii", prose.STRSXP, 3)}[damage]
    path = tmp_path / "Rdata.rdb"
    with pytest.raises(InputError, match=f"^{re.escape(str(path))}: not an R database of character vectors"):
        prose.RReader(header + body, path).read()
