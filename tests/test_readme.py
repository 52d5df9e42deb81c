"""The README's Python API section runs as written, on the tiny model and a small built data set."""

import re
from pathlib import Path

from helpers.experience_fixtures import inputs

from e2wm import BuildConfig, build

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_block() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_trains_and_evaluates(tiny_llama, tmp_path, monkeypatch, capsys):
    plans, explore = inputs(tmp_path / "records")
    build(BuildConfig(plans=str(plans), explore=str(explore), out=str(tmp_path / "built"), holdout_activities=1))
    code = python_api_block()
    code, replaced = re.subn(r'^model = "[^"]*"', f'model = "{tiny_llama}"', code, flags=re.M)
    code, replaced_data = re.subn(r'^data = "[^"]*"', f'data = "{tmp_path / "built"}"', code, flags=re.M)
    assert replaced == replaced_data == 1  # only the two inputs change; the rest runs as the README shows it
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    result, metrics = namespace["result"], namespace["metrics"]
    assert result.steps == 4 and result.loss > 0 and (result.output / "adapter_config.json").is_file()
    assert set(metrics) == {"plan_gen_unseen", "plan_gen_unseen_confusing", "act_recog_unseen"}
    assert 0 <= metrics["act_recog_unseen"]["accuracy"] <= 1 and 1 <= metrics["plan_gen_unseen"]["n"] <= 4
    assert (tmp_path / "runs" / "api" / "eval" / "metrics.json").is_file()
    assert "4 steps, last loss" in capsys.readouterr().out
