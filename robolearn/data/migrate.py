"""Upgrading episode files to the current schema version: the registered migrations (`schema.MIGRATIONS`)
run in a chain on a copy of the file that then replaces it (`edit.edit_atomically`); a file already current
is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from robolearn.data import schema
from robolearn.data.edit import UNREADABLE_ERRORS, attr_str, check_format, edit_atomically, one_line
from robolearn.data.errors import EpisodeError, Problem, SchemaVersionError
from robolearn.data.reader import list_episodes, open_h5


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
