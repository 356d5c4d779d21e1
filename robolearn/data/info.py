"""`info`: everything about one episode (metadata, length, camera streams, field shapes, file size) or counts
and sizes over a dataset folder (from attributes only), and their text renderings for the terminal.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import h5py

from robolearn.data import schema
from robolearn.data.edit import UNREADABLE_ERRORS
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.reader import Episode, list_episodes, open_h5, read_error_message
from robolearn.utils import one_line


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _success_word(v: Any) -> str:
    return {1: "success", 0: "failure"}.get(v if isinstance(v, int) else -1, "unknown")


META_KEYS = (
    "lab",
    "household",
    "scene_id",
    "operator",
    "robot_type",
    "robot_serial",
    "task",
    "success",
    "label_source",
    "complete",
    "schema_version",
    "control_hz",
    "action_space",
    "teleop_device",
    "start_time",
    "end_time",
    "software_version",
)


def episode_info(path: str | Path) -> dict[str, Any]:
    """Everything about one episode: metadata, length, camera streams, field shapes and file size. A damaged
    file raises EpisodeError naming the file and the field (never a raw h5py/numpy error)."""
    path = Path(path)
    try:
        return _episode_info(path)
    except EpisodeError:
        raise
    except H5_ERRORS as e:
        raise EpisodeError(path, "file", read_error_message(e)) from None


def _episode_info(path: Path) -> dict[str, Any]:
    with Episode(path) as ep:
        a = ep.attrs
        n, hz = ep.num_steps, a.get("control_hz")
        if not isinstance(hz, (int, float)) or isinstance(hz, bool) or not hz > 0:
            raise EpisodeError(path, "attrs/control_hz", f"expected a positive number, got {hz!r:.60}")
        hz = float(hz)
        start, end = ep.array(schema.CONTROL_FIELDS[0].path), ep.array(schema.CONTROL_FIELDS[-1].path)
        measured = float(end[-1] - start[0]) / 1e9 if n and start[0] and end[-1] else None
        cams = [_camera_info(ep, c) for c in ep.cameras]
        info: dict[str, Any] = {
            "kind": "episode",
            "path": str(path),
            "uuid": a.get("uuid", ""),
            "metadata": {**{k: a.get(k) for k in META_KEYS}, "control_hz": hz},
            "language": ep.language,
            "instructions": ep.instructions(),
            "cadence": a.get("cadence") or {},
            "label_history": a.get("label_history") or [],
            "num_steps": n,
            "duration_s": n / hz if hz else None,
            "measured_duration_s": measured,
            "cameras": cams,
        }
    with open_h5(path) as f:
        fields: dict[str, dict[str, Any]] = {}

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                fields[name] = {"shape": list(obj.shape), "dtype": str(obj.dtype)}

        f.visititems(visit)
    info["fields"] = fields
    info["file_bytes"] = path.stat().st_size
    return info


def _camera_info(ep: Episode, cam: schema.CameraSpec) -> dict[str, Any]:
    s = ep.stream(cam.name)
    lengths = s.index[:, 1]
    present = int((lengths > 0).sum())
    out: dict[str, Any] = {
        "name": cam.name,
        "role": cam.role,
        "encoding": s.encoding,
        "width": cam.width,
        "height": cam.height,
        "frames": present,
        "dropped": int(ep.camera_field(cam.name, "dropped").sum()),
        "bytes": int(lengths.sum()),
        "mean_bytes_per_frame": float(lengths.sum() / present) if present else 0.0,
        "depth": bool(cam.depth),
        "intrinsics": cam.intrinsics is not None,
        "extrinsics": cam.extrinsics is not None,
    }
    if cam.depth:
        out["depth_bytes"] = int(ep.stream(cam.name, "depth").index[:, 1].sum())
    return out


def dataset_info(root: str | Path) -> dict[str, Any]:
    """Counts and sizes over every episode under `root`, from attributes only (no step data is read)."""
    root = Path(root)
    paths = list_episodes(root)
    lengths: list[int] = []
    hours, total_bytes = 0.0, 0
    outcome: Counter[str] = Counter()
    per: dict[str, Counter[str]] = {k: Counter() for k in ("lab", "household", "scene_id", "task", "operator")}
    cams: dict[str, dict[str, Any]] = {}
    incomplete, unreadable = 0, []
    for p in paths:
        try:
            with Episode(p) as ep:
                a, n, specs = ep.attrs, ep.num_steps, ep.cameras
                hz = float(a["control_hz"])
            size = p.stat().st_size
        except UNREADABLE_ERRORS as e:
            unreadable.append({"path": str(p), "error": one_line(e)})
            continue
        lengths.append(n)
        hours += n / hz / 3600 if hz > 0 else 0.0
        total_bytes += size
        outcome[_success_word(a.get("success", -1))] += 1
        incomplete += not a.get("complete")
        for k, c in per.items():
            c[str(a.get(k, ""))] += 1
        for cam in specs:
            e = cams.setdefault(cam.name, {"episodes": 0, "resolutions": set(), "encodings": set(), "depth": 0})
            e["episodes"] += 1
            e["resolutions"].add(f"{cam.width}x{cam.height}")
            e["encodings"].add(cam.encoding)
            e["depth"] += bool(cam.depth)
    steps = sum(lengths)
    return {
        "kind": "dataset",
        "path": str(root),
        "episodes": len(lengths),
        "steps": steps,
        "hours": hours,
        "success": outcome["success"],
        "failure": outcome["failure"],
        "unknown": outcome["unknown"],
        "incomplete": incomplete,
        "per_lab": dict(per["lab"]),
        "per_household": dict(per["household"]),
        "per_scene": dict(per["scene_id"]),
        "per_task": dict(per["task"]),
        "per_operator": dict(per["operator"]),
        "length": {"min": min(lengths), "mean": statistics.fmean(lengths), "max": max(lengths)} if lengths else None,
        "cameras": {
            k: {**v, "resolutions": sorted(v["resolutions"]), "encodings": sorted(v["encodings"])}
            for k, v in sorted(cams.items())
        },
        "total_bytes": total_bytes,
        "bytes_per_step": total_bytes / steps if steps else None,
        "unreadable": unreadable,
    }


def info(path: str | Path) -> dict[str, Any]:
    """`episode_info` for a file, `dataset_info` for a folder."""
    p = Path(path)
    if not p.exists():
        raise EpisodeError(p, "file", "does not exist")
    return dataset_info(p) if p.is_dir() else episode_info(p)


def format_episode_info(i: dict[str, Any]) -> str:
    m = i["metadata"]
    dur = f"{i['num_steps']} ({i['duration_s']:.2f} s at {m['control_hz']:g} Hz"
    dur += f", measured {i['measured_duration_s']:.2f} s)" if i["measured_duration_s"] is not None else ")"
    rows = [
        ("episode", i["path"]),
        ("uuid", i["uuid"]),
        ("where", f"lab {m['lab']} / household {m['household']} / scene {m['scene_id']}"),
        ("operator", m["operator"]),
        ("robot", f"{m['robot_type']} ({m['robot_serial']})"),
        ("task", m["task"]),
        ("instructions", " | ".join(i["instructions"])),
        (
            "success",
            f"{_success_word(m['success'])} (label source: {m['label_source']}, "
            f"{len(i['label_history'])} relabel records)",
        ),
        ("complete", "yes" if m["complete"] else "NO (salvaged or never closed)"),
        ("schema", f"{m['schema_version']} (written by robolearn {m['software_version']})"),
        ("control", f"{m['control_hz']:g} Hz, action space {m['action_space']}, teleop {m['teleop_device']}"),
        ("time", f"{m['start_time']} .. {m['end_time'] or '(not closed)'}"),
        ("cadence", json.dumps(i["cadence"]) if i["cadence"] else "(none recorded)"),
        ("steps", dur),
        ("file size", _human_bytes(i["file_bytes"])),
    ]
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    lines.append("cameras:")
    head = ("name", "encoding", "size", "frames", "dropped", "bytes", "B/frame", "depth", "intrinsics")
    table = [head] + [
        (
            c["name"],
            c["encoding"],
            f"{c['width']}x{c['height']}",
            str(c["frames"]),
            str(c["dropped"]),
            _human_bytes(c["bytes"]),
            f"{c['mean_bytes_per_frame']:.0f}",
            _human_bytes(c["depth_bytes"]) if c["depth"] else "no",
            "yes" if c["intrinsics"] else "MISSING",
        )
        for c in i["cameras"]
    ]
    lines += _table(table)
    lines.append("fields:")
    lines += _table(
        [("path", "shape", "dtype")] + [(k, str(tuple(v["shape"])), v["dtype"]) for k, v in i["fields"].items()]
    )
    return "\n".join(lines)


def format_dataset_info(i: dict[str, Any]) -> str:
    lines = [
        f"dataset    {i['path']}",
        f"episodes   {i['episodes']}  ({i['success']} success, {i['failure']} failure, {i['unknown']} unknown; "
        f"{i['incomplete']} incomplete)",
        f"steps      {i['steps']}  ({i['hours']:.3f} h at the control rate)",
    ]
    if i["length"]:
        ln = i["length"]
        lines.append(f"length     min {ln['min']}  mean {ln['mean']:.1f}  max {ln['max']}")
    per_step = f", {_human_bytes(i['bytes_per_step'])}/step" if i["bytes_per_step"] else ""
    lines.append(f"size       {_human_bytes(i['total_bytes'])}{per_step}")
    for key in ("lab", "household", "scene", "operator", "task"):
        counts = i[f"per_{key}"]
        if counts:
            lines.append(f"{key + 's':<10} " + ", ".join(f"{k} ({v})" for k, v in sorted(counts.items())))
    for name, c in i["cameras"].items():
        lines.append(
            f"camera     {name}: {c['episodes']} episodes, {'/'.join(c['resolutions'])}, "
            f"{'/'.join(c['encodings'])}" + (f", depth in {c['depth']}" if c["depth"] else "")
        )
    if i["unreadable"]:
        lines.append(f"UNREADABLE ({len(i['unreadable'])} files, skipped):")
        lines += [f"  {u['error']}" for u in i["unreadable"]]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
