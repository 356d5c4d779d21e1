"""The catalog's query language and queries: filter strings (`household=house_1`, `num_steps>=30`,
`task~drawer`, `lab=lab_a,lab_b`) become SQL conditions whose column names are checked against the catalog
columns and whose values are always bound as parameters; `query`, `select_paths` and `errors` read the
catalog (opened query-only).
"""

from __future__ import annotations

import gc
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robolearn.data.catalog.index import ensure_catalog
from robolearn.data.catalog.table import COLUMNS, CatalogError, Row, _open_read, _resolve

_FILTER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|!~|==|=|~|>|<)\s*(.*?)\s*$", re.S)
OPERATORS = ("=", "!=", ">", ">=", "<", "<=", "~", "!~")


def _split_values(text: str) -> list[str]:
    """Comma-separated values; `\\,` keeps a literal comma."""
    return [v.replace("\\,", ",").strip() for v in re.split(r"(?<!\\),", text)]


def check_column(name: str, context: str) -> str:
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
        raise CatalogError(
            f"cannot parse filter {flt!r}: expected COLUMN OP VALUE with OP one of "
            f"{' '.join(OPERATORS)} (e.g. household=house_1, num_steps>=30, task~drawer)"
        )
    col, op, text = check_column(m.group(1), f"filter {flt!r}"), m.group(2), m.group(3)
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


def _select(
    catalog: Path,
    cols: Sequence[str],
    filters: Sequence[str] | None,
    sql: str | None,
    limit: int | None,
    make: Callable[[tuple], Any] | None = None,
) -> list[Any]:
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


def query(
    catalog_path: str | Path, filters: Sequence[str] | None = None, sql: str | None = None, limit: int | None = None
) -> list[Row]:
    """Catalog rows matching every filter (and the optional SQL condition), sorted by path.

    `catalog_path` is a catalog file or a dataset folder (then `<folder>/catalog.sqlite`, used as it is;
    see `select_paths` or `ensure_catalog` to refresh it first)."""
    cat, _ = _resolve(catalog_path)
    return _select(cat, tuple(COLUMNS), filters, sql, limit, Row._make)


def select_paths(
    root_or_catalog: str | Path,
    filters: Sequence[str] | None = None,
    sql: str | None = None,
    update_catalog: bool = True,
) -> list[Path]:
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
