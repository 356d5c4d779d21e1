"""The on-disk layout of a prepared pretraining folder: file names and formats, `PrepareError`, and reading a
finished shard's clip/failure tables (`read_shard_tables`, `scan_output`), which the writer (resume) and the
index builder share. The layout itself is described in robolearn.pretrain.shards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

SHARD_FORMAT = "robolearn.pretrain.shard"
INDEX_FORMAT = "robolearn.pretrain.index"
VERSION = "1"
INDEX_NAME = "index.h5"
REPORT_NAME = "report.json"
SHARD_RE = re.compile(r"^shard_(\d{5,})\.h5$")
_STR = h5py.string_dtype()


class PrepareError(ValueError):
    """Bad input to `prepare` (labels, videos, output folder, tokenizer); the message names what and where."""


def shard_name(i: int) -> str:
    """The file name of shard number `i`."""
    return f"shard_{i:05d}.h5"


def _str_list(ds: h5py.Dataset) -> list[str]:
    """An HDF5 string dataset as a list of str."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]


@dataclass
class ShardContents:
    """The clip and failure tables of one finished shard (no frame bytes)."""

    name: str
    attrs: dict[str, Any]
    ids: list[str]
    splits: list[str]
    first: np.ndarray
    n_frames: np.ndarray
    fps: np.ndarray
    failed: dict[str, tuple[str, str]]  # id -> (split, error)


def read_shard_tables(path: Path) -> ShardContents:
    """The tables of a finished shard; ValueError if it is not a complete shard."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {
                k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
                for k, v in f.attrs.items()
            }
            if attrs.get("format") != SHARD_FORMAT or not attrs.get("complete"):
                raise ValueError(f"{path}: not a complete {SHARD_FORMAT} file (attrs {attrs})")
            c = f["clips"]
            failed = {
                i: (s, e)
                for i, s, e in zip(
                    _str_list(f["failed/id"]), _str_list(f["failed/split"]), _str_list(f["failed/error"])
                )
            }
            return ShardContents(
                path.name,
                attrs,
                _str_list(c["id"]),
                _str_list(c["split"]),
                c["first"][()],
                c["n_frames"][()],
                c["fps"][()],
                failed,
            )
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: unreadable shard ({e})") from None


def scan_output(out: Path, expect: dict[str, Any] | None = None) -> tuple[list[ShardContents], list[str]]:
    """Finished shards of an output folder (sorted) and the names of partial/broken files it deleted.

    `expect`: shard attributes that must match (e.g. the crop size); a mismatch is a PrepareError."""
    removed = []
    for p in sorted(out.glob("shard_*.h5.partial")):
        p.unlink()
        removed.append(p.name)
    shards = []
    for p in sorted(out.glob("shard_*.h5")):
        if not SHARD_RE.match(p.name):
            continue
        try:
            sc = read_shard_tables(p)
        except ValueError:
            p.unlink()  # a crash can only leave .partial files, but a damaged copy is redone too
            removed.append(p.name)
            continue
        for k, v in (expect or {}).items():
            if v is not None and sc.attrs.get(k) != v:
                raise PrepareError(
                    f"{p}: was prepared with {k}={sc.attrs.get(k)!r}, this run asks for {v!r}; use "
                    f"the same setting to resume, or a new --out folder"
                )
        shards.append(sc)
    return shards, removed
