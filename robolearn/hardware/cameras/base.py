"""The one camera interface. Frames carry host timestamps (time.monotonic_ns): capture (best estimate of
exposure time) and receive (when the host got the frame). A missing frame is a Frame with image=None and
dropped=True, never an exception: the recorder stores it as a dropped frame and moves on."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from robolearn.data.schema import CameraSpec
from robolearn.hardware.lifecycle import Connectable


@dataclass
class Frame:
    image: np.ndarray | None  # (H, W, 3) uint8 RGB, or None when dropped
    capture_ns: int
    receive_ns: int
    dropped: bool = False
    depth: np.ndarray | None = None  # (H, W) uint16 mm, when the camera has depth

    @classmethod
    def missing(cls) -> Frame:
        now = time.monotonic_ns()
        return cls(None, now, now, dropped=True)


class Camera(Connectable, ABC):
    """A camera stream. `read()` returns the newest frame not returned before, or a dropped Frame. Lifecycle:
    connect() / disconnect() / is_connected / `with camera:` (robolearn.hardware.lifecycle)."""

    name: str = "camera"
    _RENAMED = {"start": "connect", "stop": "disconnect"}

    @abstractmethod
    def connect(self) -> None:
        """Open the device and start capturing (idempotent)."""

    @abstractmethod
    def read(self) -> Frame:
        """The newest unseen frame (never raises for a missing frame; returns Frame.missing())."""

    @abstractmethod
    def spec(self) -> CameraSpec:
        """How the stream is registered in an episode (size, role, intrinsics, extrinsics, calibration)."""

    def disconnect(self) -> None:
        """Stop capturing and release the device (idempotent)."""

    def start(self) -> None:
        """Deprecated name of connect()."""
        self._renamed("start")

    def stop(self) -> None:
        """Deprecated name of disconnect()."""
        self._renamed("stop")
