"""The package's shape: imports point one way, every command is a thin CONFIG + run, the root exports the API."""

import ast
import importlib
from pathlib import Path

import pytest

import e2wm
from e2wm.cli import COMMANDS

PACKAGE = Path(e2wm.__file__).parent
# lower levels never import higher ones: shared infrastructure, the pipeline's stages in data-flow order,
# then the recipes that join them, the commands that wrap the recipes, and the command line
LEVELS = {"errors": 0, "files": 0, "config": 0, "benchmark": 0, "benchmark_data": 0, "models": 0, "text": 0,
          "provenance": 0, "locks": 0, "decoding": 0, "chat": 0, "prose": 0, "methods": 0,
          "world": 1, "experience": 2, "data": 3, "train": 4, "eval": 5, "recipes": 6, "commands": 7,
          "cli": 8, "__main__": 8}


def level(module: str) -> int:
    parts = module.split(".")
    return LEVELS[parts[1]] if len(parts) > 1 else 0


def imports(path: Path) -> list[str]:
    """The e2wm modules a file imports (anywhere in it, lazy imports in functions too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "e2wm":
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "e2wm"]
    return found


def modules() -> list[tuple[str, Path]]:
    result = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        result.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return result


def test_every_module_has_a_level():
    assert all(level(name) >= 0 for name, _ in modules())


def test_no_import_from_a_lower_stage_to_a_higher_one():
    upward = [f"{name} ({level(name)}) imports {target} ({level(target)})"
              for name, path in modules() for target in imports(path) if level(target) > level(name)]
    assert upward == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_commands_are_thin_config_and_run(name):
    module = importlib.import_module(f"e2wm.commands.{COMMANDS[name][0]}")
    assert hasattr(module, "CONFIG") and callable(module.run)
    source = Path(module.__file__).read_text(encoding="utf-8")
    assert "argparse" not in source and "add_argument" not in source  # options come from CONFIG only
    assert len(source.splitlines()) < 40


def test_package_root_exports_the_recipes_and_configs():
    from e2wm import BuildConfig, EvalConfig, FisherConfig, TrainConfig, build, compute_fisher, evaluate, finetune

    assert all(callable(f) for f in (build, compute_fisher, evaluate, finetune))
    assert {c.__name__ for c in (BuildConfig, EvalConfig, FisherConfig, TrainConfig)} == {
        "BuildConfig", "EvalConfig", "FisherConfig", "TrainConfig"}
    for name in e2wm.__all__:
        assert getattr(e2wm, name) is not None
    with pytest.raises(AttributeError):
        e2wm.not_an_api  # noqa: B018


def test_library_code_logs_instead_of_printing():
    """Only the command layer prints; everything below reports through `logging` (logger 'e2wm.<module>')."""
    printing = [name for name, path in modules() if level(name) < LEVELS["commands"]
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]
    assert printing == []
