"""Write a clip as a VP8 .webm (what `prepare --source ssv2` decodes), atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robolearn.utils import atomic_path


def write_webm(path: Path, frames: list[np.ndarray], fps: int, crf: int = 24) -> Path:
    import av

    h, w = frames[0].shape[:2]
    with atomic_path(path, fsync=False) as tmp:
        with av.open(str(tmp), "w", format="webm", container_options={"fflags": "+bitexact"}) as c:
            s = c.add_stream("libvpx", rate=fps)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.bit_rate = max(200_000, int(w * h * fps * 0.25))
            s.options = {"crf": str(crf), "deadline": "good", "cpu-used": "4", "threads": "1"}
            s.codec_context.thread_count = 1
            c.metadata["title"] = path.stem
            for img in frames:
                for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    return path
