"""Upgrading episode files to the current schema version: the registered migrations (`schema.MIGRATIONS`)
run in a chain on a copy of the file that then replaces it (`edit.edit_atomically`, which also refreshes the
content CRC of files at schema >= 1.1); a file already current is not touched.

Migrations: 1.0 -> 1.1 `add_checksums` (fletcher32 on numeric datasets, a CRC32 per frame, the content CRC);
1.1 -> 1.2 `add_absent_streams` (the `absent_streams` attribute: `{}`, every stream of a 1.1 file is present).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.data import schema
from robolearn.data.checksum import NUMERIC_KW, frame_crc
from robolearn.data.edit import UNREADABLE_ERRORS, attr_str, check_format, edit_atomically
from robolearn.data.errors import EpisodeError, Problem, SchemaVersionError
from robolearn.data.reader import list_episodes, open_h5
from robolearn.utils import one_line


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


# ---- 1.0 -> 1.1: checksums ------------------------------------------------------------------------------
def _with_fletcher32(f: h5py.File, path: str) -> None:
    """Recreate dataset `path` with the fletcher32 filter (same data, chunking, fill value, attributes)."""
    old = f[path]
    if old.fletcher32:
        return
    data, attrs = old[()], dict(old.attrs)
    kw = {
        "chunks": old.chunks or True,
        "maxshape": old.maxshape if old.chunks else None,
        "compression": old.compression,
        "compression_opts": old.compression_opts,
    }
    if old.fillvalue is not None:
        kw["fillvalue"] = old.fillvalue
    del f[path]
    ds = f.create_dataset(path, data=data, dtype=data.dtype, **kw, **NUMERIC_KW)
    ds.attrs.update(attrs)


def add_checksums(f: h5py.File) -> None:
    """Schema 1.0 -> 1.1: fletcher32 on every numeric per-step dataset and byte-stream index, a `crc32` dataset
    per byte stream (the CRC32 of each frame's current bytes) and the root `content_crc32` (set by
    edit.edit_atomically once the version attribute is updated). Checksums certify the bytes as they are now:
    validate a file before migrating it."""
    paths = [fld.path for fld in schema.STEP_FIELDS]
    cams = f.get("cameras")
    streams = []
    for name in cams.keys() if isinstance(cams, h5py.Group) else []:
        g = schema.camera_group(name)
        paths += [f"{g}/{fld.path}" for fld in schema.CAMERA_STEP_FIELDS]
        for s in ("rgb", "depth"):
            if isinstance(f.get(f"{g}/{s}/index"), h5py.Dataset) and isinstance(f.get(f"{g}/{s}/data"), h5py.Dataset):
                streams.append(f"{g}/{s}")
                paths.append(f"{g}/{s}/index")
    for p in paths:
        if isinstance(f.get(p), h5py.Dataset):
            _with_fletcher32(f, p)
    for s in streams:
        index, data = f[f"{s}/index"][()], f[f"{s}/data"]
        crc = np.array(
            [frame_crc(data[int(o) : int(o) + int(n)].tobytes()) if n > 0 else 0 for o, n in index], np.uint32
        )
        if schema.FRAME_CRC in f[s]:
            del f[f"{s}/{schema.FRAME_CRC}"]
        f[s].create_dataset(schema.FRAME_CRC, data=crc, maxshape=(None,), chunks=(schema.INDEX_CHUNK,), **NUMERIC_KW)
    f.attrs[schema.CONTENT_CRC_ATTR] = np.int64(0)


schema.MIGRATIONS.setdefault("1.0", ("1.1", add_checksums))


# ---- 1.1 -> 1.2: absent streams ---------------------------------------------------------------------------
def add_absent_streams(f: h5py.File) -> None:
    """Schema 1.1 -> 1.2: the root `absent_streams` attribute, `{}`: before 1.2 the writer required every
    state field and action form, so a 1.1 file lacks none (a missing dataset there is damage, which validate
    reports, not absence)."""
    if schema.ABSENT_ATTR not in f.attrs:
        f.attrs[schema.ABSENT_ATTR] = "{}"


schema.MIGRATIONS.setdefault("1.1", ("1.2", add_absent_streams))


def migration_steps(path: Path, version: str) -> list[str]:
    """The versions `path` passes through to reach schema.SCHEMA_VERSION; SchemaVersionError if no chain."""
    try:
        return schema.migration_path(version)
    except ValueError:
        vt, ct = _version_tuple(version), _version_tuple(schema.SCHEMA_VERSION)
        hint = (
            "the file is newer than this robolearn; upgrade robolearn"
            if vt and ct and vt > ct
            else f"no migration chain to {schema.SCHEMA_VERSION!r} starts there "
            f"(migrations known from: {sorted(schema.MIGRATIONS) or 'none'})"
        )
        raise SchemaVersionError(path, "attrs/schema_version", f"unknown schema version {version!r}: {hint}") from None


def migrate_file(path: str | Path, dry_run: bool = False) -> list[str]:
    """Upgrade one file to schema.SCHEMA_VERSION on a temp copy + atomic replace. Returns the versions passed
    through (empty when already current: the file is not touched)."""
    path = Path(path)
    with open_h5(path) as f:
        check_format(f, path)
        version = attr_str(f, "schema_version")
    steps = migration_steps(path, version)
    if not steps or dry_run:
        return steps

    def run_chain(f: h5py.File) -> None:
        v = attr_str(f, "schema_version")
        while v != schema.SCHEMA_VERSION:
            nxt, fn = schema.MIGRATIONS[v]
            try:
                fn(f)
            except Exception as e:
                raise EpisodeError(
                    path,
                    "attrs/schema_version",
                    f"migration {v} -> {nxt} failed: {type(e).__name__}: {e}; the file is unchanged",
                ) from e
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
                old = attr_str(f, "schema_version")
            steps = migrate_file(p, dry_run=dry_run)
        except UNREADABLE_ERRORS as e:
            pe = e.problems if isinstance(e, EpisodeError) else [Problem(str(p), "file", one_line(e))]
            report.problems += pe
            continue
        if steps:
            report.upgraded.append({"path": str(p), "from": old, "to": steps[-1], "steps": steps})
        else:
            report.current.append(str(p))
    return report
