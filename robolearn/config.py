"""Typed dataclass configs: built from CLI flags, saved as JSON next to every output they produce.

Every field of a config dataclass becomes a `--field-name` flag (bools become `--flag/--no-flag`, lists take
several values, nested dataclasses are flattened as `--group.field`). A field typed as a union of dataclasses
is a choice: each member's `name` field is its key, `--group KEY` picks the member and `--group.field` sets
its fields (a field the chosen member lacks is an error). Fields marked `opt(..., cli=False)` are filled by
the program, not by flags. `--config FILE.json` loads a saved config first; flags then override it; a class
with an `upgrade_config(values)` classmethod rewrites older saved layouts first. `save_config` writes
`<name>.config.json` with the class name, the robolearn version and the values, so any output folder can be
reproduced from itself.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from robolearn import __version__
from robolearn.utils import write_text_atomic

T = TypeVar("T")

# name -> (config class, function, help); filled by @command in each stage's module
COMMANDS: dict[str, dict[str, tuple[type, Callable[[Any], int | None], str]]] = {}


def command(group: str, name: str, help: str = "") -> Callable[[Callable[[T], int | None]], Callable[[T], int | None]]:
    """Register `fn(cfg)` as `robolearn <group> <name>`; its config class is the annotation of `cfg`."""

    def deco(fn: Callable[[T], int | None]) -> Callable[[T], int | None]:
        cls = typing.get_type_hints(fn)["cfg"]
        COMMANDS.setdefault(group, {})[name] = (cls, fn, help or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return deco


def _choices(tp: Any) -> dict[str, type] | None:
    """A union of dataclasses (each with a `name` field whose default is its key) -> {key: class}; else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(members) < 2 or not all(dataclasses.is_dataclass(a) for a in members):
        return None
    out: dict[str, type] = {}
    for m in members:
        name = next((f.default for f in dataclasses.fields(m) if f.name == "name"), dataclasses.MISSING)
        if not isinstance(name, str):
            raise TypeError(f"{m.__name__}: a member of a config choice needs a `name: str` field with a default")
        out[name] = m
    return out


def _field_default(f: dataclasses.Field) -> Any:
    """The default of a field (calling its factory), or None when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip Optional; return (type, is_optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), True
    return tp, False


def positional(help: str = "", **kw: Any) -> Any:
    """A config field given as a positional CLI argument."""
    return dataclasses.field(metadata={"positional": True, "help": help}, **kw)


def opt(default: Any = dataclasses.MISSING, help: str = "", cli: bool = True, **kw: Any) -> Any:
    """A config field with help text for its flag; `cli=False`: no flag (the program fills it)."""
    if default is not dataclasses.MISSING:
        kw["default"] = default
    return dataclasses.field(metadata={"help": help, "cli": cli}, **kw)


def _flag(prefix: str, name: str) -> str:
    return f"--{prefix}{name.replace('_', '-')}"


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "", default: Any = None) -> None:
    """Add a flag per field of `cls` (nested dataclasses and choices as `--group.field`). `default`: an instance
    whose values are the defaults (a nested field's own default instance)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli") is False:
            continue
        sub_default = getattr(default, f.name) if default is not None else _field_default(f)
        choices = _choices(hints[f.name])
        if choices:
            _add_choice_args(parser, f, choices, prefix, sub_default)
            continue
        tp, _ = _base_type(hints[f.name])
        if dataclasses.is_dataclass(tp):
            add_dataclass_args(parser, tp, prefix=f"{prefix}{f.name}.", default=sub_default)
            continue
        shown = (
            sub_default
            if default is not None
            or f.default is not dataclasses.MISSING
            or f.default_factory is not dataclasses.MISSING
            else dataclasses.MISSING
        )
        _add_field(parser, f, hints[f.name], prefix, f.metadata.get("help", ""), shown)


def _add_choice_args(
    parser: argparse.ArgumentParser, f: dataclasses.Field, choices: dict[str, type], prefix: str, default: Any
) -> None:
    """`--group KEY` plus one flag per field of any member (help names the members that have it)."""
    dest = f"{prefix}{f.name}"
    keys = ", ".join(choices)
    shown = f" [default: {default.name}]" if default is not None else ""
    parser.add_argument(
        _flag(prefix, f.name),
        dest=dest,
        default=None,
        metavar="{" + ",".join(choices) + "}",
        help=f"{f.metadata.get('help', '')} (one of: {keys}; its fields: --{dest}.*){shown}".replace("%", "%%"),
    )
    merged: dict[str, list[tuple[str, dataclasses.Field, Any, Any]]] = {}
    for key, member in choices.items():
        hints = typing.get_type_hints(member)
        inst = default if default is not None and default.name == key else member()
        for g in dataclasses.fields(member):
            if g.name == "name" or not g.init or g.metadata.get("cli") is False:
                continue
            merged.setdefault(g.name, []).append((key, g, hints[g.name], getattr(inst, g.name)))
    for entries in merged.values():
        key, g, hint, value = entries[0]
        defaults = {str(v) for _, _, _, v in entries}
        tag = "[" + ", ".join(k for k, *_ in entries) + "] "
        helptext = tag + g.metadata.get("help", "")
        if len(defaults) > 1:
            helptext += " [default: " + ", ".join(f"{k} {v}" for k, _, _, v in entries) + "]"
            value = dataclasses.MISSING
        _add_field(parser, g, hint, f"{dest}.", helptext, value)


def _add_field(
    parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any, prefix: str, helptext: str, default: Any
) -> None:
    """One flag (or positional argument) for a plain field; `default` (unless MISSING) is shown in the help."""
    tp, _ = _base_type(hint)
    flag = _flag(prefix, f.name)
    dest = f"{prefix}{f.name}"
    if default is not dataclasses.MISSING:
        helptext = f"{helptext} [default: {default}]"
    helptext = helptext.replace("%", "%%")  # argparse %-formats help strings
    origin = typing.get_origin(tp)
    if f.metadata.get("positional"):
        has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        many = origin in (list, tuple)
        nargs = ("*" if has_default else "+") if many else ("?" if has_default else None)
        parser.add_argument(dest, nargs=nargs, default=None, help=helptext, metavar=f.name.upper())
    elif tp is bool:
        parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=helptext)
    elif origin in (list, tuple):
        args = typing.get_args(tp)
        # `--where a=1 --where b=2` and `--where a=1 b=2` both collect every value
        parser.add_argument(
            flag,
            dest=dest,
            nargs="*",
            action="extend",
            type=args[0] if args and args[0] is not Ellipsis else str,
            default=None,
            help=helptext,
        )
    elif origin is dict or tp is dict:
        parser.add_argument(flag, dest=dest, type=json.loads, default=None, help=f"{helptext} (JSON)")
    elif typing.get_origin(tp) is typing.Literal:
        parser.add_argument(flag, dest=dest, choices=typing.get_args(tp), default=None, help=helptext)
    else:
        parser.add_argument(
            flag, dest=dest, type=tp if tp in (int, float, str, Path) else str, default=None, help=helptext
        )


def _fill(
    cls: type[T], values: dict[str, Any], ns: argparse.Namespace | None, prefix: str = "", default: Any = None
) -> T:
    """Build `cls` from flags (`ns`), over saved `values`, over `default` (an instance) or the class defaults."""
    upgrade = getattr(cls, "upgrade_config", None)
    if upgrade is not None:
        values = upgrade(dict(values))
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        sub_default = getattr(default, f.name) if default is not None else None
        choices = _choices(hints[f.name])
        if choices:
            if sub_default is None:
                sub_default = _field_default(f)
            kwargs[f.name] = _fill_choice(f, choices, values.get(f.name), ns, prefix, sub_default)
            continue
        tp, _ = _base_type(hints[f.name])
        if dataclasses.is_dataclass(tp):
            if sub_default is None:
                sub_default = _field_default(f)
            kwargs[f.name] = _fill(
                tp, values.get(f.name, {}) or {}, ns, prefix=f"{prefix}{f.name}.", default=sub_default
            )
            continue
        v = getattr(ns, f"{prefix}{f.name}", None) if ns is not None else None
        if v is None and f.name in values:
            v = values[f.name]
        if v is None:
            if default is not None:
                kwargs[f.name] = copy.deepcopy(sub_default)
            continue
        if typing.get_origin(tp) is tuple:
            v = tuple(v)
        elif tp is Path:
            v = Path(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def _fill_choice(
    f: dataclasses.Field,
    choices: dict[str, type],
    values: Any,
    ns: argparse.Namespace | None,
    prefix: str,
    default: Any,
) -> Any:
    """The member named by `--group KEY` (else the saved values' `name`, else the default's), filled."""
    dest = f"{prefix}{f.name}"
    saved = dict(values) if isinstance(values, dict) else {}
    key = (
        (getattr(ns, dest, None) if ns is not None else None)
        or saved.get("name")
        or (default.name if default is not None else next(iter(choices)))
    )
    if key not in choices:
        raise ValueError(f"unknown {f.name} {key!r}; expected one of {', '.join(choices)}")
    member = choices[key]
    if saved.get("name", key) != key:
        saved = {}  # the saved config chose another member: its fields do not apply
    saved.pop("name", None)
    if ns is not None:
        own = {g.name for g in dataclasses.fields(member)}
        for other in choices.values():
            for g in dataclasses.fields(other):
                if g.name not in own and getattr(ns, f"{dest}.{g.name}", None) is not None:
                    raise ValueError(
                        f"{_flag(dest + '.', g.name)} does not apply to {f.name} {key!r} (it is a "
                        f"field of {other.__name__})"
                    )
    return _fill(
        member, saved, ns, prefix=f"{dest}.", default=default if default is not None and default.name == key else None
    )


def from_args(cls: type[T], ns: argparse.Namespace) -> T:
    """The config from parsed flags, over `--config FILE` when given."""
    base: dict[str, Any] = {}
    if getattr(ns, "config", None):
        base = load_config_dict(ns.config)
    return _fill(cls, base, ns)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON-able values (nested dataclasses as dicts, paths as strings)."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return conv(cfg)


def save_config(cfg: Any, folder: str | Path, name: str | None = None) -> Path:
    """Write `<folder>/<name>.config.json`; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = name or type(cfg).__name__
    path = folder / f"{name}.config.json"
    payload = {
        "class": f"{type(cfg).__module__}.{type(cfg).__qualname__}",
        "robolearn_version": __version__,
        "values": to_dict(cfg),
    }
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def load_config_dict(path: str | Path) -> dict[str, Any]:
    """The values of a saved config file (or of a bare JSON dict)."""
    data = json.loads(Path(path).read_text())
    return data.get("values", data)


def load_config(cls: type[T], path: str | Path) -> T:
    """`cls` from a saved config file (older layouts upgraded by `cls.upgrade_config`)."""
    return _fill(cls, load_config_dict(path), None)  # type: ignore[arg-type]
