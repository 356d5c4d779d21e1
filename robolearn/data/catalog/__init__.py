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

Modules: `table` (columns, `Row`, the SQLite tables, opening), `entries` (one row from one file's attributes),
`index` (scanning, writing rows, `update`, `ensure_catalog`), `filters` (the query language, `query`,
`select_paths`), `splits` (`split`, `read_split`). Everything public is importable from this package.
"""

from __future__ import annotations

from robolearn.data.catalog.entries import entry_from_attrs, read_entry
from robolearn.data.catalog.filters import (
    OPERATORS,
    build_where,
    check_column,
    errors,
    parse_filter,
    query,
    select_paths,
)
from robolearn.data.catalog.index import (
    COMMIT_EVERY,
    IndexReport,
    bulk_load,
    ensure_catalog,
    scan,
    update,
    write_entries,
)
from robolearn.data.catalog.splits import SPLIT_GROUPS, SPLITS_DIR, SplitResult, read_split, split
from robolearn.data.catalog.table import (
    ATTR_COLUMNS,
    CATALOG_NAME,
    CATALOG_VERSION,
    COLUMNS,
    INDEXED_COLUMNS,
    TABLE_COLUMNS,
    CatalogError,
    Row,
    catalog_root,
    default_catalog,
    open_catalog,
)

__all__ = [
    "ATTR_COLUMNS",
    "CATALOG_NAME",
    "CATALOG_VERSION",
    "COLUMNS",
    "COMMIT_EVERY",
    "INDEXED_COLUMNS",
    "OPERATORS",
    "SPLITS_DIR",
    "SPLIT_GROUPS",
    "TABLE_COLUMNS",
    "CatalogError",
    "IndexReport",
    "Row",
    "SplitResult",
    "build_where",
    "bulk_load",
    "catalog_root",
    "check_column",
    "default_catalog",
    "ensure_catalog",
    "entry_from_attrs",
    "errors",
    "open_catalog",
    "parse_filter",
    "query",
    "read_entry",
    "read_split",
    "scan",
    "select_paths",
    "split",
    "update",
    "write_entries",
]
