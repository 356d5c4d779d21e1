"""What the loader knows about each episode file and keeps per worker process: the construction scan (one
pass over each file's attributes and dataset shapes, no per-step data unless `check_finite`), each episode's
low-dim arrays and frame streams as a worker holds them, and the per-process caches (never pickled).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np

from robolearn.data import schema
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.loader.config import _resolve
from robolearn.data.loader.pool import _BufferPool, _Layout
from robolearn.data.reader import ByteStream, Episode, _file_size, check_num_steps, open_h5, read_attrs, read_rows

MAX_IMAGE_SIDE = 1 << 14  # a registered camera size above this is damage, not a camera

_SCAN_ATTRS = ("format", "schema_version", "uuid", "num_steps", "complete", "cameras", "action_space")


# ---- construction: one pass over the attributes ------------------------------------------------------
@dataclass
class EpisodeInfo:
    path: Path
    uuid: str
    num_steps: int
    cameras: dict[str, tuple[int, int]]  # name -> (H, W)
    action_space: str


@dataclass
class _Needs:
    """What the loader will read from every episode (checked at construction, from metadata only)."""

    cameras: list[str] | None
    proprio_keys: list[str]
    action_keys: list[str] | None
    check_finite: bool

    def lowdim(self, action_space: str) -> list[str]:
        keys = self.action_keys or [action_space, "gripper_position"]
        return self.proprio_keys + [_resolve(k, schema.ACTION_GROUP, schema.ACTION_FIELDS) for k in keys]


def _scan(path: Path, need: _Needs) -> EpisodeInfo:
    """Attributes and dataset shapes of one episode (no per-step data); raises EpisodeError."""
    f = open_h5(path)
    try:
        raw = {k: f.attrs[k] for k in (*_SCAN_ATTRS, schema.ABSENT_ATTR) if k in f.attrs}
        attrs = read_attrs(SimpleNamespace(attrs=raw), path)  # format / schema version checks, JSON parsing
        for k in _SCAN_ATTRS:
            if k not in attrs:
                raise EpisodeError(path, f"attrs/{k}", "missing (required by the schema)")
        n = attrs["num_steps"]
        if not isinstance(n, int) or isinstance(n, bool):
            raise EpisodeError(path, "attrs/num_steps", f"expected an int, got {n!r:.60}")
        n = check_num_steps(path, n, _file_size(f))
        absent = attrs.get(schema.ABSENT_ATTR, {})
        if not isinstance(absent, dict):
            raise EpisodeError(path, f"attrs/{schema.ABSENT_ATTR}", f"expected a JSON object, got {absent!r:.60}")
        if not attrs["complete"]:
            with Episode(path) as ep:  # unclosed/salvaged: the reader infers the committed length
                n = ep.num_steps
        if n < 0:
            raise EpisodeError(path, "attrs/num_steps", f"episode has {n} steps; expected >= 0")
        cams = {str(c["name"]): (int(c["height"]), int(c["width"])) for c in attrs["cameras"]}
        for c, hw in cams.items():
            if not all(0 < v <= MAX_IMAGE_SIDE for v in hw):
                raise EpisodeError(
                    path, f"attrs/cameras/{c}", f"image size {hw} (H, W); expected sides in 1..{MAX_IMAGE_SIDE}"
                )
        keys = need.lowdim(attrs["action_space"]) + ["language/active", "language/instructions"]
        for c in need.cameras if need.cameras is not None else list(cams):
            if schema.camera_group(c) in absent:
                raise _absent_error(path, schema.camera_group(c), absent)
            if c not in cams:
                raise EpisodeError(path, schema.camera_group(c), f"camera missing; cameras in file: {list(cams)}")
            keys.append(f"{schema.camera_group(c)}/rgb/index")
        for key in keys:
            if key in absent:
                raise _absent_error(path, key, absent)
            obj = f.get(key)
            if not isinstance(obj, h5py.Dataset) or obj.ndim < 1:
                raise EpisodeError(path, key, "missing (needed by the loader)")
            if key != "language/instructions" and obj.shape[0] < n:
                raise EpisodeError(path, key, f"has {obj.shape[0]} rows, expected num_steps = {n}")
        info = EpisodeInfo(path, str(attrs["uuid"]), n, cams, str(attrs["action_space"]))
        if need.check_finite and n:
            for key in need.lowdim(info.action_space):
                x = read_rows(f[key], path, key, n)
                bad = ~np.isfinite(x.reshape(n, -1)).all(axis=1)
                if bad.any():
                    raise EpisodeError(
                        path,
                        key,
                        f"non-finite values (NaN/Inf) at {int(bad.sum())} steps, first "
                        f"at step {int(np.flatnonzero(bad)[0])}; expected finite numbers",
                    )
        return info
    except EpisodeError:
        raise
    except H5_ERRORS as e:
        raise EpisodeError(path, "file", f"unreadable: {e}") from None
    finally:
        f.close()


def _absent_error(path: Path, key: str, absent: dict[str, str]) -> EpisodeError:
    return EpisodeError(
        path,
        key,
        f"absent in this episode (the source did not record it: {absent[key]}); the loader cannot serve it: "
        "leave it out of LoaderConfig (proprio_keys / action_keys / cameras) or filter this episode out",
    )


# ---- per-worker state --------------------------------------------------------------------------------
class _EpisodeData:
    """One episode's low-dim arrays (normalised) and frame streams, as a worker holds them."""

    def __init__(
        self,
        proprio: np.ndarray,
        action: np.ndarray,
        lang: np.ndarray,
        instructions: list[str],
        src: list[np.ndarray],
        crc: list[np.ndarray | None] | None = None,
    ):
        self.proprio, self.action, self.lang, self.instructions, self.src = proprio, action, lang, instructions, src
        self.crc = crc or [None] * len(src)  # per camera: each frame's CRC32 (schema >= 1.1), or None
        self.streams: list[ByteStream] | None = None
        self.h5: h5py.File | None = None  # kept open only when a stream cannot be read with pread
        # Per camera, the file offset of each frame's bytes when they lie inside one stored chunk (else -1)
        # and their length: one os.pread per frame. Other frames go through ByteStream.raw.
        self.pos: list[np.ndarray] = []
        self.size: list[np.ndarray] = []
        self.fd: int | None = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        for s in self.streams or ():
            s.close()
        if self.h5 is not None:
            self.h5.close()
            self.h5 = None
            self.streams = None  # h5py-backed streams die with their file


class _WorkerState:
    """Caches of one process. Never pickled; rebuilt when the process id changes (fork)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.episodes: OrderedDict[int, _EpisodeData] = OrderedDict()  # low-dim LRU
        self.open: OrderedDict[int, _EpisodeData] = OrderedDict()  # episodes holding a file/descriptor
        self.frames: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()  # decoded-frame LRU
        self.pool: _BufferPool | None = None
        self.layouts: dict[int, _Layout] = {}  # by batch size

    def close(self) -> None:
        for ed in self.open.values():
            ed.close()
        self.open.clear()
        self.episodes.clear()
        self.frames.clear()


def _frame_extents(stream: ByteStream) -> tuple[np.ndarray, np.ndarray]:
    """(file offset or -1, length) of each frame of a byte stream: the offset is known when the store is an
    uncompressed chunked dataset (the ByteStream's pread path) and the frame lies inside one chunk."""
    off, size = stream.index[:, 0], stream.index[:, 1]
    chunks, clen = getattr(stream, "_chunks", None), getattr(stream, "_chunk_len", 0)
    if chunks is None or not clen:
        return np.full(len(off), -1, np.int64), size.astype(np.int64)
    c, within = np.divmod(off, clen)
    inside = (within + size <= clen) & (c < len(chunks))
    pos = np.where(inside, chunks[np.minimum(c, len(chunks) - 1)] + within, -1)
    return pos.astype(np.int64), size.astype(np.int64)
