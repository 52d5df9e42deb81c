"""The `e2wm` command: parses arguments (and an optional YAML config) into a job's config, then runs it.

Each command is a module e2wm/commands/<name>.py holding CONFIG (the job's config dataclass, whose fields
are the command's options; see e2wm.config) and run(config). Modules are imported only when their
command runs, so `e2wm --help` stays fast.
"""

import argparse
import difflib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

import yaml

from e2wm import __version__, config, locks
from e2wm.errors import InputError, RunError
from e2wm.files import DISK_FULL, check_text, os_errno, read_text, require_utf8

# command name -> (module under e2wm.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "world": ("world", "show a RobotHow program (facts, goal) and replay it in the simulator"),
    "collect plans": ("collect_plans", "collect embodied experiences: MCTS plans toward RobotHow goals"),
    "collect explore": ("collect_explore", "collect embodied experiences: random exploration episodes"),
    "data download": ("data_download", "fetch the released E2WM benchmark (11 evaluation, 4 training files), "
                      "sha256-checked, into the cache: then --data e2wm and --train paper find it"),
    "data prose": ("data_prose", "write passages of human-written English prose (Jane Austen's novels, from a Debian "
                   "package) as JSONL for --ppl-data: the drift measure on text no model wrote"),
    "build": ("build", "turn experience records into the four E2WM training files (and held-out files)"),
    "fisher": ("fisher", "diagonal Fisher of the LoRA target weights on general text"),
    "fisher import": ("fisher_import", "convert a released Fisher checkpoint into an e2wm Fisher file"),
    "train": ("train", "finetune on weighted E2WM files: EWC-LoRA by default; LoRA, OSF or full finetuning with "
                       "any of the ewc, kl, replay regularisers"),
    "eval": ("eval", "evaluate a causal LM (optionally with a LoRA adapter) on E2WM files"),
    "export merged": ("export", "merge a LoRA adapter into its base and save a standard transformers checkpoint"),
    "export lm-eval": ("export_lm_eval", "write E2WM files as lm-evaluation-harness tasks (group e2wm) that score "
                       "as `e2wm eval` does"),
    "report": ("report", "compare eval runs (markdown table + PNG chart) and plot training curves"),
    "plan-memory": ("plan_memory", "expected GPU memory of training, per component, from the config alone"),
    "demo": ("demo", "the whole pipeline on the embedded model (de-quantised SmolLM2-135M-Instruct) on a CPU"),
}
# options renamed so that one name means one idea across commands: old flag -> new flag, per command
RENAMED = {
    "eval": {"--max-length": "--max-len"},
    "build": {"--max-steps": "--story-steps"},
    "collect plans": {"--limit": "--max-programs"},
    "demo": {"--programs": "--num-programs"},  # a count here, program ids in `collect plans`
}


def load_config(path: str, parser: argparse.ArgumentParser, renamed: dict[str, str] | None = None) -> dict:
    """Read a YAML mapping of option names (dashes or underscores) to values, checked against parser.

    A mapping value (a training mixture `{plan_gen: 1.0, ...}`) is kept as a mapping for the config to read;
    the config's own checks see every value (types included). renamed: old flag -> new flag.
    """
    file = Path(path)
    if not file.exists():
        raise InputError(f"{file}: config file not found")
    try:
        data = yaml.safe_load(read_text(file)) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{file}{line}: bad YAML ({getattr(error, 'problem', error)})") from None
    except RecursionError:
        raise InputError(f"{file}: bad YAML (nested too deeply to read)") from None
    except ValueError:  # an integer of more digits than sys.get_int_max_str_digits(), as JSON's reader refuses it
        raise InputError(f"{file}: bad YAML (a number too long to read)") from None
    check_text(data, file)  # a "\ud83d" escape: no text, and fatal in every file the run writes
    if not isinstance(data, dict):
        raise InputError(f"{file}: a config must be a mapping of option names to values")
    known = {action.dest: action.dest for action in parser._actions}  # dest names, and option names too:
    for action in parser._actions:  # `lambda:` as well as `lam:` for --lambda
        for option in action.option_strings:
            known[option.lstrip("-").replace("-", "_")] = action.dest
    values = {}
    for key, value in data.items():
        dest = known.get(str(key).replace("-", "_"))
        old = "--" + str(key).replace("_", "-")
        if dest is None and old in (renamed or {}):
            raise InputError(f"{file}: field '{key}' is now {renamed[old].lstrip('-').replace('-', '_')}")
        if dest is None or dest in ("help", "config"):
            raise InputError(f"{file}: field '{key}' is not an option of this command")
        values[dest] = value
    for action in parser._actions:  # a value from the config satisfies a required option
        if action.dest in values:
            action.required = False
            if not action.option_strings:
                action.nargs = "?" if action.nargs is None else "*"
    return values


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default after its help ("not set" for None, "off" for a flag), unless the help
    already says it or the option is required."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.required or "(default" in text or action.default == argparse.SUPPRESS:
            return text
        default = action.default
        if default is None:
            default = "not set"
        elif default is False:
            default = "off"
        elif isinstance(default, list):
            default = " ".join(map(str, default)) or "none"
        return f"{text} (default: {str(default).replace('%', '%%')})"


class OneLineErrors(argparse.ArgumentParser):
    """A parser whose usage errors are one line, like every other error of e2wm (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: lists the commands (the two-word ones too) and answers --version."""
    parser = OneLineErrors(prog="e2wm", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"e2wm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """(parser, module) of one command: the parser's options come from the module's CONFIG dataclass."""
    module = importlib.import_module(f"e2wm.commands.{COMMANDS[name][0]}")
    parser = OneLineErrors(prog=f"e2wm {name}", description=COMMANDS[name][1], allow_abbrev=False,
                           formatter_class=HelpFormatter)
    parser.add_argument("--config", help="YAML file of option values (command-line options win)")
    config.add_arguments(parser, module.CONFIG)
    return parser, module


def parse(name: str, argv: list[str]):
    """The config of `e2wm name argv` (what main runs); InputError on a bad value, SystemExit(2) on bad syntax."""
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in RENAMED.get(name, {}):
            raise InputError(f"{flag} is now {RENAMED[name][flag]}")
    parser, module = command_parser(name)
    config_only = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    config_only.add_argument("--config")
    pre, _ = config_only.parse_known_args(argv)
    if pre.config:
        parser.set_defaults(**load_config(pre.config, parser, RENAMED.get(name)))
    return config.from_namespace(module.CONFIG, parser.parse_args(argv)), module


def command_name(argv: list[str]) -> str | None:
    """The command argv starts with (two-word commands first), or None."""
    for words in (2, 1):
        name = " ".join(argv[:words])
        if len(argv) >= words and name in COMMANDS:
            return name
    return None


def configure_logging() -> None:
    """The library's messages (logger 'e2wm', INFO and up) as plain lines on the current standard output."""
    logger = logging.getLogger("e2wm")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a library's root handler (rouge-score's absl) would print each line twice


def one_line(text: str) -> str:
    """text with each character that is not printable (line breaks, other control characters, lone surrogates)
    written as its Python escape (`\\n`, `\\x1b`, `\\ud83d`): an error stays one line, whatever the input it
    quotes (a field name, a YAML parser's message) holds."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def main(argv: list[str] | None = None) -> None:
    # torch's OpenMP threads sleep while they wait instead of spinning (before torch loads: libgomp reads it
    # once). On a machine other jobs keep busy, spinning threads burn the time slices of the thread they wait
    # for: the same work took 3x the CPU time and 2.4-3x the wall time (benchmarks/load_threads.py).
    # OMP_WAIT_POLICY=ACTIVE in the environment keeps spinning.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if threading.current_thread() is threading.main_thread():
        # SIGINT stops a command cleanly (completed work kept, `--resume` goes on) even when a shell started it in
        # the background, which leaves SIGINT ignored: `kill -INT PID`, and a study stopping its jobs, work there too
        signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging()
    # the libraries' notes to their own callers (PEFT calling a transformers method renamed in v6) are not the user's
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|accelerate)\.")
    name = command_name(argv)
    if name is None:
        groups = sorted({n.split()[0] for n in COMMANDS if " " in n})
        if argv and argv[0] in groups:
            choices = ", ".join(n for n in COMMANDS if n.startswith(argv[0] + " "))
            if any(arg in ("-h", "--help") for arg in argv[1:]):  # `e2wm data --help`: the group's commands
                members = [n for n in COMMANDS if n.startswith(argv[0] + " ")]
                print(f"usage: e2wm {argv[0]} {{{','.join(n.split()[1] for n in members)}}} ...\n\n"
                      + "\n".join(f"  e2wm {n:<16} {COMMANDS[n][1]}" for n in members))
                return
            build_parser().error(f"{argv[0]}: say which: {choices}")
        if argv and not argv[0].startswith("-"):
            close = difflib.get_close_matches(argv[0], list(COMMANDS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            build_parser().error(f"unknown command '{argv[0]}'{hint}")
        build_parser().parse_args(argv)  # prints help, the version or the usage error
        return
    try:
        for arg in argv:
            require_utf8(arg, f"argument {arg!r}")
        job, module = parse(name, argv[len(name.split()):])
        locks.COMMAND = f"e2wm {name}"  # what the lock files of its outputs name as their holder
        module.run(job)
    except InputError as error:
        print(f"e2wm {name}: error: {one_line(str(error))}", file=sys.stderr)
        sys.exit(2)
    except RunError as error:
        print(f"e2wm {name}: stopped: {one_line(str(error))}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        again = "re-run with --resume to resume" if name == "train" else "re-run to resume"
        print(f"e2wm {name}: interrupted; completed work is kept, {again}", file=sys.stderr)
        sys.exit(130)
    except Exception as error:
        if os_errno(error) not in DISK_FULL:
            raise
        print(f"e2wm {name}: stopped: {disk_full(error)}", file=sys.stderr)
        sys.exit(1)


def disk_full(error: Exception) -> str:
    """The one line for a write that found the disk full (or the quota used up): `PATH: no space left on device
    (...)`, PATH the file or folder being written (OSError.filename, which `e2wm.files.writing` sets), or `a file`
    when a library's error names none. What was written atomically is whole or absent (temporaries removed),
    appended logs end at their last whole line, so a re-run resumes (train: with --resume)."""
    number = os_errno(error)
    where = getattr(error, "filename", None) or "a file"
    reason = os.strerror(number)
    return f"{where}: {reason[0].lower()}{reason[1:]} (free some space; completed work is kept, re-run to resume)"


if __name__ == "__main__":
    main()
