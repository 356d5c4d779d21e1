"""Episode catalog: a SQLite index of every episode under a dataset root, built from episode attributes only.

The catalog (`<root>/catalog.sqlite` by default, WAL mode) holds one row per readable episode file: the
catalog attributes of the schema (`schema.CATALOG_ATTRS`), `end_time`, the camera names, the first language
annotation, and the file's size and mtime. Files that cannot be read (not HDF5, truncated, unknown schema
version, missing attributes) go to the `errors` table with a message naming the file and field;
`.partial` files (episodes still being written, or crashed) go to the `unfinished` table. Per-step data is
never read, so indexing costs one file open and a few attribute reads per episode.

`update()` is incremental: a file is re-read only when its (size, mtime_ns) changed; rows of files that
disappeared are removed. `query()` filters with small expressions (`household=house_1`, `num_steps>=30`,
`task~drawer`, `lab=lab_a,lab_b`); column names are checked against the catalog columns and values are
always bound as SQL parameters. `split()` writes train/val episode lists under `<root>/splits/<name>/`.

Paths in the catalog are relative to the dataset root (POSIX separators), so a dataset copied together with
its catalog stays valid.
"""

from __future__ import annotations

import gc
import json
import os
import random
import re
import sqlite3
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, NamedTuple, Sequence

import numpy as np

from robolearn.config import command, opt, positional, save_config
from robolearn.data import schema
from robolearn.data.errors import EpisodeError, SchemaVersionError
from robolearn.data.reader import open_h5
from robolearn.utils import write_text_atomic

CATALOG_NAME = "catalog.sqlite"
CATALOG_VERSION = "1"  # bump when the table layout changes: older catalogs are rebuilt automatically
SPLITS_DIR = "splits"
QUARANTINE_DIR = "_quarantine"  # skipped, as by reader.list_episodes
COMMIT_EVERY = 2000  # files read per transaction: an interrupted first index keeps what it has done

# ---- columns ------------------------------------------------------------------------------------------
_SQL_TYPES = {str: "TEXT", int: "INTEGER", float: "REAL", bool: "INTEGER"}
# Episode attributes copied into the catalog (types from schema.EPISODE_ATTRS).
ATTR_COLUMNS: tuple[str, ...] = schema.CATALOG_ATTRS + tuple(
    a for a in ("end_time",) if a not in schema.CATALOG_ATTRS)
# name -> (SQL type, doc) for every catalog column, in table order.
COLUMNS: dict[str, tuple[str, str]] = {
    "path": ("TEXT", "episode file, relative to the dataset root (POSIX separators)"),
    **{a: (_SQL_TYPES[schema.EPISODE_ATTRS[a][0]], schema.EPISODE_ATTRS[a][2]) for a in ATTR_COLUMNS},
    "cameras": ("TEXT", "camera names, comma-separated, from the `cameras` attribute"),
    "language": ("TEXT", "text of the first language annotation (\"\" if none)"),
    "size": ("INTEGER", "file size [bytes]"),
    "mtime_ns": ("INTEGER", "file modification time [ns since the epoch]"),
}
INDEXED_COLUMNS = ("uuid", "lab", "household", "scene_id", "operator", "robot_type", "task", "success",
                   "num_steps", "teleop_device", "start_time", "complete")
# Attributes read from each file: the catalog attributes plus what derived columns need.
READ_ATTRS = ("format",) + ATTR_COLUMNS + ("cameras", "language_annotations")
TABLE_COLUMNS = ("path", "lab", "household", "scene_id", "task", "success", "num_steps")  # CLI table default
SPLIT_GROUPS = {"scene": "scene_id", "household": "household", "lab": "lab", "random": None}


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
        return (f"{self.total} episodes indexed: added {self.added}, updated {self.updated}, removed "
                f"{self.removed}, unchanged {self.unchanged}, errors {len(self.errors)}, unfinished "
                f"{len(self.unfinished)} ({self.seconds:.2f} s)")


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
    conn.execute("CREATE TABLE IF NOT EXISTS errors (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                 "mtime_ns INTEGER NOT NULL, field TEXT NOT NULL, message TEXT NOT NULL, seen TEXT NOT NULL)")
    conn.execute("CREATE TABLE IF NOT EXISTS unfinished (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                 "mtime_ns INTEGER NOT NULL)")
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
        raise CatalogError(f"{catalog}: not a usable SQLite catalog ({e}); delete it or pass another --catalog"
                           ) from None
    root_rel = os.path.relpath(root.absolute(), catalog.parent.absolute())
    if meta and not rebuild and meta.get("root") != root_rel:
        conn.close()
        raise CatalogError(f"{catalog}: catalog belongs to dataset root {meta.get('root')!r} (relative to the "
                           f"catalog), not {str(root)!r}; use --rebuild or another --catalog")
    with _transaction(conn):
        if rebuild or (meta and meta.get("catalog_version") != CATALOG_VERSION):
            for t in ("episodes", "errors", "unfinished", "meta"):
                conn.execute(f"DROP TABLE IF EXISTS {t}")
        _create_tables(conn)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('catalog_version', ?), ('root', ?)",
                     (CATALOG_VERSION, root_rel))
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


def ensure_catalog(root_or_catalog: str | Path, catalog: str | Path | None = None, refresh: bool = True
                   ) -> tuple[Path, Path, IndexReport | None]:
    """(catalog, root, report): given a dataset folder, build or refresh its catalog (a no-op re-index only
    stats the files); given a catalog file, use it as it is."""
    cat, root = _resolve(root_or_catalog, catalog)
    if root is None:
        return cat, catalog_root(cat), None
    report = update(root, cat) if refresh or not cat.is_file() else None
    return cat, root, report


# ---- reading episode attributes --------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray) and v.shape == ():
        return v.item()
    return v


def _coerce(value: Any, typ: type, path: str | Path, name: str) -> Any:
    v = _plain(value)
    ok = {str: isinstance(v, str),
          int: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
          float: isinstance(v, (int, float)) and not isinstance(v, bool),
          bool: isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))}[typ]
    if not ok:
        raise EpisodeError(path, f"attrs/{name}", f"expected {typ.__name__}, got {type(v).__name__} {v!r:.60}")
    return int(v) if typ is bool else typ(v)


def entry_from_attrs(rel: str, attrs: dict[str, Any], size: int, mtime_ns: int,
                     source: str | Path | None = None) -> tuple:
    """Catalog row (a tuple in COLUMNS order) from an episode's root attributes, as read from the file.
    Checks format, schema version, presence and types; raises EpisodeError naming `source` and the field."""
    src = source if source is not None else rel
    fmt = _plain(attrs.get("format"))
    if fmt != schema.FORMAT_NAME:
        raise EpisodeError(src, "attrs/format", f"expected {schema.FORMAT_NAME!r}, got {fmt!r} (not a robolearn "
                           "episode?)")
    version = _plain(attrs.get("schema_version"))
    if version not in schema.SUPPORTED_VERSIONS:
        raise SchemaVersionError(src, "attrs/schema_version", f"unknown schema version {version!r}; this robolearn "
                                 f"reads {list(schema.SUPPORTED_VERSIONS)} (newer file? upgrade robolearn; older? "
                                 "`robolearn data migrate`)")
    values: list[Any] = [rel]
    for name in ATTR_COLUMNS:
        if name not in attrs:
            raise EpisodeError(src, f"attrs/{name}", f"missing (required by schema {version})")
        values.append(_coerce(attrs[name], schema.EPISODE_ATTRS[name][0], src, name))
    values.append(",".join(_camera_names(attrs.get("cameras"), src)))
    values.append(_first_language(attrs.get("language_annotations"), src))
    values += [int(size), int(mtime_ns)]
    return tuple(values)


def _json_attr(value: Any, src: str | Path, name: str) -> Any:
    v = _plain(value)
    if v is None:
        raise EpisodeError(src, f"attrs/{name}", f"missing (required by schema {schema.SCHEMA_VERSION})")
    if not isinstance(v, str):
        return v  # already parsed (synthetic attr dicts may pass lists)
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        raise EpisodeError(src, f"attrs/{name}", f"expected a JSON string, got {v!r:.80}") from None


def _camera_names(value: Any, src: str | Path) -> list[str]:
    cams = _json_attr(value, src, "cameras")
    if not isinstance(cams, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in cams):
        raise EpisodeError(src, "attrs/cameras", "expected a JSON list of camera objects with a `name`")
    return [c["name"] for c in cams]


def _first_language(value: Any, src: str | Path) -> str:
    ann = _json_attr(value, src, "language_annotations")
    if not isinstance(ann, list):
        raise EpisodeError(src, "attrs/language_annotations", 'expected a JSON list of {"text", ...} objects')
    if not ann:
        return ""
    first = ann[0]
    return str(first.get("text", "")) if isinstance(first, dict) else str(first)


def read_entry(path: Path, rel: str, st: os.stat_result) -> tuple:
    """Catalog row of one episode file (opens it with h5py and reads only the attributes the catalog needs)."""
    with open_h5(path) as f:
        a = f.attrs
        try:
            raw = {n: a[n] for n in READ_ATTRS if n in a}
        except (OSError, RuntimeError, TypeError) as e:
            raise EpisodeError(path, "attrs", f"cannot read attributes: {e}") from None
    return entry_from_attrs(rel, raw, st.st_size, st.st_mtime_ns, path)


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


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---- incremental update ----------------------------------------------------------------------------------
def update(root: str | Path, catalog: str | Path | None = None, rebuild: bool = False,
           progress: Callable[[int, int], None] | None = None) -> IndexReport:
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
            batch = todo[start:start + COMMIT_EVERY]
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
            "SELECT COUNT(*) FROM (SELECT uuid FROM episodes GROUP BY uuid HAVING COUNT(*) > 1)").fetchone()[0]
    finally:
        conn.close()
    report.seconds = time.perf_counter() - t0
    return report


def _index_batch(conn: sqlite3.Connection, root: Path, batch: list[str], on_disk: dict[str, tuple[int, int]],
                 known: dict[str, tuple[int, int]], report: IndexReport) -> None:
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


# ---- filters and queries ---------------------------------------------------------------------------------
_FILTER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|!~|==|=|~|>|<)\s*(.*?)\s*$", re.S)
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "~", "!~")


def _split_values(text: str) -> list[str]:
    """Comma-separated values; `\\,` keeps a literal comma."""
    return [v.replace("\\,", ",").strip() for v in re.split(r"(?<!\\),", text)]


def _check_column(name: str, context: str) -> str:
    if name not in COLUMNS:
        raise CatalogError(f"unknown column {name!r} in {context}; valid columns: {', '.join(COLUMNS)}")
    return name


def _typed(col: str, value: str, flt: str) -> Any:
    sql_type = COLUMNS[col][0]
    if sql_type == "TEXT":
        return value
    low = value.lower()
    if col == "complete" and low in ("true", "false", "yes", "no"):
        return int(low in ("true", "yes"))
    try:
        return int(value) if sql_type == "INTEGER" and re.fullmatch(r"[+-]?\d+", value) else float(value)
    except ValueError:
        raise CatalogError(f"filter {flt!r}: column {col} is numeric, got {value!r}") from None


def parse_filter(flt: str) -> tuple[str, list[Any]]:
    """One filter string -> (SQL condition with ? placeholders, parameters).

    COLUMN=V (IN list with V1,V2,...), COLUMN!=V (NOT IN), COLUMN>V, >=, <, <= (one value), COLUMN~TEXT
    (case-insensitive substring; TEXT1,TEXT2 matches any), COLUMN!~TEXT (contains none)."""
    m = _FILTER_RE.match(flt)
    if not m:
        raise CatalogError(f"cannot parse filter {flt!r}: expected COLUMN OP VALUE with OP one of "
                           f"{' '.join(OPERATORS)} (e.g. household=house_1, num_steps>=30, task~drawer)")
    col, op, text = _check_column(m.group(1), f"filter {flt!r}"), m.group(2), m.group(3)
    op = "=" if op == "==" else op
    values = _split_values(text)
    if op in ("~", "!~"):
        likes = ["%" + re.sub(r"([\\%_])", r"\\\1", v) + "%" for v in values]
        joiner, neg = (" OR ", "") if op == "~" else (" AND ", "NOT ")
        return "(" + joiner.join(f"{col} {neg}LIKE ? ESCAPE '\\'" for _ in likes) + ")", likes
    typed = [_typed(col, v, flt) for v in values]
    if op in ("=", "!="):
        if len(typed) == 1:
            return f"{col} {op} ?", typed
        return f"{col} {'NOT ' if op == '!=' else ''}IN ({', '.join('?' * len(typed))})", typed
    if len(typed) != 1:
        raise CatalogError(f"filter {flt!r}: operator {op} takes one value, got {len(typed)}")
    return f"{col} {op} ?", typed


def build_where(filters: Sequence[str] | None, sql: str | None = None) -> tuple[str, list[Any]]:
    """WHERE clause (possibly empty) and parameters for filters ANDed together, plus an optional raw SQL
    condition (the catalog is opened query-only, so it cannot modify anything)."""
    conds, params = [], []
    for flt in filters or ():
        c, p = parse_filter(flt)
        conds.append(c)
        params += p
    if sql and sql.strip():
        conds.append(f"({sql})")
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building thousands of result tuples triggers cyclic-GC passes that hold nothing cyclic; pausing the
    collector for the fetch removes the latency spikes they cause."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _select(catalog: Path, cols: Sequence[str], filters: Sequence[str] | None, sql: str | None,
            limit: int | None, make: Callable[[tuple], Any] | None = None) -> list[Any]:
    where, params = build_where(filters, sql)
    q = f"SELECT {', '.join(cols)} FROM episodes{where} ORDER BY path"
    if limit is not None:
        q += " LIMIT ?"
        params.append(int(limit))
    conn = _open_read(catalog)
    try:
        with _gc_paused():
            rows = conn.execute(q, params).fetchall()
            return list(map(make, rows)) if make else rows
    except (sqlite3.OperationalError, sqlite3.ProgrammingError, sqlite3.Warning) as e:
        if sql:
            raise CatalogError(f"invalid SQL condition {sql!r}: {e}; valid columns: {', '.join(COLUMNS)}") from None
        raise
    finally:
        conn.close()


def query(catalog_path: str | Path, filters: Sequence[str] | None = None, sql: str | None = None,
          limit: int | None = None) -> list[Row]:
    """Catalog rows matching every filter (and the optional SQL condition), sorted by path.

    `catalog_path` is a catalog file or a dataset folder (then `<folder>/catalog.sqlite`, used as it is;
    see `select_paths` or `ensure_catalog` to refresh it first)."""
    cat, _ = _resolve(catalog_path)
    return _select(cat, tuple(COLUMNS), filters, sql, limit, Row._make)


def select_paths(root_or_catalog: str | Path, filters: Sequence[str] | None = None, sql: str | None = None,
                 update_catalog: bool = True) -> list[Path]:
    """Absolute paths of the matching episodes, sorted. Given a dataset folder, its catalog is built or
    refreshed first (unless update_catalog=False)."""
    cat, root, _ = ensure_catalog(root_or_catalog, refresh=update_catalog)
    root = root.absolute()
    return _select(cat, ("path",), filters, sql, None, lambda r: root / r[0])


def errors(catalog_path: str | Path) -> list[tuple[str, str, str]]:
    """(path, field, message) of every file the catalog could not read."""
    cat, _ = _resolve(catalog_path)
    conn = _open_read(cat)
    try:
        return [tuple(r) for r in conn.execute("SELECT path, field, message FROM errors ORDER BY path")]
    finally:
        conn.close()


# ---- splits ----------------------------------------------------------------------------------------------
@dataclass
class SplitResult:
    name: str
    folder: Path
    train: list[str]  # relative paths, sorted
    val: list[str]
    train_groups: list[str]
    val_groups: list[str]
    config: dict[str, Any]


def _group_column(by: str) -> str | None:
    if by in SPLIT_GROUPS:
        return SPLIT_GROUPS[by]
    if by in COLUMNS:
        return by
    raise CatalogError(f"cannot split by {by!r}: use one of {', '.join(SPLIT_GROUPS)} or a catalog column "
                       f"({', '.join(COLUMNS)})")


def _group_key(by: str, row: tuple) -> str:
    # Scene ids are unique within a household only, so a scene group is "household/scene_id".
    return f"{row[2]}/{row[1]}" if by == "scene" else str(row[1])


def split(catalog: str | Path, by: str = "scene", holdout: Sequence[str] | None = None,
          val_fraction: float = 0.1, seed: int = 0, filters: Sequence[str] | None = None,
          name: str | None = None, overwrite: bool = False, update_catalog: bool = True) -> SplitResult:
    """Train/val split of the (filtered) episodes, written to `<root>/splits/<name>/{train,val}.txt` and
    `split.json`.

    by="random": episodes are shuffled with `seed` and `val_fraction` of them go to val. Otherwise episodes
    are grouped (scene: household/scene_id; household; lab; or any catalog column) and whole groups go to
    val: the `holdout` groups (for scenes, either `scene_id` or `household/scene_id`), or groups drawn with
    `seed` until val holds about `val_fraction` of the episodes. No group is on both sides."""
    cat, root, _ = ensure_catalog(catalog, refresh=update_catalog)
    col = _group_column(by)
    if not 0.0 <= val_fraction < 1.0:
        raise CatalogError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if col is None and holdout:
        raise CatalogError("a random split has no groups to hold out; use --by scene|household|lab with --holdout")
    rows = _select(cat, ("path", col or "uuid", "household"), filters, None, None)
    if not rows:
        raise CatalogError(f"no episodes match {list(filters or [])} in {cat}; nothing to split")
    if col is None:
        train, val, train_groups, val_groups = _random_split({r[0]: r[1] for r in rows}, val_fraction, seed)
    else:
        groups: dict[str, list[str]] = {}
        for r in rows:
            groups.setdefault(_group_key(by, r), []).append(r[0])
        val_set = (_holdout_groups(groups, holdout, by) if holdout
                   else _draw_groups(groups, val_fraction, seed))
        train_groups = sorted(g for g in groups if g not in val_set)
        val_groups = sorted(val_set)
        train = sorted(p for g in train_groups for p in groups[g])
        val = sorted(p for g in val_groups for p in groups[g])
    name = name or _split_name(by, holdout, val_fraction, seed)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise CatalogError(f"split name {name!r}: use letters, digits and _ . + - only")
    config = {"by": by, "group_column": col, "holdout": list(holdout or []),
              "val_fraction": None if holdout else val_fraction, "seed": seed, "filters": list(filters or [])}
    result = SplitResult(name, root / SPLITS_DIR / name, train, val, train_groups, val_groups, config)
    _write_split(result, overwrite)
    return result


def _random_split(uuids: dict[str, str], frac: float, seed: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """{path: uuid} -> shuffled paths, the first ~frac to val. Copies of one episode (same uuid, different
    paths) stay on one side, so val never holds an episode that train also has."""
    order = sorted(uuids)
    random.Random(seed).shuffle(order)
    n_val = round(frac * len(order))
    if frac > 0 and len(order) >= 2:
        n_val = min(max(n_val, 1), len(order) - 1)
    copies: dict[str, list[str]] = {}
    for p in order:
        copies.setdefault(uuids[p], []).append(p)
    val: set[str] = set()
    for p in order:
        if len(val) >= n_val:
            break
        val.update(copies[uuids[p]])
    if len(val) == len(order) and n_val < len(order):  # one uuid everywhere: nothing can be held out
        val = set()
    return sorted(p for p in order if p not in val), sorted(val), [], []


def _holdout_groups(groups: dict[str, list[str]], holdout: Sequence[str], by: str) -> set[str]:
    chosen: set[str] = set()
    for h in holdout:
        hit = {g for g in groups if g == h or (by == "scene" and g.split("/", 1)[1] == h)}
        if not hit:
            raise CatalogError(f"holdout {by} {h!r} matches no episode; {by} groups: "
                               f"{', '.join(sorted(groups)[:50])}{' ...' if len(groups) > 50 else ''}")
        chosen |= hit
    if len(chosen) == len(groups):
        raise CatalogError(f"holding out {list(holdout)} leaves no {by} for training")
    return chosen


def _draw_groups(groups: dict[str, list[str]], frac: float, seed: int) -> set[str]:
    """Whole groups in seeded random order until val holds about frac of the episodes (>= 1 group each side)."""
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    total = sum(len(v) for v in groups.values())
    chosen: set[str] = set()
    n = 0
    for g in order:
        if frac <= 0 or len(chosen) == len(order) - 1:
            break
        if chosen and abs(n + len(groups[g]) - frac * total) > abs(n - frac * total):
            continue  # this group would overshoot more than stopping here
        chosen.add(g)
        n += len(groups[g])
        if n >= frac * total:
            break
    return chosen


def _split_name(by: str, holdout: Sequence[str] | None, frac: float, seed: int) -> str:
    if holdout:
        tag = "+".join(h.replace("/", ".") for h in holdout)
        return f"{by}_holdout_{tag}"[:120]
    return f"{by}_val{frac:g}_seed{seed}"


def _write_split(res: SplitResult, overwrite: bool) -> None:
    train_txt = "".join(p + "\n" for p in res.train)
    val_txt = "".join(p + "\n" for p in res.val)
    old = res.folder / "train.txt", res.folder / "val.txt"
    if not overwrite and all(p.is_file() for p in old):
        if (old[0].read_text(), old[1].read_text()) != (train_txt, val_txt):
            raise CatalogError(f"{res.folder}: a different split with this name exists; pass --name or --overwrite")
    res.folder.mkdir(parents=True, exist_ok=True)
    info = {"name": res.name, "created": _utc_now(), "config": res.config,
            "counts": {"train": len(res.train), "val": len(res.val)},
            "groups": {"train": res.train_groups, "val": res.val_groups}}
    write_text_atomic(res.folder / "train.txt", train_txt)
    write_text_atomic(res.folder / "val.txt", val_txt)
    write_text_atomic(res.folder / "split.json", json.dumps(info, indent=2) + "\n")


def read_split(root: str | Path, name: str, part: Literal["train", "val"]) -> list[Path]:
    """Absolute episode paths of one side of a written split."""
    if part not in ("train", "val"):
        raise CatalogError(f"split part must be 'train' or 'val', got {part!r}")
    root = Path(root).absolute()
    f = root / SPLITS_DIR / name / f"{part}.txt"
    if not f.is_file():
        have = sorted(p.parent.name for p in (root / SPLITS_DIR).glob("*/split.json"))
        raise FileNotFoundError(f"{f}: no such split; splits here: {have or 'none'}")
    return [root / line for line in f.read_text().splitlines() if line.strip()]


# ---- CLI -------------------------------------------------------------------------------------------------
def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _progress_printer() -> Callable[[int, int], None]:
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 2.0 or done == total:
            last[0] = now
            _err(f"  read {done}/{total} files")
    return show


def _print_report(rep: IndexReport, verbose: bool = True, out: Callable[[str], None] = print) -> None:
    out(f"catalog {rep.catalog}: {rep.summary()}")
    for p, fld, msg in rep.errors if verbose else ():
        out(f"  error: {p}: {fld}: {msg}")
    if not verbose and rep.errors:
        out(f"  {len(rep.errors)} unreadable files (see `robolearn data index {rep.root}`)")
    for p in rep.unfinished if verbose else ():
        out(f"  unfinished: {p} (still being written, or crashed: `robolearn data repair`)")
    if rep.duplicate_uuids:
        out(f"  warning: {rep.duplicate_uuids} uuids appear in more than one file (copies of an episode?)")


@dataclass
class IndexCommand:
    root: Path = positional(help="dataset folder")
    catalog: Path | None = opt(None, help="catalog file (default: ROOT/catalog.sqlite)")
    rebuild: bool = opt(False, help="drop the catalog and read every file again")


@command("data", "index")
def index_command(cfg: IndexCommand) -> int:
    """Build or incrementally update the episode catalog (SQLite) of a dataset."""
    try:
        rep = update(cfg.root, cfg.catalog, rebuild=cfg.rebuild, progress=_progress_printer())
    except (CatalogError, FileNotFoundError, sqlite3.Error) as e:
        _err(f"robolearn data index: {e}")
        return 2
    save_config(cfg, rep.catalog.parent, "index")
    _print_report(rep)
    return 1 if rep.errors else 0


@dataclass
class QueryCommand:
    root: Path = positional(help="dataset folder (or a catalog file)")
    where: list[str] = opt(default_factory=list, help="filters, ANDed: col=v, col=v1,v2, col!=v, col>=n, col~text")
    sql: str | None = opt(None, help="extra SQL condition on the catalog columns (read-only)")
    columns: list[str] = opt(default_factory=list, help="columns to show (default: a short set; json: all)")
    format: Literal["table", "paths", "json"] = opt("table", help="output format")
    limit: int | None = opt(None, help="at most this many rows")
    catalog: Path | None = opt(None, help="catalog file (default: ROOT/catalog.sqlite)")
    update: bool = opt(True, help="refresh the catalog first (stats every file, reads changed ones)")


@command("data", "query")
def query_command(cfg: QueryCommand) -> int:
    """Select episodes by metadata from the catalog (built or refreshed first)."""
    try:
        cat, root, rep = ensure_catalog(cfg.root, cfg.catalog, refresh=cfg.update)
        if rep is not None and rep.changed:
            _print_report(rep, verbose=False, out=_err)
        elif rep is not None and rep.errors:
            _err(f"warning: {len(rep.errors)} unreadable files in {rep.root} (see `robolearn data index`)")
        cols = list(cfg.columns) or (list(COLUMNS) if cfg.format == "json" else list(TABLE_COLUMNS))
        for c in cols:
            _check_column(c, "--columns")
        rows = query(cat, cfg.where, cfg.sql, cfg.limit)
    except (CatalogError, FileNotFoundError, sqlite3.Error) as e:
        _err(f"robolearn data query: {e}")
        return 2
    if cfg.format == "paths":
        for r in rows:
            print(root.absolute() / r.path)
    elif cfg.format == "json":
        print(json.dumps([{c: getattr(r, c) for c in cols} for r in rows], indent=1))
    else:
        _print_table(rows, cols)
    _err(f"{len(rows)} episode{'' if len(rows) == 1 else 's'} match")
    return 0


def _print_table(rows: list[Row], cols: list[str]) -> None:
    cells = [[str(getattr(r, c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [min(len(x[i]), 60) for x in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for x in cells:
        print("  ".join((v if len(v) <= 60 else v[:57] + "...").ljust(w) for v, w in zip(x, widths)).rstrip())


@dataclass
class SplitCommand:
    root: Path = positional(help="dataset folder (or a catalog file)")
    by: str = opt("scene", help="scene | household | lab | random (or any catalog column)")
    holdout: list[str] = opt(default_factory=list, help="groups that go entirely to val")
    val_fraction: float = opt(0.1, help="val share when no --holdout (episodes for random, groups otherwise)")
    name: str | None = opt(None, help="split name (default: from the settings)")
    seed: int = opt(0, help="random seed")
    where: list[str] = opt(default_factory=list, help="only split episodes matching these filters")
    catalog: Path | None = opt(None, help="catalog file (default: ROOT/catalog.sqlite)")
    overwrite: bool = opt(False, help="replace an existing split of the same name")


@command("data", "split")
def split_command(cfg: SplitCommand) -> int:
    """Write a train/val split (held-out scenes, households, labs, or random) as episode lists."""
    try:
        if cfg.catalog is not None:
            ensure_catalog(cfg.root, cfg.catalog)
            target: str | Path = cfg.catalog
        else:
            target = cfg.root
        res = split(target, by=cfg.by, holdout=cfg.holdout, val_fraction=cfg.val_fraction, seed=cfg.seed,
                    filters=cfg.where, name=cfg.name, overwrite=cfg.overwrite,
                    update_catalog=cfg.catalog is None)
    except (CatalogError, FileNotFoundError, sqlite3.Error) as e:
        _err(f"robolearn data split: {e}")
        return 2
    save_config(cfg, res.folder, "split")
    print(f"split {res.name}: train {len(res.train)} episodes, val {len(res.val)} episodes -> {res.folder}")
    if res.val_groups or res.train_groups:
        print(f"  val {cfg.by}: {', '.join(res.val_groups)}")
        print(f"  train {cfg.by}: {', '.join(res.train_groups)}")
    return 0


__all__ = ["CATALOG_NAME", "COLUMNS", "CatalogError", "IndexReport", "Row", "SplitResult", "bulk_load",
           "default_catalog", "ensure_catalog", "entry_from_attrs", "errors", "open_catalog", "parse_filter",
           "query", "read_entry", "read_split", "scan", "select_paths", "split", "update", "write_entries"]
