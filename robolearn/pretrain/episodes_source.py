"""Our own robolearn episodes as a pretraining clip source.

A clip is a run of steps of one episode during which one language instruction is active
(`/language/active`, an index into `/language/instructions`), seen by one camera; its caption is that
instruction. Most episodes hold one instruction, so one clip per episode and camera. Runs shorter than
`min_frames` (after `frame_stride`) are left out and counted in `skipped`.

Two ways to use them, with the same sampling and datasets:

- read at train time: `EpisodeSource(root, camera="wrist", tokenizer=...)` is a ClipSource; frames are decoded
  from the episode files in the process that reads (files opened lazily per worker, at most `max_open` at a
  time) and centre-cropped to a square (optionally resized to `size`). Nothing to prepare; new episodes are
  picked up by building the source again.
- exported: `robolearn pretrain prepare --source episodes --episodes DIR --camera NAME --out OUT` writes the
  same shard format as SSv2 (`prepare_episodes`), read back with `ShardSource(OUT)`; worth it when the episodes
  are big (many cameras, depth, high resolution) and only one small camera stream is needed for pretraining.

Episodes are selected with catalog filters (`where=["task~drawer", "success=1"]`, robolearn.data.catalog) or
all of `list_episodes(root)`. Validation episodes: a catalog split (`split_name`, from `robolearn data split`)
or a deterministic `val_fraction` by episode uuid; all clips of an episode go to the same side.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.data.reader import Episode, list_episodes
from robolearn.pretrain.sampling import MIN_FRAMES, SPLITS, ClipTable
from robolearn.pretrain.shards import (
    ClipRecord,
    ClipResult,
    ClipTask,
    PrepareError,
    WriteStats,
    finish_prepare,
    load_tokenizer,
    output_lock,
    tokenize,
    write_shards,
)
from robolearn.pretrain.ssv2 import scaled_center_crop


@dataclass(frozen=True)
class EpisodeClip:
    """A run of steps [start, stop) of one episode and camera, sampled every `stride` steps."""

    id: str
    path: str
    camera: str
    start: int
    stop: int
    stride: int
    caption: str
    split: str

    @property
    def n_frames(self) -> int:
        return len(range(self.start, self.stop, self.stride))

    def step(self, frame: int) -> int:
        return self.start + frame * self.stride


def select_episodes(root: str | Path, where: Sequence[str] | None = None) -> list[Path]:
    root = Path(root)
    if not root.exists():
        raise PrepareError(f"{root}: episodes folder does not exist")
    if where:
        from robolearn.data.catalog import select_paths

        paths = select_paths(root, list(where))
    else:
        paths = list_episodes(root)
    if not paths:
        raise PrepareError(f"{root}: empty source: no episode files" + (f" match {list(where)}" if where else ""))
    return paths


def _is_val(uuid: str, fraction: float) -> bool:
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(uuid.encode(), digest_size=8).digest(), "little")
    return h / 2.0**64 < fraction


def _val_paths(root: Path, split_name: str | None) -> set[str] | None:
    if not split_name:
        return None
    from robolearn.data.catalog import read_split

    return {str(p.resolve()) for p in read_split(root, split_name, "val")}


def episode_clips(
    path: Path,
    cameras: Sequence[str] | None,
    frame_stride: int = 1,
    min_frames: int = MIN_FRAMES,
    split: str | Callable[[str], str] = "train",
    root: Path | None = None,
) -> tuple[list[EpisodeClip], int]:
    """The clips of one episode (one per instruction run and camera) and how many runs were too short.
    `split`: "train" | "val", or a function of the episode's uuid that returns one."""
    with Episode(path) as ep:
        n = ep.num_steps
        names = ep.camera_names
        use = list(cameras) if cameras else names[:1]
        for cam in use:
            if cam not in names:
                raise PrepareError(f"{path}: attrs/cameras: no camera {cam!r}; this episode has {names}")
        instructions = ep.instructions()
        active = np.asarray(ep.array("language/active"), np.int64) if n else np.zeros(0, np.int64)
        uid = str(ep.attrs.get("uuid") or (path.relative_to(root).as_posix() if root else path.name))
    if active.size and (active.min() < 0 or active.max() >= len(instructions)):
        raise PrepareError(f"{path}: language/active: index out of range [0, {len(instructions)})")
    bounds = np.flatnonzero(np.diff(active)) + 1
    starts = np.concatenate([[0], bounds]).astype(int) if n else np.zeros(0, int)
    stops = np.concatenate([bounds, [n]]).astype(int) if n else np.zeros(0, int)
    side = split(uid) if callable(split) else split
    clips, short = [], 0
    for r, (a, b) in enumerate(zip(starts, stops)):
        if len(range(a, b, frame_stride)) < min_frames:
            short += len(use)
            continue
        for cam in use:
            cid = f"{uid}/{cam}/{r}"
            clips.append(EpisodeClip(cid, str(path), cam, int(a), int(b), frame_stride, instructions[active[a]], side))
    return clips, short


def collect_clips(
    root: str | Path,
    camera: str | Sequence[str] | None = None,
    where: Sequence[str] | None = None,
    val_fraction: float = 0.0,
    split_name: str | None = None,
    frame_stride: int = 1,
    min_frames: int = MIN_FRAMES,
) -> tuple[list[EpisodeClip], int]:
    """Every clip of the selected episodes (sorted by file), and the number of runs too short to use."""
    if frame_stride < 1:
        raise PrepareError(f"frame_stride must be >= 1, got {frame_stride}")
    if min_frames < MIN_FRAMES:
        raise PrepareError(f"min_frames must be >= {MIN_FRAMES} (a quintet), got {min_frames}")
    if not 0.0 <= val_fraction < 1.0:
        raise PrepareError(f"val_fraction must be in [0, 1), got {val_fraction}")
    root = Path(root)
    cameras = [camera] if isinstance(camera, str) else list(camera) if camera else None
    val_set = _val_paths(root, split_name)
    clips, short = [], 0
    for p in select_episodes(root, where):
        if val_set is not None:
            side: str | Callable[[str], str] = "val" if str(p.resolve()) in val_set else "train"
        else:
            side = lambda uid: "val" if _is_val(uid, val_fraction) else "train"  # noqa: E731
        cs, s = episode_clips(p, cameras, frame_stride, min_frames, side, root if root.is_dir() else None)
        short += s
        clips += cs
    if not clips:
        raise PrepareError(f"{root}: empty source: no clip of >= {min_frames} frames in the selected episodes")
    first: dict[str, str] = {}
    for c in clips:
        if first.setdefault(c.id, c.path) != c.path:
            raise PrepareError(
                f"{c.path}: attrs/uuid: the same uuid as {first[c.id]} (a copied episode file?); "
                "clip ids must be unique: remove the copy or filter it out with where="
            )
    return clips, short


class EpisodeSource:
    """Clips of robolearn episodes, read from the episode files at train time (a ClipSource)."""

    def __init__(
        self,
        root: str | Path,
        camera: str | Sequence[str] | None = None,
        tokenizer: Any = None,
        max_lang_len: int = 20,
        where: Sequence[str] | None = None,
        val_fraction: float = 0.0,
        split_name: str | None = None,
        frame_stride: int = 1,
        min_frames: int = MIN_FRAMES,
        size: int | None = None,
        name: str = "episodes",
        max_open: int = 32,
    ):
        self.root = Path(root)
        self.clips, self.skipped = collect_clips(
            root, camera, where, val_fraction, split_name, frame_stride, min_frames
        )
        tok = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
        if tok is None:
            raise PrepareError("EpisodeSource needs a tokenizer (a local folder, a hub id, or a tokenizer object)")
        captions = [c.caption for c in self.clips]
        t = tokenize(captions, tok, max_lang_len)
        self.truncated = int(t.truncated().sum())
        self.table = ClipTable(
            name,
            [c.id for c in self.clips],
            captions,
            np.array([c.n_frames for c in self.clips]),
            np.array([SPLITS[c.split] for c in self.clips]),
            t.input_ids,
            t.attention_mask,
            t.cls_token_id,
            t.pad_token_id,
        )
        self.size, self.max_open = size, max_open
        self._pid = -1
        self._open: OrderedDict[str, Episode] = OrderedDict()

    def __len__(self) -> int:
        return len(self.clips)

    def _episode(self, path: str) -> Episode:
        if self._pid != os.getpid():  # forked worker: open our own files
            self._open, self._pid = OrderedDict(), os.getpid()
        ep = self._open.get(path)
        if ep is None:
            if len(self._open) >= self.max_open:
                self._open.popitem(last=False)[1].close()
            ep = self._open[path] = Episode(path)
        else:
            self._open.move_to_end(path)
        return ep

    def read_frames(self, clip: int, frames: Sequence[int]) -> list[np.ndarray]:
        c = self.clips[clip]
        ep = self._episode(c.path)
        out = []
        for f in frames:
            if not 0 <= int(f) < c.n_frames:
                raise IndexError(f"clip {c.id!r}: frame {f} out of range [0, {c.n_frames})")
            img = ep.frame(c.camera, c.step(int(f)))
            out.append(scaled_center_crop(img, self.size or min(img.shape[:2])))
        return out

    def close(self) -> None:
        if self._pid == os.getpid():
            for ep in self._open.values():
                ep.close()
        self._open = OrderedDict()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"], state["_pid"] = OrderedDict(), -1
        return state


# ---- export into shards ---------------------------------------------------------------------------------
def episode_task(task: ClipTask, size: int, quality: int) -> ClipResult:
    """Worker: one episode clip (payload = EpisodeClip) -> JPEG frames cropped to size x size."""
    import simplejpeg

    c: EpisodeClip = task.payload
    try:
        with Episode(c.path) as ep:
            frames = []
            hw = (0, 0)
            for t in range(c.start, c.stop, c.stride):
                img = ep.frame(c.camera, t)
                hw = img.shape[:2]
                frames.append(simplejpeg.encode_jpeg(scaled_center_crop(img, size), quality=quality, colorspace="RGB"))
            fps = float(ep.attrs.get("control_hz", 0.0)) / c.stride
    except Exception as e:  # noqa: BLE001 (a damaged episode must not stop the run)
        return ClipResult(task.id, task.split, error=f"{type(e).__name__}: {str(e)[:300]}")
    return ClipResult(task.id, task.split, frames, fps, (int(hw[0]), int(hw[1])))


def prepare_episodes(
    episodes: str | Path,
    out: str | Path,
    camera: str | Sequence[str] | None = None,
    tokenizer: str = "distilbert-base-uncased",
    max_lang_len: int = 20,
    workers: int = 0,
    frames_per_shard: int = 8192,
    size: int = 240,
    quality: int = 90,
    where: Sequence[str] | None = None,
    val_fraction: float = 0.0,
    split_name: str | None = None,
    frame_stride: int = 1,
    min_frames: int = MIN_FRAMES,
    retry_failed: bool = False,
    start_method: str | None = "spawn",
    progress: Callable[[int, int], None] | None = None,
    on_shard: Callable[[str, WriteStats], None] | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Export episode clips into the shard format (read back with ShardSource), with its lineage card (config:
    `config`, default these arguments); returns the report."""
    made = {"source": "episodes", "camera": camera, "tokenizer": tokenizer, "max_lang_len": max_lang_len,
            "size": size, "quality": quality, "where": where, "val_fraction": val_fraction, "split": split_name,
            "frame_stride": frame_stride, "min_frames": min_frames, "frames_per_shard": frames_per_shard}  # fmt: skip
    tok = load_tokenizer(tokenizer)
    clips, short = collect_clips(episodes, camera, where, val_fraction, split_name, frame_stride, min_frames)
    clips = sorted(clips, key=lambda c: c.split != "val")  # validation first, like SSv2 (stable otherwise)
    tasks = [ClipTask(c.id, c.split, c) for c in clips]
    root = Path(episodes)
    records = [
        ClipRecord(
            c.id,
            c.split,
            c.caption,
            extra={
                "episode": Path(c.path).relative_to(root).as_posix() if root.is_dir() else c.path,
                "camera": c.camera,
                "start": c.start,
                "stop": c.stop,
                "stride": c.stride,
            },
        )
        for c in clips
    ]
    worker = functools.partial(episode_task, size=size, quality=quality)
    attrs = {"source": "episodes", "encoding": "jpeg", "size": size, "quality": quality}
    with output_lock(out):
        stats = write_shards(
            out,
            tasks,
            worker,
            attrs,
            workers,
            frames_per_shard,
            retry_failed,
            start_method,
            on_shard=on_shard,
            progress=progress,
        )
        return finish_prepare(
            Path(out),
            "episodes",
            records,
            stats,
            tok,
            tokenizer,
            max_lang_len,
            attrs,
            {"short_runs_skipped": short, "episodes_root": str(episodes)},
            [episodes, {"path": tokenizer, "kind": "tokenizer"}],
            made if config is None else config,
        )
