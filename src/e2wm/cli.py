"""The `e2wm` command: parses arguments (and an optional YAML config), then calls one stage.

Each stage lives in its own module exposing `add_arguments(parser)` and `run(args)`; modules are
imported only when their command runs, so `e2wm --help` stays fast.
"""

import argparse
import importlib
import sys
from pathlib import Path

import yaml

from e2wm.errors import InputError

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("e2wm.tasks.build", "turn experience records into the four E2WM training files (and held-out files)"),
    "world": ("e2wm.world.command", "show a RobotHow program (facts, goal) and replay it in the simulator"),
    "collect": ("e2wm.experience.command", "collect embodied experiences: MCTS plans or random exploration"),
    "eval": ("e2wm.eval.command", "evaluate a causal LM (optionally with a LoRA adapter) on E2WM files"),
    "fisher import": ("e2wm.train.fisher_import", "convert a released Fisher checkpoint into an e2wm Fisher file"),
    "fisher": ("e2wm.train.fisher_command", "diagonal Fisher of the LoRA target weights (also: `fisher import`)"),
    "plan-memory": ("e2wm.memory_command", "expected GPU memory of training, per component, from the config alone"),
    "demo": ("e2wm.demo_command", "the whole pipeline on the embedded SmolLM2-135M on a CPU, ending in a report"),
    "report": ("e2wm.report_command", "compare eval runs (markdown table + PNG chart) and plot training curves"),
    "train": ("e2wm.train.command", "finetune with EWC-LoRA (or plain LoRA / full) on weighted E2WM files"),
}


def load_config(path: str, parser: argparse.ArgumentParser) -> dict:
    """Read a YAML mapping of option names (dashes or underscores) to values, checked against parser."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file}: config file not found")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{file}{line}: bad YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(data, dict):
        raise InputError(f"{file}: a config must be a mapping of option names to values")
    known = {action.dest: action.dest for action in parser._actions}  # dest names, and option names too:
    for action in parser._actions:  # `lambda:` as well as `lam:` for --lambda
        for option in action.option_strings:
            known[option.lstrip("-").replace("-", "_")] = action.dest
    values = {}
    for key, value in data.items():
        dest = known.get(str(key).replace("-", "_"))
        if dest is None or dest in ("help", "config"):
            raise InputError(f"{file}: field '{key}' is not an option of this command")
        values[dest] = value
    for action in parser._actions:  # a value from the config satisfies a required option
        if action.dest in values:
            action.required = False
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="e2wm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        if " " not in name:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def command_parser(name: str) -> tuple[argparse.ArgumentParser, object]:
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"e2wm {name}", description=COMMANDS[name][1])
    parser.add_argument("--config", help="YAML file of option values (command-line options win)")
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if " ".join(argv[:2]) in COMMANDS:  # two-word commands such as `fisher import`
        argv = [" ".join(argv[:2]), *argv[2:]]
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # prints help or the usage error
        return
    name, rest = argv[0], argv[1:]
    try:
        parser, module = command_parser(name)
        config_only = argparse.ArgumentParser(add_help=False)
        config_only.add_argument("--config")
        pre, _ = config_only.parse_known_args(rest)
        if pre.config:
            parser.set_defaults(**load_config(pre.config, parser))
        args = parser.parse_args(rest)
        module.run(args)
    except InputError as error:
        print(f"e2wm {name}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"e2wm {name}: interrupted; completed work is kept, re-run to resume", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
