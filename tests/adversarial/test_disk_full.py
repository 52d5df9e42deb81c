"""A full disk: every write e2wm makes turns the libraries' ways of saying so (Python's OSError without a file
name, safetensors' and tokenizers' `(os error 28)`, torch.save's RuntimeError) into one OSError naming the file,
which the command line prints in one line (exit 1); nothing half-written is left (temporaries removed, appended
files cut back to their last whole line), and the same command then resumes to the uninterrupted result.

The disk is filled without filling one: Python's and torch's writes are sent to /dev/full (Linux's device that
answers every write with ENOSPC), os.write is made to write part of a line and then fail, as a disk that fills
mid-write does, and the Rust libraries' errors are raised as they read on a full tmpfs."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from helpers.training import PAIRS
from safetensors.torch import load_file

from e2wm.cli import main
from e2wm.files import append_jsonl, write_atomic, writing
from e2wm.train import checkpoint
from e2wm.train.checkpoint import save_state

FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not FULL.exists() or not Path("/proc/self/fd").is_dir(),
                                reason="needs Linux's /dev/full and /proc/self/fd")
ADVICE = "no space left on device (free some space; completed work is kept, re-run to resume)"


def stopped(capsys, command: str, path: Path) -> None:
    """The command's standard error is the one line of a full disk at path."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("e2wm")]
    assert err == [f"e2wm {command}: stopped: {path}: {ADVICE}"]


def run(*args) -> int:
    try:
        main([*map(str, args)])
    except SystemExit as stop:
        return stop.code
    return 0


def fill_up(monkeypatch, path: Path, after: int) -> None:
    """os.write to path succeeds `after` times, then writes part of its bytes (a short write) and fails with ENOSPC
    on the next call, as a disk that fills mid-line does; other files are written as usual."""
    real = os.write
    calls = 0

    def write(fd: int, data) -> int:
        nonlocal calls
        if os.readlink(f"/proc/self/fd/{fd}") != str(path):
            return real(fd, data)
        calls += 1
        if calls <= after:
            return real(fd, data)
        if calls == after + 1:
            return real(fd, bytes(data)[: max(1, len(data) // 2)])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)


def test_each_library_s_full_disk_becomes_an_oserror_naming_the_file(tmp_path):
    from safetensors import SafetensorError

    def rust(kind):  # what safetensors and tokenizers raised on a full tmpfs (they write by renaming a temporary
        raise kind("Error while serializing: I/O error: No space left on device (os error 28)")  # over the file,
        # so they are never pointed at /dev/full, which they would replace)

    target = tmp_path / "out"
    writes = {
        "python": lambda: FULL.write_text("x" * 100_000),
        "torch.save": lambda: save_state({"a": torch.zeros(100_000)}, FULL),
        "safetensors": lambda: rust(SafetensorError),
        "tokenizers": lambda: rust(Exception),
    }
    for name, write in writes.items():
        with pytest.raises(OSError) as caught, writing(target):
            write()
        assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(target)), name
    with pytest.raises(ValueError, match="not a disk"), writing(target):  # other errors pass unchanged
        raise ValueError("not a disk")
    with pytest.raises(FileNotFoundError) as caught, writing(target):  # a named OSError keeps its name
        (tmp_path / "no" / "such").read_text()
    assert caught.value.filename == str(tmp_path / "no" / "such")


def test_write_atomic_and_append_leave_nothing_half_written(tmp_path, monkeypatch):
    import e2wm.files

    done = tmp_path / "done.json"
    write_atomic(done, "old\n")
    real_fdopen = os.fdopen

    def fdopen_on_a_full_disk(fd, *args, **kwargs):
        os.close(fd)
        return real_fdopen(os.open(FULL, os.O_WRONLY), *args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(OSError) as caught:
        patch.setattr(e2wm.files.os, "fdopen", fdopen_on_a_full_disk)
        write_atomic(done, "new " * 100_000)
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(done))
    assert done.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["done.json"]

    log = tmp_path / "log.jsonl"
    append_jsonl(log, {"step": 1})
    with monkeypatch.context() as patch, pytest.raises(OSError) as caught:
        fill_up(patch, log, after=0)
        append_jsonl(log, {"step": 2, "text": "x" * 1000})
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(log))
    assert log.read_text() == '{"step": 1}\n'  # the half line is cut off again


@pytest.fixture
def one_thread():
    """Training on one thread, so that the resumed and the uninterrupted runs sum in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def checkpoint_on_a_full_disk(monkeypatch, at_call: int) -> None:
    """The at_call-th torch.save of a checkpoint (the 2nd checkpoint's optimizer.pt, its weights already written):
    some bytes written, then torch's own error of a full disk (its write sent to /dev/full)."""
    real = checkpoint.save_state
    calls = 0

    def save(state, path):
        nonlocal calls
        calls += 1
        if calls < at_call:
            return real(state, path)
        path.write_bytes(b"\0" * 64)
        return real(state, FULL)

    monkeypatch.setattr(checkpoint, "save_state", save)


@pytest.mark.parametrize("where", ["checkpoint", "log.jsonl"])
def test_train_stops_in_one_line_and_resumes_exactly(where, tiny_llama, tmp_path, capsys, monkeypatch, one_thread):
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps({"input": t, "ref": r}) + "\n" for t, r in PAIRS * 2))
    common = ["train", "--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--batch-size", "2",
              "--epochs", "2", "--save-every", "3", "--lr", "5e-3", "--device", "cpu"]  # 8 steps
    assert run(*common, "--out", tmp_path / "whole") == 0
    run_dir = tmp_path / "full"
    capsys.readouterr()
    with monkeypatch.context() as patch:  # (the conftest's own patches stay)
        if where == "checkpoint":
            checkpoint_on_a_full_disk(patch, at_call=4)  # step 6's, after step 3's (optimizer, scheduler, rng)
        else:
            fill_up(patch, run_dir / "log.jsonl", after=4)  # step 5's line
        assert run(*common, "--out", run_dir) == 1
    stopped(capsys, "train", run_dir / where)
    assert json.loads((run_dir / "checkpoint" / "state.json").read_text())["step"] == 3  # the last whole one
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith((".tmp", ".old"))]
    assert (run_dir / "log.jsonl").read_text().endswith("}\n")  # whole lines only
    assert run(*common, "--out", run_dir, "--resume") == 0
    resumed, whole = (read_log(folder) for folder in (run_dir, tmp_path / "whole"))
    assert [row["step"] for row in resumed] == [row["step"] for row in whole] == list(range(1, len(whole) + 1))
    for a, b in zip(resumed, whole):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6, abs=1e-6), a["step"]
    got, expected = (load_file(str(folder / "adapter" / "adapter_model.safetensors"))
                     for folder in (run_dir, tmp_path / "whole"))
    assert all(torch.allclose(got[key], expected[key], atol=1e-6) for key in expected)


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_collect_stops_in_one_line_and_resumes_to_the_same_bytes(tmp_path, capsys, monkeypatch):
    common = ["collect", "explore", "--episodes", "6", "--steps", "20", "--characters", "2", "--workers", "1",
              "--seed", "5"]
    whole, full = tmp_path / "whole.jsonl", tmp_path / "full.jsonl"
    assert run(*common, "--out", whole) == 0
    capsys.readouterr()
    with monkeypatch.context() as patch:
        fill_up(patch, full, after=3)
        assert run(*common, "--out", full) == 1
    stopped(capsys, "collect explore", full)
    assert full.read_bytes().count(b"\n") == 3 and full.read_bytes().endswith(b"\n")  # whole records only
    assert whole.read_bytes().startswith(full.read_bytes())
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert run(*common, "--out", full) == 0
    assert full.read_bytes() == whole.read_bytes()
