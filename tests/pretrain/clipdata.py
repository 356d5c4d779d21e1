"""Helpers for the pretraining-data tests: the small Something-Something-v2 layout they generate (VP8 .webm
clips written with PyAV + labels in the official layout) and a `prepare` call with test settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CROP = 32  # crop size used by the tests (the real default is 240)
# (id, n_frames, width, height, label, template, placeholders); widths vary like SSv2 (height fixed per clip)
CLIPS = [
    ("101", 14, 64, 48, "Pushing a cup from left to right", "Pushing [something] from left to right", ["a cup"]),
    ("102", 12, 80, 48, "Opening a drawer", "Opening [something]", ["a drawer"]),
    ("103", 16, 48, 48, "Putting a pen into a box", "Putting [something] into [something]", ["a pen", "a box"]),
    ("104", 10, 96, 40, "Lifting a book up", "Lifting [something] up", ["a book"]),
    (
        "105",
        12,
        56,
        64,
        "Turning the red bottle upside down slightly towards the table while moving the cup away "
        "from the bin on the shelf behind the door",
        "Turning [something] upside down",
        ["the red bottle"],
    ),
    ("106", 15, 72, 48, "Closing a cabinet door", "Closing [something]", ["a cabinet door"]),
    ("201", 12, 64, 48, "Pulling a box towards the camera", "Pulling [something] towards the camera", ["a box"]),
    (
        "202",
        11,
        48,
        40,
        "Dropping a block onto a table",
        "Dropping [something] onto [something]",
        ["a block", "a table"],
    ),
    ("203", 13, 80, 48, "Moving a cup up", "Moving [something] up", ["a cup"]),
]
TRAIN_IDS = ["101", "102", "103", "104", "105", "106"]
VAL_IDS = ["201", "202", "203"]
LONG_CAPTION_ID = "105"  # more tokens than max_lang_len=20


def write_webm(path: Path, n_frames: int, width: int, height: int, fps: int = 12, seed: int = 0) -> Path:
    """A small VP8 clip: a textured background and a red square crossing it."""
    import av

    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 200, 3)
    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), "w", format="webm") as c:
        s = c.add_stream("libvpx", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for t in range(n_frames):
            img = (base + 30 * np.sin(xx / 7 + t / 3)[..., None]).clip(0, 255).astype(np.uint8)
            x0 = int((width - 12) * t / max(n_frames - 1, 1))
            img[height // 3 : height // 3 + 12, x0 : x0 + 12] = (230, 30, 30)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def entry(clip: tuple) -> dict:
    cid, _, _, _, label, template, ph = clip
    return {"id": cid, "label": label, "template": template, "placeholders": ph}


def run_prepare(raw: Path, out: Path, lm: Path, **kw):
    from robolearn.pretrain.ssv2 import prepare_ssv2

    kw.setdefault("size", CROP)
    kw.setdefault("frames_per_shard", 30)
    kw.setdefault("val_clips", 2)
    return prepare_ssv2(raw / "videos", raw / "train.json", raw / "validation.json", out, tokenizer=str(lm), **kw)


def dying_worker(task):
    """A prepare worker whose process dies on clip 104 (like a decoder crash), decodes the rest normally."""
    import os

    from robolearn.pretrain.ssv2 import decode_task

    if task.id == "104":
        os._exit(3)
    return decode_task(task, size=CROP, quality=90)
