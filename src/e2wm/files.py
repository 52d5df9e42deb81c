"""JSONL reading with precise errors, and atomic writes (a crash never leaves a half-written file)."""

import codecs
import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2wm.errors import InputError, at


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 file, as Python's `utf-8-sig` and universal newlines read it: a leading byte order mark
    dropped, CRLF and CR line ends made LF. InputError naming the file (and the line) when it is a directory,
    missing, or not UTF-8."""
    path = Path(path)
    data = check_file(path).read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise InputError(f"{at(path, line)}: not UTF-8 text (byte 0x{data[error.start]:02x})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def why_missing(path: str | Path, what: str = "file") -> str:
    """Why path cannot be read: `no such <what>`, or, for a symbolic link that leads nowhere (a loop, or a
    target that is gone), that, naming where it points."""
    path = Path(path)
    if path.is_symlink():
        return f"a symbolic link that leads nowhere (to {os.readlink(path)}: a loop, or a missing target)"
    return f"no such {what}"


def check_file(path: Path) -> Path:
    """path, checked to be a file: InputError `PATH: a directory, not a file` or `PATH: no such file` otherwise."""
    if path.is_dir():
        raise InputError(f"{path}: a directory, not a file")
    if not path.is_file():
        raise InputError(f"{path}: {why_missing(path)}")
    return path


def require_utf8(text: str, where: str) -> None:
    """InputError `WHERE: not UTF-8 (byte 0xNN)` for a name that is not UTF-8: Python keeps such bytes of a file name
    (or an argument) as lone surrogates, which every JSON or markdown file e2wm writes would fail on, after the work."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        byte = text[error.start].encode("utf-8", "surrogateescape")[0]
        raise InputError(f"{where}: not UTF-8 (byte 0x{byte:02x}); e2wm records paths and settings in UTF-8 "
                         "files: rename it") from None


def output_file(path: str | Path, option: str = "--out") -> Path:
    """An output file's path, checked before any work: InputError `--out PATH: a directory, not a file` when a
    folder is in its place, `not a regular file` for a device, pipe or socket (/dev/null: outputs are written
    atomically by renaming a file over it, and resumed by reading it back): either would fail only at the end."""
    path = Path(path)
    dangling(path, option)
    if path.is_dir():
        raise InputError(f"{option} {path}: a directory, not a file")
    if path.exists() and not path.is_file():
        raise InputError(f"{option} {path}: not a regular file (a device, pipe or socket); give a file's path")
    check_parents(path, option)
    return path


def dangling(path: Path, option: str) -> None:
    """InputError `--out PATH: a symbolic link that leads nowhere (...)` for an output path that is such a link:
    a folder cannot be made there, and a file written atomically would replace the link itself."""
    if path.is_symlink() and not path.exists():
        raise InputError(f"{option} {path}: {why_missing(path)}; give a path that exists or none")


def check_parents(path: Path, option: str) -> None:
    """InputError `--out PATH: PARENT is a file, not a folder` when the nearest existing folder above path is a
    file (the path could never be created; mkdir or open would raise NotADirectoryError at the end)."""
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"{option} {path}: {parent} is a file, not a folder")


def output_folder(path: str | Path, option: str = "--out") -> Path:
    """An output folder's path, checked before any work: InputError `--out PATH: a file, not a folder` when
    something other than a folder is in its place."""
    path = Path(path)
    dangling(path, option)
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: a file, not a folder")
    check_parents(path, option)
    return path


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON raises InputError with file and line.

    Lines end in LF or CRLF; a UTF-8 byte order mark at the start is skipped (as Python's `utf-8-sig` does).
    InputError naming the file when it is a directory or missing, and the line when it is not UTF-8 text, not
    JSON as `parse_json` reads it (a lone surrogate named with its field), or not an object.
    """
    path = check_file(Path(path))
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InputError(f"{at(path, number)}: not UTF-8 text (byte 0x{raw[error.start]:02x})") from None
            if not line.strip():
                continue
            record = parse_json(line, path, number)
            if not isinstance(record, dict):
                raise InputError(f"{at(path, number)}: expected a JSON object, got {type(record).__name__}")
            yield number, record


LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # half of a UTF-16 pair: a str, but no UTF-8 text


def check_text(value: Any, path, line: int | None = None) -> None:
    """InputError for the first string of value, in reading order, that holds a lone surrogate (a code point in
    U+D800..U+DFFF, which JSON's and YAML's \\uXXXX escapes give and no UTF-8 text holds: tokenizers and every
    file e2wm writes fail on it, after the work): `FILE:LINE: field 'steps[0].action' holds a lone surrogate
    \\ud83d (...)`, for strings nested in lists and objects and for objects' keys too.

    Args:
        value: a parsed JSON or YAML value (str, list, dict, numbers, None; lists and dicts may nest and, from YAML
            aliases, refer to themselves).
        path, line: where value was read, for the message (line None for a whole file).
    """
    stack: list[tuple[str, Any, bool]] = [("", value, False)]  # (field, value, is a key)
    seen: set[int] = set()
    while stack:
        field, item, is_key = stack.pop()
        if isinstance(item, str):
            found = LONE_SURROGATE.search(item)
            if found:
                name = field.encode("utf-8", "backslashreplace").decode("utf-8")
                where = f"{at(path, line, name)}{' (a key)' if is_key else ''}" if name else f"{at(path, line)}: text"
                raise InputError(f"{where} holds a lone surrogate \\u{ord(found.group()):04x} (not text: half of a "
                                 "UTF-16 pair, escaped alone; write the whole character)")
        elif isinstance(item, (dict, list, tuple)) and id(item) not in seen:
            seen.add(id(item))
            if isinstance(item, dict):
                named = [(f"{field}.{key}" if field else str(key), key, child) for key, child in item.items()]
                children = [entry for name, key, child in named for entry in ((name, key, True), (name, child, False))]
            else:
                children = [(f"{field}[{i}]", child, False) for i, child in enumerate(item)]
            stack.extend(reversed(children))


def parse_json(text: str, path, line: int | None = None) -> Any:
    """json.loads of text (a JSONL line, or a whole file with line None), every fault an InputError naming path and
    the line: bad JSON, nesting too deep for Python to read (RecursionError), a number too long for Python's int
    (ValueError past 4300 digits), and a string holding a lone surrogate (`check_text`, with its field)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        where = line if line is not None else error.lineno
        raise InputError(f"{at(path, where)}: bad JSON ({error.msg})") from None
    except RecursionError:
        raise InputError(f"{at(path, line)}: bad JSON (nested too deeply to read)") from None
    except ValueError:  # an integer of more digits than sys.get_int_max_str_digits()
        raise InputError(f"{at(path, line)}: bad JSON (a number too long to read)") from None
    if "\\u" in text or LONE_SURROGATE.search(text):  # text read as UTF-8 holds none: only an escape gives one
        check_text(value, path, line)
    return value


def read_json(path: str | Path) -> Any:
    """The JSON value in a UTF-8 file (`read_text`: byte order mark and CRLF as there), every fault an InputError
    naming the file and line (`parse_json`)."""
    return parse_json(read_text(path), path)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file (see iter_jsonl)."""
    return [record for _, record in iter_jsonl(path)]


def require(record: dict, field: str, kind: type | tuple[type, ...], path, line: int) -> Any:
    """record[field], checked for presence and type; InputError naming file, line and field otherwise."""
    if field not in record:
        raise InputError(f"{at(path, line, field)} is missing")
    value = record[field]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"{at(path, line, field)} must be {names}, got {type(value).__name__}")
    return value


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # a full disk, or the user's quota on it used up
OS_ERROR_IN_MESSAGE = re.compile(r"\(os error (\d+)\)")  # how Rust's io::Error ends (safetensors, tokenizers)


def os_errno(error: BaseException) -> int | None:
    """The OS error number behind error: its own (an OSError), one that Rust libraries (safetensors, tokenizers)
    write into their message as `(os error 28)`, or that of an error in its chain of causes (torch.save into a
    Python file object raises a RuntimeError while handling the file's OSError); None when there is none."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return error.errno
        found = OS_ERROR_IN_MESSAGE.search(str(error))
        if found:
            return int(found[1])
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Re-raise a failed write inside as an OSError that names the file: an OSError naming no file (a failed write
    or flush) gets path, and a library's own error for a full disk (`os_errno` in DISK_FULL: safetensors'
    SafetensorError, torch.save's RuntimeError) becomes OSError(ENOSPC or EDQUOT, strerror, path), which the
    command line reports in one line (e2wm.cli). Other errors pass unchanged."""
    try:
        yield
    except OSError as error:
        if error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise
    except Exception as error:
        number = os_errno(error)
        if number not in DISK_FULL:
            raise
        raise OSError(number, os.strerror(number), str(path)) from error


def write_atomic(path: str | Path, text: str) -> None:
    """Write text to path via a temporary file in the same folder and an atomic rename; a failed write (a full
    disk: OSError naming path, `writing`) removes the temporary file and leaves path as it was."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            usual_permissions(tmp)  # mkstemp makes 0600 files
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def usual_permissions(path: str | Path) -> None:
    """Give a file, or every file below a folder, the permissions a new file gets (0666 less the umask):
    mkstemp and safetensors write through a temporary file of mode 0600 renamed into place, which other users of a
    shared machine could not read (Fisher files, adapters, merged models)."""
    path = Path(path)
    mode = 0o666 & ~_umask()
    for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        os.chmod(file, mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write obj as indented JSON."""
    write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | Path, records: list[dict]) -> None:
    """Atomically write records, one JSON object per line."""
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that lacks its newline (an append a kill interrupted) off the file, in place."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        data = handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one record and flush it to disk (for resumable logs: at most the line in flight is lost).

    A failed write (a full disk: OSError naming path, `writing`) cuts the file back to its size before, so no
    partial line is left."""
    path = Path(path)
    data = memoryview((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.lseek(handle, 0, os.SEEK_END)
            try:
                while data:
                    data = data[os.write(handle, data):]
                os.fsync(handle)
            except BaseException:
                os.ftruncate(handle, size)
                raise
        finally:
            os.close(handle)
