"""A torch Dataset over episode files: frame histories, action chunks, padding masks, normalisation.

One sample is the step t of one episode:

    images/<camera>  uint8 (k, 3, H, W)   frames at t-k+1..t (dropped frames repeat the last present one)
    proprio          float32 (k, P)       the proprio keys concatenated, at t-k+1..t
    action           float32 (H, A)       the action keys concatenated, at t..t+H-1
    obs_pad          bool (k,)            True where t-k+1+j < 0 (the value repeats step 0)
    action_pad       bool (H,)            True where t+j >= T (the value repeats step T-1)
    language         str                  the instruction active at step t
    episode, step    int64                which sample this is

Batches add a leading batch dimension (language becomes a list). Images stay uint8 (convert on the model
side, ideally on the GPU); they come as a channels-last view (strides of (B, k, H, W, 3)) because the JPEG
decoder writes HWC straight into the batch buffer; `.contiguous()` gives a packed CHW copy if one is needed.

Speed and memory, per worker process (all bounded, so memory stays flat over an epoch):
- The index (episode, step) is built once from each file's `num_steps` attribute (0-step episodes add no
  samples); no per-step data is read
  at construction (unless `check_finite` is asked for). Bad files found there raise an EpisodeError naming
  the file and field, or with `skip_bad` are left out and listed in `dataset.skipped`.
- Files are opened lazily in the process that reads them, so the dataset pickles without handles and each
  DataLoader worker opens its own (the owner pid is tracked; state inherited through fork is dropped).
- Each episode's low-dim arrays (proprio, actions, language index) are read once, normalised once, and kept
  in an LRU of `lowdim_cache` episodes (robomimic's low_dim cache, bounded). Frame bytes are read with
  `os.pread` at the HDF5 chunk addresses (reader.ByteStream), so the h5py file is closed again right after
  the episode's arrays are read; at most `max_open_files` episodes keep descriptors open (LRU).
- `__getitems__` builds a whole batch in one call (torch's batched fetch): JPEG frames are decoded straight
  into the batch buffer. Inside a DataLoader worker that buffer is shared memory taken from a small per-worker
  pool (see "batch buffers" below), so handing the batch over copies nothing and fresh pages are not faulted
  in for every batch. Pass `collate_fn=EpisodeDataset.collate` to the DataLoader (or use `.dataloader()`).
- An optional LRU of decoded frames (`frame_cache`, in frames) helps when samples overlap heavily.

Normalisation (off by default) uses a stats dict from robolearn.data.stats: mean/std, or min/max to
[-1, 1]; `unnormalize_action` inverts it. The default action is the commanded action form of the episodes
(attribute `action_space`) followed by `action/gripper_position`; the default proprio is every robot_state
field in schema order.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Sequence

import h5py
import numpy as np
import simplejpeg
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from robolearn.data import codec, schema
from robolearn.data.errors import EpisodeError, Problem
from robolearn.data.reader import ByteStream, Episode, list_episodes, open_h5, read_attrs

log = logging.getLogger(__name__)

NORM_MODES = ("none", "mean_std", "min_max")
_SCAN_ATTRS = ("format", "schema_version", "uuid", "num_steps", "complete", "cameras", "action_space")


@dataclass
class LoaderConfig:
    cameras: list[str] | None = None  # default: every camera of the first episode
    image_size: tuple[int, int] | None = None  # expected (H, W) of every camera; default: the first episode's
    history: int = 1  # k: frames per camera and proprio steps t-k+1..t
    chunk: int = 1  # H: actions t..t+H-1
    action_keys: list[str] | None = None  # default: the commanded action space, then gripper_position
    proprio_keys: list[str] | None = None  # default: every robot_state field, in schema order
    language: bool = True  # return the instruction active at step t
    pad: bool = True  # sample every step, padding at episode edges; False: only windows fully inside
    normalize_action: str = "none"  # none | mean_std | min_max (to [-1, 1])
    normalize_proprio: str = "none"  # none | mean_std | min_max
    stats_path: str | None = None  # stats.json for normalisation (or pass `stats=` to the dataset)
    norm_eps: float = 1e-6  # std / half-range below this is treated as 1 (constant dimensions)
    frame_cache: int = 0  # decoded frames kept per worker (LRU); 0 = off
    lowdim_cache: int = 256  # episodes whose low-dim arrays are kept per worker (LRU)
    max_open_files: int = 64  # episodes with open descriptors per worker (LRU)
    skip_bad: bool = False  # leave out bad episodes (listed in `dataset.skipped`) instead of raising
    check_finite: bool = False  # at construction, read the low-dim arrays and reject NaN/Inf
    fast_decode: bool = True  # libjpeg-turbo fast DCT and upsampling (as reader.Episode.frame)
    shared_memory: bool = True  # in DataLoader workers, build batches in shared memory (no copy on hand-off)
    buffer_pool: int = 8  # shared batch buffers reused per worker (0: a fresh one per batch; see below)

    def __post_init__(self) -> None:
        if self.history < 1 or self.chunk < 1:
            raise ValueError(f"history and chunk must be >= 1, got {self.history} and {self.chunk}")
        for name in ("normalize_action", "normalize_proprio"):
            if getattr(self, name) not in NORM_MODES:
                raise ValueError(f"{name} must be one of {NORM_MODES}, got {getattr(self, name)!r}")
        if self.buffer_pool < 0:
            raise ValueError(f"buffer_pool must be >= 0, got {self.buffer_pool}")
        for name in ("lowdim_cache", "max_open_files"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.frame_cache < 0:
            raise ValueError(f"frame_cache must be >= 0, got {self.frame_cache}")


# ---- keys and normalisation -------------------------------------------------------------------------
def _resolve(key: str, group: str, allowed: Sequence[schema.Field]) -> str:
    paths = [f.path for f in allowed]
    full = key if key in paths else f"{group}/{key}"
    if full not in paths:
        raise ValueError(f"unknown {group} key {key!r}; expected one of {[p.rsplit('/', 1)[-1] for p in paths]}")
    return full


def _dim(path: str) -> int:
    return int(np.prod(schema.step_fields_by_path()[path].shape, dtype=np.int64))


class Normalizer:
    """Per-dimension affine map of a concatenation of keys, from a stats dict (see robolearn.data.stats).

    mean_std: (x - mean) / std.  min_max: to [-1, 1] over [min, max].  Scales below `eps` (constant
    dimensions) are replaced by 1, so those dimensions map to 0 and still invert exactly."""

    def __init__(self, keys: list[str], mode: str, stats: dict[str, Any] | None, eps: float = 1e-6):
        self.keys, self.mode = keys, mode
        dim = sum(_dim(k) for k in keys)
        self.shift, self.scale = np.zeros(dim, np.float64), np.ones(dim, np.float64)
        if mode == "none":
            return
        if stats is None:
            raise ValueError(f"normalisation {mode!r} needs statistics: pass stats= or set LoaderConfig.stats_path")
        from robolearn.data.stats import key_stats

        shift, scale = [], []
        for k in keys:
            s = key_stats(stats, k)
            if mode == "mean_std":
                shift.append(s["mean"])
                scale.append(s["std"])
            else:
                shift.append((s["max"] + s["min"]) / 2)
                scale.append((s["max"] - s["min"]) / 2)
        self.shift = np.concatenate(shift)
        sc = np.concatenate(scale)
        self.scale = np.where(sc < eps, 1.0, sc)

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.shift) / self.scale).astype(np.float32) if self.active else x.astype(np.float32)

    def unnormalize(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        if not self.active:
            return x
        if isinstance(x, torch.Tensor):
            shift = torch.as_tensor(self.shift, dtype=x.dtype, device=x.device)
            return x * torch.as_tensor(self.scale, dtype=x.dtype, device=x.device) + shift
        return (x * self.scale + self.shift).astype(np.float32)


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
        raw = {k: f.attrs[k] for k in _SCAN_ATTRS if k in f.attrs}
        attrs = read_attrs(SimpleNamespace(attrs=raw), path)  # format / schema version checks, JSON parsing
        for k in _SCAN_ATTRS:
            if k not in attrs:
                raise EpisodeError(path, f"attrs/{k}", "missing (required by the schema)")
        n = int(attrs["num_steps"])
        if not attrs["complete"]:
            with Episode(path) as ep:  # unclosed/salvaged: the reader infers the committed length
                n = ep.num_steps
        if n < 0:
            raise EpisodeError(path, "attrs/num_steps", f"episode has {n} steps; expected >= 0")
        cams = {c["name"]: (int(c["height"]), int(c["width"])) for c in attrs["cameras"]}
        keys = need.lowdim(attrs["action_space"]) + ["language/active", "language/instructions"]
        for c in need.cameras if need.cameras is not None else list(cams):
            if c not in cams:
                raise EpisodeError(path, schema.camera_group(c), f"camera missing; cameras in file: {list(cams)}")
            keys.append(f"{schema.camera_group(c)}/rgb/index")
        for key in keys:
            obj = f.get(key)
            if not isinstance(obj, h5py.Dataset):
                raise EpisodeError(path, key, "missing (needed by the loader)")
            if key != "language/instructions" and obj.shape[0] < n:
                raise EpisodeError(path, key, f"has {obj.shape[0]} rows, expected num_steps = {n}")
        info = EpisodeInfo(path, str(attrs["uuid"]), n, cams, str(attrs["action_space"]))
        if need.check_finite and n:
            for key in need.lowdim(info.action_space):
                x = f[key][:n]
                bad = ~np.isfinite(x.reshape(n, -1)).all(axis=1)
                if bad.any():
                    raise EpisodeError(path, key, f"non-finite values (NaN/Inf) at {int(bad.sum())} steps, first "
                                       f"at step {int(np.flatnonzero(bad)[0])}; expected finite numbers")
        return info
    except EpisodeError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise EpisodeError(path, "file", f"unreadable: {e}") from None
    finally:
        f.close()


# ---- per-worker state --------------------------------------------------------------------------------
class _EpisodeData:
    """One episode's low-dim arrays (normalised) and frame streams, as a worker holds them."""

    def __init__(self, proprio: np.ndarray, action: np.ndarray, lang: np.ndarray, instructions: list[str],
                 src: list[np.ndarray]):
        self.proprio, self.action, self.lang, self.instructions, self.src = proprio, action, lang, instructions, src
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


# ---- batch buffers ------------------------------------------------------------------------------------
# A batch built in a DataLoader worker goes to the main process through shared memory. Fresh shared memory
# for every batch costs more than decoding the JPEGs into it (page faults on allocation, unmapping on free,
# and a descriptor handed over a socket per storage), so each worker keeps a small pool of shared buffers:
#
# - A pooled batch is pickled as (pool id, buffer index, layout) plus the non-tensor items; the buffer's
#   storage itself travels (as a torch shared storage) only until the main process acknowledges that it
#   has mapped it, and so does the pool's flag array. After that a batch costs no descriptor and no mmap.
# - The main process builds the batch tensors on a fresh alias of the mapped buffer and keeps a weak
#   reference to that alias. When every tensor of the batch has been freed the alias expires, and the next
#   arrival clears the buffer's in-use flag (shared memory the worker reads).
# - A worker refills only a buffer whose flag is clear; otherwise it takes a new one (at most `buffer_pool`
#   per worker) or an unpooled one. A batch the training loop still holds is never overwritten; tensors
#   forwarded to another process are copied by torch (the alias is not a torch shared storage).
# - The main process drops the mappings of a pool once its worker process has exited.

_ALIGN = 64
# libjpeg-turbo writes its output with non-temporal stores when the output rows are 32-byte aligned; for
# frames of this size that measured ~20% slower than ordinary stores, so image regions start 16 bytes past
# a 64-byte boundary (their rows, W*3 bytes apart, then all sit at 16 mod 32).
_IMAGE_SHIFT = 16
Fields = list[tuple[str, tuple[int, ...], torch.dtype]]


class _Layout:
    """Where each tensor of a batch of a given size lives in one packed storage."""

    def __init__(self, fields: Fields):
        self.fields, self.offsets, off = fields, [], 0
        for name, shape, dtype in fields:
            shift = _IMAGE_SHIFT if name.startswith("images/") else 0
            self.offsets.append(off + shift)
            n = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + shift
            off += -(-n // _ALIGN) * _ALIGN
        self.nbytes = max(off, _ALIGN)

    def tensors(self, storage: torch.UntypedStorage) -> dict[str, torch.Tensor]:
        """The batch tensors on `storage`, images permuted to (B, k, 3, H, W)."""
        out = {}
        for (name, shape, dtype), off in zip(self.fields, self.offsets):
            t = torch.empty(0, dtype=dtype).set_(storage, off // dtype.itemsize, shape)
            out[name] = t.permute(0, 1, 4, 2, 3) if name.startswith("images/") else t
        return out

    def views(self, storage: torch.UntypedStorage) -> "_Buffers":
        return _Buffers(self, storage)


class _Buffers:
    """One batch buffer: numpy views the loader fills (images HWC) and the tensors handed out."""

    def __init__(self, layout: _Layout, storage: torch.UntypedStorage):
        self.layout, self.storage = layout, storage
        self.out = layout.tensors(storage)
        self.arrays = {name: (t.permute(0, 1, 3, 4, 2) if name.startswith("images/") else t).numpy()
                       for name, t in self.out.items()}


class _BufferPool:
    """Shared-memory batch buffers of one worker process and their flags (see above)."""

    def __init__(self, max_slots: int):
        self.id = f"{os.getpid()}-{uuid.uuid4().hex}"
        self.max_slots = max_slots
        # [0, n): buffer in use; [n, 2n): main process has mapped buffer i; [2n]: main process has the flags
        self.flags = torch.empty(0, dtype=torch.int32).set_(
            torch.UntypedStorage._new_shared(4 * (2 * max_slots + 1)), 0, (2 * max_slots + 1,))
        self.flags.zero_()
        self._flags = self.flags.numpy()
        # per buffer: its size, its storage, and its views by batch size
        self.slots: list[tuple[int, torch.UntypedStorage, dict[int, _Buffers]]] = []

    def acquire(self, layout: _Layout, b: int) -> tuple[int, _Buffers]:
        """A free buffer marked in use (index, views), or index -1 and an unpooled buffer."""
        for i, (n, storage, views) in enumerate(self.slots):
            if n >= layout.nbytes and self._flags[i] == 0:
                self._flags[i] = 1
                if b not in views:
                    views[b] = layout.views(storage)
                return i, views[b]
        storage = torch.UntypedStorage._new_shared(layout.nbytes)
        if len(self.slots) < self.max_slots:
            views = {b: layout.views(storage)}
            self.slots.append((layout.nbytes, storage, views))
            self._flags[len(self.slots) - 1] = 1
            return len(self.slots) - 1, views[b]
        return -1, layout.views(storage)  # every buffer still in use: an unpooled one

    def lease(self, slot: int, bufs: _Buffers) -> tuple[Any, ...]:
        """What the main process needs to rebuild a batch in buffer `slot`."""
        n = self.max_slots
        flags = None if self._flags[2 * n] else self.flags
        storage = None if self._flags[n + slot] else torch.empty(0, dtype=torch.uint8).set_(
            self.slots[slot][1], 0, (self.slots[slot][0],))
        return self.id, n, slot, flags, storage, bufs.layout.fields, bufs.layout.offsets


class _PooledBatch(dict):
    """A batch in a pooled buffer: pickles as its lease and non-tensor items, unpickles as a plain dict."""

    lease: tuple[Any, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        pooled = {f[0] for f in self.lease[5]}
        extras = {k: v for k, v in self.items() if k not in pooled}  # language, anything added by a subclass
        return _receive_batch, (self.lease, extras, list(self))


# main process: pool id -> {"flags": ndarray, "slots": {index: uint8 ndarray over the mapped buffer}}
_POOLS: dict[str, dict[str, Any]] = {}
_LEASES: list[tuple[Any, np.ndarray, int]] = []  # (weak ref to a batch's alias storage, flags, buffer index)
_LEASE_LOCK = threading.Lock()
_RECEIVED = [0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _receive_batch(lease: tuple[Any, ...], extras: dict[str, Any], order: list[str]) -> dict[str, Any]:
    from torch.multiprocessing.reductions import StorageWeakRef

    pool_id, n, slot, flags, storage, fields, offsets = lease
    with _LEASE_LOCK:
        pool = _POOLS.setdefault(pool_id, {"flags": None, "slots": {}})
        if flags is not None and pool["flags"] is None:
            pool["flags"] = flags.numpy()
            pool["flags"][2 * n] = 1  # the worker may stop sending the flags
        if storage is not None:
            pool["slots"][slot] = storage.numpy()
            pool["flags"][n + slot] = 1  # ... and this buffer's storage
        alias = torch.frombuffer(pool["slots"][slot], dtype=torch.uint8)  # a new storage on the same memory
        layout = _Layout.__new__(_Layout)
        layout.fields, layout.offsets = fields, offsets
        tensors = layout.tensors(alias.untyped_storage())
        keep = []
        for ref, fl, i in _LEASES:
            if ref.expired():
                fl[i] = 0  # every tensor of that batch is gone: the worker may refill its buffer
            else:
                keep.append((ref, fl, i))
        keep.append((StorageWeakRef(alias.untyped_storage()), pool["flags"], slot))
        _LEASES[:] = keep
        _RECEIVED[0] += 1
        if _RECEIVED[0] % 256 == 0:
            _forget_exited_pools()
    return {k: tensors[k] if k in tensors else extras[k] for k in order}


def _forget_exited_pools() -> None:
    """Main process: drop the buffer mappings of workers that have exited (call with _LEASE_LOCK held)."""
    for key in [k for k in _POOLS if not _pid_alive(int(k.split("-")[0]))]:
        del _POOLS[key]


# ---- the dataset -------------------------------------------------------------------------------------
class EpisodeDataset(Dataset):
    """Samples (episode, step) of a list of episode files; see the module doc for the sample layout."""

    def __init__(self, paths: Iterable[str | Path], config: LoaderConfig | None = None,
                 stats: dict[str, Any] | str | Path | None = None):
        self.config = cfg = config or LoaderConfig()
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("EpisodeDataset needs at least one episode path")
        self.proprio_keys = [_resolve(k, schema.STATE_GROUP, schema.STATE_FIELDS)
                             for k in (cfg.proprio_keys or [f.path for f in schema.STATE_FIELDS])]
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
            raise ValueError(f"no usable episodes among {len(paths)} paths; skipped: "
                             f"{[str(p) for p in self.skipped][:3]}")
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
    def from_root(cls, root: str | Path, filters: list[str] | None = None, config: LoaderConfig | None = None,
                  stats: dict[str, Any] | str | Path | None = None) -> "EpisodeDataset":
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
            raise EpisodeError(first.path, first.field, first.message + more + "; LoaderConfig(skip_bad=True) "
                               "skips bad episodes and lists them in dataset.skipped", problems=list(self.skipped))
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
                        self._bad(EpisodeError(e.path, "attrs/action_space", f"commanded {e.action_space!r} but the "
                                               f"dataset's first episode commanded {first!r}; set "
                                               "LoaderConfig.action_keys to choose the action form explicitly"))
                self.episodes = keep
        return [_resolve(k, schema.ACTION_GROUP, schema.ACTION_FIELDS) for k in keys]

    def _check_episodes(self) -> None:
        keep = []
        for e in self.episodes:
            for c in self.cameras:
                if c not in e.cameras:
                    self._bad(EpisodeError(e.path, schema.camera_group(c), f"camera missing; cameras in file: "
                                           f"{list(e.cameras)}"))
                    break
                if e.cameras[c] != self.image_sizes[c]:
                    self._bad(EpisodeError(e.path, f"attrs/cameras/{c}", f"image size {e.cameras[c]} (H, W), "
                                           f"expected {tuple(self.image_sizes[c])}"))
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
        return {"episodes": len(st.episodes) if st else 0, "open": len(st.open) if st else 0,
                "frames": len(st.frames) if st else 0,
                "buffers": len(st.pool.slots) if st and st.pool else 0}

    # ---- reading ---------------------------------------------------------------------------------
    def _load(self, i: int) -> _EpisodeData:
        info = self.episodes[i]
        n = info.num_steps
        f = open_h5(info.path)
        try:
            def cat(keys: list[str]) -> np.ndarray:
                return np.concatenate([np.asarray(f[k][:n], np.float64).reshape(n, -1) for k in keys], axis=1)

            proprio = self.proprio_norm.normalize(cat(self.proprio_keys))
            action = self.action_norm.normalize(cat(self.action_keys))
            lang = np.asarray(f["language/active"][:n], np.int64)
            instr = [s.decode() if isinstance(s, bytes) else str(s) for s in f["language/instructions"][()]]
            src = []
            for c in self.cameras:
                present = f[f"{schema.camera_group(c)}/rgb/index"][:n, 1] > 0
                src.append(np.maximum.accumulate(np.where(present, np.arange(n), -1)))
        except (OSError, KeyError, ValueError, TypeError) as e:
            raise EpisodeError(info.path, "file", f"cannot read low-dim arrays: {e}") from None
        finally:
            f.close()
        if not instr:
            instr = [""]
        lang = np.clip(lang, 0, len(instr) - 1)
        return _EpisodeData(proprio, action, lang, instr, src)

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
                ed.streams = [ByteStream(f[f"{schema.camera_group(c)}/rgb"], info.path, info.num_steps)
                              for c in self.cameras]
            except Exception:
                f.close()
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
        except (ValueError, OSError) as e:
            out, _, stream, i, _, src = job
            raise EpisodeError(self.episodes[i].path, f"{stream.name}[{src}]",
                               f"cannot decode {stream.encoding} frame of the expected shape {out.shape}: {e}"
                               ) from None

    def __len__(self) -> int:
        return int(self._ep.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample (tensors without the batch dimension)."""
        batch = self._fetch([index], pooled=False)
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch as a dict of stacked tensors (see the module doc); torch's DataLoader calls this
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
                        jobs.append((out, os.pread(fd, size[s], p) if p >= 0 else stream.raw(s), stream, i, c, s))
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
                [(f"images/{c}", (b, k, *self.image_sizes[c], 3), torch.uint8) for c in self.cameras] + [
                    ("proprio", (b, k, self.proprio_norm.shift.size), torch.float32),
                    ("action", (b, h, self.action_norm.shift.size), torch.float32),
                    ("obs_pad", (b, k), torch.bool), ("action_pad", (b, h), torch.bool),
                    ("episode", (b,), torch.int64), ("step", (b,), torch.int64)])
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
        return {"cameras": {c: list(self.image_sizes[c]) for c in self.cameras}, "history": self.config.history,
                "chunk": self.config.chunk, "proprio_keys": self.proprio_keys, "action_keys": self.action_keys,
                "proprio_dim": int(self.proprio_norm.shift.size), "action_dim": int(self.action_norm.shift.size),
                "episodes": len(self.episodes), "samples": len(self)}
