"""One writer per output: while a process holds an output, every command that would write it is refused in one
line naming the output and the holder's pid (exit 2, nothing written); the lock goes with its process, kill -9
included; two real processes racing for one output end with one result, not a mix."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from adversarial.support import GEN, PAIR, QA, TEXT, Foreign, child_env, refused, run_e2wm, write_lines
from helpers.experience_fixtures import programs, random_episode

from e2wm.cli import main
from e2wm.errors import InputError
from e2wm.locks import HELD_ENV, lock_file, output_lock, writer_of

HOLD = "import sys, time\nfrom e2wm.locks import output_lock\nwith output_lock(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(120)\n"


class Holder:
    """Another process holding the lock of an output (as a running e2wm command does)."""

    def __init__(self, output: Path):
        env = {k: v for k, v in child_env().items() if k != HELD_ENV}
        self.process = subprocess.Popen([sys.executable, "-c", HOLD, str(output)], stdout=subprocess.PIPE,
                                        env=env, text=True, start_new_session=True)
        assert self.process.stdout.readline().strip() == "held"

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def holder():
    held = []

    def hold(output: Path) -> Holder:
        held.append(Holder(output))
        return held[-1]

    yield hold
    for h in held:
        if h.process.poll() is None:
            h.kill()


def eval_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    data = write_lines(tmp / "count.jsonl", QA, QA)
    return ["eval", "--model", f.gpt2, "--data", data, "--out", tmp / "eval"], tmp / "eval"


def train_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    data = write_lines(tmp / "a.jsonl", PAIR, PAIR)
    return ["train", "--model", f.llama, "--train", f"1 {data}", "--method", "lora", "--max-steps", "1",
            "--batch-size", "2", "--out", tmp / "run"], tmp / "run"


def fisher_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    corpus = write_lines(tmp / "c.jsonl", TEXT, TEXT)
    return ["fisher", "--model", f.llama, "--corpus", corpus, "--n", "2", "--out", tmp / "f.safetensors"], \
        tmp / "f.safetensors"


def build_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    plans = write_lines(tmp / "plans.jsonl", *programs()[:3])
    return ["build", "--plans", plans, "--out", tmp / "built"], tmp / "built"


def plans_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    return ["collect", "plans", "--programs", "file3_1", "--simulations", "2", "--out", tmp / "p.jsonl"], \
        tmp / "p.jsonl"


def explore_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    return ["collect", "explore", "--episodes", "2", "--steps", "3", "--out", tmp / "e.jsonl"], tmp / "e.jsonl"


def export_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    return ["export", "merged", "--model", f.llama, "--adapter", f.llama_adapter, "--out", tmp / "merged"], \
        tmp / "merged"


def lm_eval_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    data = write_lines(tmp / "data" / "plan_gen.jsonl", GEN)
    return ["export", "lm-eval", "--data", data, "--out", tmp / "tasks"], tmp / "tasks"


def report_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    run = tmp / "evaluated"
    write_lines(run / "metrics.json", json.dumps({"count": {"accuracy": 0.5, "n": 2}}))
    return ["report", run, "--out", tmp / "report.md"], tmp / "report.md"


def demo_run(tmp: Path, f: Foreign) -> tuple[list, Path]:
    return ["demo", "--model", f.llama, "--out", tmp / "demo"], tmp / "demo"


COMMANDS = {"eval": eval_run, "train": train_run, "fisher": fisher_run, "build": build_run,
            "collect-plans": plans_run, "collect-explore": explore_run, "export-merged": export_run,
            "export-lm-eval": lm_eval_run, "report": report_run, "demo": demo_run}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_second_writer_is_refused_in_one_line_naming_the_output_and_the_holder(name, tmp_path, foreign, holder,
                                                                                 capsys):
    argv, output = COMMANDS[name](tmp_path, foreign)
    first = holder(output)
    line = refused(argv, tmp_path, capsys)  # exit 2, one line, nothing under tmp_path created or changed
    assert f"{output}: another e2wm process is writing it (pid {first.process.pid} " in line, line


def test_the_lock_goes_with_its_process_even_after_kill_9(tmp_path, foreign, holder, capsys):
    argv, output = eval_run(tmp_path, foreign)
    first = holder(output)
    assert writer_of(output).startswith(f"pid {first.process.pid} ")
    first.kill()  # the lock file stays behind, but nobody holds it
    assert lock_file(output).is_file() and writer_of(output) is None
    main([str(a) for a in argv])
    assert (output / "metrics.json").is_file()
    assert not lock_file(output).exists()  # removed by the run that held it last


FORK = "import os, sys, time\nfrom e2wm.locks import output_lock\nwith output_lock(sys.argv[1]):\n" \
       "    if os.fork() == 0:\n        time.sleep(120)\n        os._exit(0)\n    print('held', flush=True)\n" \
       "    time.sleep(120)\n"


def test_a_worker_that_outlives_its_killed_parent_does_not_keep_the_lock(tmp_path, foreign, capsys):
    """collect's workers are forked from the process that holds the lock; killed alone, the parent must not
    leave the output locked by a worker still alive (a flock would be: the fork shares it)."""
    argv, output = eval_run(tmp_path, foreign)
    parent = subprocess.Popen([sys.executable, "-c", FORK, str(output)], stdout=subprocess.PIPE, text=True,
                              env={k: v for k, v in child_env().items() if k != HELD_ENV}, start_new_session=True)
    try:
        assert parent.stdout.readline().strip() == "held"
        assert writer_of(output).startswith(f"pid {parent.pid} ")
        parent.kill()  # the parent alone: its forked child sleeps on
        parent.wait()
        assert writer_of(output) is None
        main([str(a) for a in argv])
        assert (output / "metrics.json").is_file()
    finally:
        os.killpg(parent.pid, signal.SIGKILL)


def test_report_refuses_a_run_that_is_still_being_written(tmp_path, holder):
    run = tmp_path / "evaluated"
    write_lines(run / "metrics.json", json.dumps({"count": {"accuracy": 0.5, "n": 2}}))
    first = holder(run)
    from e2wm.eval.config import ReportConfig
    from e2wm.recipes.report import report

    with pytest.raises(InputError, match=f"{run}: still being written \\(pid {first.process.pid} "):
        report(ReportConfig(runs=[str(run)], out=str(tmp_path / "r.md")))
    first.kill()
    assert "count" in report(ReportConfig(runs=[str(run)], out=str(tmp_path / "r.md")))


def test_the_lock_is_reentrant_in_a_process_and_cleans_up_what_it_made(tmp_path):
    output = tmp_path / "new" / "deeper" / "run"
    with output_lock(output):
        assert lock_file(output).is_file()
        assert str(lock_file(output)) in os.environ[HELD_ENV]  # what the processes it starts inherit
        with output_lock(output):  # the demo's recipes, a recipe calling another
            pass
        assert lock_file(output).is_file()
        assert writer_of(output) is None  # this process is the writer: not refused to itself
    assert not (tmp_path / "new").exists()  # the lock file and the folders made for it are gone
    assert str(lock_file(output)) not in os.environ.get(HELD_ENV, "")


def test_a_symbolic_link_to_an_output_shares_its_lock(tmp_path, holder):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    holder(real)
    with pytest.raises(InputError, match="another e2wm process is writing it"), output_lock(tmp_path / "alias"):
        pass


@pytest.mark.slow
def test_a_second_collection_started_while_the_first_runs_is_refused_and_the_file_is_one_collection(tmp_path):
    out, episodes = tmp_path / "shared.jsonl", 150  # about 15 s of work: the second starts well before its end
    command = [sys.executable, "-m", "e2wm", "collect", "explore", "--episodes", str(episodes), "--steps", "20",
               "--seed", "3", "--workers", "1", "--out", str(out)]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=child_env())
    while not (out.is_file() and out.read_bytes().count(b"\n") >= 1):  # the first holds the file
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    second = run_e2wm(*command[3:])
    assert first.poll() is None, "the first collection ended before the second tried: make it longer"
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines() == [
        f"e2wm collect explore: error: --out {out}: another e2wm process is writing it (pid {first.pid} "
        "(e2wm collect explore)); wait for it to finish or choose another --out"]
    assert first.wait(timeout=600) == 0, first.stderr.read()
    numbers = [json.loads(line)["episode"] for line in out.read_text().splitlines()]
    assert numbers == list(range(episodes))  # no record duplicated, lost or mixed in


def test_a_collection_file_with_a_record_twice_is_named_on_resume(tmp_path, capsys):
    out = write_lines(tmp_path / "e.jsonl", random_episode(0), random_episode(1), random_episode(0))
    line = refused(["collect", "explore", "--episodes", "4", "--out", out], tmp_path, capsys)
    assert f"{out}:3: field 'episode': 0 again (first at line 1)" in line


def test_a_cache_that_one_process_fills_makes_the_others_wait_instead(tmp_path, holder):
    """wait=True (the embedded model's conversion, which two first runs may start at once): blocks while another
    process holds the lock, then takes it."""
    import threading

    cache = tmp_path / "cache" / "model"
    first, taken = holder(cache), threading.Event()

    def second():
        with output_lock(cache, "the cache", wait=True):
            taken.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not taken.wait(0.5)  # still held by the first
    first.kill()
    assert taken.wait(30)
    thread.join()


def test_a_full_disk_when_taking_the_lock_names_the_lock_file_and_leaves_nothing(tmp_path, foreign, monkeypatch,
                                                                                   capsys):
    import errno

    from e2wm import locks

    argv, output = eval_run(tmp_path, foreign)
    real = os.write

    def full(fd, data):
        if os.fstat(fd).st_ino == os.stat(lock_file(output)).st_ino:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data)

    monkeypatch.setattr(locks.os, "write", full)
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 1
    assert err == [f"e2wm eval: stopped: {lock_file(output)}: no space left on device (free some space; completed "
                   "work is kept, re-run to resume)"]
    assert not lock_file(output).exists() and not output.exists()


def test_report_written_while_a_run_changed_is_removed(tmp_path, monkeypatch, capsys):
    """A run folder rewritten while the report reads it (an eval started on it after the report's check): the
    report would describe a run that no longer exists; it stops and leaves nothing."""
    from e2wm.recipes import report as report_recipe

    run = tmp_path / "evaluated"
    write_lines(run / "metrics.json", json.dumps({"count": {"accuracy": 0.5, "n": 2}}))
    real = report_recipe.write_report

    def meanwhile_an_eval_rewrites_the_run(*args, **kwargs):
        text = real(*args, **kwargs)
        write_lines(run / "metrics.json.new", json.dumps({"count": {"accuracy": 1.0, "n": 2}}))
        (run / "metrics.json.new").replace(run / "metrics.json")
        return text

    monkeypatch.setattr(report_recipe, "write_report", meanwhile_an_eval_rewrites_the_run)
    with pytest.raises(SystemExit) as stop:
        main(["report", str(run), "--out", str(tmp_path / "r.md")])
    assert stop.value.code == 1
    assert f"{run}: changed while the report read it" in capsys.readouterr().err
    assert not list(tmp_path.glob("r*"))


def test_the_holder_s_pid_is_waited_for_briefly_when_it_has_not_written_it_yet(tmp_path):
    import threading

    from e2wm import locks

    file = tmp_path / ".x.lock"
    file.write_text("")
    fd = os.open(file, os.O_RDONLY)
    try:
        assert locks._holder(fd, patience=0.1) == "pid unknown"
        threading.Timer(0.1, lambda: file.write_text("pid 42 (e2wm eval)\n")).start()
        assert locks._holder(fd, patience=5) == "pid 42 (e2wm eval)"
    finally:
        os.close(fd)


def test_an_existing_folder_in_a_parent_that_cannot_be_written_is_locked_inside(tmp_path, monkeypatch):
    """`--out .` in a read-only parent, or a mount point: the lock file goes into the folder (every writer sees the
    same folder and the same parent); otherwise beside it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    assert lock_file(folder) == tmp_path / ".mine.lock"
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == tmp_path else real(path, mode))
    assert lock_file(folder) == folder / ".e2wm.lock"
    assert lock_file(tmp_path / "new") == tmp_path / ".new.lock"  # a folder yet to be made: beside, as before


def test_the_lock_file_names_the_command_that_holds_it(tmp_path, monkeypatch):
    from e2wm.recipes import report as report_recipe

    run, out, seen = tmp_path / "evaluated", tmp_path / "r.md", []
    write_lines(run / "metrics.json", json.dumps({"count": {"accuracy": 0.5, "n": 2}}))
    real = report_recipe.write_report

    def look(*args, **kwargs):
        seen.append(lock_file(out).read_text())
        return real(*args, **kwargs)

    monkeypatch.setattr(report_recipe, "write_report", look)
    main(["report", str(run), "--out", str(out)])
    assert seen == [f"pid {os.getpid()} (e2wm report)\n"]
