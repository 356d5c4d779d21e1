"""Dataset toolkit: `info`, `relabel`, `merge` / `filter` and `migrate`.

Every command that changes an episode edits a private copy: the file is copied to a hidden temp file in
the same folder, the copy is modified with h5py, fsynced, and `os.replace`d over the original. A failure at
any point deletes the copy and leaves the original byte-identical. Because the replace installs a new
inode, editing a hard-linked episode (as `merge` makes them) never changes the other links.

Merge layout: an episode from source folder `SRC` lands at `OUT/<label>/<path relative to SRC>`, where
`<label>` is the source folder's name (`name_2`, `name_3`, ... when several sources share a name). `filter`
(one source) keeps the relative paths without a label. Episodes are hard-linked when possible, else copied.
A uuid already present (in `OUT` or an earlier source) with the same sha256 is skipped; with different
content the merge stops before writing anything and names both files. Existing files are never replaced.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import h5py
import numpy as np

from robolearn import __version__
from robolearn.config import command, opt, positional
from robolearn.data import schema
from robolearn.data.errors import EpisodeError, Problem, SchemaVersionError
from robolearn.data.reader import Episode, open_h5, read_attrs, list_episodes
from robolearn.data.writer import publish, utc_now
from robolearn.utils import fsync_path, write_text_atomic

T = TypeVar("T")
UNREADABLE_ERRORS = (EpisodeError, OSError, KeyError, ValueError, TypeError)

# ---- shared helpers ------------------------------------------------------------------------------------


def _temp_beside(path: Path, tag: str) -> Path:
    """A fresh hidden temp file next to `path` (same file system, so replace/link are atomic). Its name
    does not end in `.h5`, so dataset listings never pick it up."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{tag}.tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def edit_atomically(path: str | Path, edit: Callable[[h5py.File], T]) -> T:
    """Apply `edit(f)` to a copy of the episode at `path` opened r+, then atomically replace the original.

    Any exception (in the copy, the edit, the fsync or the replace) removes the copy and leaves the original
    untouched; so does a change of the original on disk while the edit ran.
    """
    path = Path(path)
    before = path.stat()
    tmp = _temp_beside(path, "edit")
    try:
        shutil.copy2(path, tmp)
        try:
            f = h5py.File(tmp, "r+")
        except OSError as e:
            raise EpisodeError(path, "file", f"cannot open a copy for editing: {e}") from None
        with f:
            result = edit(f)
        fsync_path(tmp)
        now = path.stat()
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            raise EpisodeError(path, "file", "changed on disk while it was being edited; nothing was replaced, "
                               "run the command again")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return result


def _attr_str(f: h5py.File, key: str, default: str = "") -> str:
    v = f.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def _check_format(f: h5py.File, path: Path) -> None:
    fmt = _attr_str(f, "format")
    if fmt != schema.FORMAT_NAME:
        raise EpisodeError(path, "attrs/format", f"expected {schema.FORMAT_NAME!r}, got {fmt!r}")


def _select(src: Path, filters: list[str] | None) -> list[Path]:
    """Episodes under `src`, optionally restricted by catalog filters such as `success=1`."""
    if not filters:
        return list_episodes(src)
    from robolearn.data import catalog  # lazy: the catalog is optional for everything else here

    select = getattr(catalog, "select_paths", None)
    if select is None:
        raise RuntimeError("metadata filters need robolearn.data.catalog.select_paths, which is not available")
    return [Path(p) for p in select(src, list(filters))]


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _success_word(v: int) -> str:
    return {1: "success", 0: "failure"}.get(int(v), "unknown")


# ---- info ----------------------------------------------------------------------------------------------

META_KEYS = ("lab", "household", "scene_id", "operator", "robot_type", "robot_serial", "task", "success",
             "label_source", "complete", "schema_version", "control_hz", "action_space", "teleop_device",
             "start_time", "end_time", "software_version")


def episode_info(path: str | Path) -> dict[str, Any]:
    """Everything about one episode: metadata, length, camera streams, field shapes and file size."""
    path = Path(path)
    with Episode(path) as ep:
        a = ep.attrs
        n, hz = ep.num_steps, float(a["control_hz"])
        start, end = ep.array(schema.CONTROL_FIELDS[0].path), ep.array(schema.CONTROL_FIELDS[-1].path)
        measured = float(end[-1] - start[0]) / 1e9 if n and start[0] and end[-1] else None
        cams = [_camera_info(ep, c) for c in ep.cameras]
        info: dict[str, Any] = {
            "kind": "episode", "path": str(path), "uuid": a.get("uuid", ""),
            "metadata": {k: a.get(k) for k in META_KEYS},
            "language": ep.language, "instructions": ep.instructions(),
            "cadence": a.get("cadence") or {}, "label_history": a.get("label_history") or [],
            "num_steps": n, "duration_s": n / hz if hz else None, "measured_duration_s": measured,
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
        "name": cam.name, "role": cam.role, "encoding": s.encoding, "width": cam.width, "height": cam.height,
        "frames": present, "dropped": int(ep.camera_field(cam.name, "dropped").sum()),
        "bytes": int(lengths.sum()), "mean_bytes_per_frame": float(lengths.sum() / present) if present else 0.0,
        "depth": bool(cam.depth), "intrinsics": cam.intrinsics is not None,
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
            unreadable.append({"path": str(p), "error": _one_line(e)})
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
        "kind": "dataset", "path": str(root), "episodes": len(lengths), "steps": steps, "hours": hours,
        "success": outcome["success"], "failure": outcome["failure"], "unknown": outcome["unknown"],
        "incomplete": incomplete,
        "per_lab": dict(per["lab"]), "per_household": dict(per["household"]), "per_scene": dict(per["scene_id"]),
        "per_task": dict(per["task"]), "per_operator": dict(per["operator"]),
        "length": {"min": min(lengths), "mean": statistics.fmean(lengths), "max": max(lengths)} if lengths else None,
        "cameras": {k: {**v, "resolutions": sorted(v["resolutions"]), "encodings": sorted(v["encodings"])}
                    for k, v in sorted(cams.items())},
        "total_bytes": total_bytes, "bytes_per_step": total_bytes / steps if steps else None,
        "unreadable": unreadable,
    }


def info(path: str | Path) -> dict[str, Any]:
    """`episode_info` for a file, `dataset_info` for a folder."""
    p = Path(path)
    if not p.exists():
        raise EpisodeError(p, "file", "does not exist")
    return dataset_info(p) if p.is_dir() else episode_info(p)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def format_episode_info(i: dict[str, Any]) -> str:
    m = i["metadata"]
    dur = f"{i['num_steps']} ({i['duration_s']:.2f} s at {m['control_hz']:g} Hz"
    dur += f", measured {i['measured_duration_s']:.2f} s)" if i["measured_duration_s"] is not None else ")"
    rows = [
        ("episode", i["path"]), ("uuid", i["uuid"]),
        ("where", f"lab {m['lab']} / household {m['household']} / scene {m['scene_id']}"),
        ("operator", m["operator"]), ("robot", f"{m['robot_type']} ({m['robot_serial']})"),
        ("task", m["task"]), ("instructions", " | ".join(i["instructions"])),
        ("success", f"{_success_word(m['success'])} (label source: {m['label_source']}, "
                    f"{len(i['label_history'])} relabel records)"),
        ("complete", "yes" if m["complete"] else "NO (salvaged or never closed)"),
        ("schema", f"{m['schema_version']} (written by robolearn {m['software_version']})"),
        ("control", f"{m['control_hz']:g} Hz, action space {m['action_space']}, teleop {m['teleop_device']}"),
        ("time", f"{m['start_time']} .. {m['end_time'] or '(not closed)'}"),
        ("cadence", json.dumps(i["cadence"]) if i["cadence"] else "(none recorded)"),
        ("steps", dur), ("file size", _human_bytes(i["file_bytes"])),
    ]
    w = max(len(k) for k, _ in rows)
    lines = [f"{k:<{w}}  {v}" for k, v in rows]
    lines.append("cameras:")
    head = ("name", "encoding", "size", "frames", "dropped", "bytes", "B/frame", "depth", "intrinsics")
    table = [head] + [(c["name"], c["encoding"], f"{c['width']}x{c['height']}", str(c["frames"]),
                       str(c["dropped"]), _human_bytes(c["bytes"]), f"{c['mean_bytes_per_frame']:.0f}",
                       _human_bytes(c["depth_bytes"]) if c["depth"] else "no",
                       "yes" if c["intrinsics"] else "MISSING") for c in i["cameras"]]
    lines += _table(table)
    lines.append("fields:")
    lines += _table([("path", "shape", "dtype")] + [(k, str(tuple(v["shape"])), v["dtype"])
                                                     for k, v in i["fields"].items()])
    return "\n".join(lines)


def format_dataset_info(i: dict[str, Any]) -> str:
    lines = [f"dataset    {i['path']}",
             f"episodes   {i['episodes']}  ({i['success']} success, {i['failure']} failure, {i['unknown']} unknown; "
             f"{i['incomplete']} incomplete)",
             f"steps      {i['steps']}  ({i['hours']:.3f} h at the control rate)"]
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
        lines.append(f"camera     {name}: {c['episodes']} episodes, {'/'.join(c['resolutions'])}, "
                     f"{'/'.join(c['encodings'])}" + (f", depth in {c['depth']}" if c["depth"] else ""))
    if i["unreadable"]:
        lines.append(f"UNREADABLE ({len(i['unreadable'])} files, skipped):")
        lines += [f"  {u['error']}" for u in i["unreadable"]]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]


# ---- relabel -------------------------------------------------------------------------------------------

SUCCESS_WORDS = {"true": 1, "1": 1, "yes": 1, "success": 1, "false": 0, "0": 0, "no": 0, "failure": 0,
                 "unknown": -1, "-1": -1, "none": -1}


def parse_success(value: bool | int | str | None) -> int | None:
    """None -> leave unchanged; True/False/-1 or true|false|unknown -> 1/0/-1."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)) and int(value) in (-1, 0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in SUCCESS_WORDS:
        return SUCCESS_WORDS[value.strip().lower()]
    raise ValueError(f"success must be true, false or unknown, got {value!r}")


@dataclass
class RelabelResult:
    path: Path
    uuid: str
    changes: list[dict[str, Any]]


def _planned_changes(f: h5py.File, success: int | None, language: list[str] | None) -> list[str]:
    todo = []
    if success is not None and int(f.attrs["success"]) != success:
        todo.append("success")
    if language is not None and _instructions(f) != language:
        todo.append("language")
    return todo


def _instructions(f: h5py.File) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in f["language/instructions"][()]]


def _append_history(f: h5py.File, records: list[dict[str, Any]]) -> None:
    raw = _attr_str(f, "label_history", "[]") or "[]"
    f.attrs["label_history"] = json.dumps(json.loads(raw) + records)


def _apply_relabel(f: h5py.File, path: Path, success: int | None, language: list[str] | None, who: str,
                   source: str, now: str) -> list[dict[str, Any]]:
    read_attrs(f, path)  # format, version and JSON attributes must be sane before we touch anything
    records: list[dict[str, Any]] = []
    todo = _planned_changes(f, success, language)
    if "success" in todo:
        old = int(f.attrs["success"])
        f.attrs["success"] = np.int64(success)
        f.attrs["label_source"] = f"relabel:{who}"
        records.append({"field": "success", "old": old, "new": success, "who": who, "time": now})
    if "language" in todo:
        assert language is not None
        old_instr = _instructions(f)
        anns = json.loads(_attr_str(f, "language_annotations", "[]") or "[]")
        anns += [{"text": t, "source": source, "annotator": who, "time": now} for t in language]
        f.attrs["language_annotations"] = json.dumps(anns)
        del f["language/instructions"]
        f.create_dataset("language/instructions", data=np.array(language, dtype=h5py.string_dtype()))
        active = f["language/active"]
        idx = active[()]
        if idx.size and (idx >= len(language)).any():  # indices that no longer exist point at the first
            active[...] = np.where(idx >= len(language), 0, idx).astype(active.dtype)
        records.append({"field": "language", "old": old_instr, "new": list(language), "who": who, "time": now})
    if records:
        _append_history(f, records)
    return records


def relabel_file(path: str | Path, success: bool | int | str | None = None, language: list[str] | None = None,
                 who: str | None = None, source: str = "relabel") -> RelabelResult:
    """Relabel one episode safely (copy, edit, fsync, atomic replace). No-op changes leave the file untouched."""
    path = Path(path)
    succ = parse_success(success)
    lang = _check_language(language)
    who = who or _current_user()
    with open_h5(path) as f:
        read_attrs(f, path)
        uuid = _attr_str(f, "uuid")
        todo = _planned_changes(f, succ, lang)
    if not todo:
        return RelabelResult(path, uuid, [])
    now = utc_now()
    records = edit_atomically(path, lambda f: _apply_relabel(f, path, succ, lang, who, source, now))
    return RelabelResult(path, uuid, records)


def relabel(paths: str | Path | Iterable[str | Path], success: bool | int | str | None = None,
            language: list[str] | None = None, who: str | None = None, source: str = "relabel",
            filters: list[str] | None = None, log: bool = True) -> list[RelabelResult]:
    """Relabel episodes: one file, a list of files, or every (filtered) episode of a dataset folder.

    Each file is rewritten atomically; each change is appended to the file's `label_history` and, when
    `log`, as one JSON line to `relabel.log` in the folder given (or next to each file given).
    Stops at the first failing file (earlier files keep their new labels, the failing one is untouched).
    """
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if success is None and language is None:
        raise ValueError("nothing to relabel: give success and/or language")
    who = who or _current_user()
    targets: list[tuple[Path, Path]] = []  # (episode, folder whose relabel.log records it)
    for item in items:
        if item.is_dir():
            targets += [(p, item) for p in _select(item, filters)]
        elif filters:
            raise ValueError(f"{item}: filters apply to dataset folders, not to single files")
        else:
            targets.append((item, item.parent))
    results = []
    for ep, log_root in targets:
        r = relabel_file(ep, success, language, who, source)
        if r.changes and log:
            log_relabel(log_root, r, who)
        results.append(r)
    return results


def _check_language(language: list[str] | None) -> list[str] | None:
    if language is None:
        return None
    lang = [str(t).strip() for t in language]
    if not lang or any(not t for t in lang):
        raise ValueError(f"language needs at least one non-empty instruction, got {language!r}")
    return lang


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def log_relabel(root: Path, r: RelabelResult, who: str) -> None:
    line = json.dumps({"time": utc_now(), "file": str(r.path), "uuid": r.uuid, "who": who, "changes": r.changes})
    with open(root / "relabel.log", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ---- merge / filter ------------------------------------------------------------------------------------


class MergeConflictError(EpisodeError):
    """A merge would mix different episodes under one uuid, or overwrite an existing file."""


@dataclass
class MergeReport:
    out: Path
    added: list[dict[str, str]] = field(default_factory=list)  # uuid, source, dest, how (link|copy)
    duplicates: list[dict[str, str]] = field(default_factory=list)  # uuid, source, kept
    unreadable: list[dict[str, str]] = field(default_factory=list)  # path, error
    sources: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        how = Counter(a["how"] for a in self.added)
        return {"added": len(self.added), "linked": how["link"], "copied": how["copy"],
                "duplicates": len(self.duplicates), "unreadable": len(self.unreadable)}


def _read_uuid(path: Path) -> str:
    with open_h5(path) as f:
        _check_format(f, path)
        uid = _attr_str(f, "uuid")
    if not uid:
        raise EpisodeError(path, "attrs/uuid", "missing or empty; expected the episode's uuid")
    return uid


class _Hasher:
    def __init__(self) -> None:
        self._cache: dict[Path, str] = {}

    def sha256(self, path: Path) -> str:
        if path not in self._cache:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._cache[path] = h.hexdigest()
        return self._cache[path]

    def same(self, a: Path, b: Path) -> bool:
        if os.path.samefile(a, b):
            return True
        if a.stat().st_size != b.stat().st_size:
            return False
        return self.sha256(a) == self.sha256(b)


def _source_labels(sources: list[Path]) -> list[str]:
    labels, used = [], Counter[str]()
    for s in sources:
        base = (s if s.is_dir() else s.parent).resolve().name or "source"
        used[base] += 1
        labels.append(base if used[base] == 1 else f"{base}_{used[base]}")
    return labels


def _relative(p: Path, root: Path) -> Path:
    try:
        return p.resolve().relative_to(root.resolve())
    except ValueError:
        return Path(p.name)


def merge(sources: list[str | Path], out: str | Path, filters: list[str] | None = None, link: bool = True,
          prefix_sources: bool = True) -> MergeReport:
    """Build dataset folder `out` from `sources` (folders or episode files); see the module docstring for
    naming, dedup and no-overwrite rules. Conflicts are found before anything is written. Returns a report;
    the same is recorded in `out/merge.json`. Re-running after an interruption resumes (what is already in
    `out` is recognised by uuid + sha256)."""
    srcs, out = [Path(s) for s in sources], Path(out)
    if not srcs:
        raise ValueError("merge needs at least one source")
    for s in srcs:
        if not s.exists():
            raise EpisodeError(s, "file", "source does not exist")
        if out.exists() and s.resolve() == out.resolve():
            raise ValueError(f"{s}: a source cannot be the output folder")
    labels = _source_labels(srcs) if prefix_sources else [""] * len(srcs)
    hasher, report = _Hasher(), MergeReport(out)
    seen: dict[str, Path] = {}  # uuid -> file that holds it (already in out, or planned)
    if out.exists():
        for p in list_episodes(out):
            try:
                seen.setdefault(_read_uuid(p), p)
            except UNREADABLE_ERRORS:
                pass  # not ours to judge here; its path is still protected from being overwritten
    plan: list[tuple[str, Path, Path]] = []
    planned_dests: set[Path] = set()
    problems: list[Problem] = []
    for src, label in zip(srcs, labels):
        root = src if src.is_dir() else src.parent
        found = _select(src, filters)
        stats = {"path": str(src), "label": label, "found": len(found), "added": 0, "duplicates": 0, "unreadable": 0}
        for p in found:
            try:
                uid = _read_uuid(p)
            except UNREADABLE_ERRORS as e:
                report.unreadable.append({"path": str(p), "error": _one_line(e)})
                stats["unreadable"] += 1
                continue
            dest = out / label / _relative(p, root) if label else out / _relative(p, root)
            if uid in seen:
                other = seen[uid]
                if hasher.same(p, other):
                    report.duplicates.append({"uuid": uid, "source": str(p), "kept": str(other)})
                    stats["duplicates"] += 1
                else:
                    problems.append(Problem(str(p), "attrs/uuid", f"uuid {uid} is also used by {other} with "
                                            f"different content (sha256 {hasher.sha256(p)[:12]} vs "
                                            f"{hasher.sha256(other)[:12]}); expected one episode per uuid"))
                continue
            if dest.exists() or dest.is_symlink() or dest in planned_dests:
                problems.append(Problem(str(dest), "file", f"already exists (wanted for {p}); merge never "
                                        "overwrites files"))
                continue
            seen[uid] = p
            planned_dests.add(dest)
            plan.append((uid, p, dest))
            stats["added"] += 1
        report.sources.append(stats)
    if problems:
        raise MergeConflictError(out, problems[0].field, f"merge refused, nothing written: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), problems)
    out.mkdir(parents=True, exist_ok=True)
    for i, (uid, src_path, dest) in enumerate(plan):
        try:
            how = _place(src_path, dest, link)
        except OSError as e:
            raise EpisodeError(dest, "file", f"placing {src_path} failed after {i} of {len(plan)} episodes ({e}); "
                               "run the merge again to resume") from e
        report.added.append({"uuid": uid, "source": str(src_path), "dest": str(dest.relative_to(out)), "how": how})
    for d in {dest.parent for _, _, dest in plan}:
        fsync_path(d)
    _write_merge_json(out, report, {"filters": list(filters or []), "link": link, "prefix_sources": prefix_sources})
    return report


def filter_dataset(source: str | Path, out: str | Path, filters: list[str], link: bool = True) -> MergeReport:
    """Copy (hard-link) the episodes of `source` that match `filters` into a new folder, same relative paths."""
    if not filters:
        raise ValueError("filter needs at least one --where condition, e.g. success=1")
    return merge([source], out, filters=filters, link=link, prefix_sources=False)


def _place(src: Path, dest: Path, link: bool) -> str:
    """Hard-link `src` to `dest` (or copy it when linking is impossible); never replaces `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dest)
            return "link"
        except FileExistsError:
            raise
        except OSError:
            pass  # other file system, no hard-link support, link limit: copy instead
    tmp = _temp_beside(dest, "copy")
    try:
        shutil.copy2(src, tmp)
        fsync_path(tmp)
        publish(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return "copy"


def _write_merge_json(out: Path, report: MergeReport, config: dict[str, Any]) -> Path:
    """`out/merge.json`: the latest merge at the top level, earlier merges into `out` under `previous`."""
    path = out / "merge.json"
    previous: list[dict[str, Any]] = []
    if path.exists():
        try:
            old = json.loads(path.read_text())
            previous = old.pop("previous", []) + [old]
        except (OSError, json.JSONDecodeError):
            previous = []
    record = {"time": utc_now(), "robolearn_version": __version__, "out": str(out), "config": config,
              "sources": report.sources, "counts": report.counts(), "episodes": report.added,
              "duplicates": report.duplicates, "unreadable": report.unreadable, "previous": previous}
    return write_text_atomic(path, json.dumps(record, indent=2) + "\n")


# ---- migrate -------------------------------------------------------------------------------------------


@dataclass
class MigrateReport:
    upgraded: list[dict[str, Any]] = field(default_factory=list)  # path, from, to, steps
    current: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _version_tuple(v: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        return None


def migration_steps(path: Path, version: str) -> list[str]:
    """The versions `path` passes through to reach schema.SCHEMA_VERSION; SchemaVersionError if no chain."""
    try:
        return schema.migration_path(version)
    except ValueError:
        vt, ct = _version_tuple(version), _version_tuple(schema.SCHEMA_VERSION)
        hint = ("the file is newer than this robolearn; upgrade robolearn" if vt and ct and vt > ct else
                f"no migration chain to {schema.SCHEMA_VERSION!r} starts there "
                f"(migrations known from: {sorted(schema.MIGRATIONS) or 'none'})")
        raise SchemaVersionError(path, "attrs/schema_version", f"unknown schema version {version!r}: {hint}") from None


def migrate_file(path: str | Path, dry_run: bool = False) -> list[str]:
    """Upgrade one file to schema.SCHEMA_VERSION on a temp copy + atomic replace. Returns the versions passed
    through (empty when already current: the file is not touched)."""
    path = Path(path)
    with open_h5(path) as f:
        _check_format(f, path)
        version = _attr_str(f, "schema_version")
    steps = migration_steps(path, version)
    if not steps or dry_run:
        return steps

    def run_chain(f: h5py.File) -> None:
        v = _attr_str(f, "schema_version")
        while v != schema.SCHEMA_VERSION:
            nxt, fn = schema.MIGRATIONS[v]
            try:
                fn(f)
            except Exception as e:
                raise EpisodeError(path, "attrs/schema_version", f"migration {v} -> {nxt} failed: "
                                   f"{type(e).__name__}: {e}; the file is unchanged") from e
            f.attrs["schema_version"] = nxt
            v = nxt

    edit_atomically(path, run_chain)
    return steps


def migrate(path: str | Path, dry_run: bool = False) -> MigrateReport:
    """Upgrade every episode under `path` (a file or a folder). Problems are collected per file; the other
    files still migrate."""
    report = MigrateReport()
    for p in list_episodes(path):
        try:
            with open_h5(p) as f:
                old = _attr_str(f, "schema_version")
            steps = migrate_file(p, dry_run=dry_run)
        except UNREADABLE_ERRORS as e:
            pe = e.problems if isinstance(e, EpisodeError) else [Problem(str(p), "file", _one_line(e))]
            report.problems += pe
            continue
        if steps:
            report.upgraded.append({"path": str(p), "from": old, "to": steps[-1], "steps": steps})
        else:
            report.current.append(str(p))
    return report


# ---- CLI -----------------------------------------------------------------------------------------------


def _fail(cmd: str, e: BaseException) -> int:
    problems = e.problems if isinstance(e, EpisodeError) else []
    print(f"robolearn data {cmd}: {_one_line(e)}", file=sys.stderr)
    for p in problems[1:]:
        print(f"  {p}", file=sys.stderr)
    return 1


@dataclass
class InfoCommand:
    path: Path = positional(help="episode file or dataset folder")
    json: bool = opt(False, help="print JSON instead of text")


@command("data", "info")
def info_cmd(cfg: InfoCommand) -> int:
    """Summarise one episode (metadata, streams, fields) or a dataset folder (counts, lengths, sizes)."""
    try:
        i = info(cfg.path)
    except UNREADABLE_ERRORS as e:
        return _fail("info", e)
    if cfg.json:
        print(json.dumps(i, indent=2, default=str))
    else:
        print(format_dataset_info(i) if i["kind"] == "dataset" else format_episode_info(i))
    return 1 if i.get("unreadable") else 0


@dataclass
class RelabelCommand:
    path: list[Path] = positional(help="episode files, or a dataset folder (with --where to select)")
    success: str | None = opt(None, help="new outcome: true | false | unknown")
    language: list[str] | None = opt(None, help="new instruction(s); replace language/instructions")
    who: str = opt("", help="who relabels (default: the current user)")
    source: str = opt("relabel", help="annotation source recorded with new language (relabel, vlm, ...)")
    where: list[str] = opt(default_factory=list, help="catalog filters when PATH is a folder, e.g. task~drawer")


@command("data", "relabel")
def relabel_cmd(cfg: RelabelCommand) -> int:
    """Relabel success and/or language instructions safely (atomic rewrite, history kept)."""
    try:
        results = relabel(cfg.path, success=parse_success(cfg.success), language=cfg.language,
                          who=cfg.who or None, source=cfg.source, filters=cfg.where or None)
    except (*UNREADABLE_ERRORS, RuntimeError) as e:
        return _fail("relabel", e)
    changed = [r for r in results if r.changes]
    for r in changed:
        print(f"{r.path}: " + "; ".join(f"{c['field']} {c['old']!r} -> {c['new']!r}" for c in r.changes))
    print(f"relabelled {len(changed)} of {len(results)} episodes ({len(results) - len(changed)} already had "
          "these labels)")
    return 0


@dataclass
class MergeCommand:
    sources: list[Path] = positional(help="source dataset folders (or episode files)")
    out: Path | None = opt(None, help="new dataset folder (created; existing files are never overwritten)")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1 household=house_1")
    copy: bool = opt(False, help="copy files instead of hard-linking them")


def _print_merge(report: MergeReport) -> int:
    c = report.counts()
    for s in report.sources:
        print(f"  {s['path']} -> {report.out / s['label'] if s['label'] else report.out}: {s['found']} found, "
              f"{s['added']} added, {s['duplicates']} duplicates skipped, {s['unreadable']} unreadable")
    for u in report.unreadable:
        print(f"  unreadable, skipped: {u['error']}")
    print(f"{c['added']} episodes into {report.out} ({c['linked']} hard-linked, {c['copied']} copied), "
          f"{c['duplicates']} duplicates skipped; see {report.out / 'merge.json'}")
    return 1 if report.unreadable else 0


@command("data", "merge")
def merge_cmd(cfg: MergeCommand) -> int:
    """Merge datasets into a new folder: hard links, uuid dedup, never overwrites."""
    if cfg.out is None:
        print("robolearn data merge: --out DIR is required", file=sys.stderr)
        return 2
    try:
        report = merge(cfg.sources, cfg.out, filters=cfg.where or None, link=not cfg.copy)
    except (*UNREADABLE_ERRORS, RuntimeError) as e:
        return _fail("merge", e)
    return _print_merge(report)


@dataclass
class FilterCommand:
    source: Path = positional(help="source dataset folder")
    out: Path | None = opt(None, help="new dataset folder")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1")
    copy: bool = opt(False, help="copy files instead of hard-linking them")


@command("data", "filter")
def filter_cmd(cfg: FilterCommand) -> int:
    """Write the episodes matching --where into a new folder (hard links, same relative paths)."""
    if cfg.out is None or not cfg.where:
        print("robolearn data filter: --out DIR and at least one --where condition are required", file=sys.stderr)
        return 2
    try:
        report = filter_dataset(cfg.source, cfg.out, cfg.where, link=not cfg.copy)
    except (*UNREADABLE_ERRORS, RuntimeError) as e:
        return _fail("filter", e)
    return _print_merge(report)


@dataclass
class MigrateCommand:
    path: Path = positional(help="episode file or dataset folder")
    dry_run: bool = opt(False, help="only report what would be upgraded")


@command("data", "migrate")
def migrate_cmd(cfg: MigrateCommand) -> int:
    """Upgrade episode files to the current schema version (temp copy + atomic replace)."""
    if not cfg.path.exists():
        return _fail("migrate", EpisodeError(cfg.path, "file", "does not exist"))
    report = migrate(cfg.path, dry_run=cfg.dry_run)
    verb = "would upgrade" if cfg.dry_run else "upgraded"
    for u in report.upgraded:
        print(f"{u['path']}: {verb} {u['from']} -> {' -> '.join(u['steps'])}")
    for p in report.problems:
        print(f"ERROR {p}", file=sys.stderr)
    print(f"{verb} {len(report.upgraded)}, already at {schema.SCHEMA_VERSION}: {len(report.current)}, "
          f"failed: {len(report.problems)}")
    return 1 if report.problems else 0
