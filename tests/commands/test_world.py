"""`e2wm world`: replay output, unknown programs and bad RobotHow directories exit 2."""

import pytest
from helpers.world import _robothow

from e2wm.cli import main


def test_world_command_replay(capsys):
    main(["world", "--program", "file1004_2", "--replay"])
    out = capsys.readouterr().out
    assert "Put groceries in Fridge" in out and "The freezer is closed." in out
    assert "1. Walk to dining room." in out and "Replay reaches 5/5 goal facts" in out


@pytest.mark.parametrize("argv, message", [
    (["world", "--program", "file0_0"], "unknown program id 'file0_0'"),
    (["collect", "plans", "--programs", "file0_0", "--out", "x.jsonl"], "unknown program id 'file0_0'"),
])
def test_unknown_program_exits_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bad_layout_and_bad_graph_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["world", "--program", "file1_1", "--robothow-dir", str(tmp_path)])
    assert exit_info.value.code == 2 and "not a RobotHow directory" in capsys.readouterr().err
    root = _robothow(tmp_path / "r", '{"init_graph": {"nodes": [],\n "edges": [}')
    with pytest.raises(SystemExit) as exit_info:
        main(["world", "--program", "file1_1", "--robothow-dir", str(root)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "file1_1.json:2: bad graph JSON" in err and len(err.splitlines()) == 1
