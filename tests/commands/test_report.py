"""`e2wm report`: training-log curves, and bad run directories exit 2."""

import json
import re

import pytest

from e2wm.cli import main


def test_train_log_curves(tmp_path):
    run = tmp_path / "train"
    run.mkdir()
    rows = [{"step": s, "loss": 3.0 - 0.1 * s, "ce": 3.0 - 0.1 * s - 0.01, "ewc": 0.005 * s, "lr": 8e-4 * (1 - s / 10)}
            for s in range(1, 11)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "train.md"
    main(["report", "--train-log", str(run), "--out", str(out)])
    text = out.read_text()
    assert re.search(r"\| train \| 10 \| 2\.9000 \| 2\.0000 \| 2\.8900 \| 1\.9900 \| 0\.05 \|", text)
    assert (tmp_path / "train-train.png").stat().st_size > 10_000
    assert not (tmp_path / "train.png").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d.mkdir(), "no metrics.json"),
        (lambda d: (d.mkdir(), (d / "metrics.json").write_text("{bad")), "metrics.json:1: bad JSON"),
        (lambda d: (d.mkdir(), (d / "metrics.json").write_text('{"t": {"x": 1}}')), "task 't' has no accuracy"),
        (lambda d: None, "no such run directory"),
    ],
)
def test_bad_run_dirs_exit_2(tmp_path, capsys, setup, message):
    run = tmp_path / "run"
    setup(run)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(run), "--out", str(tmp_path / "r.md")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("e2wm report: error:") and message in err and "\n" not in err
    assert not (tmp_path / "r.md").exists()
