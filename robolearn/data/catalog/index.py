"""Building and refreshing a catalog: scanning the dataset folder, writing rows, and the incremental
`update()` that re-reads only files whose (size, mtime_ns) changed and drops rows of files that are gone.
`ensure_catalog` is the entry point the query and split functions use.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from robolearn.data import schema
from robolearn.data.catalog.entries import read_entry
from robolearn.data.catalog.table import (
    COLUMNS,
    _create_indexes,
    _drop_indexes,
    _resolve,
    _transaction,
    _utc_now,
    catalog_root,
    default_catalog,
    open_catalog,
)
from robolearn.data.errors import EpisodeError

QUARANTINE_DIR = "_quarantine"  # skipped, as by reader.list_episodes
COMMIT_EVERY = 2000  # files read per transaction: an interrupted first index keeps what it has done


@dataclass
class IndexReport:
    """What `update()` did."""

    catalog: Path
    root: Path
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (path, field, message), all current
    new_errors: int = 0  # of which found in this run
    unfinished: list[str] = field(default_factory=list)
    duplicate_uuids: int = 0
    total: int = 0  # indexed episodes after the update
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.new_errors)

    def summary(self) -> str:
        return (
            f"{self.total} episodes indexed: added {self.added}, updated {self.updated}, removed "
            f"{self.removed}, unchanged {self.unchanged}, errors {len(self.errors)}, unfinished "
            f"{len(self.unfinished)} ({self.seconds:.2f} s)"
        )


def ensure_catalog(
    root_or_catalog: str | Path, catalog: str | Path | None = None, refresh: bool = True
) -> tuple[Path, Path, IndexReport | None]:
    """(catalog, root, report): given a dataset folder, build or refresh its catalog (a no-op re-index only
    stats the files); given a catalog file, use it as it is."""
    cat, root = _resolve(root_or_catalog, catalog)
    if root is None:
        return cat, catalog_root(cat), None
    report = update(root, cat) if refresh or not cat.is_file() else None
    return cat, root, report


# ---- scanning --------------------------------------------------------------------------------------------
def scan(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """({relative path: (size, mtime_ns)} of episode files, same for `.partial` files) under root. Follows
    the rules of reader.list_episodes: `*.h5` files, recursively, skipping `_quarantine` folders."""
    episodes: dict[str, tuple[int, int]] = {}
    partial: dict[str, tuple[int, int]] = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                if e.name != QUARANTINE_DIR:
                    stack.append((Path(e.path), f"{prefix}{e.name}/"))
                continue
            is_ep, is_partial = e.name.endswith(schema.EPISODE_SUFFIX), e.name.endswith(schema.TMP_SUFFIX)
            if not (is_ep or is_partial):
                continue
            try:
                st = e.stat()
            except OSError:  # vanished or a broken link
                continue
            if not e.is_file():
                continue
            (episodes if is_ep else partial)[prefix + e.name] = (st.st_size, st.st_mtime_ns)
    return episodes, partial


# ---- writing rows ----------------------------------------------------------------------------------------
_INSERT = f"INSERT OR REPLACE INTO episodes ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def write_entries(conn: sqlite3.Connection, rows: Sequence[tuple]) -> None:
    """Insert or replace catalog rows (COLUMNS order) and clear any error recorded for their paths. The one
    code path through which both `update()` and bulk loads write episodes; call inside a transaction."""
    conn.executemany(_INSERT, rows)
    conn.executemany("DELETE FROM errors WHERE path = ?", ((r[0],) for r in rows))


def bulk_load(catalog: str | Path, root: str | Path, rows: Sequence[tuple]) -> None:
    """Write many rows at once into a (new or existing) catalog; indexes are rebuilt once if it was empty."""
    conn = open_catalog(catalog, root)
    try:
        with _transaction(conn):
            empty = conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0] == 0
            if empty:
                _drop_indexes(conn)
            write_entries(conn, rows)
            _create_indexes(conn)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (_utc_now(),))
    finally:
        conn.close()


# ---- incremental update ----------------------------------------------------------------------------------
def update(
    root: str | Path,
    catalog: str | Path | None = None,
    rebuild: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Bring the catalog of `root` up to date: read new and changed files (by size and mtime_ns), drop rows
    of files that disappeared, record unreadable files in `errors` and `.partial` files in `unfinished`.
    Never raises for a bad episode file."""
    t0 = time.perf_counter()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder does not exist")
    catalog = Path(catalog) if catalog else default_catalog(root)
    report = IndexReport(catalog=catalog, root=root)
    conn = open_catalog(catalog, root, rebuild=rebuild)
    try:
        on_disk, partial = scan(root)
        known = {p: (s, m) for p, s, m in conn.execute("SELECT path, size, mtime_ns FROM episodes")}
        failed = {p: (s, m) for p, s, m in conn.execute("SELECT path, size, mtime_ns FROM errors")}
        gone = [p for p in known if p not in on_disk]
        gone_err = [p for p in failed if p not in on_disk]
        todo = sorted(p for p, sig in on_disk.items() if known.get(p) != sig and failed.get(p) != sig)
        report.removed = len(gone)
        report.unchanged = sum(1 for p, sig in on_disk.items() if known.get(p) == sig)
        with _transaction(conn):
            conn.executemany("DELETE FROM episodes WHERE path = ?", ((p,) for p in gone))
            conn.executemany("DELETE FROM errors WHERE path = ?", ((p,) for p in gone_err))
            conn.execute("DELETE FROM unfinished")
            conn.executemany("INSERT INTO unfinished VALUES (?, ?, ?)", ((p, s, m) for p, (s, m) in partial.items()))
        fresh = not known and len(todo) > COMMIT_EVERY
        if fresh:
            with _transaction(conn):
                _drop_indexes(conn)  # one index build at the end is much faster than per-row upkeep
        for start in range(0, len(todo), COMMIT_EVERY):
            batch = todo[start : start + COMMIT_EVERY]
            _index_batch(conn, root, batch, on_disk, known, report)
            if progress:
                progress(start + len(batch), len(todo))
        with _transaction(conn):
            _create_indexes(conn)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('updated', ?)", (_utc_now(),))
        report.errors = [tuple(r) for r in conn.execute("SELECT path, field, message FROM errors ORDER BY path")]
        report.unfinished = sorted(partial)
        report.total = conn.execute("SELECT COUNT(*) FROM episodes").fetchone()[0]
        report.duplicate_uuids = conn.execute(
            "SELECT COUNT(*) FROM (SELECT uuid FROM episodes GROUP BY uuid HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    finally:
        conn.close()
    report.seconds = time.perf_counter() - t0
    return report


def _index_batch(
    conn: sqlite3.Connection,
    root: Path,
    batch: list[str],
    on_disk: dict[str, tuple[int, int]],
    known: dict[str, tuple[int, int]],
    report: IndexReport,
) -> None:
    rows, errs, vanished = [], [], []
    for rel in batch:
        path = root / rel
        try:
            st = path.stat()
        except FileNotFoundError:  # deleted since the scan
            vanished.append(rel)
            continue
        try:
            rows.append(read_entry(path, rel, st))
        except EpisodeError as e:
            errs.append((rel, *on_disk[rel], e.field, e.problems[0].message))
        except Exception as e:  # noqa: BLE001 - a corrupt file must never stop the build
            errs.append((rel, *on_disk[rel], "file", f"cannot read ({type(e).__name__}: {e})"))
        else:
            if rel in known:
                report.updated += 1
            else:
                report.added += 1
    report.new_errors += len(errs)
    seen = _utc_now()
    with _transaction(conn):
        write_entries(conn, rows)
        conn.executemany("DELETE FROM episodes WHERE path = ?", [(e[0],) for e in errs] + [(p,) for p in vanished])
        conn.executemany("INSERT OR REPLACE INTO errors VALUES (?, ?, ?, ?, ?, ?)", (e + (seen,) for e in errs))
    # an indexed file that became unreadable or vanished no longer has a row
    report.removed += sum(1 for e in errs if e[0] in known) + sum(1 for p in vanished if p in known)
