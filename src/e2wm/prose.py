"""Human-written English prose for the general-text drift measure: passages of Jane Austen's six novels.

The study measures forgetting as the perplexity change on general text. Model samples (`e2wm fisher
--samples-only`) share the Fisher's distribution and flatter EWC; these passages are written by a person and come
from a package registry, so a machine without access to model or dataset hubs can install them:

    apt-get install --no-install-recommends r-cran-janeaustenr      (Debian 12 bookworm, version 1.0.0-1)

The package (MIT, Julia Silge; the novels, published 1811-1818, are in the public domain; the texts are Project
Gutenberg's transcriptions with Gutenberg's header and licence already removed by the package) stores the six
novels as R character vectors, one hard-wrapped line per element, in R's lazy-load database:
/usr/lib/R/site-library/janeaustenr/data/Rdata.rdx (the index) and Rdata.rdb (the objects). Each file is read
once and its bytes checked against their sha256 below before they are parsed. They are parsed here without R: the
index is a gzip-compressed R serialization; each object is a 4-byte big-endian length followed by a zlib stream of
one R serialization (XDR format, versions 2 and 3; R Internals, section 1.8 "Serialization formats", and R's
src/main/serialize.c).

`make_prose` cuts each novel into paragraphs (blocks between blank lines; wrapped lines joined, the `_italic_`
underscores and runs of spaces removed), keeps the chapters only (the title page and preface before the first
chapter heading, chapter and volume headings, editorial notes in brackets, a footnote, `* * *` breaks, and all from
THE END / FINIS / the modern "A NOTE ON THE TEXT" on are dropped), joins consecutive paragraphs of one chapter
into passages of --min-words to --max-words words, draws --n of them with --seed, and writes them as JSONL.
"""

import gzip
import hashlib
import logging
import random
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from e2wm import config
from e2wm.config import option
from e2wm.errors import InputError
from e2wm.files import iter_jsonl, output_file, write_jsonl

logger = logging.getLogger(__name__)

PACKAGE = "r-cran-janeaustenr"
PACKAGE_VERSION = "1.0.0-1"  # Debian 12 (bookworm), janeaustenr 1.0.0 built with R 4.2.1
INSTALLED = Path("/usr/lib/R/site-library/janeaustenr/data")  # where the Debian package puts the database
# sha256 of the package's two files (Debian 12's r-cran-janeaustenr 1.0.0-1; the .deb's own sha256 is in
# docs/prose.md); another build of the package (another R version) writes other bytes and is refused
DIGESTS = {
    "Rdata.rdx": "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
    "Rdata.rdb": "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
}
# the novels' objects in the database, in the order of publication
BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")
SOURCE = f"Jane Austen's six novels (Debian package {PACKAGE} {PACKAGE_VERSION})"
LICENSE = ("the novels (1811-1818) are in the public domain; the package that carries them is MIT-licensed "
           "(janeaustenr, Julia Silge)")
INSTALL = (f"install it with `apt-get install --no-install-recommends {PACKAGE}` (Debian 12; it brings R along), "
           f"or without R: `apt-get download {PACKAGE}` then `dpkg-deb -x {PACKAGE}_{PACKAGE_VERSION}_all.deb DIR` "
           "and pass --source DIR/usr/lib/R/site-library/janeaustenr/data")

HEADING = re.compile(r"(CHAPTER|Chapter|VOLUME|Volume)\s+([0-9]+|[IVXLC]+)\.?")
END_MARKERS = ("THE END", "FINIS", "A NOTE ON THE TEXT")  # a block reading so (any case) ends a novel's text
NOTES = ("[", "*")  # a block beginning so is an editorial note, a footnote or a `* * * * *` section break

# R's serialization: the SEXP types and flag bits read here (R Internals 1.8; src/main/serialize.c)
SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP = 1, 2, 9, 10, 13, 14, 16, 19
NILVALUE_SXP, REFSXP = 254, 255
HAS_ATTRIBUTES, HAS_TAG = 1 << 9, 1 << 10
LATIN1 = 1 << 2  # a CHARSXP's encoding, in the flags' levels (flags >> 12); UTF-8 and ASCII otherwise


@dataclass(kw_only=True)
class ProseConfig:
    """`e2wm data prose` / `make_prose(ProseConfig(out=...))`: passages of human-written prose as a JSONL file."""

    out: str = option(help="JSONL file to write ({\"text\": ..., \"source\": \"<novel>#<paragraph>\"} per line), "
                      "for `e2wm eval --ppl-data` and `e2wm train --eval-ppl-data`; never for `e2wm fisher --corpus`",
                      result=False, metavar="FILE")
    source: str | None = option(None, f"folder holding the R database of {PACKAGE} (Rdata.rdx and Rdata.rdb; "
                                f"default: the installed package's, {INSTALLED})", metavar="DIR")
    n: int = option(256, "how many passages to write", minimum=1)
    min_words: int = option(100, "fewest words in a passage (whitespace-separated)", minimum=1)
    max_words: int = option(400, "most words in a passage (a longer paragraph is left out)", minimum=1)
    seed: int = option(0, "seed of the passages' random selection: a larger --n with the same seed keeps the "
                       "smaller one's passages")

    def __post_init__(self) -> None:
        config.check(self)
        if self.max_words < self.min_words:
            raise InputError(f"--max-words must be at least --min-words ({self.min_words}), got {self.max_words}")


@dataclass(frozen=True)
class Passage:
    """Consecutive paragraphs of one chapter: text (paragraphs separated by a blank line), book (its object's name,
    e.g. emma), paragraph (the index of its first paragraph among the novel's blank-line-separated blocks, from 0)."""

    text: str
    book: str
    paragraph: int

    @property
    def source(self) -> str:
        return f"{self.book}#{self.paragraph}"

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass
class ProseResult:
    """What `make_prose` wrote: the file, its passages and their words (whitespace-separated)."""

    path: Path
    texts: int
    words: int
    source: str = SOURCE
    license: str = LICENSE


class RReader:
    """Reads one R serialization in XDR format (big-endian), of the types an R data package's character vectors
    and its lazy-load index use: NULL, symbols, pairlists, strings, character, logical, integer, double and list
    vectors, with attributes. A vector with attributes comes back as (values, {name: value}); a pairlist as a
    list of (tag, value).

    Raises:
        InputError: naming path, for another format or type, or bytes that end early.
    """

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos, self.refs = data, path, 0, []

    def fail(self, why: str) -> InputError:
        return InputError(f"{self.path}: not an R database of character vectors ({why})")

    def take(self, size: int) -> bytes:
        if size < 0:
            raise self.fail(f"a negative length {size}")
        if self.pos + size > len(self.data):
            raise self.fail("the data end early")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def read(self):
        """The serialized object: the header ('X\\n', version 2 or 3 with its native encoding), then the item."""
        if self.take(2) != b"X\n":
            raise self.fail("not XDR serialization")
        version = self.int()
        self.take(8)  # the R versions that wrote it and can read it
        if version == 3:
            self.take(self.int())  # the writer's native encoding
        elif version != 2:
            raise self.fail(f"serialization version {version}")
        try:
            return self.item()
        except (IndexError, TypeError, ValueError, UnicodeDecodeError) as error:  # a reference, pair or text amiss
            raise self.fail(f"malformed at byte {self.pos}: {error}") from None

    def item(self):
        flags = self.int()
        kind = flags & 0xFF
        if kind == NILVALUE_SXP:
            return None
        if kind == REFSXP:  # a symbol seen before: its index (from 1) in the flags, or in the next integer
            index = (flags >> 8) or self.int()
            if not 1 <= index <= len(self.refs):
                raise self.fail(f"a reference to symbol {index} of {len(self.refs)}")
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == CHARSXP:
            size = self.int()
            return None if size == -1 else self.take(size).decode("latin-1" if flags >> 12 & LATIN1 else "utf-8")
        if kind == LISTSXP:
            if flags & HAS_ATTRIBUTES:
                self.item()  # a pairlist cell's own attributes: nothing read here needs them
            tag = self.item() if flags & HAS_TAG else None
            head = (tag, self.item())
            return [head, *(self.item() or [])]
        if kind not in (LGLSXP, INTSXP, REALSXP, STRSXP, VECSXP):
            raise self.fail(f"R type {kind}")
        length = self.int()
        if length < 0:  # (R's long vectors, -1 then the length in two integers, are not needed here)
            raise self.fail(f"a negative length {length}")
        if kind in (STRSXP, VECSXP):
            values = [self.item() for _ in range(length)]
        elif kind == REALSXP:
            values = list(struct.unpack(f">{length}d", self.take(8 * length)))
        else:
            values = list(struct.unpack(f">{length}i", self.take(4 * length)))
        if flags & HAS_ATTRIBUTES:
            return values, dict(self.item() or [])
        return values


def read_database(folder: Path) -> dict[str, list[str]]:
    """The character vectors of the package's R lazy-load database (folder/Rdata.rdx, folder/Rdata.rdb), by object
    name, each file read once: checked against its pinned sha256 (`DIGESTS`), then parsed from the same bytes.

    Rdata.rdx (gzip) holds list(variables = list(<name> = c(offset, length)), ...); the object <name> is the
    `length` bytes of Rdata.rdb at `offset`: a 4-byte big-endian size, then the zlib-compressed serialization.

    Raises:
        InputError: naming the file, when it is not the pinned one, or cannot be decompressed or read as such, or
            an object is not text.
    """
    files = {name: pinned(folder / name, expected) for name, expected in DIGESTS.items()}
    index_path, data_path = folder / "Rdata.rdx", folder / "Rdata.rdb"
    try:
        index = RReader(gzip.decompress(files["Rdata.rdx"]), index_path).read()
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(f"{index_path}: not a gzip-compressed R serialization ({error})") from None
    if not (isinstance(index, tuple) and isinstance(index[1].get("names"), list)
            and "variables" in index[1]["names"]):
        raise InputError(f"{index_path}: not the index of an R lazy-load database (no 'variables')")
    variables = index[0][index[1]["names"].index("variables")]
    if not (isinstance(variables, tuple) and isinstance(variables[1].get("names"), list)):
        raise InputError(f"{index_path}: not the index of an R lazy-load database (unnamed 'variables')")
    objects = {}
    for name, (offset, length) in zip(variables[1]["names"], variables[0]):
        blob = files["Rdata.rdb"][int(offset) : int(offset) + int(length)]
        try:
            value = RReader(zlib.decompress(blob[4:]), data_path).read()
        except zlib.error as error:
            raise InputError(f"{data_path}: object {name} is not zlib-compressed ({error})") from None
        if not (isinstance(value, list) and all(isinstance(line, str) for line in value)):
            raise InputError(f"{data_path}: object {name} is not a character vector without NA")
        objects[name] = value
    return objects


def pinned(path: Path, expected: str) -> bytes:
    """The bytes of path; InputError naming it when their sha256 is not `expected` (the package's, `DIGESTS`)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected:
        raise InputError(f"{path}: sha256 {digest[:12]}... where {PACKAGE} {PACKAGE_VERSION} has {expected[:12]}...; "
                         f"not used: {INSTALL}")
    return data


def source_folder(source: str | None) -> Path:
    """The folder of the R database: --source, else the installed package's.

    Raises:
        InputError: when the package is not installed (saying how to install it), or --source lacks a file.
    """
    folder = Path(source) if source else INSTALLED
    missing = [name for name in DIGESTS if not (folder / name).is_file()]
    if missing and not source:
        raise InputError(f"{SOURCE} is not installed (no {folder / missing[0]}): {INSTALL}")
    if missing:
        raise InputError(f"--source {folder}: no {missing[0]} there (the data/ folder of {PACKAGE}): {INSTALL}")
    return folder


def blocks(lines: list[str]) -> list[list[str]]:
    """The blank-line-separated blocks of a text's lines (a line of spaces is blank), in order."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def clean(block: list[str]) -> str:
    """One paragraph: its wrapped lines joined by a space, the italics' underscores removed, spaces made single."""
    return " ".join(" ".join(block).replace("_", "").split())


def chapters(lines: list[str]) -> list[list[tuple[int, str]]]:
    """A novel's paragraphs as runs that no heading or break interrupts: per run, (block index, paragraph).

    The blocks before the first chapter or volume heading (title page, preface) are left out, and so is everything
    from an `END_MARKERS` block on; a heading, an editorial note (a block that begins with `[`), a footnote
    (`*Vide ...`) and a `* * *` break end a run and are left out.
    """
    runs: list[list[tuple[int, str]]] | None = None
    for index, block in enumerate(blocks(lines)):
        text = clean(block)
        if text.upper() in END_MARKERS:
            break
        if HEADING.fullmatch(text):
            runs = [*(runs or []), []]
        elif runs is not None and text.startswith(NOTES):
            runs.append([])
        elif runs is not None:
            runs[-1].append((index, text))
    return [run for run in runs or [] if run]


def passages(book: str, lines: list[str], min_words: int, max_words: int) -> list[Passage]:
    """A novel's passages: consecutive paragraphs of one run (`chapters`), min_words to max_words words each.

    Paragraphs are taken in order into the current passage until it has min_words; a paragraph that would take it
    past max_words starts a new one (the shorter one before it is dropped), and a paragraph longer than max_words
    is left out. The passages do not overlap; each begins at a paragraph.
    """
    found = []
    for run in chapters(lines):
        current: list[tuple[int, str]] = []
        words = 0
        for index, text in run:
            size = len(text.split())
            if words + size > max_words:
                current, words = [], 0
            if size > max_words:
                continue
            current.append((index, text))
            words += size
            if words >= min_words:
                found.append(Passage(text="\n\n".join(t for _, t in current), book=book, paragraph=current[0][0]))
                current, words = [], 0
    return found


def select(found: list[Passage], n: int, seed: int) -> list[Passage]:
    """n passages drawn at random with seed (the first n of a seeded shuffle, so a larger n keeps a smaller one's
    draw), in the order of the novels.

    Raises:
        InputError: when fewer than n passages are there.
    """
    if n > len(found):
        raise InputError(f"--n {n}: there are only {len(found)} passages of the chosen length in {SOURCE}; lower "
                         "--n or widen --min-words/--max-words")
    order = list(range(len(found)))
    random.Random(seed).shuffle(order)
    return [found[i] for i in sorted(order[:n])]


def make_prose(job: ProseConfig) -> ProseResult:
    """Write job.n passages of Jane Austen's novels to job.out as JSONL ({"text", "source"} per line), atomically.

    Raises:
        InputError: when the package is not installed (saying how to install it), a file of its database is not
            the pinned one (naming it), or fewer than job.n passages have the chosen length.
    """
    out = output_file(job.out)
    folder = source_folder(job.source)
    novels = read_database(folder)
    missing = [book for book in BOOKS if book not in novels]
    if missing:
        raise InputError(f"{folder / 'Rdata.rdx'}: no novel '{missing[0]}' in the database")
    found = [passage for book in BOOKS for passage in passages(book, novels[book], job.min_words, job.max_words)]
    chosen = select(found, job.n, job.seed)
    write_jsonl(out, [{"text": passage.text, "source": passage.source} for passage in chosen])
    logger.info("%d passages of %d to %d words in the six novels; %d drawn with seed %d", len(found), job.min_words,
                job.max_words, len(chosen), job.seed)
    return ProseResult(path=out, texts=len(chosen), words=sum(passage.words for passage in chosen))


def is_prose_file(path: str | Path) -> bool:
    """Whether path is a JSONL file that `e2wm data prose` wrote: its first record's "source" names one of the
    novels ("<novel>#<paragraph>"). False for anything else, unreadable files included."""
    try:
        _, first = next(iter_jsonl(path))
    except (InputError, StopIteration):
        return False
    source = first.get("source")
    return isinstance(source, str) and source.split("#", 1)[0] in BOOKS and "#" in source
