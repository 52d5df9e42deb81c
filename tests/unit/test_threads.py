"""Threads that hold up under a changing load: passive OpenMP waiting from the command line, and the demo's
thread count chosen per stage from the other work running then."""

import os
import subprocess
import sys
import time

import pytest
import torch

from e2wm.cli import main
from e2wm.recipes import demo


@pytest.mark.parametrize(("before", "after"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_command_makes_waiting_threads_sleep_unless_told_otherwise(before, after, monkeypatch):
    if before is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", before)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert os.environ["OMP_WAIT_POLICY"] == after


def test_a_fresh_e2wm_process_has_passive_openmp_before_torch_loads():
    """libgomp reads OMP_WAIT_POLICY once, when torch loads: the command must set it before any import of torch."""
    code = ("import os, sys; os.environ.pop('OMP_WAIT_POLICY', None); from e2wm.cli import main\n"
            "assert 'torch' not in sys.modules\ntry: main(['--version'])\nexcept SystemExit: pass\n"
            "print(os.environ['OMP_WAIT_POLICY'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "PASSIVE"


@pytest.mark.parametrize(("busy", "threads"), [(0.0, 2), (0.4, 2), (0.8, 1), (1.0, 1), (6.0, 1)])
def test_the_demo_takes_the_cores_other_work_leaves_free(busy, threads, monkeypatch):
    monkeypatch.setattr(demo, "busy_elsewhere", lambda: busy)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    before = torch.get_num_threads()
    try:
        demo.set_threads(None)
        assert torch.get_num_threads() == threads
        demo.set_threads(3)  # --threads wins
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not os.path.isfile("/proc/loadavg"), reason="reads /proc/loadavg (Linux)")
def test_busy_elsewhere_sees_processes_that_keep_cores_busy():
    quiet = demo.busy_elsewhere()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        time.sleep(0.3)
        loaded = demo.busy_elsewhere()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert loaded >= 2.5 and loaded >= quiet + 1.5, (quiet, loaded)
