"""General text: corpora read from files."""

from e2wm.text import read_corpus


def test_plain_text_corpus_is_split_into_paragraphs(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("One paragraph\nstill one.\n\nTwo.\n\n\n")
    assert read_corpus(path) == ["One paragraph\nstill one.", "Two."]


def test_a_rewritten_file_is_hashed_again_even_with_its_old_size_and_mtime(tmp_path, monkeypatch):
    import hashlib
    import os

    from e2wm import provenance

    monkeypatch.setenv("E2WM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(provenance, "CACHED_ABOVE", 0)  # cache every file's digest
    file = tmp_path / "weights.bin"
    file.write_bytes(b"a" * 100)
    first = provenance.file_digest(file)
    stat = file.stat()
    file.write_bytes(b"b" * 100)  # same size
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, as `touch -r` would set it
    assert provenance.file_digest(file) == hashlib.sha256(b"b" * 100).hexdigest() != first
    assert (tmp_path / "cache" / "digests.json").is_file()
