"""Checksums of episode files (schema >= 1.1), so that silent corruption is detectable.

What HDF5 already covers (format `libver="latest"`): the superblock, object headers, B-tree and heap
metadata blocks carry checksums that HDF5 checks whenever it reads them. What it does not cover is raw data
and the global heap that holds variable-length strings (every string attribute and /language/instructions).
The schema closes those gaps with three checksums:

- numeric per-step datasets (and byte-stream indices) carry HDF5's fletcher32 filter: HDF5 verifies each
  chunk on every read and fails the read on a mismatch, so every reader checks them for free;
- each byte stream has a `crc32` dataset: the CRC32 of every frame's bytes (frames are read with `pread`,
  past HDF5, so the reader and the loader check them themselves);
- the root attribute `content_crc32` is the CRC32 of every attribute of every object (except itself) and of
  every string dataset, in a canonical order (`content_crc32` below). The writer sets it on close, repair on
  salvage and `edit.edit_atomically` after every edit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from robolearn.data import schema

NUMERIC_KW: dict[str, Any] = {"fletcher32": True}  # creation keywords of every checksummed numeric dataset


def frame_crc(buf: bytes | memoryview) -> int:
    """CRC32 of one frame's bytes (0 for an empty frame)."""
    return zlib.crc32(buf) & 0xFFFFFFFF


def attr_size(obj: h5py.HLObject, name: str) -> int:
    """Bytes one attribute occupies in the file (its stored size), without reading it."""
    aid = h5py.h5a.open(obj.id, name.encode())
    try:
        return int(aid.get_storage_size())
    finally:
        aid.close()


def value_size(v: Any) -> int:
    """Bytes of an attribute value as read (variable-length strings live in the global heap: the stored size of
    the attribute itself is only a 16-byte reference to them)."""
    if isinstance(v, str):
        return len(v)
    if isinstance(v, bytes):
        return len(v)
    a = np.asarray(v)
    if a.dtype.kind == "O":
        return sum(value_size(x) for x in a.ravel())
    return int(a.nbytes)


def read_bounded_attr(obj: h5py.HLObject, name: str) -> Any:
    """One attribute's value; ValueError when it is larger than schema.MAX_ATTR_BYTES (fixed-size values are
    refused before they are read)."""
    size = attr_size(obj, name)
    if size <= schema.MAX_ATTR_BYTES:
        v = obj.attrs[name]
        size = value_size(v)
        if size <= schema.MAX_ATTR_BYTES:
            return v
    raise ValueError(
        f"attribute of {size} bytes; expected at most {schema.MAX_ATTR_BYTES} bytes (schema.MAX_ATTR_BYTES)"
    )


def _canon(v: Any) -> bytes:
    if isinstance(v, bytes):
        return b"b" + v
    if isinstance(v, str):
        return b"s" + v.encode("utf-8", "surrogatepass")
    a = np.asarray(v)
    if a.dtype.kind == "O":
        return (
            b"o"
            + str(a.shape).encode()
            + b"".join(len(c).to_bytes(8, "little") + c for c in (_canon(x) for x in a.ravel()))
        )
    return a.dtype.str.encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes()


def _objects(f: h5py.File) -> Iterator[tuple[str, h5py.HLObject]]:
    names: list[str] = []
    f.visit(names.append)
    yield "/", f
    for name in sorted(names):
        obj = f.get(name)
        if obj is not None:
            yield name, obj


def content_crc32(f: h5py.File) -> int:
    """CRC32 over every attribute (name and value, except the root `content_crc32`) of every group and dataset,
    and over the contents of every string dataset, objects and attributes in sorted order. Raises ValueError
    for an attribute above schema.MAX_ATTR_BYTES (never reads it)."""
    crc = 0

    def add(label: str, value: Any) -> None:
        nonlocal crc
        body = _canon(value)
        crc = zlib.crc32(label.encode("utf-8", "surrogatepass") + b"\0" + len(body).to_bytes(8, "little") + body, crc)

    for name, obj in _objects(f):
        for key in sorted(obj.attrs.keys()):
            if name == "/" and key == schema.CONTENT_CRC_ATTR:
                continue
            try:
                value = read_bounded_attr(obj, key)
            except ValueError as e:
                raise ValueError(f"attribute {name}.{key}: {e}") from None
            add(f"{name}.{key}", value)
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "OSU" and h5py.check_string_dtype(obj.dtype):
            if obj.size > schema.MAX_ATTR_BYTES:
                raise ValueError(f"string dataset {name} has more than {schema.MAX_ATTR_BYTES} entries")
            add(name, obj[()])
    return crc & 0xFFFFFFFF


def set_content_crc(f: h5py.File) -> None:
    """Write the root attribute `content_crc32` of an open (writable) file."""
    f.attrs[schema.CONTENT_CRC_ATTR] = np.int64(content_crc32(f))


def has_checksums(version: Any) -> bool:
    """True when files of schema `version` carry checksums."""
    try:
        return tuple(int(x) for x in str(version).split(".")) >= (1, 1)
    except ValueError:
        return False
