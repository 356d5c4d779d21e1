"""Procedural textures (RGB uint8 arrays) for household scenes: wood, tiles, plaster, fabric.

Each generator is a pure function of its colours and an `np.random.Generator`; textures are small (64-128 px)
and tiled by the material's `texrepeat`, so they cost little to upload and nothing per frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Colour = tuple[float, float, float]


def _mix(a: Colour, b: Colour, t: np.ndarray) -> np.ndarray:
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_ + (b_ - a_) * t[..., None]


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0, 0, 255).astype(np.uint8)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Tileable value noise in [0, 1]: random grid of `cells`^2 values, bilinearly upsampled with wrap."""
    grid = rng.random((cells, cells)).astype(np.float32)
    coords = np.arange(size, dtype=np.float32) * cells / size
    i0 = np.floor(coords).astype(int)
    f = coords - i0
    i1 = (i0 + 1) % cells
    rows = grid[i0] * (1 - f)[:, None] + grid[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def wood(a: Colour, b: Colour, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Wood grain: stretched rings along x with noise-warped phase."""
    y = np.linspace(0, 1, size, endpoint=False, dtype=np.float32)[:, None]
    warp = _smooth_noise(rng, size, 4) * 2.5 + _smooth_noise(rng, size, 16) * 0.4
    rings = 0.5 + 0.5 * np.sin(2 * np.pi * (y * rng.integers(5, 10) + warp))
    return _to_uint8(_mix(a, b, rings**2))


def tiles(a: Colour, b: Colour, rng: np.random.Generator, size: int = 128) -> np.ndarray:
    """Square tiles of colour `a` with slight per-tile shade and grout lines of colour `b`."""
    n = int(rng.integers(2, 5))
    cell = size // n
    idx = np.arange(size) // cell
    shade = (rng.random((n + 1, n + 1)) * 0.15 - 0.075).astype(np.float32)
    rgb = np.clip(np.asarray(a, np.float32) + shade[idx][:, idx][..., None], 0, 1)
    grout = (np.arange(size) % cell) < max(2, size // 64)
    mask = grout[:, None] | grout[None, :]
    rgb[mask] = b
    return _to_uint8(rgb)


def plaster(a: Colour, b: Colour, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Soft mottled wall: two octaves of smooth noise between `a` and `b`."""
    t = 0.7 * _smooth_noise(rng, size, 4) + 0.3 * _smooth_noise(rng, size, 16)
    return _to_uint8(_mix(a, b, t * 0.6))


def fabric(a: Colour, b: Colour, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Woven cloth: crossing stripes with a little noise."""
    period = int(rng.integers(4, 9))
    x = (np.arange(size) // period) % 2
    weave = (x[:, None] ^ x[None, :]).astype(np.float32) * 0.7
    weave += _smooth_noise(rng, size, 8) * 0.3
    return _to_uint8(_mix(a, b, weave))


GENERATORS: dict[str, Callable[..., np.ndarray]] = {"wood": wood, "tiles": tiles, "plaster": plaster, "fabric": fabric}


def generate(kind: str, a: Colour, b: Colour, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 texture of `kind` (one of GENERATORS)."""
    if kind not in GENERATORS:
        raise ValueError(f"unknown texture kind {kind!r}; expected one of {sorted(GENERATORS)}")
    return np.ascontiguousarray(GENERATORS[kind](a, b, rng))
