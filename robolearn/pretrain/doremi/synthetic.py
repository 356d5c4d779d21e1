"""A synthetic clip source for tests and benchmarks/doremi.py: clips of one visual kind, rendered on the fly
(nothing on disk), so a mixture of domains with known, different difficulty and size costs nothing to build.

Kinds, easiest to hardest for masked reconstruction (per-patch normalised targets):
    ramp      a linear colour gradient in a random direction, drifting over the frames
    stripes   sinusoidal stripes of random frequency, orientation and phase velocity
    blobs     low-pass noise (a random 4x4 grid per channel, bilinearly upsampled), drifting
    noise     i.i.d. pixel noise: nothing to learn (the loss cannot fall below ~1)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from robolearn.pretrain.sampling import ClipTable

KINDS = ("ramp", "stripes", "blobs", "noise")


class SyntheticSource:
    """`n_clips` clips of `kind` (`val_clips` of them in the validation split), `n_frames` frames of
    size x size RGB uint8; deterministic in (seed, clip, frame). Captions are `<kind> <clip>`, tokenised as
    [CLS] + ids so that language models can train on it too."""

    def __init__(
        self,
        kind: str,
        n_clips: int,
        name: str | None = None,
        size: int = 32,
        n_frames: int = 8,
        val_clips: int = 0,
        seed: int = 0,
        max_lang_len: int = 8,
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown synthetic kind {kind!r}; expected one of {KINDS}")
        if not 0 <= val_clips < n_clips:
            raise ValueError(f"val_clips must be in [0, n_clips={n_clips}), got {val_clips}")
        self.kind, self.size, self.seed = kind, size, seed
        ids = [f"{kind}-{i}" for i in range(n_clips)]
        split = np.array([1 if i < val_clips else 0 for i in range(n_clips)], np.int8)
        input_ids = np.zeros((n_clips, max_lang_len), np.int64)
        mask = np.zeros((n_clips, max_lang_len), np.int64)
        input_ids[:, 0], input_ids[:, 1] = 101, 200 + KINDS.index(kind)
        input_ids[:, 2] = 300 + np.arange(n_clips) % 500
        mask[:, :3] = 1
        self.table = ClipTable(
            name or kind,
            ids,
            [f"{kind} {i}" for i in range(n_clips)],
            np.full(n_clips, n_frames),
            split,
            input_ids,
            mask,
        )

    def __len__(self) -> int:
        return len(self.table)

    def _frame(self, clip: int, t: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, clip, 7])  # the clip's fixed parameters
        s = self.size
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) / s
        if self.kind == "ramp":
            ang = rng.uniform(0, 2 * np.pi)
            u = np.cos(ang) * xx + np.sin(ang) * yy + 0.05 * t
            lo, hi = rng.uniform(0, 120, 3), rng.uniform(135, 255, 3)
            img = lo + (hi - lo) * ((u % 1.0)[..., None])
        elif self.kind == "stripes":
            ang, freq, speed = rng.uniform(0, np.pi), rng.uniform(3, 9), rng.uniform(0.2, 0.6)
            u = np.cos(ang) * xx + np.sin(ang) * yy
            base, amp = rng.uniform(60, 190, 3), rng.uniform(30, 60, 3)
            img = base + amp * np.sin(2 * np.pi * freq * u + speed * t)[..., None]
        elif self.kind == "blobs":
            grid = rng.uniform(0, 255, (6, 6, 3))
            off = 0.15 * t
            gy, gx = yy * 4 + off * 0.5, xx * 4 + off
            y0, x0 = np.floor(gy).astype(int), np.floor(gx).astype(int)
            fy, fx = (gy - y0)[..., None], (gx - x0)[..., None]
            y0, x0 = y0 % 6, x0 % 6
            y1, x1 = (y0 + 1) % 6, (x0 + 1) % 6
            img = (
                grid[y0, x0] * (1 - fy) * (1 - fx)
                + grid[y0, x1] * (1 - fy) * fx
                + grid[y1, x0] * fy * (1 - fx)
                + grid[y1, x1] * fy * fx
            )
        else:
            img = np.random.default_rng([self.seed, clip, t, 9]).uniform(0, 255, (s, s, 3))
        return np.clip(img, 0, 255).astype(np.uint8)

    def read_frames(self, clip: int, frames: Sequence[int]) -> list[np.ndarray]:
        n = int(self.table.n_frames[clip])
        out = []
        for f in frames:
            if not 0 <= int(f) < n:
                raise IndexError(f"clip {self.table.ids[clip]!r}: frame {f} out of range [0, {n})")
            out.append(self._frame(int(clip), int(f)))
        return out
