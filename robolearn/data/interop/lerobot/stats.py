"""Per-episode and dataset statistics in LeRobot's layout: min, max, mean, std, count, q01..q99 per feature
(vectors per dimension; images per channel as (3, 1, 1), pixels scaled to [0, 1])."""

from __future__ import annotations

from typing import Any

import numpy as np

from robolearn.data.interop.lerobot.layout import QUANTILES

IMAGE_SAMPLE = 20  # frames per episode used for image stats (LeRobot samples too)


def _qkey(q: float) -> str:
    return f"q{round(q * 100):02d}"


def feature_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """x: (N, D) numbers -> stats over N per dimension."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    out = {
        "min": x.min(0),
        "max": x.max(0),
        "mean": x.mean(0),
        "std": x.std(0),
        "count": np.array([len(x)], np.int64),
    }
    for q, v in zip(QUANTILES, np.quantile(x, QUANTILES, axis=0)):
        out[_qkey(q)] = v
    return out


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """frames: (N, H, W, 3) uint8 -> per-channel stats, each (3, 1, 1), over up to IMAGE_SAMPLE frames."""
    idx = np.linspace(0, len(frames) - 1, min(IMAGE_SAMPLE, len(frames))).round().astype(int)
    px = frames[idx].reshape(-1, 3).astype(np.float32) / 255.0
    s = feature_stats(px)
    return {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in s.items()} | {
        "count": np.array([len(idx)], np.int64)
    }


def aggregate(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, Any]]:
    """Dataset stats from episode stats: exact min/max/mean/std/count, count-weighted mean of quantiles."""
    out: dict[str, dict[str, Any]] = {}
    for key in per_episode[0]:
        eps = [e[key] for e in per_episode if key in e]
        n = np.array([float(e["count"][0]) for e in eps])
        w = (n / n.sum()).reshape(-1, *([1] * np.ndim(eps[0]["mean"])))
        means = np.stack([e["mean"] for e in eps])
        mean = (w * means).sum(0)
        var = (w * (np.stack([e["std"] for e in eps]) ** 2 + (means - mean) ** 2)).sum(0)
        agg = {
            "min": np.min([e["min"] for e in eps], 0),
            "max": np.max([e["max"] for e in eps], 0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(n.sum())]),
        }
        for q in QUANTILES:
            agg[_qkey(q)] = (w * np.stack([e[_qkey(q)] for e in eps])).sum(0)
        out[key] = agg
    return out


def to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}
