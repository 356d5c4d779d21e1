"""MP4 files holding many episodes back to back (LeRobot v3.0 videos), with PyAV: frame i of a file has
pts i in time base 1/fps, so an episode's frames are those in [from_timestamp, to_timestamp)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from robolearn.data.interop.lerobot.layout import LeRobotFormatError

CODECS = {"h264": "libx264", "av1": "libsvtav1"}  # --codec -> PyAV encoder


class VideoAppender:
    """Encode frames into one MP4, episode after episode; `frames` counts what was written so far."""

    def __init__(self, path: Path, fps: int, width: int, height: int, codec: str = "h264", crf: int = 18, gop: int = 2):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.frames = path, 0
        self._c = av.open(str(path), "w")
        s = self._c.add_stream(CODECS[codec], rate=fps)
        s.width, s.height = width, height
        # 4:2:0 needs even sides; odd-sized cameras keep full chroma instead.
        s.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        s.codec_context.time_base = Fraction(1, fps)
        s.codec_context.gop_size = gop  # LeRobot's g=2: cheap random access to any frame
        s.options = {"crf": str(crf)} if codec == "h264" else {"crf": str(crf), "preset": "10"}
        self.codec_name, self.pix_fmt = s.codec_context.name, s.pix_fmt
        self._s = s

    def add(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        for pkt in self._s.encode(frame):
            self._c.mux(pkt)
        self.frames += 1

    def close(self) -> None:
        for pkt in self._s.encode():
            self._c.mux(pkt)
        self._c.close()


def read_range(path: Path, key: str, start_s: float, end_s: float, fps: float, expected: int) -> np.ndarray:
    """Frames of `path` whose time lies in [start_s, end_s) as (N, H, W, 3) uint8; N must equal `expected`.
    Errors name the file and the video key."""
    tol = 0.25 / fps  # a quarter frame
    field = f"videos/{key}"
    if not path.is_file():
        raise LeRobotFormatError(path, field, "missing MP4 file")
    out: list[np.ndarray] = []
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            if start_s > tol:
                c.seek(int(max(start_s - tol, 0) / s.time_base), stream=s, backward=True, any_frame=False)
            for frame in c.decode(s):
                t = frame.time if frame.time is not None else 0.0
                if t < start_s - tol:
                    continue
                if t >= end_s - tol:
                    break
                out.append(frame.to_ndarray(format="rgb24"))
    except (av.FFmpegError, OSError, ValueError, IndexError) as e:
        raise LeRobotFormatError(path, field, f"cannot decode the MP4 ({e})") from None
    if len(out) != expected:
        raise LeRobotFormatError(
            path,
            field,
            f"{len(out)} frames in [{start_s:.3f}s, {end_s:.3f}s), expected {expected} (the episode's length): "
            "truncated video or frame counts that do not match",
        )
    return np.stack(out)
