"""Command-line flags generated from config dataclasses, and the values read back from them.

A setting is named once, as a field of a config dataclass (:func:`simclr.config.setting`); this module turns
the fields into argparse flags (``lr_scaling`` -> ``--lr-scaling``, booleans as ``--x/--no-x``, help with the
default) and the parsed flags back into the dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING
from typing import Any, TypeVar

from simclr.config import build_settings, field_types

Settings = TypeVar("Settings")


def add_settings_flags(parser: argparse.ArgumentParser, cls: type, *, overrides_only: bool = False) -> None:
    """One flag per field of ``cls``, listed under the field's ``group`` when it has one.

    ``overrides_only``: every flag defaults to None, so :func:`overrides_from_args` sees only the flags given
    (``simclr pretrain`` merges them over a recipe file); the help still shows the dataclass default.
    """
    types_ = field_types(cls)
    groups: dict[str, Any] = {}
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
        _add_flag(target, item, types_[item.name], overrides_only)


def _add_flag(target: Any, item: dataclasses.Field[Any], kind: type, overrides_only: bool) -> None:
    meta = item.metadata
    flag = "--" + (meta.get("flag") or item.name).replace("_", "-")
    required = item.default is MISSING and item.default_factory is MISSING
    default = None if overrides_only or required else item.default
    help_text = meta.get("help", "") + _shown_default(item, required)
    if kind is bool:
        target.add_argument(
            flag, dest=item.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
        )
        return
    options: dict[str, Any] = {
        "dest": item.name,
        "type": meta.get("parse") or kind,
        "default": default,
        "help": help_text,
        "metavar": meta.get("metavar") or (None if meta.get("choices") else flag[2:].replace("-", "_").upper()),
    }
    if meta.get("choices"):
        options["choices"] = meta["choices"]
    if meta.get("nargs"):
        options["nargs"] = meta["nargs"]
    if required and not overrides_only:
        options["required"] = True
    target.add_argument(flag, **options)


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
