"""Typed job configs: one dataclass per job is the single source of its options.

A config field is declared with `option(...)` (default, help text, flag, choices, lower bound, group).
From the dataclass alone come: the command's argparse options (`add_arguments`), the checks a config
runs on itself (`check`, called from each config's `__post_init__`, so a bad value raises the same
one-line InputError from Python and from the command line), the argv that reproduces a config
(`to_argv`, printed by the demo), and the settings a result depends on (`result_settings`: every field
not marked `result=False`; used by `train --resume`, the eval resume fingerprint and the Fisher's partial
sums, so that a field added later is covered without anyone listing it).
"""

import argparse
import dataclasses
import json
import math
import types
import typing
from dataclasses import MISSING, Field, fields
from typing import Any

from e2wm.errors import InputError


def option(default: Any = MISSING, help: str = "", *, flag: str | None = None, choices: tuple | None = None,
           minimum: float | None = None, above: float | None = None, group: str | None = None,
           positional: bool = False, result: bool = True, metavar: str | None = None, const: Any = None,
           default_factory: Any = MISSING, absent: Any = MISSING) -> Any:
    """A config field with what its command-line option needs.

    Args:
        default: the default value; leave out for a required option.
        help: one line shown by `--help` (argparse adds the default).
        flag: the option's name when it is not `--field-name` (e.g. `--lambda` for `lam`).
        choices: the allowed values.
        minimum / above: the lower bound, inclusive / exclusive (checked by `check`).
        group: the `--help` section the option is listed in.
        positional: a positional argument instead of an option.
        result: False for settings that cannot change a result (output paths, checkpoint frequency, ...);
            they are left out of `result_settings`.
        const: the value of the option given without one (`--ray` alone means `--ray local`).
        absent: what a run recorded before the option existed did, when that is not today's default (`--autocast`
            came with "none" and became "auto"): `with_defaults` fills this in.
    """
    metadata = {"help": help, "flag": flag, "choices": choices, "minimum": minimum, "above": above,
                "group": group, "positional": positional, "result": result, "metavar": metavar, "const": const,
                "absent": absent}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(item: Field) -> str:
    """`--batch-size` for the field batch_size, or the field's own flag."""
    return item.metadata.get("flag") or "--" + item.name.replace("_", "-")


def _base_type(annotation) -> tuple[type, bool]:
    """(element type, is a list) of `int`, `int | None`, `list[str]`, `list[str] | None`, ..."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argparse option per field of the dataclass cls (dest = field name), in field order."""
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for item in fields(cls):
        meta = item.metadata
        group = meta["group"]
        if group and group not in groups:
            groups[group] = parser.add_argument_group(group)
        target = groups[group] if group else parser
        kind, is_list = _base_type(hints[item.name])
        kwargs: dict[str, Any] = {"help": meta["help"] or " "}
        if meta["choices"]:
            kwargs["choices"] = list(meta["choices"])
        if meta["metavar"] or (kind is not bool and not meta["choices"]):  # argparse lists the choices itself
            kwargs["metavar"] = meta["metavar"] or flag_of(item).lstrip("-").replace("-", "_").upper()
        default = _default(item)
        if kind is bool:
            kwargs.update(action="store_true")
        else:
            kwargs["type"] = kind
            if meta["const"] is not None:
                kwargs.update(nargs="?", const=meta["const"])
            if is_list:
                kwargs["nargs"] = "*" if meta["positional"] else "+"
        if meta["positional"]:
            if default is not MISSING:
                kwargs["default"] = default
            target.add_argument(item.name, **kwargs)
            continue
        if default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        target.add_argument(flag_of(item), dest=item.name, **kwargs)


def _default(item: Field) -> Any:
    """The field's default value (MISSING for a required one)."""
    return item.default_factory() if item.default_factory is not MISSING else item.default


def _absent(item: Field) -> Any:
    """What a run recorded before the field existed did: its `absent` value, else its default."""
    absent = item.metadata.get("absent", MISSING)
    return absent if absent is not MISSING else _default(item)


def from_namespace(cls: type, namespace: argparse.Namespace):
    """The config cls built from parsed arguments (its own checks run; InputError on a bad value)."""
    return cls(**{item.name: getattr(namespace, item.name) for item in fields(cls)})


def check(config) -> None:
    """Check every field's type, choices and bounds; InputError `--flag must be ..., got X` on the first misfit.

    Types are checked because values also come from YAML files and Python, which argparse never sees: an
    int where a float is expected is accepted, a bool is not an int, a string is not a list.
    """
    hints = typing.get_type_hints(type(config))
    for item in fields(config):
        meta, value = item.metadata, getattr(config, item.name)
        _check_type(item, hints[item.name], value)
        if value is None or isinstance(value, bool):
            continue
        values = value if isinstance(value, list) else [value]
        for one in values:
            if isinstance(one, str) and not one.strip():  # `--out ""` would mean the current folder
                raise InputError(f"{flag_of(item)} must not be empty")
            if meta["choices"] and one not in meta["choices"]:
                choices = ", ".join(str(c) for c in meta["choices"])
                raise InputError(f"{flag_of(item)} must be one of {choices}, got {one!r}")
            if meta["minimum"] is not None and one < meta["minimum"]:
                raise InputError(f"{flag_of(item)} must be at least {meta['minimum']:g}, got {one}")
            if meta["above"] is not None and not one > meta["above"]:
                raise InputError(f"{flag_of(item)} must be above {meta['above']:g}, got {one}")


def _check_type(item: Field, annotation, value) -> None:
    optional = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    kind, is_list = _base_type(annotation)
    if value is None:
        if not optional:
            raise InputError(f"{flag_of(item)} needs a value")
        return
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if is_list:
        if not isinstance(value, list):
            raise InputError(f"{flag_of(item)} must be a list, got {value!r}")
        values = value
    else:
        values = [value]
    for one in values:
        fits = isinstance(one, kind) and not (kind is int and isinstance(one, bool))
        if kind is float:
            fits = isinstance(one, int | float) and not isinstance(one, bool)
            if fits and not math.isfinite(one):  # NaN passes every bound check; inf is no setting either
                raise InputError(f"{flag_of(item)} must be a finite number, got {one!r}")
        if not fits:
            raise InputError(f"{flag_of(item)} must be {names.get(kind, kind.__name__)}, got {one!r}")


def result_settings(config) -> dict[str, Any]:
    """The fields a result depends on: all but those declared with result=False."""
    return {item.name: getattr(config, item.name) for item in fields(config) if item.metadata.get("result", True)}


def with_defaults(recorded: dict[str, Any], config, results_only: bool = False) -> dict[str, Any]:
    """recorded (the options, or with results_only the `result_settings`, that a run wrote in its config.json)
    with every field of config's class it lacks at what runs did before that option existed (its `absent` value,
    else its default), as JSON would record it: an option added to e2wm after the run started then compares
    equal to that instead of counting as changed (`train --resume`, the study's skip of finished runs)."""
    added = {item.name: _absent(item) for item in fields(config) if item.name not in recorded
             and _absent(item) is not MISSING and (item.metadata.get("result", True) or not results_only)}
    return {**recorded, **json.loads(json.dumps(added))}


def to_argv(config) -> list[str]:
    """Command-line arguments that rebuild config: positionals, then every option that differs from its default."""
    positionals, options = [], []
    for item in fields(config):
        meta, value = item.metadata, getattr(config, item.name)
        if meta["positional"]:
            positionals += [str(v) for v in value] if isinstance(value, list) else [str(value)]
            continue
        default = _default(item)
        if value == default and default is not MISSING:
            continue
        if isinstance(value, bool):
            options.append(flag_of(item))
        elif isinstance(value, list):
            options += [flag_of(item), *(str(v) for v in value)]
        else:
            options += [flag_of(item), str(value)]
    return positionals + options
