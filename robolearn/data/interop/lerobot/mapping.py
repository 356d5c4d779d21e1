"""Which LeRobot features become which robolearn fields.

Found by name: `observation.state.<key>` (robolearn's state keys, or DROID's spellings joint_position /
joint_velocity), `action.<form>`, the signals in layout.SIGNALS, `observation.images.<camera>` videos.
A generic vector (`action`, `observation.state`, ...) has no fixed meaning across robots: say what it holds
with `--map FEATURE=key1,key2,...` (its dimensions, in order, split by the sizes of those robolearn fields),
e.g. `action=cartesian_velocity,gripper_position` or `observation.state=joint_positions,gripper_position`.
Features under `observation.*` map to state keys, the others to action forms. Nothing is ever invented: a
robolearn field no feature maps to is recorded as absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robolearn.data.interop.lerobot import layout as L


@dataclass
class Plan:
    """feature -> [(group, key, start, stop)] column slices; videos; signals; what is not carried over."""

    columns: dict[str, list[tuple[str, str, int, int]]] = field(default_factory=dict)
    videos: list[str] = field(default_factory=list)  # LeRobot video keys
    signals: dict[str, str] = field(default_factory=dict)  # LeRobot feature -> robolearn signal
    not_carried: list[str] = field(default_factory=list)

    def keys(self, group: str) -> set[str]:
        return {k for cols in self.columns.values() for g, k, _a, _b in cols if g == group}


def _dim(ft: dict[str, Any]) -> int:
    shape = ft["shape"]
    return int(shape[0]) if len(shape) == 1 else -1


def parse_map(items: list[str], info_path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        feat, sep, keys = item.partition("=")
        if not sep or not feat or not keys:
            raise LeRobotFormatError(info_path, "--map", f"expected FEATURE=key1,key2,..., got {item!r}")
        out[feat.strip()] = [k.strip() for k in keys.split(",") if k.strip()]
    return out


def plan(info: dict[str, Any], user_map: list[str], info_path: Path) -> Plan:
    feats: dict[str, dict[str, Any]] = info["features"]
    p = Plan()
    user = parse_map(user_map, info_path)
    for feat in user:
        if feat not in feats:
            raise LeRobotFormatError(info_path, f"--map {feat}", f"no such feature; features: {sorted(feats)}")
    for name, ft in feats.items():
        if name in user:
            group = "state" if name.startswith("observation") else "action"
            known = L.STATE_KEYS if group == "state" else L.ACTION_KEYS
            start, cols = 0, []
            for k in user[name]:
                k = L.STATE_ALIASES.get(k, k) if group == "state" else k
                if k not in known:
                    raise LeRobotFormatError(info_path, f"--map {name}", f"{k!r} is not a {group} key; use {known}")
                n = L.field_size(k, group)
                cols.append((group, k, start, start + n))
                start += n
            if start != _dim(ft):
                raise LeRobotFormatError(
                    info_path,
                    f"--map {name}",
                    f"the keys {user[name]} hold {start} values, the feature has {ft['shape']}",
                )
            p.columns[name] = cols
        elif ft["dtype"] == "video" and name.startswith(L.IMAGE_PREFIX):
            p.videos.append(name)
        elif name.startswith(L.STATE_PREFIX) and _state_key(name) in L.STATE_KEYS:
            k = _state_key(name)
            p.columns[name] = [("state", k, 0, L.field_size(k, "state"))]
        elif name.startswith(L.ACTION_PREFIX) and name[len(L.ACTION_PREFIX) :] in L.ACTION_KEYS:
            k = name[len(L.ACTION_PREFIX) :]
            p.columns[name] = [("action", k, 0, L.field_size(k, "action"))]
        elif name in L.SIGNALS:
            p.signals[name] = L.SIGNALS[name][0]
        elif name not in L.INDEX_FEATURES:
            p.not_carried.append(name)
    for name, cols in p.columns.items():
        for _g, k, a, b in cols:
            if _dim(feats[name]) < b:
                raise LeRobotFormatError(
                    info_path, f"features/{name}/shape", f"expected {b - a} values for {k}, got {feats[name]['shape']}"
                )
    seen: dict[tuple[str, str], str] = {}
    for name, cols in p.columns.items():
        for g, k, _a, _b in cols:
            if (g, k) in seen:  # e.g. `action` mapped by --map and `action.<form>` both present: one source
                raise LeRobotFormatError(info_path, f"--map {name}", f"{g} {k} is also given by {seen[(g, k)]}")
            seen[(g, k)] = name
    return p


def _state_key(name: str) -> str:
    k = name[len(L.STATE_PREFIX) :]
    return L.STATE_ALIASES.get(k, k)


LeRobotFormatError = L.LeRobotFormatError
