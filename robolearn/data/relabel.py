"""Relabelling episodes: success and/or language instructions, each file rewritten atomically
(`edit.edit_atomically`), each change appended to the file's `label_history` and to `relabel.log`.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.data.edit import attr_str, edit_atomically, select_episodes
from robolearn.data.reader import open_h5, read_attrs
from robolearn.data.writer import utc_now

SUCCESS_WORDS = {
    "true": 1,
    "1": 1,
    "yes": 1,
    "success": 1,
    "false": 0,
    "0": 0,
    "no": 0,
    "failure": 0,
    "unknown": -1,
    "-1": -1,
    "none": -1,
}


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
    raw = attr_str(f, "label_history", "[]") or "[]"
    f.attrs["label_history"] = json.dumps(json.loads(raw) + records)


def _apply_relabel(
    f: h5py.File, path: Path, success: int | None, language: list[str] | None, who: str, source: str, now: str
) -> list[dict[str, Any]]:
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
        anns = json.loads(attr_str(f, "language_annotations", "[]") or "[]")
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


def relabel_file(
    path: str | Path,
    success: bool | int | str | None = None,
    language: list[str] | None = None,
    who: str | None = None,
    source: str = "relabel",
) -> RelabelResult:
    """Relabel one episode safely (copy, edit, fsync, atomic replace). No-op changes leave the file untouched."""
    path = Path(path)
    succ = parse_success(success)
    lang = _check_language(language)
    who = who or current_user()
    with open_h5(path) as f:
        read_attrs(f, path)
        uuid = attr_str(f, "uuid")
        todo = _planned_changes(f, succ, lang)
    if not todo:
        return RelabelResult(path, uuid, [])
    now = utc_now()
    records = edit_atomically(path, lambda f: _apply_relabel(f, path, succ, lang, who, source, now))
    return RelabelResult(path, uuid, records)


def relabel(
    paths: str | Path | Iterable[str | Path],
    success: bool | int | str | None = None,
    language: list[str] | None = None,
    who: str | None = None,
    source: str = "relabel",
    filters: list[str] | None = None,
    log: bool = True,
) -> list[RelabelResult]:
    """Relabel episodes: one file, a list of files, or every (filtered) episode of a dataset folder.

    Each file is rewritten atomically; each change is appended to the file's `label_history` and, when
    `log`, as one JSON line to `relabel.log` in the folder given (or next to each file given).
    Stops at the first failing file (earlier files keep their new labels, the failing one is untouched).
    """
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if success is None and language is None:
        raise ValueError("nothing to relabel: give success and/or language")
    who = who or current_user()
    targets: list[tuple[Path, Path]] = []  # (episode, folder whose relabel.log records it)
    for item in items:
        if item.is_dir():
            targets += [(p, item) for p in select_episodes(item, filters)]
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


def current_user() -> str:
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
