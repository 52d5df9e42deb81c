"""One writer per output: an exclusive lock that a command holds on its output for its whole run.

Two e2wm processes given the same output (an eval run folder, a collection file, a Fisher file, ...) would
otherwise both succeed and leave a mix of the two runs. The first locks a hidden file beside
the output, `.NAME.lock`; a second is refused before it writes anything (InputError naming the output and the
holder's pid). It is a POSIX record lock (`fcntl.lockf`), which belongs to the process that took it: the
kernel releases it when that process ends, kill -9 and out-of-memory kills included, so an interrupted run
never blocks the next one, and the workers it forks (collect's) do not inherit it (a `flock` would live on in
a worker that outlives its killed parent). The lock file itself is removed when the holder finishes.

Within one process the lock is re-entrant (the demo's stages, a recipe called from another). The processes a
holder starts for the same job (`accelerate launch` of eval's shards) find the output in E2WM_HELD_OUTPUTS and
take no lock of their own; under torchrun/accelerate only the process of RANK 0 writes, and only it locks.
Readers (`e2wm report`) call `writer_of` to refuse a run folder that a live process is still writing.
"""

import fcntl
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2wm.errors import InputError
from e2wm.files import writing

logger = logging.getLogger(__name__)

HELD_ENV = "E2WM_HELD_OUTPUTS"  # lock files held by this process or an ancestor that started it, os.pathsep-joined
COMMAND: str | None = None  # what holds a lock, as its lock file says: the `e2wm` command line sets it (`e2wm eval`)
_depth: dict[Path, int] = {}  # lock file -> how many times this process holds it (re-entrant)


def lock_file(output: str | Path) -> Path:
    """The lock file of an output: `.NAME.lock` beside it, for the output's real path (symbolic links resolved,
    so two names of one folder share a lock); inside it, `.e2wm.lock`, for an existing folder whose parent cannot
    be written (`--out .` in a read-only parent, a mount point), where every writer sees the same."""
    real = Path(os.path.realpath(output))
    if real.is_dir() and real.parent.exists() and not os.access(real.parent, os.W_OK):
        return real / ".e2wm.lock"
    return real.parent / f".{real.name}.lock"


def _inherited() -> set[str]:
    return set(filter(None, os.environ.get(HELD_ENV, "").split(os.pathsep)))


def _holder(fd: int, patience: float = 1.0) -> str:
    """What the holder wrote into the lock file: `pid N (e2wm eval)`; read again for up to patience seconds
    while it is empty (a holder that has just taken the lock writes it next), then `pid unknown`."""
    deadline = time.monotonic() + patience
    while True:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if text or time.monotonic() > deadline:
            return text or "pid unknown"
        time.sleep(0.02)


def _acquire(file: Path, output: str | Path, option: str, wait: bool) -> int | None:
    """An open descriptor of file holding its exclusive lock; None where the file system has no locks (a
    warning says so). Raises InputError when another process holds it (unless wait: then it waits for it), or
    the folder cannot be written."""
    while True:
        try:
            fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise InputError(f"{option} {output}: cannot write in {file.parent} ({error.strerror})") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held
            holder = _holder(fd)
            if wait:
                logger.info("waiting for another e2wm process (%s) to finish writing %s", holder, output)
                fcntl.lockf(fd, fcntl.LOCK_EX)
            else:
                os.close(fd)
                raise InputError(f"{option} {output}: another e2wm process is writing it ({holder}); wait for it to "
                                 f"finish or choose another {option}") from None
        except OSError as error:  # ENOLCK and the like: a file system without locks (some network mounts)
            os.close(fd)
            logger.warning("%s %s: cannot lock it (%s); make sure no other run writes it", option, output,
                           error.strerror)
            return None
        try:  # the previous holder may have removed the file between our open and our lock: lock the new one
            current = os.stat(file).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)
    command = COMMAND or Path(sys.argv[0]).name  # the program, for the Python API
    try:
        with writing(file):  # a full disk: OSError naming the lock file (the command's one line)
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} ({command})\n".encode("utf-8", "replace"))
    except BaseException:
        file.unlink(missing_ok=True)
        os.close(fd)
        raise
    return fd


def _make_parents(folder: Path) -> list[Path]:
    """Create folder and its missing parents; returns those created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


@contextmanager
def output_lock(output: str | Path, option: str = "--out", wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of output (a file or folder, existing or not) for the body of the with block;
    wait: wait for another holder to finish instead of refusing (a shared cache that one process fills).

    Raises:
        InputError: another process holds it (`--out runs/x: another e2wm process is writing it (pid 4242
            (e2wm eval)); ...`), or its folder cannot be written. Nothing is left behind either way: the lock
            file and the folders made for it are removed.
    """
    file = lock_file(output)
    if int(os.environ.get("RANK", "0")) != 0 or _depth.get(file) or str(file) in _inherited():
        _depth[file] = _depth.get(file, 0) + 1
        try:
            yield
        finally:
            _depth[file] -= 1
        return
    created = _make_parents(file.parent)
    try:
        fd = _acquire(file, output, option, wait)
    except BaseException:
        _remove_empty(created)
        raise
    _depth[file] = 1
    held = _inherited()
    os.environ[HELD_ENV] = os.pathsep.join(sorted(held | {str(file)}))
    try:
        yield
    finally:
        _depth.pop(file, None)
        os.environ[HELD_ENV] = os.pathsep.join(sorted(held))
        if fd is not None:
            file.unlink(missing_ok=True)  # while still holding it: a waiting opener then sees another inode
            os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders made for a lock file (deepest first) that are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: the run wrote there
            break


def writer_of(output: str | Path) -> str | None:
    """Who is writing output now (`pid N (e2wm eval)`), or None when no live process holds its lock."""
    file = lock_file(output)
    if str(file) in _inherited() or _depth.get(file):
        return None  # this process (or the one that started it) is the writer
    try:
        fd = os.open(file, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return _holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None
