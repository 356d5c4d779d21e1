"""Typed dataclass configs: built from CLI flags, saved as JSON next to every output they produce.

Every field of a config dataclass becomes a `--field-name` flag (bools become `--flag/--no-flag`, lists take
several values, nested dataclasses are flattened as `--group.field`). `--config FILE.json` loads a saved
config first; flags then override it. `save_config` writes `<name>.config.json` with the class name, the
robolearn version and the values, so any output folder can be reproduced from itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

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


def opt(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    """A config field with help text for its flag."""
    if default is not dataclasses.MISSING:
        kw["default"] = default
    return dataclasses.field(metadata={"help": help}, **kw)


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, prefix: str = "") -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _base_type(hints[f.name])
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        dest = f"{prefix}{f.name}"
        helptext = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
            helptext = f"{helptext} [default: {f.default}]"
        elif f.default_factory is not dataclasses.MISSING:
            helptext = f"{helptext} [default: {f.default_factory()}]"
        helptext = helptext.replace("%", "%%")  # argparse %-formats help strings
        if dataclasses.is_dataclass(tp):
            add_dataclass_args(parser, tp, prefix=f"{prefix}{f.name}.")
            continue
        origin = typing.get_origin(tp)
        if f.metadata.get("positional"):
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            many = origin in (list, tuple)
            nargs = ("*" if has_default else "+") if many else ("?" if has_default else None)
            parser.add_argument(dest, nargs=nargs, default=None, help=helptext, metavar=f.name.upper())
            continue
        if tp is bool:
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        elif origin in (list, tuple):
            args = typing.get_args(tp)
            # `--where a=1 --where b=2` and `--where a=1 b=2` both collect every value
            parser.add_argument(flag, dest=dest, nargs="*", action="extend",
                                type=args[0] if args and args[0] is not Ellipsis else str, default=None, help=helptext)
        elif origin is dict or tp is dict:
            parser.add_argument(flag, dest=dest, type=json.loads, default=None, help=f"{helptext} (JSON)")
        elif typing.get_origin(tp) is typing.Literal:
            parser.add_argument(flag, dest=dest, choices=typing.get_args(tp), default=None, help=helptext)
        else:
            parser.add_argument(flag, dest=dest, type=tp if tp in (int, float, str, Path) else str, default=None,
                                help=helptext)


def _fill(cls: type[T], values: dict[str, Any], ns: argparse.Namespace, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp, _ = _base_type(hints[f.name])
        if dataclasses.is_dataclass(tp):
            kwargs[f.name] = _fill(tp, values.get(f.name, {}) or {}, ns, prefix=f"{prefix}{f.name}.")
            continue
        v = getattr(ns, f"{prefix}{f.name}", None) if ns is not None else None
        if v is None and f.name in values:
            v = values[f.name]
        if v is None:
            continue
        if typing.get_origin(tp) is tuple:
            v = tuple(v)
        elif tp is Path:
            v = Path(v)
        kwargs[f.name] = v
    return cls(**kwargs)


def from_args(cls: type[T], ns: argparse.Namespace) -> T:
    base: dict[str, Any] = {}
    if getattr(ns, "config", None):
        base = load_config_dict(ns.config)
    return _fill(cls, base, ns)


def to_dict(cfg: Any) -> dict[str, Any]:
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
    payload = {"class": f"{type(cfg).__module__}.{type(cfg).__qualname__}", "robolearn_version": __version__,
               "values": to_dict(cfg)}
    return write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def load_config_dict(path: str | Path) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    return data.get("values", data)


def load_config(cls: type[T], path: str | Path) -> T:
    return _fill(cls, load_config_dict(path), None)  # type: ignore[arg-type]
