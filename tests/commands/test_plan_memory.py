"""`e2wm plan-memory`: the printed components and bad options."""

import pytest

from e2wm.cli import main


def test_cli_prints_components_and_rejects_bad_options(tiny_gpt2, capsys):
    main(["plan-memory", "--model", str(tiny_gpt2), "--batch-size", "2", "--max-len", "128"])
    out = capsys.readouterr().out
    for label in ("base weights", "adapter (LoRA", "AdamW (or MoFO) states", "Fisher", "activations", "expected peak"):
        assert label in out
    with pytest.raises(SystemExit) as exit_info:
        main(["plan-memory", "--model", str(tiny_gpt2), "--max-len", "0"])
    assert exit_info.value.code == 2
    assert "--max-len must be at least 1" in capsys.readouterr().err
