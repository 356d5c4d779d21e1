"""Reading a prepared folder: `ShardSource(folder)` is a ClipSource over index.h5; each frame is one `os.pread`
from the contiguous byte store of its shard, with files opened lazily in the reading process (fork-safe for
DataLoader workers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.pretrain.sampling import ClipTable
from robolearn.pretrain.shards.layout import INDEX_FORMAT, INDEX_NAME, _str_list


class _OpenShard:
    """A shard opened for reading in one process: its frame index and a raw file descriptor."""

    def __init__(self, path: Path):
        with h5py.File(path, "r") as f:
            data = f["frames/data"]
            self.index = f["frames/index"][()]
            self.base = data.id.get_offset()
            self.encoding = f.attrs.get("encoding", "jpeg")
            if data.chunks is not None:
                raise ValueError(f"{path}: frames/data is chunked; expected the contiguous layout this module writes")
        self.fd = os.open(path, os.O_RDONLY)
        self.path = path

    def read(self, row: int) -> bytes:
        off, n = (int(x) for x in self.index[row])
        buf = os.pread(self.fd, n, int(self.base) + off)
        if len(buf) != n:
            raise OSError(f"{self.path}: short read of frame row {row} ({len(buf)} of {n} bytes): truncated shard?")
        return buf

    def close(self) -> None:
        os.close(self.fd)


class ShardSource:
    """The clips of a prepared output folder (`prepare`), as a ClipSource.

    `table` is read from index.h5 at construction; frames are decoded JPEG, (size, size, 3) uint8 RGB."""

    def __init__(self, folder: str | Path, name: str | None = None, max_open: int = 64):
        self.folder = Path(folder)
        path = self.folder / INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no pretraining index here; run `robolearn pretrain prepare --out {self.folder} ...` first"
            )
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != INDEX_FORMAT:
                raise ValueError(f"{path}: attrs/format is {f.attrs.get('format')!r}, expected {INDEX_FORMAT!r}")
            self.attrs = {
                k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
                for k, v in f.attrs.items()
            }
            self.shards = _str_list(f["shards"])
            g = f["clips"]
            self.shard = g["shard"][()]
            self.first = g["first"][()]
            self.templates = _str_list(g["template"])
            self.table = ClipTable(
                name or str(self.attrs.get("source", "ssv2")),
                _str_list(g["id"]),
                _str_list(g["caption"]),
                g["n_frames"][()],
                g["split"][()],
                g["input_ids"][()],
                g["attention_mask"][()],
                self.attrs.get("cls_token_id", 101),
                self.attrs.get("pad_token_id", 0),
            )
        self.size = self.attrs.get("size")
        self.max_open = max_open
        self._pid = -1
        self._open: dict[int, _OpenShard] = {}

    def __len__(self) -> int:
        return len(self.table)

    def _shard(self, s: int) -> _OpenShard:
        if self._pid != os.getpid():  # forked: never use the parent's descriptors
            self._open, self._pid = {}, os.getpid()
        sh = self._open.get(s)
        if sh is None:
            if len(self._open) >= self.max_open:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            sh = self._open[s] = _OpenShard(self.folder / self.shards[s])
        return sh

    def read_jpeg(self, clip: int, frame: int) -> bytes:
        n = int(self.table.n_frames[clip])
        if not 0 <= frame < n:
            raise IndexError(f"clip {self.table.ids[clip]!r}: frame {frame} out of range [0, {n})")
        return self._shard(int(self.shard[clip])).read(int(self.first[clip]) + frame)

    def read_frames(self, clip: int, frames: Iterable[int]) -> list[np.ndarray]:
        import simplejpeg

        return [simplejpeg.decode_jpeg(self.read_jpeg(clip, int(t)), colorspace="RGB") for t in frames]

    def close(self) -> None:
        if self._pid == os.getpid():
            for sh in self._open.values():
                sh.close()
        self._open = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"], state["_pid"] = {}, -1
        return state
