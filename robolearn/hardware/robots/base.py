"""The one robot interface used by teleoperation, policy rollouts and the robot server.

State and action forms are keyed like the episode format (robolearn.data.schema): `state()` returns
joint_positions (7), joint_velocities (7), ee_position (3, base frame, m), ee_quaternion (4, wxyz) and
gripper_position (0 open .. 1 closed); `apply(action, space)` takes one control period's command in one of
schema.ACTION_SPACES (gripper value last) and returns every action form actually applied
(cartesian_velocity, cartesian_position, joint_position, joint_velocity, gripper_position).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from robolearn.hardware.lifecycle import Connectable


class RobotError(RuntimeError):
    """The robot (or the link to it) failed; the message says what and where."""


class Robot(Connectable, ABC):
    """A robot arm with a gripper at a fixed control rate. Lifecycle: connect() / disconnect() /
    is_connected / `with robot:` (robolearn.hardware.lifecycle)."""

    name: str = "robot"
    control_hz: float = 15.0
    action_spaces: tuple[str, ...] = ("cartesian_velocity", "cartesian_position", "joint_position", "joint_velocity")
    _RENAMED = {"close": "disconnect"}

    def connect(self) -> None:
        """Open the link to the robot (idempotent)."""

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """The robot state now (see the module docstring)."""

    @abstractmethod
    def apply(self, action: np.ndarray, space: str) -> dict[str, np.ndarray]:
        """Apply one control period's command; return every action form applied. ValueError on a bad
        action (shape, NaN/inf, unknown space)."""

    @abstractmethod
    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        """Move to the home posture (with optional random joint noise [rad]) and wait there."""

    @abstractmethod
    def stop(self) -> None:
        """Stop moving now and hold position (safe to call at any time, repeatedly)."""

    def disconnect(self) -> None:
        """Stop and release the robot (idempotent)."""
        self.stop()

    def close(self) -> None:
        """Deprecated name of disconnect()."""
        self._renamed("close")

    def info(self) -> dict[str, Any]:
        """Static description recorded with every episode (type, serial, rate, spaces)."""
        return {
            "robot_type": self.name,
            "robot_serial": "",
            "control_hz": self.control_hz,
            "action_spaces": list(self.action_spaces),
        }
