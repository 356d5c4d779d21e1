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

Speed and memory, per worker process:
- The index (episode, step) is built once from each file's `num_steps` attribute; no per-step data is read
  at construction (unless `check_finite` is asked for).
- Files are opened lazily in the process that reads them, so the dataset pickles without handles and each
  DataLoader worker opens its own (the owner pid is tracked; state inherited through fork is dropped).
- Each episode's low-dim arrays (proprio, actions, language index) are read once, normalised once, and kept
  in an LRU of `lowdim_cache` episodes. Frame bytes are read with `os.pread` at the HDF5 chunk addresses
  (reader.ByteStream); at most `max_open_files` episodes hold an open file/descriptor at any time.
- `__getitems__` builds a whole batch with one call (torch's batched fetch): JPEG frames are decoded
  straight into the batch buffer, which inside a worker is allocated in shared memory, so handing the batch
  to the main process copies nothing. Pass `collate_fn=EpisodeDataset.collate` (or use `.dataloader()`).
- An optional LRU of decoded frames (`frame_cache`, in frames) helps when samples overlap heavily.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
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
    max_open_files: int = 32  # episodes with an open file/descriptor per worker (LRU)
    skip_bad: bool = False  # leave out bad episodes (listed in `dataset.skipped`) instead of raising
    check_finite: bool = False  # at construction, read the low-dim arrays and reject NaN/Inf
    fast_decode: bool = True  # libjpeg-turbo fast DCT and upsampling (as reader.Episode.frame)
    shared_memory: bool = True  # in DataLoader workers, build batches in shared memory (no copy on hand-off)

    def __post_init__(self) -> None:
        if self.history < 1 or self.chunk < 1:
            raise ValueError(f"history and chunk must be >= 1, got {self.history} and {self.chunk}")
        for name in ("normalize_action", "normalize_proprio"):
            if getattr(self, name) not in NORM_MODES:
                raise ValueError(f"{name} must be one of {NORM_MODES}, got {getattr(self, name)!r}")
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
        if n < 1:
            raise EpisodeError(path, "attrs/num_steps", f"episode has {n} steps; expected at least 1")
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
        if need.check_finite:
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

    def close(self) -> None:
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

    def close(self) -> None:
        for ed in self.open.values():
            ed.close()
        self.open.clear()
        self.episodes.clear()
        self.frames.clear()


def _alloc(shape: tuple[int, ...], dtype: torch.dtype, shared: bool) -> torch.Tensor:
    """An uninitialised tensor; in shared memory when it is going to another process anyway."""
    if not shared:
        return torch.empty(shape, dtype=dtype)
    numel = int(np.prod(shape, dtype=np.int64))
    storage = torch.UntypedStorage._new_shared(numel * torch.empty((), dtype=dtype).element_size())
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


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
                "frames": len(st.frames) if st else 0}

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
        except (OSError, KeyError, ValueError) as e:
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
            if all(getattr(s, "_chunks", None) is not None for s in ed.streams):
                f.close()  # pread path: the streams need only a descriptor, opened lazily by raw()
            else:
                ed.h5 = f  # h5py fallback path: the file stays open while the episode is in `open`
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

    def _decode_into(self, out: np.ndarray, stream: ByteStream, i: int, src: int) -> None:
        """Decode frame `src` of `stream` into `out` (H, W, 3): JPEG straight into the buffer, same options
        as codec.decode_rgb; other encodings through codec.decode_rgb and a copy."""
        fast = self.config.fast_decode
        try:
            buf = stream.raw(src)
            if stream.encoding == "jpeg":
                img = simplejpeg.decode_jpeg(buf, colorspace="RGB", fastdct=fast, fastupsample=fast, buffer=out)
            else:
                img = codec.decode_rgb(buf, stream.encoding, fast=fast)
            if img.shape != out.shape:
                raise ValueError(f"decoded frame is {img.shape}")
        except (ValueError, OSError) as e:
            raise EpisodeError(self.episodes[i].path, f"{stream.name}[{src}]",
                               f"cannot decode {stream.encoding} frame of the expected shape {out.shape}: {e}"
                               ) from None
        if stream.encoding != "jpeg":
            out[...] = img

    def __len__(self) -> int:
        return int(self._ep.size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        batch = self.__getitems__([index])
        return {k: v[0] for k, v in batch.items()}

    def __getitems__(self, indices: Sequence[int]) -> dict[str, Any]:
        """A whole batch as a dict of stacked tensors (see the module doc)."""
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
        shared = cfg.shared_memory and get_worker_info() is not None
        images = [_alloc((b, k, *self.image_sizes[c], 3), torch.uint8, shared) for c in self.cameras]
        views = [im.numpy() for im in images]
        proprio = np.empty((b, k, self.proprio_norm.shift.size), np.float32)
        action = np.empty((b, h, self.action_norm.shift.size), np.float32)
        language: list[str] = []
        frames, cache_size = st.frames, cfg.frame_cache
        for n, (i, ti, hi) in enumerate(zip(ep.tolist(), t.tolist(), hist)):
            ed = self._episode(st, i)
            proprio[n] = ed.proprio[hi]
            action[n] = ed.action[act[n]]
            if cfg.language:
                language.append(ed.instructions[ed.lang[ti]])
            streams = self._open(st, i, ed)
            for c, (stream, view) in enumerate(zip(streams, views)):
                prev = -2
                for j, s in enumerate(ed.src[c][hi].tolist()):
                    out = view[n, j]
                    if s == prev:  # same stored frame as the previous slot (padding, dropped frames)
                        out[...] = view[n, j - 1]
                    elif s < 0:  # nothing recorded yet on this camera: black, as Episode.frame
                        out[...] = 0
                    elif cache_size:
                        key = (i, c, s)
                        img = frames.get(key)
                        if img is None:
                            self._decode_into(out, stream, i, s)
                            frames[key] = out.copy()
                            if len(frames) > cache_size:
                                frames.popitem(last=False)
                        else:
                            frames.move_to_end(key)
                            out[...] = img
                    else:
                        self._decode_into(out, stream, i, s)
                    prev = s
        batch: dict[str, Any] = {f"images/{c}": im.permute(0, 1, 4, 2, 3) for c, im in zip(self.cameras, images)}
        batch.update(proprio=torch.from_numpy(proprio), action=torch.from_numpy(action),
                     obs_pad=torch.from_numpy(obs_pad), action_pad=torch.from_numpy(action_pad),
                     episode=torch.from_numpy(ep), step=torch.from_numpy(t))
        if cfg.language:
            batch["language"] = language
        return batch

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
