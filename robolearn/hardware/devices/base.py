"""The teleop device interface. A device turns operator input into a cartesian-velocity command (6 values in
[-1, 1] in the robot base frame: vx vy vz wx wy wz) plus a gripper target (0 open .. 1 closed), a dead-man
flag, and operator events for the station's flow."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from robolearn.hardware.lifecycle import Connectable


class DeviceError(RuntimeError):
    """The device failed (missing, disconnected, no driver); the message says what and how to fix it."""


# Operator events a device may emit; the station maps them to its flow.
EVENTS = ("start", "success", "failure", "discard", "quit", "home", "pause")


@dataclass
class DeviceCommand:
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))  # [-1, 1], base frame
    gripper: float = 0.0  # 0 open .. 1 closed
    enabled: bool = True  # dead-man / hold-to-move: False means "hold still"
    events: set[str] = field(default_factory=set)

    def validated(self, device: str) -> DeviceCommand:
        """A copy with values checked: NaN/inf raise ValueError naming the device; ranges are clipped."""
        twist = np.asarray(self.twist, dtype=np.float64).reshape(-1)
        if twist.shape != (6,):
            raise ValueError(f"device {device!r} returned a twist of shape {twist.shape}, expected (6,)")
        if not np.all(np.isfinite(twist)) or not np.isfinite(self.gripper):
            raise ValueError(
                f"device {device!r} returned non-finite values: twist={twist.tolist()}, gripper={self.gripper}"
            )
        unknown = self.events - set(EVENTS)
        if unknown:
            raise ValueError(f"device {device!r} emitted unknown events {sorted(unknown)}; expected {EVENTS}")
        return DeviceCommand(
            np.clip(twist, -1.0, 1.0), float(np.clip(self.gripper, 0.0, 1.0)), bool(self.enabled), set(self.events)
        )


@dataclass
class DeviceConfig:
    """Shared device settings: per-axis gains and deadzone (fraction of full scale)."""

    linear_gain: float = 1.0
    angular_gain: float = 1.0
    deadzone: float = 0.05


class Device(Connectable, ABC):
    """A teleop device. Lifecycle: connect() / disconnect() / is_connected / `with device:`
    (robolearn.hardware.lifecycle)."""

    name: str = "device"
    _RENAMED = {"start": "connect", "close": "disconnect"}

    def connect(self) -> None:
        """Open the device (idempotent)."""

    @abstractmethod
    def read(self) -> DeviceCommand:
        """The operator's command now (non-blocking)."""

    def disconnect(self) -> None:
        """Release the device and restore any terminal state (idempotent)."""

    def start(self) -> None:
        """Deprecated name of connect()."""
        self._renamed("start")

    def close(self) -> None:
        """Deprecated name of disconnect()."""
        self._renamed("close")


def apply_deadzone(values: np.ndarray, deadzone: float) -> np.ndarray:
    """Zero values within the deadzone and rescale the rest so the output stays continuous in [-1, 1]."""
    v = np.asarray(values, dtype=np.float64)
    mag = np.abs(v)
    out = np.where(mag <= deadzone, 0.0, np.sign(v) * (mag - deadzone) / max(1e-9, 1.0 - deadzone))
    return np.clip(out, -1.0, 1.0)
