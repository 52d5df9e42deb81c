"""General text: corpora read from files."""

from e2wm.text import read_corpus


def test_plain_text_corpus_is_split_into_paragraphs(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("One paragraph\nstill one.\n\nTwo.\n\n\n")
    assert read_corpus(path) == ["One paragraph\nstill one.", "Two."]
