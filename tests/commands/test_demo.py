"""`e2wm demo`: bad sizes exit 2 before anything is written."""

import pytest

from e2wm.cli import main


@pytest.mark.parametrize("option", ["--train-steps", "--threads"])
def test_bad_size_exits_2(tmp_path, capsys, option):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path), option, "0"])
    assert exit_info.value.code == 2
    assert f"{option} must be at least 1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
