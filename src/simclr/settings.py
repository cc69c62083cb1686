"""The settings machinery: a dataclass field that is also a flag, and the ways its value arrives.

A command's settings are one dataclass whose fields are made with :func:`setting`: each carries its help
text and what the CLI needs to offer it as a flag. :func:`add_settings_flags` generates the flags from the
fields (``lr_scaling`` becomes ``--lr-scaling``, booleans ``--x/--no-x``), :func:`read_yaml` reads a recipe
file that uses the same names, and :func:`build_settings` merges the two (flags win), checks every value's
type, every number (finite, whole where an int is meant, inside the range the field declares:
:mod:`simclr.ranges`) and every path's names (:mod:`simclr.paths`), and validates the result.
:func:`config_to_yaml` writes it back, so a run directory can rebuild the settings it ran with.

This module knows no domain (no dataset, model or run) and imports no torch, numpy or PIL: the CLI builds
its parsers from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import reprlib
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from simclr.errors import UserError
from simclr.paths import check_path_names
from simclr.ranges import Range, check_number

__all__ = [
    "add_settings_flags",
    "build_settings",
    "check_values",
    "config_to_dict",
    "config_to_yaml",
    "field_types",
    "format_size",
    "overrides_from_args",
    "parse_size",
    "read_yaml",
    "setting",
    "setting_of",
    "settings_from_args",
    "shared_setting",
    "short_repr",
]

Settings = TypeVar("Settings")


def setting(
    help: str,
    default: Any = MISSING,
    *,
    group: str = "",
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[Any, ...] | None = None,
    metavar: str | None = None,
    nargs: str | int | None = None,
    exclusive: str | None = None,
    cli: bool = True,
    positional: bool = False,
    switch: bool = False,
    old_flags: tuple[str, ...] = (),
    within: Range | None = None,
    path: bool = False,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A settings field with what the CLI needs to offer it as a flag.

    ``flag`` renames the flag (default: the field name with dashes), ``parse`` converts the text (default:
    the field's type), ``group`` titles the help section it is listed under, and fields sharing an
    ``exclusive`` name are mutually exclusive flags; ``cli=False`` keeps a field off the command line (the
    command fills it from elsewhere). ``positional`` offers it as an argument given by position (``metavar``
    names it in the help); ``switch`` makes a boolean a flag without a ``--no-`` form, off unless given (an
    action such as ``--overwrite``, not a setting one turns off). ``old_flags`` are earlier spellings of a flag
    that takes a value: they still work for a release, hidden from the help, each use noted on stderr.
    ``within`` is the range of a number setting (of each item of a list of numbers), checked with its
    finiteness by :func:`check_values` wherever the value comes from; ``path`` marks a text setting that names
    a file or folder (``Path`` fields are paths anyway), whose names :func:`check_values` checks. ``aliases``
    are other flags of the same setting, listed beside it (``--global-crops`` for ``--n-views``).
    """
    metadata = {
        "help": help,
        "group": group,
        "flag": flag,
        "parse": parse,
        "choices": choices,
        "metavar": metavar,
        "nargs": nargs,
        "exclusive": exclusive,
        "cli": cli,
        "positional": positional,
        "switch": switch,
        "old_flags": old_flags,
        "within": within,
        "path": path,
        "aliases": aliases,
    }
    return field(default=default, metadata=metadata)


def shared_setting(owner: type, name: str, *, default: Any = MISSING) -> Any:
    """Setting ``name`` of the settings group ``owner`` (its help, flag and parsing: one definition) with
    another default; ``MISSING`` makes it required. For a command whose use of a shared setting differs only
    there (``simclr embed`` needs ``--data-dir``, which evaluation commands take from the run)."""
    item = {item.name: item for item in fields(owner)}[name]
    return field(default=default, metadata=item.metadata)


def field_types(cls: type) -> dict[str, type]:
    """The plain Python type of every field of settings dataclass ``cls`` (``int | None`` -> ``int``)."""
    hints = typing.get_type_hints(cls)
    result: dict[str, type] = {}
    for item in fields(cls):
        hint = hints[item.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        result[item.name] = args[0] if is_union else hint
    return result


# -- values given as text ---------------------------------------------------------------------------------
_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "T": 2**40,
    "TB": 2**40,
}


def parse_size(text: str) -> int:
    """A size such as ``8GB``, ``512MB``, ``1.5G`` or a number of bytes, in bytes (binary units)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise UserError(f"cannot read the size {text!r}; write it like 8GB, 512MB or 1.5G")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_size(size: int) -> str:
    """Bytes in the largest binary unit that keeps the number at least 1, as :func:`parse_size` reads them.

    >>> format_size(1024), format_size(3 * 2**29), format_size(100)
    ('1.0 KB', '1.5 GB', '100 B')
    """
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: config values come from files anyone may hand over (a
    megabyte string, a huge nested list), and an error message must stay one short line that is cheap to
    build (reprlib stops early instead of formatting the whole value)."""
    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple, short.maxset = 3, 6, 6, 6, 6
    short.maxstring = short.maxother = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- recipe files ----------------------------------------------------------------------------------------
class _AliasFound(yaml.YAMLError):
    """An anchor or alias in a config file (raised by :class:`_PlainLoader`)."""


class _NestedTooDeep(yaml.YAMLError):
    """Collections nested deeper than :data:`MAX_CONFIG_DEPTH` in a config file (raised by :class:`_PlainLoader`)."""


MAX_CONFIG_DEPTH = 32  # a config nests two or three levels (sweep grids: four)


class _PlainLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that stops at the first anchor or alias, and at collections nested deeper than
    :data:`MAX_CONFIG_DEPTH`. simclr configs need neither; aliases nested a few levels deep (a "billion laughs"
    file of 300 bytes) expand to gigabytes once printed or merged, and 10,000 brackets would make PyYAML recurse
    until Python's limit. It stops while composing, before the rest of the file is read (PyYAML scans lazily),
    so a hostile file costs next to nothing."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AliasFound
        if self._depth >= MAX_CONFIG_DEPTH:
            raise _NestedTooDeep
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KB; YAML's parser needs ~1000 times a file's size to read it


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise UserError(f"config file {path} not found; check the path given to --config")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise UserError(
            f"config file {path} is {format_size(path.stat().st_size)}, more than a config's "
            f"{format_size(MAX_CONFIG_BYTES)}; pass the recipe file (--print-config writes one)"
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 or regenerate it "
            "with --print-config"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}; check its permissions") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a recipe file; a missing, unreadable, non-UTF-8, non-mapping or alias-using file is a UserError."""
    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_PlainLoader)  # a SafeLoader: plain data only
    except _AliasFound:
        raise UserError(
            f"config file {path} uses YAML anchors/aliases, which simclr configs do not need; write the values out"
        ) from None
    except (_NestedTooDeep, RecursionError):  # RecursionError: PyYAML composes recursively; a low limit may come first
        raise UserError(
            f"config file {path} nests values too deeply for a config; write plain keys and values, "
            "or regenerate it with --print-config"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(
            f"config file {path} is not valid YAML{where}; fix the syntax or regenerate it with --print-config"
        ) from None
    except ValueError:  # a value YAML parses but Python cannot hold: 2024-13-45, an int of 5000 digits
        raise UserError(
            f"config file {path} holds a value YAML cannot convert (an impossible date, a number thousands of "
            "digits long); fix or quote it"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must be a mapping of keys to values, got {type(data).__name__}")
    return data


def config_to_dict(config: Any) -> dict[str, Any]:
    """The fields of a settings dataclass as plain values, in field order."""
    return dataclasses.asdict(config)


def config_to_yaml(config: Any) -> str:
    """The YAML a run directory keeps (and ``--print-config`` prints) for any settings dataclass."""
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


# -- merging file values and flags ---------------------------------------------------------------------
def _coerce(name: str, value: Any, kind: type) -> Any:
    """``value`` as field ``name`` of type ``kind`` holds it; a value of another type is a UserError (YAML
    gives ints where floats are meant, lists where tuples are)."""
    if value is None:
        return None
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key {name!r} must be true or false, got {short_repr(value)}")
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if typing.get_origin(kind) is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if typing.get_origin(kind) is list and isinstance(value, list | tuple):
        return list(value)
    raise UserError(f"config key {name!r} must be {getattr(kind, '__name__', kind)}, got {short_repr(value)}")


def _has_no_default(item: dataclasses.Field[Any]) -> bool:
    return item.default is MISSING and item.default_factory is MISSING


def _item_kind(kind: Any) -> tuple[Any, bool]:
    """``(the type of the field's values, whether it holds a list of them)``: ``list[Path]`` -> ``(Path, True)``."""
    if typing.get_origin(kind) in (list, tuple):
        return typing.get_args(kind)[0], True
    return kind, False


def _fix_of(item: dataclasses.Field[Any]) -> str:
    """How a user changes setting ``item``: its flag, its position, or (a field off the command line) the config."""
    meta = item.metadata
    if not meta.get("cli", True):
        return f"fix {item.name} in the config"
    if meta.get("positional"):
        return f"fix the {meta.get('metavar') or item.name} argument"
    return "fix --" + (meta.get("flag") or item.name).replace("_", "-")


def check_values(settings: Any) -> None:
    """Refuse a number setting of ``settings`` (a settings dataclass) that is not finite, not whole where an int
    is meant, absurdly large or outside its declared range (:mod:`simclr.ranges`), and a path setting with a
    name longer than the file system holds (:func:`simclr.paths.check_path_names`): the one check of values
    every command shares, run by :func:`build_settings` before the settings' own ``validate``, and by the
    ``validate`` of the configs the Python API takes directly."""
    types_ = field_types(type(settings))
    for item in fields(settings):
        value = getattr(settings, item.name)
        if value is None:
            continue
        kind, is_list = _item_kind(types_[item.name])
        values = value if is_list and isinstance(value, list | tuple) else [value]
        if kind in (int, float):
            for number in values:
                check_number(number, kind, item.metadata.get("within"), item.name, _fix_of(item))
        elif kind is Path or item.metadata.get("path"):
            for text in values:
                if isinstance(text, str | Path):
                    check_path_names(str(text), item.name, _fix_of(item))


def build_settings(cls: type[Settings], file_values: dict[str, Any], overrides: dict[str, Any]) -> Settings:
    """An instance of settings dataclass ``cls`` from file values and overrides (overrides win); unknown keys,
    values of the wrong type, numbers outside their range and paths too long to exist (:func:`check_values`) are
    UserErrors, and the result is validated when ``cls`` can validate."""
    types_ = field_types(cls)
    merged: dict[str, Any] = {}
    for source in (file_values, overrides):
        for key, value in source.items():
            name = str(key).replace("-", "_")
            if name not in types_:
                known = ", ".join(sorted(types_))
                raise UserError(f"unknown config key {short_repr(key)}; remove it (known keys: {known})")
            merged[name] = _coerce(name, value, types_[name])
    missing = [item.name for item in fields(cls) if item.name not in merged and _has_no_default(item)]  # type: ignore[arg-type]
    if missing:
        raise UserError(f"missing setting {missing[0]!r}; pass --{missing[0].replace('_', '-')}")
    settings = cls(**merged)
    check_values(settings)
    validate = getattr(settings, "validate", None)
    if validate is not None:
        validate()
    return settings


# -- flags -----------------------------------------------------------------------------------------------
_FIELD_OF_ACTION = "simclr_setting"  # the attribute of an argparse action that names the field it offers


def setting_of(action: argparse.Action) -> dataclasses.Field[Any] | None:
    """The settings field an argparse action was made from by :func:`add_settings_flags` (None: made by hand)."""
    return getattr(action, _FIELD_OF_ACTION, None)


def add_settings_flags(parser: argparse.ArgumentParser, cls: type, *, overrides_only: bool = False) -> None:
    """One flag (or positional argument) per field of ``cls``, listed under the field's ``group`` when it has one.

    ``overrides_only``: every flag defaults to None, so :func:`overrides_from_args` sees only the flags given
    (``simclr pretrain`` merges them over a recipe file); the help still shows the dataclass default.
    """
    types_ = field_types(cls)
    # a group titled as one an earlier call made (a command offering several settings classes) is extended
    groups: dict[str, Any] = {group.title: group for group in parser._action_groups if group.title}
    exclusive: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        meta = item.metadata
        if not meta.get("cli", True):
            continue
        group_name = meta.get("group") or ""
        target: Any = parser
        if group_name:
            if group_name not in groups:
                groups[group_name] = parser.add_argument_group(group_name)
            target = groups[group_name]
        if meta.get("exclusive"):
            key = meta["exclusive"]
            if key not in exclusive:
                exclusive[key] = target.add_mutually_exclusive_group()
            target = exclusive[key]
        for action in _add_flag(target, item, types_[item.name], overrides_only):
            setattr(action, _FIELD_OF_ACTION, item)


def _text_parser(item: dataclasses.Field[Any], kind: Any) -> Callable[[str], Any]:
    """What turns a flag's text into the field's value: ``parse``, else the type (of the items of a list)."""
    if item.metadata.get("parse"):
        return item.metadata["parse"]  # type: ignore[no-any-return]
    if typing.get_origin(kind) in (list, tuple):
        return typing.get_args(kind)[0]  # type: ignore[no-any-return]
    return kind  # type: ignore[no-any-return]


def _add_flag(target: Any, item: dataclasses.Field[Any], kind: type, overrides_only: bool) -> list[argparse.Action]:
    """The actions that offer ``item``: its flag (or positional argument), and its old spellings."""
    meta = item.metadata
    required = _has_no_default(item)
    default = None if overrides_only or required else item.default
    if meta.get("positional"):
        positional: dict[str, Any] = {
            "type": _text_parser(item, kind),
            "help": meta["help"],
            "metavar": meta["metavar"],
        }
        if meta.get("nargs"):
            positional["nargs"] = meta["nargs"]
        return [target.add_argument(item.name, **positional)]
    flag = "--" + (meta.get("flag") or item.name).replace("_", "-")
    if meta.get("switch"):
        return [target.add_argument(flag, dest=item.name, action="store_true", default=default, help=meta["help"])]
    help_text = meta.get("help", "") + _shown_default(item, required)
    if kind is bool:
        return [
            target.add_argument(
                flag, dest=item.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        ]
    options: dict[str, Any] = {
        "dest": item.name,
        "type": _text_parser(item, kind),
        "default": default,
        "metavar": meta.get("metavar") or (None if meta.get("choices") else flag[2:].replace("-", "_").upper()),
    }
    if meta.get("choices"):
        options["choices"] = meta["choices"]
    if meta.get("nargs"):
        options["nargs"] = meta["nargs"]
    actions = [
        target.add_argument(
            flag, *meta.get("aliases", ()), help=help_text, required=required and not overrides_only, **options
        ),
    ]
    for old in meta.get("old_flags", ()):
        actions.append(target.add_argument(old, help=argparse.SUPPRESS, action=_OldSpelling, new_flag=flag, **options))
    return actions


class _OldSpelling(argparse.Action):
    """An earlier spelling of a flag, hidden from the help: it still sets the setting, and says on stderr (one
    line) which spelling to use instead."""

    def __init__(self, option_strings: list[str], dest: str, new_flag: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new_flag = new_flag

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        program = parser.prog.split()[0]
        print(
            f"{program}: note: {option_string} is deprecated here and goes in the next release; use {self.new_flag}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _shown_default(item: dataclasses.Field[Any], required: bool) -> str:
    """`` (default: X)`` for the help, unless the field has no default or its help already explains None."""
    if required:
        return " (required)"
    value = item.default
    if "default" in item.metadata.get("help", ""):
        return ""
    if value is None:
        return " (default: none)"
    if isinstance(value, bool):
        value = "on" if value else "off"
    elif isinstance(value, tuple | list):
        value = " ".join(str(part) for part in value)
    return f" (default: {value})".replace("%", "%%")


def overrides_from_args(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The fields of ``cls`` whose flags were given (with ``overrides_only`` flags)."""
    return {name: getattr(args, name) for name in field_types(cls) if getattr(args, name, None) is not None}


def settings_from_args(cls: type[Settings], args: argparse.Namespace) -> Settings:
    """An instance of ``cls`` from the parsed flags, validated as a config file's values would be."""
    return build_settings(cls, {}, overrides_from_args(cls, args))
