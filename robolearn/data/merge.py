"""Merging datasets into a new folder (`merge`), and writing the episodes matching catalog filters into a new
folder (`filter_dataset`).

Layout: an episode from source folder `SRC` lands at `OUT/<label>/<path relative to SRC>`, where `<label>`
is the source folder's name (`name_2`, `name_3`, ... when several sources share a name). `filter` (one
source) keeps the relative paths without a label. Episodes are hard-linked when possible, else copied. A
uuid already present (in `OUT` or an earlier source) with the same sha256 is skipped; with different content
the merge stops before writing anything and names both files. Existing files are never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robolearn import __version__
from robolearn.data.edit import UNREADABLE_ERRORS, attr_str, check_format, select_episodes, temp_beside
from robolearn.data.errors import EpisodeError, Problem
from robolearn.data.reader import list_episodes, open_h5
from robolearn.data.writer import publish, utc_now
from robolearn.utils import fsync_path, one_line, write_text_atomic


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
        return {
            "added": len(self.added),
            "linked": how["link"],
            "copied": how["copy"],
            "duplicates": len(self.duplicates),
            "unreadable": len(self.unreadable),
        }


def _read_uuid(path: Path) -> str:
    with open_h5(path) as f:
        check_format(f, path)
        uid = attr_str(f, "uuid")
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


def merge(
    sources: list[str | Path],
    out: str | Path,
    filters: list[str] | None = None,
    link: bool = True,
    prefix_sources: bool = True,
) -> MergeReport:
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
        found = select_episodes(src, filters)
        stats = {"path": str(src), "label": label, "found": len(found), "added": 0, "duplicates": 0, "unreadable": 0}
        for p in found:
            try:
                uid = _read_uuid(p)
            except UNREADABLE_ERRORS as e:
                report.unreadable.append({"path": str(p), "error": one_line(e)})
                stats["unreadable"] += 1
                continue
            dest = out / label / _relative(p, root) if label else out / _relative(p, root)
            if uid in seen:
                other = seen[uid]
                if hasher.same(p, other):
                    report.duplicates.append({"uuid": uid, "source": str(p), "kept": str(other)})
                    stats["duplicates"] += 1
                else:
                    problems.append(
                        Problem(
                            str(p),
                            "attrs/uuid",
                            f"uuid {uid} is also used by {other} with "
                            f"different content (sha256 {hasher.sha256(p)[:12]} vs "
                            f"{hasher.sha256(other)[:12]}); expected one episode per uuid",
                        )
                    )
                continue
            if dest.exists() or dest.is_symlink() or dest in planned_dests:
                problems.append(
                    Problem(str(dest), "file", f"already exists (wanted for {p}); merge never overwrites files")
                )
                continue
            seen[uid] = p
            planned_dests.add(dest)
            plan.append((uid, p, dest))
            stats["added"] += 1
        report.sources.append(stats)
    if problems:
        raise MergeConflictError(
            out,
            problems[0].field,
            f"merge refused, nothing written: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            problems,
        )
    out.mkdir(parents=True, exist_ok=True)
    for i, (uid, src_path, dest) in enumerate(plan):
        try:
            how = _place(src_path, dest, link)
        except OSError as e:
            raise EpisodeError(
                dest,
                "file",
                f"placing {src_path} failed after {i} of {len(plan)} episodes ({e}); run the merge again to resume",
            ) from e
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
    tmp = temp_beside(dest, "copy")
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
    record = {
        "time": utc_now(),
        "robolearn_version": __version__,
        "out": str(out),
        "config": config,
        "sources": report.sources,
        "counts": report.counts(),
        "episodes": report.added,
        "duplicates": report.duplicates,
        "unreadable": report.unreadable,
        "previous": previous,
    }
    return write_text_atomic(path, json.dumps(record, indent=2) + "\n")
