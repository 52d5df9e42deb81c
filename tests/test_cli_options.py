"""One consistent command line, generated from the typed configs: help, names, bounds, no abbreviations."""

import dataclasses
import re

import pytest
from helpers.files import write

from e2wm import config
from e2wm.cli import COMMANDS, RENAMED, command_parser, main, parse
from e2wm.recipes.demo import DemoConfig, plan
from e2wm.train.config import TrainConfig


def run_main(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in argv])
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_has_a_line_and_the_default_for_every_option(name):
    parser, module = command_parser(name)
    text = re.sub(r"\s+", "", parser.format_help())  # argparse wraps lines, also at hyphens
    for action in parser._actions:
        assert action.help and action.help.strip(), f"{name} {action.option_strings}: no help"
        if action.option_strings and not action.required and action.dest not in ("help", "config"):
            assert re.sub(r"\s+", "", f"{action.help} (default:") in text or "(default" in action.help, action.dest
        if action.choices:  # the values an option takes are listed
            assert "{" + ",".join(action.choices) + "}" in text, f"{name} {action.dest}"
    for item in dataclasses.fields(module.CONFIG):
        default = item.default
        if isinstance(default, int | float | str) and not isinstance(default, bool) and default != "":
            assert f"(default:{default})".replace(" ", "") in text or "(default" in item.metadata["help"], item.name


def test_usage_errors_are_one_line(capsys):
    code, err = run_main(capsys, "train", "--train", "1 a.json", "--out", "y", "--method", "foo")
    assert code == 2 and err.count("\n") == 1 and "argument --method: invalid choice: 'foo'" in err


@pytest.mark.parametrize(("yaml", "message"), [
    ("resume: 'no'", "--resume must be true or false, got 'no'"),
    ("train:", "--train needs a value"),
    ("batch_size: 4.5", "--batch-size must be an integer, got 4.5"),
    ("max_steps: [1, 2]", "--max-steps must be an integer, got [1, 2]"),
    ("max_length: 5", "field 'max_length' is now max_len"),
])
def test_config_file_values_are_checked_like_options(tmp_path, capsys, yaml, message):
    command = "eval" if "max_length" in yaml else "train"
    file = tmp_path / "c.yaml"
    file.write_text(f"out: {tmp_path / 'run'}\nmethod: lora\ntrain: '1 a.json'\n" if command == "train" else
                    "out: x\ndata: [d]\n")
    file.write_text(file.read_text() + yaml + "\n")
    code, err = run_main(capsys, command, "--config", file)
    assert code == 2 and message in err and err.count("\n") == 1


def test_python_values_of_the_wrong_type_are_input_errors():
    from e2wm.errors import InputError
    from e2wm.eval.config import EvalConfig

    with pytest.raises(InputError, match="--data must be a list, got 'dir'"):
        EvalConfig(data="dir", out="o")
    with pytest.raises(InputError, match="--batch-size must be an integer, got '4'"):
        TrainConfig(train="1 a.json", method="lora", out="y", batch_size="4")


def test_top_level_lists_every_command_and_has_a_version(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    assert all(name in listing for name in COMMANDS) and "fisher import" in listing and "collect explore" in listing
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and re.fullmatch(r"e2wm \d+\.\d+\.\d+\n", capsys.readouterr().out)


def test_unknown_and_incomplete_commands_say_what_to_do(capsys):
    code, err = run_main(capsys, "trian")
    assert code == 2 and "did you mean 'train'" in err
    code, err = run_main(capsys, "collect")
    assert code == 2 and "collect plans, collect explore" in err


@pytest.mark.parametrize(("argv", "bad"), [
    (["eval", "--data", "x", "--out", "y", "--max-le", "256"], "--max-le"),
    (["train", "--train", "1 a.json", "--out", "y", "--lamb", "1"], "--lamb"),
])
def test_no_silent_abbreviations(capsys, argv, bad):
    code, err = run_main(capsys, *argv)
    assert code == 2 and f"unrecognized arguments: {bad}" in err


@pytest.mark.parametrize(("command", "old", "new"), [(c, o, n) for c, m in RENAMED.items() for o, n in m.items()])
def test_renamed_options_point_to_their_new_name(capsys, command, old, new):
    code, err = run_main(capsys, *command.split(), old, "3", "--out", "x")
    assert code == 2 and f"{old} is now {new}" in err


@pytest.mark.parametrize(("argv", "option"), [
    (["train", "--train", "1 a.json", "--out", "y", "--adapter", "a"], "--adapter"),
    (["fisher", "--out", "y", "--adapter", "a"], "--adapter"),
    (["collect", "explore", "--out", "y", "--programs", "file3_1"], "--programs"),
    (["collect", "explore", "--out", "y", "--simulations", "5"], "--simulations"),
    (["collect", "plans", "--out", "y", "--episodes", "5"], "--episodes"),
    (["plan-memory", "--device", "cpu"], "--device"),
])
def test_options_a_command_would_ignore_are_not_offered(capsys, argv, option):
    code, err = run_main(capsys, *argv)
    assert code == 2 and f"unrecognized arguments: {option}" in err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--train", "1 a.json", "--method", "lora", "--out", "y", "--batch-size", "0"],
     "--batch-size must be at least 1, got 0"),
    (["train", "--train", "1 a.json", "--method", "lora", "--out", "y", "--lr", "0"], "--lr must be above 0, got 0.0"),
    (["train", "--train", "1 a.json", "--method", "lora", "--out", "y", "--lambda", "-1"],
     "--lambda must be at least 0, got -1.0"),
    (["train", "--train", "1 a.json", "--method", "lora", "--out", "y", "--weight-decay", "nan"],
     "--weight-decay must be a finite number, got nan"),
    (["train", "--train", "1 a.json", "--method", "lora", "--out", "y", "--lambda", "inf"],
     "--lambda must be a finite number, got inf"),
    (["train", "--train", "1 a.json", "--method", "lora", "--out", "y", "--lora-dropout", "1"],
     "--lora-dropout must be below 1, got 1.0"),
    (["fisher", "--out", "y", "--n", "0"], "--n must be at least 1, got 0"),
    (["eval", "--data", "x", "--out", "y", "--limit", "0"], "--limit must be at least 1, got 0"),
    (["collect", "explore", "--out", "y", "--steps", "0"], "--steps must be at least 1, got 0"),
    (["build", "--plans", "p", "--out", "y", "--shots", "-1"], "--shots must be at least 0, got -1"),
    (["plan-memory", "--lora-r", "0"], "--lora-r must be at least 1, got 0"),
    (["demo", "--threads", "0"], "--threads must be at least 1, got 0"),
    (["plan-memory", "--load-in-8bit", "--load-in-4bit"], "--load-in-8bit and --load-in-4bit exclude each other"),
    (["eval", "--data", "x", "--out", "y", "--load-in-8bit", "--load-in-4bit"],
     "--load-in-8bit and --load-in-4bit exclude each other"),
])
def test_bounds_are_checked_once_in_one_wording(capsys, argv, message):
    code, err = run_main(capsys, *argv)
    assert code == 2 and err.strip() == f"e2wm {' '.join(argv[:2]) if argv[0] == 'collect' else argv[0]}: " \
                                        f"error: {message}"


def test_python_configs_check_themselves_like_the_command():
    from e2wm.errors import InputError

    with pytest.raises(InputError, match="--batch-size must be at least 1, got 0"):
        TrainConfig(train="1 a.json", method="lora", out="y", batch_size=0)
    with pytest.raises(InputError, match=r"--regularisers ewc \(the default: EWC-LoRA\) needs --fisher"):
        TrainConfig(train="1 a.json", out="y")
    with pytest.raises(InputError, match="--dtype must be one of"):
        TrainConfig(train="1 a.json", method="lora", out="y", dtype="float8")


def test_settings_a_run_does_not_read_are_warned_about_or_refused(caplog):
    from e2wm.errors import InputError
    from e2wm.train.config import PlanMemoryConfig

    with caplog.at_level("WARNING"):
        TrainConfig(train="1 a.json", regularisers="none", out="y", lam=2.0, fisher_scale="mean")
        TrainConfig(train="1 a.json", regularisers="none", out="y")
    assert [record.getMessage() for record in caplog.records] == [
        "--lambda 2.0 is read only by the ewc regulariser, which this run does not use",
        "--fisher-scale mean is read only with --fisher (the EWC penalty, or its logged value)"]
    assert PlanMemoryConfig(model="m", method="full", no_ewc=True).regularisers == "none"
    for settings in ({"regularisers": "ewc"}, {"method": "ewc-lora"}, {}):
        with pytest.raises(InputError, match="^--no-ewc is read only with --method full"):
            PlanMemoryConfig(model="m", no_ewc=True, **settings)


def test_full_rank_training_at_a_lora_rate_is_warned_about(caplog):
    with caplog.at_level("WARNING"):
        TrainConfig(train="1 a.json", regularisers="none", adapter_kind="osf", out="y")  # LoRA's default 8e-4
        TrainConfig(train="1 a.json", regularisers="none", adapter_kind="full", out="y", lr=3e-4)
        TrainConfig(train="1 a.json", regularisers="none", adapter_kind="osf", out="y", lr=2e-5)
        TrainConfig(train="1 a.json", regularisers="none", adapter_kind="full", out="y", lr=1e-4)
        TrainConfig(train="1 a.json", regularisers="none", out="y")  # LoRA at its own rate
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "--lr 0.0008 with --adapter-kind osf", "--lr 0.0003 with --adapter-kind full"]
    assert "56%" in caplog.records[0].getMessage()


def test_demo_jobs_print_command_lines_that_rebuild_their_configs(tmp_path):
    dev = tmp_path / "dev"  # --eval-data is read when the demo is planned
    dev.mkdir()
    (dev / "count.jsonl").write_text('{"input": "Q?", "answer_list": ["0", "1"], "answer": "1"}\n')
    for stage in plan(DemoConfig(out=str(tmp_path), eval_data=str(dev))):
        for job in stage.jobs:
            rebuilt, _ = parse(job.command, config.to_argv(job.config))
            assert rebuilt == job.config, job.command


def test_result_settings_leave_out_what_cannot_change_a_result():
    settings = config.result_settings(TrainConfig(train="1 a.json", method="lora", out="y"))
    assert {"lr", "lam", "lora_r", "train", "model", "dtype", "load_in_8bit"} <= settings.keys()
    assert not {"out", "resume", "save_every", "device", "gradient_checkpointing", "data_dir"} & settings.keys()


def test_mixture_names_tasks_and_files(tmp_path, capsys, monkeypatch):
    from e2wm.train.data import parse_mixture

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.jsonl").write_text("")
    (tmp_path / "train_count.json").write_text("")
    (tmp_path / "train_plan_gen.jsonl").write_text("")
    mixture = parse_mixture(TrainConfig(train={"plan_gen": 1.0, "count": 0.5, "mine.jsonl": 2}, data_dir=str(tmp_path),
                                        method="lora", out="y").train, tmp_path)
    assert mixture == [(1.0, str(tmp_path / "train_plan_gen.jsonl")), (0.5, str(tmp_path / "train_count.json")),
                       (2.0, "mine.jsonl")]
    code, err = run_main(capsys, "train", "--train", "1 obj_move", "--data-dir", tmp_path, "--method", "lora",
                         "--out", tmp_path / "run")
    assert code == 2 and "task obj_move: no train_obj_move.jsonl or train_obj_move.json in" in err


def test_config_keys_may_be_option_names(tmp_path):
    """`lambda:` (the option --lambda) and `lam:` (its dest) both work; unknown keys name the field."""
    from e2wm.cli import command_parser, load_config

    parser, _ = command_parser("train")
    config = write(tmp_path / "train.yaml", ["lambda: 0.5", "max-len: 64"])
    assert load_config(str(config), parser) == {"lam": 0.5, "max_len": 64}


def test_a_command_group_lists_its_commands_on_help_and_asks_which_without(capsys):
    main(["collect", "--help"])
    assert capsys.readouterr().out.splitlines() == [
        "usage: e2wm collect {plans,explore} ...", "",
        f"  e2wm collect plans    {COMMANDS['collect plans'][1]}",
        f"  e2wm collect explore  {COMMANDS['collect explore'][1]}"]
    with pytest.raises(SystemExit) as stop:
        main(["data"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().endswith(
        "e2wm: error: data: say which: data download, data prose (see --help)")


def test_a_command_started_with_sigint_ignored_can_still_be_interrupted():
    """A shell's background job starts with SIGINT ignored; e2wm restores KeyboardInterrupt (clean stop, resume)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(SystemExit):
            main(["--version"])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
