"""Plugins through Python entry-point groups: third-party packages add robot drivers, cameras and devices
without editing robolearn. A package declares, in its pyproject.toml:

    [project.entry-points."robolearn.robots"]
    myarm = "myarm_driver:MyArm"        # a robolearn.collection.robots.Robot subclass

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
    raise ValueError(f"unknown {group.split('.')[-1][:-1]} {name!r}.{hint} Known: {', '.join(known) or 'none'} "
                     f"(plugins register under the entry-point group {group!r})")
