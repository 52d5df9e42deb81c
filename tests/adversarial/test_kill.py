"""kill -9 in the middle of `train`, `collect plans`, `collect explore`, `fisher` and `eval`, then a re-run: the
result equals an uninterrupted run's (training logs to 1e-6, collected files byte for byte, the Fisher and the
metrics exactly). The killed command runs as its own process group (its workers die with it, as in a crash);
the point of the kill is found by polling its outputs, and each test checks the kill came before the end."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from adversarial.support import GEN, QA, child_env, write_lines
from helpers.training import PAIRS, TEXTS
from safetensors.torch import load_file

from e2wm.cli import main
from e2wm.train.checkpoint import NAME, recover, swap_in

pytestmark = pytest.mark.slow


def kill_when(args: list, ready: Callable[[], bool], cwd: Path, timeout: float = 300) -> None:
    """Start `python -m e2wm args`, poll ready() every 5 ms, and SIGKILL its whole process group once it holds.

    Fails when the command ends (or the timeout passes) first: the test would then test nothing."""
    with (cwd / "killed.log").open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "e2wm", *map(str, args)], cwd=cwd, env=child_env(),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                pytest.fail(f"e2wm {args[0]} ended (or hung) before the kill point:\n"
                            f"{(cwd / 'killed.log').read_text()[-2000:]}")
            time.sleep(0.005)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL


def lines_in(path: Path) -> int:
    """Whole lines written so far (0 while the file is absent)."""
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


LOGGED = ("step", "loss", "ce", "ewc", "lr", "grad_norm", "examples", "tokens")  # what the seed fixes (not timings)


@pytest.fixture
def one_thread():
    """The in-process runs on one thread, as the killed child runs (support.child_env): float32 sums in another
    thread count differ in the last bits, which 160 training steps grow past 1e-6."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_train_killed_between_checkpoints_resumes_to_the_uninterrupted_log(tmp_path, tiny_llama, one_thread):
    data = tmp_path / "a.jsonl"
    data.write_text("".join(json.dumps({"input": t, "ref": r}) + "\n" for t, r in PAIRS * 2))
    fisher = tmp_path / "f.safetensors"
    main(["fisher", "--model", str(tiny_llama), "--corpus", str(write_lines(tmp_path / "c.jsonl", *[
        {"text": t} for t in TEXTS])), "--n", "4", "--max-len", "16", "--out", str(fisher)])
    common = ["--model", tiny_llama, "--train", f"1 {data}", "--fisher", fisher, "--lambda", "20", "--batch-size",
              "1", "--epochs", "20", "--save-every", "4", "--lr", "5e-3",  # 160 steps, dropout 0.1 draws the RNG
              "--autocast", "none"]  # the killed process is not under the suite's float32 pin (conftest)
    run = tmp_path / "killed"
    kill_when(["train", *common, "--out", run], lambda: lines_in(run / "log.jsonl") >= 6, tmp_path)
    saved = json.loads((run / NAME / "state.json").read_text())["step"]
    assert saved % 4 == 0 and 4 <= saved <= lines_in(run / "log.jsonl")  # later logged steps are redone
    main(["train", *map(str, common), "--out", str(run), "--resume"])
    main(["train", *map(str, common), "--out", str(tmp_path / "whole")])
    resumed, whole = read_log(run), read_log(tmp_path / "whole")
    assert [row["step"] for row in resumed] == list(range(1, 161)) == [row["step"] for row in whole]
    for a, b in zip(resumed, whole):
        for key in LOGGED:
            assert a[key] == pytest.approx(b[key], rel=1e-6, abs=1e-6), (a["step"], key)
    for name in ("adapter_model.safetensors",):
        got, expected = load_file(str(run / "adapter" / name)), load_file(str(tmp_path / "whole" / "adapter" / name))
        assert all(torch.allclose(got[k], expected[k], atol=1e-6) for k in expected)


def test_a_kill_between_the_checkpoint_renames_keeps_the_last_state(tmp_path):
    """The two moments of `swap_in` a kill can split: checkpoint/ renamed away but the new one not yet in place
    (`recover` puts the old one back), and the new one in place but checkpoint.old/ not yet removed (the next
    swap removes it first)."""
    def folder(name: str, step: int) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "state.json").write_text(json.dumps({"step": step}))
        return tmp_path / name
    folder(f"{NAME}.old", 4)
    folder(f"{NAME}.tmp", 8)  # the staging of step 8, complete or not: not trusted
    recover(tmp_path)
    assert json.loads((tmp_path / NAME / "state.json").read_text()) == {"step": 4}
    folder(f"{NAME}.old", 0)  # left by a kill after the second rename of an earlier swap
    swap_in(tmp_path / f"{NAME}.tmp", tmp_path / NAME)
    assert json.loads((tmp_path / NAME / "state.json").read_text()) == {"step": 8}
    assert not (tmp_path / f"{NAME}.old").exists()


@pytest.mark.parametrize("command", [
    ["collect", "plans", "--max-programs", "11", "--simulations", "80"],
    ["collect", "explore", "--episodes", "16", "--steps", "40", "--characters", "3"],
], ids=["plans", "explore"])
def test_collection_killed_mid_run_resumes_to_the_same_bytes(command, tmp_path):
    killed, whole = tmp_path / "killed.jsonl", tmp_path / "whole.jsonl"
    kill_when([*command, "--out", killed, "--workers", "2", "--seed", "5"], lambda: lines_in(killed) >= 2, tmp_path)
    cut = killed.read_bytes()
    main([*command, "--out", str(killed), "--workers", "2", "--seed", "5"])
    main([*command, "--out", str(whole), "--workers", "2", "--seed", "5"])
    assert killed.read_bytes() == whole.read_bytes()  # no duplicate, lost, torn or reordered record
    assert whole.read_bytes().startswith(cut[: cut.rfind(b"\n") + 1])  # what the killed run wrote was a prefix
    keys = [json.loads(line)["program" if command[1] == "plans" else "episode"] for line in whole.read_bytes()
            .splitlines()]
    assert len(keys) == len(set(keys)) == (11 if command[1] == "plans" else 16)


def test_fisher_killed_mid_run_resumes_to_the_uninterrupted_fisher(tmp_path, tiny_llama):
    corpus = write_lines(tmp_path / "corpus.jsonl", *[{"text": f"{t} ({i})"} for i in range(60) for t in TEXTS])
    common = ["fisher", "--model", tiny_llama, "--corpus", corpus, "--n", "300", "--max-len", "24",
              "--batch-size", "2", "--save-every", "10"]
    killed = tmp_path / "killed.safetensors"
    partial = tmp_path / "killed.safetensors.partial" / "sums.safetensors"
    kill_when([*common, "--out", killed], partial.is_file, tmp_path)
    assert not killed.exists()
    main([*map(str, common), "--out", str(killed)])
    main([*map(str, common), "--out", str(tmp_path / "whole.safetensors")])
    got, expected = load_file(str(killed)), load_file(str(tmp_path / "whole.safetensors"))
    assert got.keys() == expected.keys()
    assert all(torch.allclose(got[k], expected[k], rtol=1e-6, atol=0) for k in expected)
    assert not partial.parent.exists()


def test_eval_killed_after_its_first_task_resumes_to_the_uninterrupted_metrics(tmp_path, tiny_gpt2):
    data = tmp_path / "data"
    write_lines(data / "a_quiz.jsonl", QA, QA | {"answer": "Wash dishes"})
    words = ["cook", "sleep", "read", "bathe", "eat", "clean", "sing", "paint", "write", "run"]
    write_lines(data / "count.jsonl", *[QA | {"input": f"Q: Can you {w} here?\nA:"} for w in words * 6])
    write_lines(data / "plan_gen.jsonl", *[GEN | {"input": f"Q: How to {w}?\nA:"} for w in words * 4])
    common = ["eval", "--model", tiny_gpt2, "--data", data, "--max-new-tokens", "24"]
    killed = tmp_path / "killed"
    kill_when([*common, "--out", killed], (killed / "tasks" / "a_quiz.json").is_file, tmp_path)
    assert not (killed / "metrics.json").exists()
    main([*map(str, common), "--out", str(killed)])
    main([*map(str, common), "--out", str(tmp_path / "whole")])
    for name in ("metrics.json", "predictions/a_quiz.jsonl", "predictions/count.jsonl", "predictions/plan_gen.jsonl"):
        assert (killed / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
