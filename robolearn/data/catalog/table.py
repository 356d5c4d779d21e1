"""The catalog's SQLite layout and connections: the column set (one `Row` per episode file), the tables
(`episodes`, `errors`, `unfinished`, `meta`), opening a catalog for writing (rebuilt when its layout version
changed, refused when it belongs to another dataset root) and for reading (query-only).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from robolearn.data import schema

CATALOG_NAME = "catalog.sqlite"
CATALOG_VERSION = "1"  # bump when the table layout changes: older catalogs are rebuilt automatically

# ---- columns ------------------------------------------------------------------------------------------
_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}
# Episode attributes copied into the catalog (types from schema.EPISODE_ATTRS).
ATTR_COLUMNS: tuple[str, ...] = schema.CATALOG_ATTRS + tuple(a for a in ("end_time",) if a not in schema.CATALOG_ATTRS)
# name -> (SQL type, doc) for every catalog column, in table order.
COLUMNS: dict[str, tuple[str, str]] = {
    "path": ("TEXT", "episode file, relative to the dataset root (POSIX separators)"),
    **{a: (_SQL_TYPES[schema.EPISODE_ATTRS[a][0]], schema.EPISODE_ATTRS[a][2]) for a in ATTR_COLUMNS},
    "cameras": ("TEXT", "camera names, comma-separated, from the `cameras` attribute"),
    "language": ("TEXT", 'text of the first language annotation ("" if none)'),
    "size": ("INTEGER", "file size [bytes]"),
    "mtime_ns": ("INTEGER", "file modification time [ns since the epoch]"),
}
INDEXED_COLUMNS = (
    "uuid",
    "lab",
    "household",
    "scene_id",
    "operator",
    "robot_type",
    "task",
    "success",
    "num_steps",
    "teleop_device",
    "start_time",
    "complete",
)
# Attributes read from each file: the catalog attributes plus what derived columns need.
READ_ATTRS = ("format",) + ATTR_COLUMNS + ("cameras", "language_annotations")
TABLE_COLUMNS = ("path", "lab", "household", "scene_id", "task", "success", "num_steps")  # CLI table default


class Row(NamedTuple):
    """One catalog entry (one episode file). Mirrors the `episodes` table column for column; a named tuple
    because a query may return tens of thousands of them and tuples are the cheapest to build."""

    path: str
    uuid: str
    lab: str
    household: str
    scene_id: str
    operator: str
    robot_type: str
    task: str
    success: int
    num_steps: int
    control_hz: float
    teleop_device: str
    start_time: str
    complete: int
    schema_version: str
    end_time: str
    cameras: str
    language: str
    size: int
    mtime_ns: int

    def abspath(self, root: str | Path) -> Path:
        return Path(root) / self.path

    @property
    def camera_names(self) -> list[str]:
        return self.cameras.split(",") if self.cameras else []


assert Row._fields == tuple(COLUMNS), "Row must mirror COLUMNS"


class CatalogError(ValueError):
    """A bad filter, column, split request or catalog location; the message says what is valid."""


# ---- opening --------------------------------------------------------------------------------------------
def default_catalog(root: str | Path) -> Path:
    return Path(root) / CATALOG_NAME


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)  # autocommit; writes use _transaction
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _create_tables(conn: sqlite3.Connection) -> None:
    cols = ", ".join(f"{n} {t} NOT NULL" + (" UNIQUE" if n == "path" else "") for n, (t, _) in COLUMNS.items())
    conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS episodes ({cols})")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS errors (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
        "mtime_ns INTEGER NOT NULL, field TEXT NOT NULL, message TEXT NOT NULL, seen TEXT NOT NULL)"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS unfinished (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
        "mtime_ns INTEGER NOT NULL)"
    )
    _create_indexes(conn)


def _create_indexes(conn: sqlite3.Connection) -> None:
    for c in INDEXED_COLUMNS:
        conn.execute(f"CREATE INDEX IF NOT EXISTS episodes_{c} ON episodes ({c})")


def _drop_indexes(conn: sqlite3.Connection) -> None:
    for c in INDEXED_COLUMNS:
        conn.execute(f"DROP INDEX IF EXISTS episodes_{c}")


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError:
        return {}


def open_catalog(catalog: str | Path, root: str | Path, rebuild: bool = False) -> sqlite3.Connection:
    """Open (creating if needed) the catalog of dataset `root` for writing. A catalog of another layout
    version is rebuilt; one that belongs to another dataset root is refused unless `rebuild`."""
    catalog, root = Path(catalog), Path(root)
    catalog.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = _connect(catalog)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        meta = _meta(conn)
    except sqlite3.DatabaseError as e:
        raise CatalogError(
            f"{catalog}: not a usable SQLite catalog ({e}); delete it or pass another --catalog"
        ) from None
    root_rel = os.path.relpath(root.absolute(), catalog.parent.absolute())
    if meta and not rebuild and meta.get("root") != root_rel:
        conn.close()
        raise CatalogError(
            f"{catalog}: catalog belongs to dataset root {meta.get('root')!r} (relative to the "
            f"catalog), not {str(root)!r}; use --rebuild or another --catalog"
        )
    with _transaction(conn):
        if rebuild or (meta and meta.get("catalog_version") != CATALOG_VERSION):
            for t in ("episodes", "errors", "unfinished", "meta"):
                conn.execute(f"DROP TABLE IF EXISTS {t}")
        _create_tables(conn)
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('catalog_version', ?), ('root', ?)", (CATALOG_VERSION, root_rel)
        )
    return conn


def catalog_root(catalog: str | Path) -> Path:
    """The dataset root recorded in an existing catalog (absolute)."""
    catalog = Path(catalog)
    conn = _open_read(catalog)
    try:
        rel = _meta(conn).get("root", ".")
    finally:
        conn.close()
    return Path(os.path.normpath(catalog.parent.absolute() / rel))


def _open_read(catalog: Path) -> sqlite3.Connection:
    if not catalog.is_file():
        raise FileNotFoundError(f"{catalog}: no catalog here; build it with `robolearn data index <dataset root>`")
    conn = _connect(catalog)
    conn.execute("PRAGMA query_only = ON")  # user SQL conditions cannot modify the catalog
    return conn


def _resolve(root_or_catalog: str | Path, catalog: str | Path | None = None) -> tuple[Path, Path | None]:
    """(catalog path, dataset root or None when only a catalog file was given)."""
    p = Path(root_or_catalog)
    if p.is_dir():
        return (Path(catalog) if catalog else default_catalog(p)), p
    if catalog is not None:
        raise CatalogError(f"{p}: expected a dataset folder when --catalog is given")
    return p, None


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
