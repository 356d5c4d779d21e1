"""The loader's configuration (`LoaderConfig`), the resolution of proprio and action keys to schema paths,
and the per-dimension `Normalizer` built from a stats dict (robolearn.data.stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from robolearn.data import schema

NORM_MODES = ("none", "mean_std", "min_max")


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
    verify_checksums: bool = True  # check each frame's CRC32 before decoding (schema >= 1.1; about 1% of decode time)
    fast_decode: bool = True  # libjpeg-turbo fast DCT and upsampling (as reader.Episode.frame)
    shared_memory: bool = True  # in DataLoader workers, build batches in shared memory (no copy on hand-off)
    buffer_pool: int = 8  # shared batch buffers reused per worker (0: a fresh one per batch; see loader.pool)

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
