"""`EpisodeDataset`: the torch Dataset over episode files (sample layout in the package docstring). It builds
the (episode, step) index at construction, reads low-dim arrays and frame bytes lazily per worker, and fills
whole batches in one call (`__getitems__`), in shared memory inside DataLoader workers.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import simplejpeg
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from robolearn.data import codec, schema
from robolearn.data.errors import H5_ERRORS, EpisodeError, Problem
from robolearn.data.loader.config import LoaderConfig, Normalizer, _resolve
from robolearn.data.loader.episodes import EpisodeInfo, _EpisodeData, _frame_extents, _Needs, _scan, _WorkerState
from robolearn.data.loader.pool import _BufferPool, _Buffers, _Layout, _PooledBatch
from robolearn.data.reader import ByteStream, list_episodes, open_h5, read_rows

log = logging.getLogger(__name__)


class EpisodeDataset(Dataset):
    """Samples (episode, step) of a list of episode files; the sample layout is in the robolearn.data.loader
    docstring."""

    def __init__(
        self,
        paths: Iterable[str | Path],
        config: LoaderConfig | None = None,
        stats: dict[str, Any] | str | Path | None = None,
    ):
        self.config = cfg = config or LoaderConfig()
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("EpisodeDataset needs at least one episode path")
        self.proprio_keys = [
            _resolve(k, schema.STATE_GROUP, schema.STATE_FIELDS)
            for k in (cfg.proprio_keys or [f.path for f in schema.STATE_FIELDS])
        ]
        for k in cfg.action_keys or ():
            _resolve(k, schema.ACTION_GROUP, schema.ACTION_FIELDS)  # config errors fail before any file is read
        self.skipped: list[Problem] = []
        self.episodes: list[EpisodeInfo] = []
        self._scan_all(paths)
        self.action_keys = self._action_keys()
        first = self.episodes[0].cameras if self.episodes else {}
        self.cameras = list(cfg.cameras) if cfg.cameras is not None else list(first)
        self.image_sizes = {c: tuple(cfg.image_size or first.get(c, (0, 0))) for c in self.cameras}
        self._check_episodes()
        self._raise_if_bad()
        if not self.episodes:
            raise ValueError(
                f"no usable episodes among {len(paths)} paths; skipped: {[str(p) for p in self.skipped][:3]}"
            )
        if stats is None and cfg.stats_path:
            stats = cfg.stats_path
        if isinstance(stats, (str, Path)):
            from robolearn.data.stats import load_stats

            stats = load_stats(stats)
        self.proprio_norm = Normalizer(self.proprio_keys, cfg.normalize_proprio, stats, cfg.norm_eps)
        self.action_norm = Normalizer(self.action_keys, cfg.normalize_action, stats, cfg.norm_eps)
        self._build_index()
        self._state: _WorkerState | None = None

    @classmethod
    def from_root(
        cls,
        root: str | Path,
        filters: list[str] | None = None,
        config: LoaderConfig | None = None,
        stats: dict[str, Any] | str | Path | None = None,
    ) -> EpisodeDataset:
        """The episodes under `root`, optionally narrowed by catalog filters (robolearn.data.catalog). With
        normalisation on and no stats given, `<root>/stats.json` is used."""
        if filters:
            from robolearn.data.catalog import select_paths

            paths = select_paths(root, filters)
        else:
            paths = list_episodes(root)
        cfg = config or LoaderConfig()
        normalising = (cfg.normalize_action, cfg.normalize_proprio) != ("none", "none")
        if stats is None and not cfg.stats_path and normalising:
            stats = Path(root) / "stats.json"
        return cls(paths, cfg, stats)

    # ---- construction ----------------------------------------------------------------------------
    def _scan_all(self, paths: list[Path]) -> None:
        cfg = self.config
        need = _Needs(cfg.cameras, self.proprio_keys, cfg.action_keys, cfg.check_finite)
        for p in paths:
            try:
                self.episodes.append(_scan(p, need))
            except EpisodeError as e:
                self._bad(e)

    def _bad(self, e: EpisodeError) -> None:
        self.skipped.extend(e.problems[:1])

    def _raise_if_bad(self) -> None:
        if self.skipped and not self.config.skip_bad:
            first, n = self.skipped[0], len(self.skipped)
            more = f" (and {n - 1} more bad episodes)" if n > 1 else ""
            raise EpisodeError(
                first.path,
                first.field,
                first.message + more + "; LoaderConfig(skip_bad=True) "
                "skips bad episodes and lists them in dataset.skipped",
                problems=list(self.skipped),
            )
        for p in self.skipped:
            log.warning("skipping bad episode %s", p)

    def _action_keys(self) -> list[str]:
        keys = self.config.action_keys
        if keys is None:
            spaces = {e.action_space for e in self.episodes}
            first = self.episodes[0].action_space if self.episodes else schema.ACTION_SPACES[0]
            keys = [first, "gripper_position"]
            if len(spaces) > 1:  # episodes commanded different action forms
                keep = []
                for e in self.episodes:
                    if e.action_space == first:
                        keep.append(e)
                    else:
                        self._bad(
                            EpisodeError(
                                e.path,
                                "attrs/action_space",
                                f"commanded {e.action_space!r} but the "
                                f"dataset's first episode commanded {first!r}; set "
                                "LoaderConfig.action_keys to choose the action form explicitly",
                            )
                        )
                self.episodes = keep
        return [_resolve(k, schema.ACTION_GROUP, schema.ACTION_FIELDS) for k in keys]

    def _check_episodes(self) -> None:
        keep = []
        for e in self.episodes:
            for c in self.cameras:
                if c not in e.cameras:
                    self._bad(
                        EpisodeError(
                            e.path, schema.camera_group(c), f"camera missing; cameras in file: {list(e.cameras)}"
                        )
                    )
                    break
                if e.cameras[c] != self.image_sizes[c]:
                    self._bad(
                        EpisodeError(
                            e.path,
                            f"attrs/cameras/{c}",
                            f"image size {e.cameras[c]} (H, W), expected {tuple(self.image_sizes[c])}",
                        )
                    )
                    break
            else:
                keep.append(e)
        self.episodes = keep

    def _build_index(self) -> None:
        k, h = self.config.history, self.config.chunk
        eps, ts = [], []
        for i, e in enumerate(self.episodes):
            lo, hi = (0, e.num_steps) if self.config.pad else (k - 1, e.num_steps - h + 1)
            if hi > lo:
                ts.append(np.arange(lo, hi, dtype=np.int64))
                eps.append(np.full(hi - lo, i, np.int64))
        self._ep = np.concatenate(eps) if eps else np.zeros(0, np.int64)
        self._t = np.concatenate(ts) if ts else np.zeros(0, np.int64)
        self._len = np.array([e.num_steps for e in self.episodes], np.int64)

    # ---- pickling and per-process state ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["_state"] = None  # open files never travel; each process opens its own
        return d

    def _worker(self) -> _WorkerState:
        st = self._state
        if st is None or st.pid != os.getpid():
            if st is not None:  # inherited through fork: drop the parent's handles in this process
                st.close()
            st = self._state = _WorkerState()
        return st

    def close(self) -> None:
        """Close this process's open files (they reopen lazily on the next read)."""
        if self._state is not None and self._state.pid == os.getpid():
            self._state.close()
        self._state = None

    def cache_info(self) -> dict[str, int]:
        st = self._state
        return {
            "episodes": len(st.episodes) if st else 0,
            "open": len(st.open) if st else 0,
            "frames": len(st.frames) if st else 0,
            "buffers": len(st.pool.slots) if st and st.pool else 0,
        }

    # ---- reading ---------------------------------------------------------------------------------
    def _load(self, i: int) -> _EpisodeData:
        info = self.episodes[i]
        n = info.num_steps
        f = open_h5(info.path)
        p = info.path
        try:

            def cat(keys: list[str]) -> np.ndarray:
                return np.concatenate(
                    [np.asarray(read_rows(f[k], p, k, n), np.float64).reshape(n, -1) for k in keys], axis=1
                )

            proprio = self.proprio_norm.normalize(cat(self.proprio_keys))
            action = self.action_norm.normalize(cat(self.action_keys))
            lang = np.asarray(read_rows(f["language/active"], p, "language/active", n), np.int64).reshape(n)
            instr = [
                s.decode(errors="replace") if isinstance(s, bytes) else str(s)
                for s in np.atleast_1d(read_rows(f["language/instructions"], p, "language/instructions"))
            ]
            src, crcs = [], []
            for c in self.cameras:
                g = f"{schema.camera_group(c)}/rgb"
                present = read_rows(f[f"{g}/index"], p, f"{g}/index", n)[:, 1] > 0
                src.append(np.maximum.accumulate(np.where(present, np.arange(n), -1)))
                crc = f.get(f"{g}/{schema.FRAME_CRC}") if self.config.verify_checksums else None
                crcs.append(read_rows(crc, p, f"{g}/{schema.FRAME_CRC}", n) if isinstance(crc, h5py.Dataset) else None)
        except EpisodeError:
            raise
        except H5_ERRORS as e:
            raise EpisodeError(info.path, "file", f"cannot read low-dim arrays: {e}") from None
        finally:
            f.close()
        if not instr:
            instr = [""]
        lang = np.clip(lang, 0, len(instr) - 1)
        return _EpisodeData(proprio, action, lang, instr, src, crcs)

    def _open(self, st: _WorkerState, i: int, ed: _EpisodeData) -> list[ByteStream]:
        """The episode's frame streams, keeping at most max_open_files episodes open in this process."""
        if i in st.open:
            st.open.move_to_end(i)
        else:
            st.open[i] = ed
            while len(st.open) > self.config.max_open_files:
                st.open.popitem(last=False)[1].close()
        if ed.streams is None:
            info = self.episodes[i]
            f = open_h5(info.path)
            try:
                ed.streams = [
                    ByteStream(f[f"{schema.camera_group(c)}/rgb"], info.path, info.num_steps) for c in self.cameras
                ]
                for s in ed.streams:  # every frame inside its byte store, so pread never reads garbage lengths
                    off, ln = s.index[:, 0], s.index[:, 1]
                    bad = np.flatnonzero((off < 0) | (ln < 0) | (off + ln > s.size) | (ln > schema.MAX_FRAME_BYTES))
                    if bad.size:
                        s.extent(int(bad[0]))  # raises the EpisodeError naming the frame
            except BaseException as e:
                f.close()
                if isinstance(e, H5_ERRORS) and not isinstance(e, EpisodeError):
                    raise EpisodeError(info.path, "file", f"cannot open the frame streams: {e}") from None
                raise
            ed.pos, ed.size = zip(*(_frame_extents(s) for s in ed.streams)) if ed.streams else ((), ())
            if all(getattr(s, "_chunks", None) is not None for s in ed.streams):
                f.close()  # pread path: only descriptors are needed
            else:
                ed.h5 = f  # h5py fallback path: the file stays open while the episode is in `open`
        if ed.fd is None:
            ed.fd = os.open(self.episodes[i].path, os.O_RDONLY)
        return ed.streams

    def _episode(self, st: _WorkerState, i: int) -> _EpisodeData:
        ed = st.episodes.get(i)
        if ed is None:
            ed = st.episodes[i] = self._load(i)
            while len(st.episodes) > self.config.lowdim_cache:
                j, old = st.episodes.popitem(last=False)
                if st.open.pop(j, None) is not None:
                    old.close()
        else:
            st.episodes.move_to_end(i)
        return ed

    def _decode_all(self, jobs: list[tuple[np.ndarray, bytes, ByteStream, int, int, int]]) -> None:
        """Decode each job's frame bytes into its `out` (H, W, 3): JPEG straight into the buffer with the
        options of codec.decode_rgb; other encodings through codec.decode_rgb and a copy."""
        fast = self.config.fast_decode
        decode = simplejpeg.decode_jpeg
        job = None
        try:
            for job in jobs:
                out, buf, stream = job[0], job[1], job[2]
                if stream.encoding == "jpeg":
                    img = decode(buf, "RGB", fast, fast, buffer=out)
                else:
                    img = codec.decode_rgb(buf, stream.encoding, fast=fast)
                    if img.shape == out.shape:
                        out[...] = img
                if img.shape != out.shape:
                    raise ValueError(f"decoded frame is {img.shape}")
        except H5_ERRORS as e:
            out, _, stream, i, _, src = job
            raise EpisodeError(
                self.episodes[i].path,
                f"{stream.name}[{src}]",
                f"cannot decode {stream.encoding} frame of the expected shape {out.shape}: {e}",
            ) from None

    def __len__(self) -> int:
        return int(self._ep.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample (tensors without the batch dimension)."""
        batch = self._fetch([index], pooled=False)
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch as a dict of stacked tensors (see the package doc); torch's DataLoader calls this
        with each batch of indices. Use `EpisodeDataset.collate` as the DataLoader's collate_fn."""
        return self._fetch(indices, pooled=True)

    def _fetch(self, indices: Sequence[int], pooled: bool) -> dict[str, Any]:
        cfg, st = self.config, self._worker()
        idx = np.asarray(indices, np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range [0, {len(self)})")
        ep, t = self._ep[idx], self._t[idx]
        b, k, h = idx.size, cfg.history, cfg.chunk
        hist = t[:, None] + np.arange(1 - k, 1)
        act = t[:, None] + np.arange(h)
        last = self._len[ep][:, None] - 1
        obs_pad, action_pad = hist < 0, act > last
        hist, act = np.maximum(hist, 0), np.minimum(act, last)
        bufs, lease = self._alloc_batch(st, b, pooled)
        arrays = bufs.arrays
        views = [arrays[f"images/{c}"] for c in self.cameras]
        proprio, action = arrays["proprio"], arrays["action"]
        language: list[str] = []
        # Pass 1: low-dim values, and which frame goes where; frame bytes are read here. Pass 2 decodes every
        # JPEG of the batch in one tight loop (the decoder's tables stay in cache), then pass 3 fills repeats.
        frames, cache_size = st.frames, cfg.frame_cache
        jobs: list[tuple[np.ndarray, bytes, ByteStream, int, int, int]] = []  # out, bytes, stream, episode, cam, step
        copies: list[tuple[np.ndarray, np.ndarray]] = []  # (out, decoded slot holding the same frame)
        seen: dict[tuple[int, int, int], np.ndarray] = {}  # frames decoded for this batch
        for n, (i, ti, hi) in enumerate(zip(ep.tolist(), t.tolist(), hist)):
            ed = self._episode(st, i)
            proprio[n] = ed.proprio[hi]
            action[n] = ed.action[act[n]]
            if cfg.language:
                language.append(ed.instructions[ed.lang[ti]])
            streams = self._open(st, i, ed)
            fd = ed.fd
            for c, (stream, view) in enumerate(zip(streams, views)):
                pos, size = ed.pos[c], ed.size[c]
                for j, s in enumerate(ed.src[c][hi].tolist()):
                    out = view[n, j]
                    if s < 0:  # nothing recorded yet on this camera: black, as Episode.frame
                        out[...] = 0
                        continue
                    key = (i, c, s)
                    if key in seen:  # padding, dropped frames, overlapping samples
                        copies.append((out, seen[key]))
                        continue
                    seen[key] = out
                    img = frames.get(key) if cache_size else None
                    if img is None:
                        p = pos[s]
                        buf = os.pread(fd, size[s], p) if p >= 0 else stream.raw(s)
                        crc = ed.crc[c]
                        if crc is not None and zlib.crc32(buf) != crc[s]:
                            stream.check(s, buf)  # raises the EpisodeError naming the frame
                        jobs.append((out, buf, stream, i, c, s))
                    else:
                        frames.move_to_end(key)
                        out[...] = img
        self._decode_all(jobs)
        for out, src in copies:
            out[...] = src
        if cache_size:
            for out, _, _, i, c, s in jobs:
                frames[(i, c, s)] = out.copy()
                if len(frames) > cache_size:
                    frames.popitem(last=False)
        for name, val in (("obs_pad", obs_pad), ("action_pad", action_pad), ("episode", ep), ("step", t)):
            arrays[name][...] = val
        batch: dict[str, Any] = _PooledBatch() if lease is not None else {}
        if lease is not None:
            batch.lease = lease
        batch.update(bufs.out)
        if cfg.language:
            batch["language"] = language
        return batch

    def _alloc_batch(self, st: _WorkerState, b: int, pooled: bool) -> tuple[_Buffers, tuple[Any, ...] | None]:
        """Every tensor of a batch, packed in one storage: shared and pooled inside a DataLoader worker."""
        layout = st.layouts.get(b)
        if layout is None:
            k, h = self.config.history, self.config.chunk
            layout = st.layouts[b] = _Layout(
                [(f"images/{c}", (b, k, *self.image_sizes[c], 3), torch.uint8) for c in self.cameras]
                + [
                    ("proprio", (b, k, self.proprio_norm.shift.size), torch.float32),
                    ("action", (b, h, self.action_norm.shift.size), torch.float32),
                    ("obs_pad", (b, k), torch.bool),
                    ("action_pad", (b, h), torch.bool),
                    ("episode", (b,), torch.int64),
                    ("step", (b,), torch.int64),
                ]
            )
        if not (self.config.shared_memory and get_worker_info() is not None):
            return layout.views(torch.UntypedStorage(layout.nbytes)), None
        if self.config.buffer_pool == 0 or not pooled:
            return layout.views(torch.UntypedStorage._new_shared(layout.nbytes)), None
        if st.pool is None:
            st.pool = _BufferPool(self.config.buffer_pool)
        slot, bufs = st.pool.acquire(layout, b)
        return bufs, (st.pool.lease(slot, bufs) if slot >= 0 else None)

    # ---- batching --------------------------------------------------------------------------------
    @staticmethod
    def collate(batch: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
        """collate_fn for DataLoader: batches from __getitems__ pass through; lists of samples are stacked."""
        if isinstance(batch, dict):
            return batch
        out: dict[str, Any] = {}
        for key in batch[0]:
            vals = [s[key] for s in batch]
            out[key] = torch.stack(vals) if isinstance(vals[0], torch.Tensor) else list(vals)
        return out

    def dataloader(self, **kwargs: Any) -> DataLoader:
        """A DataLoader over this dataset with the right collate_fn (kwargs go to DataLoader)."""
        kwargs.setdefault("collate_fn", self.collate)
        return DataLoader(self, **kwargs)

    def unnormalize_action(self, action: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        return self.action_norm.unnormalize(action)

    def unnormalize_proprio(self, proprio: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        return self.proprio_norm.unnormalize(proprio)

    @property
    def meta(self) -> dict[str, Any]:
        """What a policy needs to know about the tensors."""
        return {
            "cameras": {c: list(self.image_sizes[c]) for c in self.cameras},
            "history": self.config.history,
            "chunk": self.config.chunk,
            "proprio_keys": self.proprio_keys,
            "action_keys": self.action_keys,
            "proprio_dim": int(self.proprio_norm.shift.size),
            "action_dim": int(self.action_norm.shift.size),
            "episodes": len(self.episodes),
            "samples": len(self),
        }
