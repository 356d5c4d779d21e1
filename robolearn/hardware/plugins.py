"""Plugins through Python entry-point groups: third-party packages add robot drivers, cameras and devices
without editing robolearn. A package declares, in its pyproject.toml:

    [project.entry-points."robolearn.robots"]
    myarm = "myarm_driver:MyArm"        # a robolearn.hardware.robots.Robot subclass

and `robolearn collect --robot myarm` (or `load("robolearn.robots", "myarm")`) finds it.
"""

from __future__ import annotations

import difflib
from importlib.metadata import entry_points
from typing import Any

ROBOTS = "robolearn.robots"
CAMERAS = "robolearn.cameras"
DEVICES = "robolearn.devices"


def discover(group: str) -> dict[str, Any]:
    """Entry points of `group` by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load(group: str, name: str, builtin: dict[str, Any] | None = None) -> Any:
    """The class/factory called `name`: built-ins first, then installed entry points of `group`."""
    if builtin and name in builtin:
        return builtin[name]
    found = discover(group)
    if name in found:
        return found[name].load()
    known = sorted({*(builtin or {}), *found})
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown {group.split('.')[-1][:-1]} {name!r}.{hint} Known: {', '.join(known) or 'none'} "
        f"(plugins register under the entry-point group {group!r})"
    )


def check_options(what: str, name: str, options: dict[str, Any], known: list[str]) -> None:
    """ValueError naming the options a built-in `what` (robot/camera) called `name` does not take."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {what} {name!r}; expected some of {known}")


def available(group: str, builtin: dict[str, Any]) -> list[str]:
    """Built-in names, then installed plugin names (sorted)."""
    return [*builtin, *sorted(set(discover(group)) - set(builtin))]


def build(group: str, name: str, builtin: dict[str, Any], options: dict[str, Any], base: type, what: str) -> Any:
    """Build `name` (a built-in or a plugin of `group`) with `options` and check it is a `base` instance.
    A plugin that rejects the options is a ValueError naming it; one that builds something else a TypeError."""
    factory = load(group, name, builtin)
    try:
        obj = factory(**options)
    except TypeError as e:
        if name in builtin:
            raise
        raise ValueError(f"{what} plugin {name!r} ({_where(factory)}) rejected options {sorted(options)}: {e}") from e
    if not isinstance(obj, base):
        raise TypeError(
            f"{what} plugin {name!r} ({_where(factory)}) built a {type(obj).__name__}, expected a "
            f"{base.__module__.rsplit('.', 1)[0]}.{base.__name__} subclass instance"
        )
    return obj


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
