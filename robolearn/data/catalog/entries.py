"""One catalog row from one episode file: the root attributes are read (never per-step data), checked
(format, schema version, presence, types) and turned into a tuple in `COLUMNS` order; a bad file raises an
EpisodeError naming the file and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.data import schema
from robolearn.data.catalog.table import ATTR_COLUMNS, READ_ATTRS
from robolearn.data.errors import EpisodeError, SchemaVersionError
from robolearn.data.reader import open_h5


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
    ok = {
        str: isinstance(v, str),
        int: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
        float: isinstance(v, (int, float)) and not isinstance(v, bool),
        bool: isinstance(v, bool) or (isinstance(v, int) and v in (0, 1)),
    }[typ]
    if not ok:
        raise EpisodeError(path, f"attrs/{name}", f"expected {typ.__name__}, got {type(v).__name__} {v!r:.60}")
    return int(v) if typ is bool else typ(v)


def entry_from_attrs(
    rel: str, attrs: dict[str, Any], size: int, mtime_ns: int, source: str | Path | None = None
) -> tuple:
    """Catalog row (a tuple in COLUMNS order) from an episode's root attributes, as read from the file.
    Checks format, schema version, presence and types; raises EpisodeError naming `source` and the field."""
    src = source if source is not None else rel
    fmt = _plain(attrs.get("format"))
    if fmt != schema.FORMAT_NAME:
        raise EpisodeError(
            src, "attrs/format", f"expected {schema.FORMAT_NAME!r}, got {fmt!r} (not a robolearn episode?)"
        )
    version = _plain(attrs.get("schema_version"))
    if version not in schema.SUPPORTED_VERSIONS:
        raise SchemaVersionError(
            src,
            "attrs/schema_version",
            f"unknown schema version {version!r}; this robolearn "
            f"reads {list(schema.SUPPORTED_VERSIONS)} (newer file? upgrade robolearn; older? "
            "`robolearn data migrate`)",
        )
    values: list[Any] = [rel]
    for name in ATTR_COLUMNS:
        if name not in attrs:
            raise EpisodeError(src, f"attrs/{name}", f"missing (required by schema {version})")
        values.append(_coerce(attrs[name], schema.EPISODE_ATTRS[name][0], src, name))
    values.append(",".join(_camera_names(attrs.get("cameras"), src)))
    values.append(_first_language(attrs.get("language_annotations"), src))
    for name, v in zip(("path", *ATTR_COLUMNS, "cameras", "language_annotations"), values):
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:  # h5py keeps undecodable bytes as surrogates: damaged text
                raise EpisodeError(
                    src,
                    f"attrs/{name}" if name != "path" else "file",
                    f"not valid UTF-8 text (corrupted?): {v.encode('utf-8', 'replace')[:60]!r}",
                ) from None
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
