"""Cameras through cv2.VideoCapture: USB/V4L2 devices (index or /dev/videoN), video files and network streams.

A grabber thread captures off the control thread and keeps only the newest frame; `read()` returns it once
(the next read before a new frame arrives is a dropped Frame) and never waits for the device.

Timestamps (time.monotonic_ns): `receive_ns` is when cap.read() returned the frame. `capture_ns` is the
driver's buffer timestamp when it is meaningful - V4L2 reports CAP_PROP_POS_MSEC from CLOCK_MONOTONIC, used
when it lies within 1 s before the receive time - and otherwise receive minus one frame period (the frame
was exposed at least one period before it could be read out). Files and streams always use the estimate.

Size: frames are converted BGR -> RGB and resized to (width, height) when the source delivers another size
(INTER_AREA when shrinking, INTER_LINEAR when enlarging; a different aspect ratio is stretched, not cropped:
calibrate at the stored size). Devices are asked for width x height at fps first.

Failures: a source that cannot be opened at connect() raises (CameraError, or FileNotFoundError for a missing
file): a misconfigured station should not record black frames. Once connected, a failure (read fails, device
unplugged, stream drops) makes read() return dropped frames while the thread retries opening every
reconnect_s. A file is played at `fps` like a live camera; when it ends it stays ended (read() returns dropped
frames: a camera that was unplugged for good) unless loop_file. `stats()` counts frames grabbed/returned,
dropped reads, reconnect attempts and successful reconnects.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robolearn.config import opt
from robolearn.data.schema import IMAGE_ENCODINGS, CameraSpec
from robolearn.hardware.cameras.base import Camera, Frame

ROLES = ("exterior", "wrist", "fixed")
_RUNNING: weakref.WeakSet[OpenCVCamera] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Stop grabber threads before interpreter shutdown: a daemon thread killed inside a cv2 call aborts
    the process ("FATAL: exception not rethrown")."""
    for cam in list(_RUNNING):
        cam.disconnect()


class CameraError(RuntimeError):
    """A camera could not be opened or used; the message names the camera and the source."""


@dataclass
class OpenCVCameraConfig:
    source: int | str = opt(0, help="device index, /dev/videoN, video file or stream URL (rtsp://, http://)")
    name: str = opt("camera", help="stream name in the episode")
    width: int = opt(640, help="stored image width (frames of another size are resized)")
    height: int = opt(480, help="stored image height")
    fps: float = opt(30.0, help="requested device rate; playback rate of a file")
    role: str = opt("exterior", help="exterior | wrist | fixed")
    encoding: str = opt("jpeg", help="jpeg | png")
    quality: int = opt(90, help="JPEG quality")
    reconnect_s: float = opt(1.0, help="seconds between attempts to reopen a failed source")
    loop_file: bool = opt(False, help="restart a file source at its end instead of ending")
    fourcc: str = opt("", help="device pixel format, e.g. MJPG (needed by many USB cameras above 640x480)")
    calibration: str = opt("", help="calibration.json (or its folder) to take intrinsics/extrinsics from")
    open_timeout_s: float = opt(10.0, help="connect() fails when the source has not opened within this time")

    def __post_init__(self) -> None:
        if isinstance(self.source, str) and self.source.strip().isdigit():
            self.source = int(self.source)
        if self.source == "" or (isinstance(self.source, int) and self.source < 0):
            raise ValueError(
                f"camera {self.name!r}: source must be a device index >= 0, a path or a URL, got {self.source!r}"
            )
        for label, value in (("width", self.width), ("height", self.height)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"camera {self.name!r}: {label} must be a positive integer, got {value!r}")
        for label, value in (
            ("fps", self.fps),
            ("reconnect_s", self.reconnect_s),
            ("open_timeout_s", self.open_timeout_s),
        ):
            if not value > 0:
                raise ValueError(f"camera {self.name!r}: {label} must be > 0, got {value!r}")
        if self.role not in ROLES:
            raise ValueError(f"camera {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if self.encoding not in IMAGE_ENCODINGS:
            raise ValueError(f"camera {self.name!r}: encoding must be one of {IMAGE_ENCODINGS}, got {self.encoding!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"camera {self.name!r}: JPEG quality must be in 1..100, got {self.quality!r}")
        if self.fourcc and len(self.fourcc) != 4:
            raise ValueError(f"camera {self.name!r}: fourcc must be 4 characters (e.g. MJPG), got {self.fourcc!r}")

    @property
    def kind(self) -> str:
        """device | file | stream."""
        s = self.source
        if isinstance(s, int) or str(s).startswith("/dev/"):
            return "device"
        return "stream" if "://" in str(s) else "file"


def _open_capture(config: OpenCVCameraConfig) -> cv2.VideoCapture:
    """cv2.VideoCapture for the source, with the device asked for the configured size, rate and format."""
    cap = cv2.VideoCapture(config.source)
    if cap.isOpened() and config.kind == "device":
        if config.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*config.fourcc))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
        cap.set(cv2.CAP_PROP_FPS, config.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
    return cap


class OpenCVCamera(Camera):
    """See the module docstring. `open_capture(config)` may be replaced (tests, custom backends): it returns an
    object with isOpened(), read() -> (ok, BGR image), get(prop), set(prop, value) and release()."""

    def __init__(
        self,
        config: OpenCVCameraConfig | None = None,
        open_capture: Callable[[OpenCVCameraConfig], Any] = _open_capture,
    ) -> None:
        self.config = config or OpenCVCameraConfig()
        self.name = self.config.name
        self._open_capture = open_capture
        self._calibration = self._load_calibration()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest: tuple[int, np.ndarray, int, int] | None = None  # (seq, image, capture_ns, receive_ns)
        self._returned = 0
        self._counts = dict(
            frames_grabbed=0,
            frames_returned=0,
            dropped_reads=0,
            reconnect_attempts=0,
            reconnects=0,
            failures=0,
            loops=0,
        )
        self._state = dict(connected=False, ended=False, last_error="", source_size=None)

    # ------------------------------------------------------------------ Camera API
    def connect(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        c = self.config
        if c.kind == "file" and not Path(str(c.source)).is_file():
            raise FileNotFoundError(f"camera {c.name!r}: video file {c.source!r} does not exist")
        if c.kind == "device" and isinstance(c.source, str) and not os.path.exists(c.source):
            raise CameraError(f"camera {c.name!r}: device {c.source} does not exist (plugged in? ls /dev/video*)")
        self._stop = threading.Event()  # per run: a thread left over from a timed-out start never restarts
        self._opened = threading.Event()
        self._state.update(connected=False, ended=False, last_error="")
        self._thread = threading.Thread(
            target=self._run, args=(self._stop, self._opened), name=f"camera-{c.name}", daemon=True
        )
        self._thread.start()
        _RUNNING.add(self)
        if not self._opened.wait(c.open_timeout_s):
            self._stop.set()
            self._thread = None
            _RUNNING.discard(self)
            raise CameraError(f"camera {c.name!r}: source {c.source!r} did not open within {c.open_timeout_s} s")
        if not self._state["connected"]:
            self.disconnect()
            raise CameraError(
                f"camera {c.name!r}: could not open source {c.source!r} ({self._state['last_error'] or self._hint()})"
            )

    def read(self) -> Frame:
        with self._lock:
            latest = self._latest
            if latest is None or latest[0] <= self._returned:
                self._counts["dropped_reads"] += 1
                return Frame.missing()
            seq, image, capture_ns, receive_ns = latest
            self._returned = seq
            self._counts["frames_returned"] += 1
        return Frame(image, capture_ns, receive_ns)

    def disconnect(self) -> None:
        self._stop.set()
        _RUNNING.discard(self)
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=max(3.0, 3.0 / self.config.fps))
            if thread.is_alive():  # a read blocked in the driver: the daemon thread releases it when it returns
                self._state["last_error"] = "grabber thread still blocked in the driver after disconnect()"
        with self._lock:
            self._latest = None

    def spec(self) -> CameraSpec:
        c, cal = self.config, self._calibration
        kw: dict[str, Any] = {}
        if cal is not None:
            kw = dict(
                intrinsics=_scaled_k(cal.intrinsics, (cal.width, cal.height), (c.width, c.height)),
                distortion=list(cal.distortion),
                extrinsics=cal.extrinsics,
                mounted_on=cal.mounted_on,
                calibration={**cal.summary(), "file": c.calibration, "size": [cal.width, cal.height]},
            )
        return CameraSpec(
            name=c.name,
            width=c.width,
            height=c.height,
            role=c.role,
            encoding=c.encoding,
            quality=c.quality,
            serial=f"opencv:{c.source}",
            **kw,
        )

    def stats(self) -> dict[str, Any]:
        """Counters and state: frames_grabbed, frames_returned, dropped_reads, reconnect_attempts, reconnects
        (successful), failures (source lost), loops (file restarts), connected, ended, last_error,
        source_size (w, h as delivered)."""
        with self._lock:
            return {**self._counts, **self._state}

    # ------------------------------------------------------------------ grabber thread
    def _run(self, stop: threading.Event, opened: threading.Event) -> None:
        c = self.config
        period_ns = int(1e9 / c.fps)
        cap, next_due, ever_opened = None, 0, False
        try:
            while not stop.is_set():
                if cap is None:
                    if ever_opened:
                        self._count("reconnect_attempts")
                    cap = self._try_open()
                    if cap is None:
                        opened.set()  # connect() sees the failure
                        stop.wait(c.reconnect_s)
                        continue
                    if ever_opened:
                        self._count("reconnects")
                    ever_opened = True
                    opened.set()
                ok, bgr = self._safe_read(cap)
                receive_ns = time.monotonic_ns()
                if not ok:
                    cap = self._source_failed(cap, stop)
                    if self._state["ended"]:
                        return
                    continue
                capture_ns = self._capture_time(cap, receive_ns, period_ns)
                self._store(self._convert(bgr), capture_ns, receive_ns, stop)
                if c.kind == "file":  # play at fps like a live camera
                    next_due = max(next_due + period_ns, receive_ns)
                    stop.wait(max(0.0, (next_due - time.monotonic_ns()) / 1e9))
        finally:
            if cap is not None:
                cap.release()
            with self._lock:
                self._state["connected"] = False
            opened.set()

    def _try_open(self) -> Any:
        try:
            cap = self._open_capture(self.config)
        except Exception as e:  # noqa: BLE001 (a backend error is a failed open, reported in stats)
            self._set_state(connected=False, last_error=f"open failed: {e}")
            return None
        if not cap.isOpened():
            cap.release()
            self._set_state(connected=False, last_error=f"open failed: {self._hint()}")
            return None
        self._set_state(connected=True)
        return cap

    def _safe_read(self, cap: Any) -> tuple[bool, np.ndarray | None]:
        try:
            ok, bgr = cap.read()
        except Exception as e:  # noqa: BLE001
            self._set_state(last_error=f"read failed: {e}")
            return False, None
        if ok and (bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3):
            self._set_state(last_error=f"source returned an unusable frame {getattr(bgr, 'shape', None)}")
            return False, None
        return bool(ok), bgr

    def _source_failed(self, cap: Any, stop: threading.Event) -> Any:
        """After a failed read: loop/end a file, or drop the capture so the next pass reconnects."""
        c = self.config
        if c.kind == "file":
            if c.loop_file and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                self._count("loops")
                return cap
            cap.release()
            self._set_state(connected=False, ended=not c.loop_file, last_error="end of file")
            return None
        cap.release()
        self._count("failures")
        self._set_state(connected=False, last_error="read failed (device unplugged or stream lost)")
        stop.wait(c.reconnect_s)
        return None

    def _capture_time(self, cap: Any, receive_ns: int, period_ns: int) -> int:
        if self.config.kind == "device":
            try:
                stamp_ns = int(float(cap.get(cv2.CAP_PROP_POS_MSEC)) * 1e6)
            except Exception:  # noqa: BLE001
                stamp_ns = 0
            if receive_ns - 1_000_000_000 <= stamp_ns <= receive_ns:
                return stamp_ns
        return receive_ns - period_ns

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        c = self.config
        h, w = bgr.shape[:2]
        self._state["source_size"] = (w, h)
        if (w, h) != (c.width, c.height):
            shrink = w * h > c.width * c.height
            bgr = cv2.resize(bgr, (c.width, c.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def _store(self, image: np.ndarray, capture_ns: int, receive_ns: int, stop: threading.Event) -> None:
        with self._lock:
            if stop.is_set():  # a stopped (or abandoned) run must not publish frames
                return
            self._counts["frames_grabbed"] += 1
            self._latest = (self._counts["frames_grabbed"], image, capture_ns, receive_ns)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def _set_state(self, **kw: Any) -> None:
        with self._lock:
            self._state.update(kw)

    def _hint(self) -> str:
        c = self.config
        if c.kind == "device":
            dev = c.source if isinstance(c.source, str) else f"/dev/video{c.source}"
            exists = os.path.exists(str(dev))
            why = "exists but could not be opened (in use? no permission: group video?)" if exists else "does not exist"
            return f"{dev} {why}; list devices with `ls /dev/video*`"
        if c.kind == "file":
            return f"{c.source} is not a video OpenCV can decode"
        return f"stream {c.source} unreachable or not decodable"

    def _load_calibration(self) -> Any:
        if not self.config.calibration:
            return None
        from robolearn.hardware.calibration import read_calibration

        return read_calibration(self.config.calibration, self.config.name)


def _scaled_k(k: list[list[float]], calibrated: tuple[int, int], stored: tuple[int, int]) -> list[list[float]]:
    """K calibrated at one image size, expressed at another (pixel centres at integer coordinates)."""
    sx, sy = stored[0] / calibrated[0], stored[1] / calibrated[1]
    m = np.asarray(k, dtype=np.float64).copy()
    m[0, 0], m[0, 1], m[1, 1] = m[0, 0] * sx, m[0, 1] * sx, m[1, 1] * sy
    m[0, 2], m[1, 2] = (m[0, 2] + 0.5) * sx - 0.5, (m[1, 2] + 0.5) * sy - 0.5
    return m.tolist()
