"""Operator takeover (`Takeover`), the no-op takeover device (`NullDevice`) and SIGINT/SIGTERM handling."""

from __future__ import annotations

import signal
import threading
from typing import Any

import numpy as np

from robolearn.hardware.devices.base import Device, DeviceCommand


# ---------------------------------------------------------------------------------------------------- parts
class NullDevice(Device):
    """`--takeover-device none`: never takes over (abort with Ctrl-C)."""

    name = "none"

    def read(self) -> DeviceCommand:
        return DeviceCommand()


class Takeover:
    """Decides per step who drives: the operator (device) or the policy.

    The operator drives while the device gives a non-zero twist (only when `enabled`: a released dead-man
    switch is no takeover), on a step where its gripper value changes, and from one "pause" event to the next
    (a latched takeover: a zero twist then holds the robot still). With `release_steps` > 0 control goes back
    only after that many idle steps. The gripper follows the operator only once the operator changed it;
    until then it stays at the last gripper target sent (the policy's)."""

    def __init__(self, release_steps: int = 0) -> None:
        self.release_steps = max(0, int(release_steps))
        self.reset()

    def reset(self) -> None:
        self.active = self.latched = False
        self._idle = 0
        self._last_gripper: float | None = None
        self.gripper_override: float | None = None
        self.segments = 0

    def update(self, cmd: DeviceCommand) -> bool:
        """True when the operator drives this step."""
        if "pause" in cmd.events:
            self.latched = not self.latched
        moving = cmd.enabled and bool(np.any(np.asarray(cmd.twist) != 0.0))
        gripper_changed = self._last_gripper is not None and cmd.gripper != self._last_gripper
        self._last_gripper = cmd.gripper
        if gripper_changed:
            self.gripper_override = float(cmd.gripper)
        wants = self.latched or moving or gripper_changed
        if wants:
            self._idle = 0
        elif self.active:
            self._idle += 1
            wants = self._idle <= self.release_steps
        if wants and not self.active:
            self.segments += 1
        if not wants:
            self.gripper_override = None
        self.active = wants
        return wants

    def action(self, cmd: DeviceCommand, gripper_now: float) -> np.ndarray:
        twist = np.asarray(cmd.twist, dtype=np.float64) if cmd.enabled else np.zeros(6)
        gripper = self.gripper_override if self.gripper_override is not None else gripper_now
        return np.append(twist, gripper)


class _Interrupts:
    """SIGINT/SIGTERM while recording: remembered, the loop stops after the current step; a second one, or one
    outside recording (a prompt, homing), raises KeyboardInterrupt at once. Main thread only."""

    def __init__(self) -> None:
        self.reason = ""
        self.recording = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        first = not self.reason
        if first:
            self.reason = name
        if not self.recording or not first:
            raise KeyboardInterrupt(name)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
