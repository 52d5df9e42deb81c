"""A few refusals as a user meets them: `python -m e2wm` in its own process, where the exit code and the whole of
standard error are the real ones (no test harness between them and the terminal)."""

import pytest
from adversarial.support import PAIR, QA, error_lines, run_e2wm, snapshot, write_lines


def strictly_one_line(result, command: str) -> str:
    """The refusal before any model loads: exit 2 and standard error exactly one line."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.startswith(f"e2wm {command}: error: ".replace("e2wm : ", "e2wm: "))
    return result.stderr.strip()


def test_an_unknown_command(tmp_path):
    line = strictly_one_line(run_e2wm("trian", "--out", "x", cwd=tmp_path), "")
    assert line == "e2wm: error: unknown command 'trian' (did you mean 'train'?) (see --help)"


def test_a_non_utf8_eval_file(tmp_path, tiny_gpt2):
    data = write_lines(tmp_path / "count.jsonl", QA, b'{"input": "caf\xe9", "answer_list": ["a"], "answer": "a"}')
    line = strictly_one_line(run_e2wm("eval", "--model", tiny_gpt2, "--data", data, "--out", "run", cwd=tmp_path),
                             "eval")
    assert line.endswith("count.jsonl:2: not UTF-8 text (byte 0xe9)") and not (tmp_path / "run").exists()


def test_bad_json_in_the_middle_of_a_training_file_is_found_before_the_model_loads(tmp_path, tiny_llama):
    data = write_lines(tmp_path / "a.jsonl", PAIR, '{"input": "x", "ref":', PAIR)
    result = run_e2wm("train", "--model", tiny_llama, "--train", f"1 {data}", "--method", "lora", "--out", "run",
                      cwd=tmp_path)
    assert strictly_one_line(result, "train").endswith("a.jsonl:2: bad JSON (Expecting value)")
    assert not (tmp_path / "run").exists()


def test_a_yaml_float_where_an_integer_goes(tmp_path):
    config = write_lines(tmp_path / "c.yaml", "train: 1 a.jsonl", "method: lora", "epochs: 2.0", "out: run")
    line = strictly_one_line(run_e2wm("train", "--config", config, cwd=tmp_path), "train")
    assert line == "e2wm train: error: --epochs must be an integer, got 2.0"


def test_out_an_existing_file(tmp_path):
    plans = write_lines(tmp_path / "plans.jsonl", {"program": "p"})
    write_lines(tmp_path / "out", "a file")
    before = snapshot(tmp_path)
    line = strictly_one_line(run_e2wm("build", "--plans", plans, "--out", "out", cwd=tmp_path), "build")
    assert line == "e2wm build: error: --out out: a file, not a folder" and snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["adapter", "corpus"])
def test_refusals_after_the_model_loads_show_only_its_progress_bar(case, tmp_path, foreign):
    """An adapter of another model (today a state_dict RuntimeError) and a corpus with nothing to predict are
    only found with the model at hand: its loading bar is the one other thing on standard error."""
    if case == "adapter":
        args = ["eval", "--model", foreign.llama, "--adapter", foreign.wide_adapter, "--data",
                write_lines(tmp_path / "count.jsonl", QA), "--out", "run"]
    else:
        args = ["fisher", "--model", foreign.gpt2, "--corpus", write_lines(tmp_path / "c.jsonl", {"text": "a"}),
                "--out", "f.safetensors"]
    before = snapshot(tmp_path)
    result = run_e2wm(*args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Warning" not in result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"e2wm {args[0]}: error: "), result.stderr
    assert ("does not fit the model (size mismatch for" if case == "adapter" else "no text has two") in lines[0]
    assert snapshot(tmp_path) == before
