"""Something-Something-v2 as a pretraining source: labels, video decoding, `prepare` into shards.

Expected layout (the official release):

    VIDEOS/<id>.webm             VP8/VP9 clips, 12 fps, height 240, varying width
    train.json, validation.json  lists of {"id": "12345", "label": "Pushing a cup from left to right",
                                 "template": "Pushing [something] from left to right", "placeholders": ["a cup"]}

`prepare_ssv2` decodes every frame with PyAV, scales it so the short side is `size` (aspect preserved) and
centre-crops to size x size, encodes JPEG (simplejpeg) and writes sharded HDF5 (robolearn.pretrain.shards);
the caption is the filled-in `label`. Validation = the first `val_clips` entries of validation.json.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robolearn.pretrain.sampling import MIN_FRAMES
from robolearn.pretrain.shards import (
    ClipRecord,
    ClipResult,
    ClipTask,
    PrepareError,
    WriteStats,
    finish_prepare,
    load_tokenizer,
    output_lock,
    write_shards,
)

LABEL_FIELDS = ("id", "label", "template", "placeholders")


@dataclass(frozen=True)
class LabelEntry:
    id: str
    label: str
    template: str
    placeholders: tuple[str, ...]


def read_labels(path: str | Path) -> list[LabelEntry]:
    """Parse an SSv2 labels file; every malformed entry is an error naming the file, entry index and field."""
    path = Path(path)
    if not path.is_file():
        raise PrepareError(f"{path}: labels file does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PrepareError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise PrepareError(
            f"{path}: expected a JSON list of {{{', '.join(LABEL_FIELDS)}}} objects, got {type(data).__name__}"
        )
    out = []
    for i, e in enumerate(data):
        where = f"{path}: entry {i}"
        if not isinstance(e, dict):
            raise PrepareError(f"{where}: expected an object with fields {', '.join(LABEL_FIELDS)}, got {e!r:.60}")
        missing = [k for k in LABEL_FIELDS if k not in e]
        if missing:
            cid = f" (id {e['id']!r})" if "id" in e else ""
            raise PrepareError(
                f"{where}{cid}: missing field{'s' if len(missing) > 1 else ''} "
                f"{', '.join(map(repr, missing))}; expected {', '.join(LABEL_FIELDS)} "
                "(the Something-Something-v2 layout)"
            )
        cid, label, template, ph = e["id"], e["label"], e["template"], e["placeholders"]
        if isinstance(cid, bool) or not isinstance(cid, (str, int)) or str(cid).strip() == "":
            raise PrepareError(f"{where}: field 'id' must be a non-empty string, got {cid!r}")
        if not isinstance(label, str):
            raise PrepareError(f"{where} (id {cid!r}): field 'label' must be a string, got {label!r:.60}")
        if not isinstance(template, str):
            raise PrepareError(f"{where} (id {cid!r}): field 'template' must be a string, got {template!r:.60}")
        if not isinstance(ph, list) or not all(isinstance(p, str) for p in ph):
            raise PrepareError(f"{where} (id {cid!r}): field 'placeholders' must be a list of strings, got {ph!r:.60}")
        out.append(LabelEntry(str(cid), label, template, tuple(ph)))
    return out


# ---- frames ------------------------------------------------------------------------------------------------
def scaled_center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Scale (aspect preserved) so the short side is `size`, then crop the centre size x size."""
    h, w = img.shape[:2]
    if (h, w) != (size, size):
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        if (nh, nw) != (h, w):
            img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        y, x = (nh - size) // 2, (nw - size) // 2
        img = img[y : y + size, x : x + size]
    return np.ascontiguousarray(img)


def decode_video(path: str | Path, size: int, quality: int = 90) -> tuple[list[bytes], float, tuple[int, int]]:
    """Every frame of a video, centre-cropped to size x size and JPEG-encoded; also its fps and (h, w)."""
    import av
    import simplejpeg

    frames: list[bytes] = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        hw = (int(stream.codec_context.height or 0), int(stream.codec_context.width or 0))
        for frame in container.decode(stream):
            img = scaled_center_crop(frame.to_ndarray(format="rgb24"), size)
            frames.append(simplejpeg.encode_jpeg(img, quality=quality, colorspace="RGB"))
            hw = (frame.height, frame.width)
    return frames, fps, hw


def decode_task(task: ClipTask, size: int, quality: int, min_frames: int = MIN_FRAMES) -> ClipResult:
    """Worker: one SSv2 clip (payload = video path) -> ClipResult; any decoding problem becomes its error."""
    try:
        cv2.setNumThreads(1)  # one process per core already
        frames, fps, hw = decode_video(task.payload, size, quality)
    except Exception as e:  # noqa: BLE001 (PyAV raises many error types; a bad clip must not stop the run)
        return ClipResult(task.id, task.split, error=f"{type(e).__name__}: {str(e)[:300]}")
    if len(frames) < min_frames:
        return ClipResult(
            task.id, task.split, error=f"only {len(frames)} frames decoded; a clip needs at least {min_frames}"
        )
    return ClipResult(task.id, task.split, frames, fps, hw)


# ---- prepare ---------------------------------------------------------------------------------------------
def list_videos(videos: str | Path, ext: str = "webm") -> dict[str, Path]:
    """id -> path of every `<id>.<ext>` in the folder; an error if there is no such file."""
    videos = Path(videos)
    if not videos.is_dir():
        raise PrepareError(f"{videos}: videos folder does not exist")
    suffix = "." + ext.lstrip(".")
    found = {}
    with os.scandir(videos) as it:
        for e in it:
            if e.name.endswith(suffix) and e.is_file():
                found[e.name[: -len(suffix)]] = Path(e.path)
    if not found:
        raise PrepareError(
            f"{videos}: empty source: no *{suffix} files (expected <id>{suffix} per clip, the "
            "Something-Something-v2 layout)"
        )
    return found


def ssv2_tasks(
    videos: str | Path,
    labels: str | Path,
    validation: str | Path | None,
    val_clips: int = 1000,
    limit: int | None = None,
    ext: str = "webm",
) -> tuple[list[ClipTask], list[ClipRecord], list[str], list[str]]:
    """Tasks (validation first, then train), index records, the labelled ids that have no video, and the ids
    whose caption (`label`) is empty: those are skipped, never trained on as "no language"."""
    train = read_labels(labels)
    if limit is not None and limit >= 0:
        train = train[:limit]
    val = read_labels(validation)[: max(val_clips, 0)] if validation is not None else []
    if not train and not val:
        raise PrepareError(f"{labels}: empty source: no labelled clips")
    seen: dict[str, str] = {}
    for _split, src, entries in (("val", validation, val), ("train", labels, train)):
        for i, e in enumerate(entries):
            if e.id in seen:
                raise PrepareError(f"{src}: entry {i}: clip id {e.id!r} appears twice (first in {seen[e.id]})")
            seen[e.id] = f"{src} entry {i}"
    found = list_videos(videos, ext)
    tasks, records, missing, empty = [], [], [], []
    for split, entries in (("val", val), ("train", train)):
        for e in entries:
            if not e.label.strip():
                empty.append(e.id)
                continue
            records.append(ClipRecord(e.id, split, e.label, e.template, list(e.placeholders)))
            if e.id in found:
                tasks.append(ClipTask(e.id, split, str(found[e.id])))
            else:
                missing.append(e.id)
    if not tasks and empty and not records:
        raise PrepareError(f"{labels}: every one of the {len(empty)} labelled clips has an empty 'label' (caption)")
    if not tasks:
        raise PrepareError(
            f"{videos}: none of the {len(records)} labelled clips has a video "
            f"(expected {Path(videos) / ('<id>.' + ext)})"
        )
    return tasks, records, missing, empty


def prepare_ssv2(
    videos: str | Path,
    labels: str | Path,
    validation: str | Path | None,
    out: str | Path,
    tokenizer: str = "distilbert-base-uncased",
    max_lang_len: int = 20,
    workers: int = 0,
    frames_per_shard: int = 8192,
    size: int = 240,
    quality: int = 90,
    val_clips: int = 1000,
    limit: int | None = None,
    retry_failed: bool = False,
    ext: str = "webm",
    start_method: str | None = "spawn",
    progress: Callable[[int, int], None] | None = None,
    on_shard: Callable[[str, WriteStats], None] | None = None,
    config: Any = None,
) -> dict[str, Any]:
    """Decode an SSv2-layout source into `out` (shards + index.h5 + report.json + lineage card, whose config is
    `config`, default these arguments); returns the report."""
    made = {"source": "ssv2", "tokenizer": tokenizer, "max_lang_len": max_lang_len, "size": size, "quality": quality,
            "val_clips": val_clips, "limit": limit, "ext": ext, "frames_per_shard": frames_per_shard}  # fmt: skip
    inputs = [videos, labels, validation, {"path": tokenizer, "kind": "tokenizer"}]
    if size < 1:
        raise PrepareError(f"size must be >= 1, got {size}")
    tok = load_tokenizer(tokenizer)  # fail before hours of decoding
    tasks, records, missing, empty = ssv2_tasks(videos, labels, validation, val_clips, limit, ext)
    worker = functools.partial(decode_task, size=size, quality=quality)
    attrs = {"source": "ssv2", "encoding": "jpeg", "size": size, "quality": quality}
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
            "ssv2",
            records,
            stats,
            tok,
            tokenizer,
            max_lang_len,
            attrs,
            {
                "missing_videos": len(missing),
                "missing_video_ids": missing[:100],
                "empty_captions": len(empty),
                "empty_caption_ids": empty[:100],
            },
            inputs,
            made if config is None else config,
        )
