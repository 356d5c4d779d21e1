"""Data-locked per-epoch sampling of video clips, as in Voltron's pretraining pipeline.

For every clip and epoch a *quintet* of frame indices is drawn, deterministic in (seed, epoch, clip key):

    initial   in [0, round(0.2 n))
    final     in [round(0.8 n), n)
    3 sorted interior frames, distinct, strictly between initial and final

The quintet is expanded into examples per batch format (`FORMATS`):

    state             5 examples per clip: each frame alone                      (R-MVP)
    state+language    5 examples per clip: each frame alone, with the caption    (V-Cond)
    state+ok          4 examples per clip: (initial, x) for the other 4 frames   (V-Dual, V-Gen)
    quintet+language  1 example per clip: all five frames, with the caption      (R3M)

Draws use a counter-based hash (splitmix64) of (seed, epoch, clip key, draw number), so a whole epoch is planned
with a few vectorised numpy operations and a clip's frames never depend on which other clips exist. Clip keys
are stable 64-bit hashes of (source name, clip id) (`clip_key`).

`plan_epoch` builds an `EpochPlan` (one row per example) for one split of one or more sources; with several
sources it follows a weighted *mixture*: each source gets round(w_s / sum(w) * epoch_size) examples per epoch
(taken from that source's own plan in a seeded order, cycling when more are needed than it has) and the
slots are interleaved by a seeded permutation. Language dropout and V-Gen's generation switch are per-epoch
seeded draws of exactly round(p * E) examples. Validation plans use a fixed epoch (`VAL_EPOCH`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

FORMATS: dict[str, int] = {"state": 5, "state+language": 5, "state+ok": 4, "quintet+language": 1}
FRAMES_PER_EXAMPLE: dict[str, int] = {"state": 1, "state+language": 1, "state+ok": 2, "quintet+language": 5}
MIN_FRAMES = 5  # the fewest frames a quintet can be drawn from
ALPHA = 0.2  # initial frame from the first 20 %, final frame from the last 20 %
VAL_EPOCH = 0  # validation plans never change
SPLITS = {"train": 0, "val": 1}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class ClipTable:
    """The clips of one source: what sampling and the datasets need, as arrays (cheap to fork and pickle).

    ids/captions: lists of str; n_frames, split (0 train, 1 val), key (uint64 stable hash): (N,) arrays;
    input_ids/attention_mask: (N, L) int64 tokenised captions padded to L = max_lang_len."""

    def __init__(
        self,
        name: str,
        ids: Sequence[str],
        captions: Sequence[str],
        n_frames: np.ndarray,
        split: np.ndarray,
        input_ids: np.ndarray,
        attention_mask: np.ndarray,
        cls_token_id: int = 101,
        pad_token_id: int = 0,
    ):
        self.name = name
        self.ids, self.captions = list(ids), list(captions)
        self.n_frames = np.asarray(n_frames, np.int64)
        self.split = np.asarray(split, np.int8)
        self.input_ids = np.asarray(input_ids, np.int64)
        self.attention_mask = np.asarray(attention_mask, np.int64)
        self.cls_token_id, self.pad_token_id = int(cls_token_id), int(pad_token_id)
        n = len(self.ids)
        for arr, what in (
            (self.n_frames, "n_frames"),
            (self.split, "split"),
            (self.input_ids, "input_ids"),
            (self.attention_mask, "attention_mask"),
        ):
            if arr.shape[0] != n:
                raise ValueError(f"clip table {name!r}: {what} has {arr.shape[0]} rows, expected {n} (one per clip)")
        if len(self.captions) != n:
            raise ValueError(f"clip table {name!r}: {len(self.captions)} captions for {n} clips")
        if self.input_ids.ndim != 2 or self.input_ids.shape != self.attention_mask.shape:
            raise ValueError(
                f"clip table {name!r}: input_ids {self.input_ids.shape} and attention_mask "
                f"{self.attention_mask.shape} must both be (N, max_lang_len)"
            )
        if n and self.n_frames.min() < MIN_FRAMES:
            bad = int(np.argmin(self.n_frames))
            raise ValueError(
                f"clip table {name!r}: clip {self.ids[bad]!r} has {self.n_frames[bad]} frames; "
                f"a quintet needs at least {MIN_FRAMES}"
            )
        self.key = clip_keys(name, self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def max_lang_len(self) -> int:
        return int(self.input_ids.shape[1])

    def indices(self, split: str) -> np.ndarray:
        """Clip indices of one split ("train" or "val")."""
        return np.flatnonzero(self.split == split_code(split))

    def null_language(self) -> tuple[np.ndarray, np.ndarray]:
        """The 'no language' input: [CLS] then padding, mask [1, 0, ...] (an all-padding input gives NaN)."""
        ids = np.full(self.max_lang_len, self.pad_token_id, np.int64)
        mask = np.zeros(self.max_lang_len, np.int64)
        ids[0], mask[0] = self.cls_token_id, 1
        return ids, mask


class ClipSource(Protocol):
    """A source of clips: a table plus frame access. `read_frames` returns RGB uint8 (H, W, 3) arrays and must
    be safe to call in DataLoader worker processes (open files lazily, per process)."""

    table: ClipTable

    def read_frames(self, clip: int, frames: Sequence[int]) -> list[np.ndarray]: ...


def split_code(split: str) -> int:
    try:
        return SPLITS[split]
    except KeyError:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}") from None


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown batch format {fmt!r}; expected one of {list(FORMATS)}")
    return fmt


def clip_key(source: str, clip_id: str) -> int:
    """Stable 64-bit key of a clip (independent of process, Python hash seed and clip order)."""
    return int.from_bytes(hashlib.blake2b(f"{source}\0{clip_id}".encode(), digest_size=8).digest(), "little")


def clip_keys(source: str, clip_ids: Sequence[str]) -> np.ndarray:
    return np.fromiter((clip_key(source, c) for c in clip_ids), np.uint64, len(clip_ids))


# ---- counter-based random numbers ------------------------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arrays; multiplication wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def uniforms(keys: np.ndarray, seed: int, epoch: int, draws: int) -> np.ndarray:
    """(N, draws) floats in [0, 1), a pure function of (seed, epoch, key, draw number)."""
    keys = np.asarray(keys, np.uint64)
    with np.errstate(over="ignore"):
        base = _mix(_mix(np.array([seed & (2**64 - 1)], np.uint64)) + np.uint64(epoch & (2**64 - 1)) * _GOLDEN)
        counters = _mix(keys[:, None] ^ base) + np.arange(1, draws + 1, dtype=np.uint64)[None, :] * _GOLDEN
        bits = _mix(counters)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _below(u: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Uniform integers in [0, n) from uniforms u (n >= 1)."""
    return np.minimum((u * n).astype(np.int64), n - 1)


def quintets(n_frames: np.ndarray, keys: np.ndarray, seed: int, epoch: int, alpha: float = ALPHA) -> np.ndarray:
    """(N, 5) sorted frame indices per clip: initial, 3 interior, final (see the module doc)."""
    n = np.asarray(n_frames, np.int64)
    if n.size and n.min() < MIN_FRAMES:
        raise ValueError(f"every clip needs at least {MIN_FRAMES} frames for a quintet; got {int(n.min())}")
    u = uniforms(keys, seed, epoch, 5)
    lo = np.maximum(np.rint(alpha * n).astype(np.int64), 1)  # initial in [0, lo)
    hi = np.minimum(np.rint((1 - alpha) * n).astype(np.int64), n - 1)  # final in [hi, n)
    initial = _below(u[:, 0], lo)
    final = hi + _below(u[:, 1], n - hi)
    m = final - initial - 1  # interior candidates; >= 3 for n >= 5
    # three distinct values from [0, m): draw from shrinking ranges and step over the ones already taken
    a = _below(u[:, 2], m)
    b = _below(u[:, 3], m - 1)
    b = b + (b >= a)
    x, y = np.minimum(a, b), np.maximum(a, b)
    c = _below(u[:, 4], m - 2)
    c = c + (c >= x)
    c = c + (c >= y)
    interior = np.sort(np.stack([a, b, c], 1), axis=1) + initial[:, None] + 1
    return np.concatenate([initial[:, None], interior, final[:, None]], 1)


def expand(q: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Quintets (N, 5) -> (row into q (E,), frames (E, k)) for one batch format, clip-major order."""
    check_format(fmt)
    n = q.shape[0]
    if fmt in ("state", "state+language"):
        return np.repeat(np.arange(n), 5), q.reshape(-1, 1)
    if fmt == "state+ok":
        pairs = np.stack([np.repeat(q[:, :1], 4, 1), q[:, 1:]], 2)  # (N, 4, 2): (initial, x)
        return np.repeat(np.arange(n), 4), pairs.reshape(-1, 2)
    return np.arange(n), q.copy()


# ---- epoch plans -----------------------------------------------------------------------------------------
@dataclass
class EpochPlan:
    """One row per example of an epoch: which source and clip, which frames, and the language switches."""

    source: np.ndarray  # (E,) int64 index into the plan's sources
    clip: np.ndarray  # (E,) int64 clip index within that source
    frames: np.ndarray  # (E, k) int64 frame indices
    drop_language: np.ndarray  # (E,) bool: replace the caption by the null language
    generate: np.ndarray  # (E,) bool: V-Gen "generate" example (condition on null language, predict caption)
    epoch: int = 0
    format: str = "state"
    counts: dict[int, int] = field(default_factory=dict)  # examples per source

    def __len__(self) -> int:
        return int(self.clip.shape[0])


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed & (2**32 - 1), seed >> 32, epoch, stream]))


def source_examples(table: ClipTable, fmt: str, split: str, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """One source's examples of one split and epoch: (clip index (E,), frames (E, k))."""
    idx = table.indices(split)
    q = quintets(table.n_frames[idx], table.key[idx], seed, epoch)
    row, frames = expand(q, fmt)
    return idx[row], frames


def mixture_counts(sizes: Sequence[int], weights: Sequence[float], total: int) -> np.ndarray:
    """Examples per source: proportional to the weights, summing to `total` (largest remainders)."""
    w = np.asarray(weights, np.float64)
    if len(w) != len(sizes):
        raise ValueError(f"{len(w)} weights for {len(sizes)} sources")
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"mixture weights must be finite, >= 0 and not all 0; got {list(weights)}")
    for s, (n, wi) in enumerate(zip(sizes, w)):
        if wi > 0 and n == 0:
            raise ValueError(f"mixture source {s} has weight {wi} but no examples in this split")
    exact = w / w.sum() * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - counts.sum()
    counts[np.argsort(-(exact - counts), kind="stable")[:rest]] += 1
    return counts


def _take(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices into range(n): a seeded permutation, repeated (reshuffled) as often as needed."""
    reps = -(-count // n) if n else 0
    return np.concatenate([rng.permutation(n) for _ in range(reps)])[:count] if reps else np.zeros(0, np.int64)


def plan_epoch(
    tables: Sequence[ClipTable],
    fmt: str,
    split: str = "train",
    seed: int = 0,
    epoch: int = 0,
    weights: Sequence[float] | None = None,
    epoch_size: int | None = None,
    lang_dropout: float = 0.0,
    gen_ratio: float = 0.0,
) -> EpochPlan:
    """The examples of one epoch for one split of one or more sources (see the module doc).

    One source, no weights: every example of the epoch, clip-major. Several sources (or weights): a weighted
    mixture of `epoch_size` examples (default: all examples of all sources), interleaved by a seeded permutation.
    Validation plans should pass epoch=VAL_EPOCH (the datasets do)."""
    check_format(fmt)
    if not tables:
        raise ValueError("plan_epoch needs at least one clip source")
    for p, what in ((lang_dropout, "lang_dropout"), (gen_ratio, "gen_ratio")):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{what} must be in [0, 1], got {p}")
    per = [source_examples(t, fmt, split, seed, epoch) for t in tables]
    sizes = [len(c) for c, _ in per]
    k = FRAMES_PER_EXAMPLE[fmt]
    if len(tables) == 1 and weights is None and epoch_size is None:
        source = np.zeros(sizes[0], np.int64)
        clip, frames = per[0]
    else:
        total = sum(sizes) if epoch_size is None else int(epoch_size)
        counts = mixture_counts(sizes, weights if weights is not None else [1.0] * len(tables), total)
        rng = _rng(seed, epoch, 1)
        parts = []
        for s, c in enumerate(counts):
            pick = _take(sizes[s], int(c), rng)
            parts.append((np.full(c, s, np.int64), per[s][0][pick], per[s][1][pick]))
        order = rng.permutation(total)
        source = np.concatenate([p[0] for p in parts])[order]
        clip = np.concatenate([p[1] for p in parts])[order] if total else np.zeros(0, np.int64)
        frames = np.concatenate([p[2].reshape(-1, k) for p in parts])[order] if total else np.zeros((0, k), np.int64)
    e = len(clip)
    drop = np.zeros(e, bool)
    gen = np.zeros(e, bool)
    if lang_dropout > 0:
        drop[_rng(seed, epoch, 2).choice(e, int(round(lang_dropout * e)), replace=False)] = True
    if gen_ratio > 0:
        gen[_rng(seed, epoch, 3).choice(e, int(round(gen_ratio * e)), replace=False)] = True
    counts_out = {s: int((source == s).sum()) for s in range(len(tables))}
    return EpochPlan(source, clip.astype(np.int64), frames.astype(np.int64), drop, gen, epoch, fmt, counts_out)
