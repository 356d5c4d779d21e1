"""Suite metrics and their intervals.

- Within a cell (one encoder, one seed): a percentile bootstrap over test instances (`bootstrap_ci`), or a
  Wilson interval for a rate (`robolearn.eval.metrics.wilson_interval`).
- Across seeds: the mean and a t-interval over the per-seed values (`seed_mean_ci`); with one seed, the cell's
  own interval stands.
- Between encoders: a paired test over seeds (sign-flip permutation on the per-seed differences,
  `paired_permutation_p`), and HELM's mean win rate over every (scenario, metric) column (`mean_win_rates`).
- Task metrics: average precision (PR-AUC), IoU, mean IoU over classes, box IoU.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045,
         2.042]  # fmt: skip


def bootstrap_ci(
    values: np.ndarray,
    stat: Callable[[np.ndarray], float] = np.mean,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over the first axis of `values`."""
    values = np.asarray(values)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    stats = [float(stat(values[rng.integers(0, len(values), len(values))])) for _ in range(n)]
    return float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2))


def seed_mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean over seeds and its 95% t-interval (lo = hi = mean for one seed)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return (float("nan"),) * 3
    m = float(v.mean())
    if len(v) < 2:
        return m, m, m
    t = _T975[min(len(v) - 1, len(_T975)) - 1] if len(v) - 1 <= len(_T975) else 1.96
    half = t * float(v.std(ddof=1)) / math.sqrt(len(v))
    return m, m - half, m + half


def paired_permutation_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value that paired values a and b (same seeds) have the same mean: exact sign-flip
    permutation over the per-seed differences. With 3 seeds the smallest possible p is 0.25."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(d) == 0:
        return float("nan")
    obs = abs(d.mean())
    flips = list(itertools.product((1.0, -1.0), repeat=len(d)))
    hits = sum(abs((d * np.array(f)).mean()) >= obs - 1e-12 for f in flips)
    return hits / len(flips)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the precision-recall curve (step-wise average precision) of binary `labels` ranked by
    `scores`; NaN when there are no positives."""
    scores, labels = np.asarray(scores, dtype=float).ravel(), np.asarray(labels).ravel().astype(bool)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / n_pos)


def mean_iou(pred: np.ndarray, true: np.ndarray, n_classes: int, ignore: int | None = None) -> tuple[float, list]:
    """(mean IoU over classes present in `true` or `pred`, per-class IoU list with NaN for absent classes)."""
    pred, true = np.asarray(pred).ravel(), np.asarray(true).ravel()
    if ignore is not None:
        keep = true != ignore
        pred, true = pred[keep], true[keep]
    ious: list[float] = []
    for c in range(n_classes):
        p, t = pred == c, true == c
        union = int((p | t).sum())
        ious.append(float((p & t).sum() / union) if union else float("nan"))
    present = [x for x in ious if not math.isnan(x)]
    return (float(np.mean(present)) if present else float("nan")), ious


def _area(z: np.ndarray) -> np.ndarray:
    return np.clip(z[:, 2] - z[:, 0], 0, None) * np.clip(z[:, 3] - z[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of paired boxes [N, 4] in (x1, y1, x2, y2)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2, y2 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = _area(a) + _area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def mean_win_rates(table: dict[str, dict[str, float]], higher_is_better: dict[str, bool]) -> dict[str, float]:
    """HELM's aggregate: for each encoder, over every column (a scenario metric) it has a value in, the
    fraction of the other encoders with a value there that it beats (ties count half); then the mean over
    columns. `table[encoder][column]` holds the column's mean."""
    encoders = list(table)
    out: dict[str, float] = {}
    for e in encoders:
        rates = []
        for col, up in higher_is_better.items():
            mine = table[e].get(col)
            if mine is None or math.isnan(mine):
                continue
            others = [table[o][col] for o in encoders if o != e and not math.isnan(table[o].get(col, math.nan))]
            if not others:
                continue
            wins = sum((mine > x) if up else (mine < x) for x in others) + 0.5 * sum(mine == x for x in others)
            rates.append(wins / len(others))
        out[e] = float(np.mean(rates)) if rates else float("nan")
    return out


def topk_precision(scores: np.ndarray, positive: np.ndarray, labelled: np.ndarray, quantile: float = 0.99) -> float:
    """Voltron's grasp precision at the top pixels: per image (row), the cells scoring at or above the image's
    `quantile` of `scores` are predicted positive; precision TP / (TP + FP) pooled over images, counting only
    `labelled` cells. NaN when no labelled cell is predicted positive. Arrays are [N, P]."""
    scores, positive, labelled = np.asarray(scores, float), np.asarray(positive, bool), np.asarray(labelled, bool)
    if scores.size == 0:
        return float("nan")
    thr = np.quantile(scores, quantile, axis=1, keepdims=True)
    pred = (scores >= thr) & labelled
    n = int(pred.sum())
    return float((pred & positive).sum() / n) if n else float("nan")
