"""A writer of R lazy-load databases of character vectors (Rdata.rdx + Rdata.rdb), laid out as R writes those of a
data package such as janeaustenr (R Internals 1.8 "Serialization formats"; src/main/serialize.c): the tests' stand-in
for the Debian package r-cran-janeaustenr that `e2wm data prose` reads."""

import gzip
import struct
import zlib
from pathlib import Path

from e2wm.provenance import file_digest

# SEXP types and flag bits of R's serialization
SYMSXP, LISTSXP, CHARSXP, LGLSXP, INTSXP, STRSXP, VECSXP, NILVALUE, REFSXP = 1, 2, 9, 10, 13, 16, 19, 254, 255
HAS_ATTRIBUTES, HAS_TAG = 1 << 9, 1 << 10
UTF8 = 1 << 3  # a CHARSXP's encoding, in the flags' levels (flags >> 12)


def integer(value: int) -> bytes:
    return struct.pack(">i", value)


class Writer:
    """One serialization: symbols written once, then referred to by their index (REFSXP), as R does."""

    def __init__(self):
        self.symbols: list[str] = []

    def string(self, text: str) -> bytes:
        data = text.encode("utf-8")
        return integer(CHARSXP | UTF8 << 12) + integer(len(data)) + data

    def symbol(self, name: str) -> bytes:
        if name in self.symbols:
            return integer(REFSXP | (self.symbols.index(name) + 1) << 8)
        self.symbols.append(name)
        return integer(SYMSXP) + self.string(name)

    def names(self, names: list[str]) -> bytes:
        """The attribute pairlist `names = c(...)`."""
        return integer(LISTSXP | HAS_TAG) + self.symbol("names") + self.strings(names) + integer(NILVALUE)

    def strings(self, values: list[str]) -> bytes:
        return integer(STRSXP) + integer(len(values)) + b"".join(self.string(v) for v in values)

    def integers(self, values: list[int], kind: int = INTSXP) -> bytes:
        return integer(kind) + integer(len(values)) + b"".join(integer(v) for v in values)

    def named_list(self, items: dict[str, bytes]) -> bytes:
        """A list whose elements (already serialized) carry names."""
        return (integer(VECSXP | HAS_ATTRIBUTES) + integer(len(items)) + b"".join(items.values())
                + self.names(list(items)))


def serialize(build) -> bytes:
    """The XDR serialization (version 3, written by R 4.2.1) of the item build(writer) returns."""
    body = build(Writer())
    return b"X\n" + integer(3) + integer(0x040201) + integer(0x030500) + integer(5) + b"UTF-8" + body


def write_database(folder: Path, objects: dict[str, list[str]]) -> dict[str, str]:
    """Write objects (name -> lines) as folder/Rdata.rdb and folder/Rdata.rdx; return their sha256 by file name."""
    folder.mkdir(parents=True, exist_ok=True)
    data, places = b"", {}
    for name, lines in objects.items():
        raw = serialize(lambda w, lines=lines: w.strings(lines))
        blob = struct.pack(">I", len(raw)) + zlib.compress(raw)
        places[name] = [len(data), len(blob)]
        data += blob
    (folder / "Rdata.rdb").write_bytes(data)
    index = serialize(lambda w: w.named_list({
        "variables": w.named_list({name: w.integers(place) for name, place in places.items()}),
        "references": w.named_list({}),
        "compressed": w.integers([1], LGLSXP)}))
    (folder / "Rdata.rdx").write_bytes(gzip.compress(index))
    return {name: file_digest(folder / name) for name in ("Rdata.rdx", "Rdata.rdb")}
