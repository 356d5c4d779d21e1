"""3Dconnexion SpaceMouse teleoperation through hidapi (`pip install hidapi`; no driver, no spacenavd).

HID reports (first byte = report id, values int16 little endian, about +-350 at full deflection):
  id 1, 7 bytes   translation x y z                     (SpaceNavigator, SpaceMouse Pro, ... )
  id 1, 13 bytes  translation x y z + rotation rx ry rz (SpaceMouse Wireless, Compact, Enterprise, ...)
  id 2, 7 bytes   rotation rx ry rz
  id 3            buttons: a little-endian bitmask (bit 0 left, bit 1 right)
Other report ids (battery, LEDs) are ignored.

The device frame is right-handed: x right, y towards the operator (so pushing the cap forward gives -y),
z down (pushing down gives +z). `axis_map` says which signed device axis drives each base-frame twist
component; the default assumes the operator stands behind the robot looking the way it looks (base x
forward, y left, z up): vx=-y, vy=-x, vz=-z and the rotations likewise (wx=-ry, wy=-rx, wz=-rz).

Buttons (`buttons`: bit -> action): "gripper" toggles the gripper on press, "hold" makes that button a
dead-man (no motion unless held), an event name (success, start, ...) emits that event on press.
Default: left = gripper, right = success.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robolearn.hardware.devices.base import EVENTS, Device, DeviceCommand, DeviceConfig, DeviceError, apply_deadzone

log = logging.getLogger(__name__)

VENDOR_IDS = (0x046D, 0x256F)  # Logitech (older 3Dconnexion devices), 3Dconnexion
PRODUCTS: dict[tuple[int, int], str] = {
    (0x046D, 0xC603): "SpaceMouse Plus XT",
    (0x046D, 0xC605): "CADMan",
    (0x046D, 0xC606): "SpaceMouse Classic",
    (0x046D, 0xC621): "SpaceBall 5000",
    (0x046D, 0xC623): "SpaceTraveler",
    (0x046D, 0xC625): "SpacePilot",
    (0x046D, 0xC626): "SpaceNavigator",
    (0x046D, 0xC627): "SpaceExplorer",
    (0x046D, 0xC628): "SpaceNavigator for Notebooks",
    (0x046D, 0xC629): "SpacePilot Pro",
    (0x046D, 0xC62B): "SpaceMouse Pro",
    (0x256F, 0xC62E): "SpaceMouse Wireless (cable)",
    (0x256F, 0xC62F): "SpaceMouse Wireless (receiver)",
    (0x256F, 0xC631): "SpaceMouse Pro Wireless (cable)",
    (0x256F, 0xC632): "SpaceMouse Pro Wireless (receiver)",
    (0x256F, 0xC633): "SpaceMouse Enterprise",
    (0x256F, 0xC635): "SpaceMouse Compact",
    (0x256F, 0xC636): "SpaceMouse Module",
    (0x256F, 0xC652): "3Dconnexion Universal Receiver",
}
AXES = ("x", "y", "z", "rx", "ry", "rz")
BUTTON_ACTIONS = ("gripper", "hold", *EVENTS)
_AXIS_SPEC = re.compile(r"^([+-]?)(x|y|z|rx|ry|rz)$")


@dataclass(frozen=True)
class SpaceMouseState:
    """The device's latest raw values: axes in counts (x y z rx ry rz) and the button bitmask."""

    axes: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
    buttons: int = 0


def parse_report(data: bytes, state: SpaceMouseState) -> SpaceMouseState:
    """The state after one HID report. Unknown report ids leave it unchanged; a truncated report raises
    ValueError (never half-applied)."""
    if not data:
        raise ValueError("empty SpaceMouse report")
    rid, body = data[0], bytes(data[1:])
    if rid == 1:
        if len(body) >= 12:  # all six axes in one report
            return dataclasses.replace(state, axes=struct.unpack_from("<6h", body))
        if len(body) >= 6:
            return dataclasses.replace(state, axes=struct.unpack_from("<3h", body) + state.axes[3:])
        raise ValueError(f"SpaceMouse report id 1 has {len(body)} data bytes, expected 6 or 12")
    if rid == 2:
        if len(body) < 6:
            raise ValueError(f"SpaceMouse report id 2 has {len(body)} data bytes, expected 6")
        return dataclasses.replace(state, axes=state.axes[:3] + struct.unpack_from("<3h", body))
    if rid == 3:
        if not body:
            raise ValueError("SpaceMouse report id 3 has no button bytes")
        return dataclasses.replace(state, buttons=int.from_bytes(body, "little"))
    return state


def parse_axis_map(axis_map: list[str] | tuple[str, ...]) -> list[tuple[int, float]]:
    """['-y', '-x', ...] -> [(device axis index, sign)] per base twist component; '0' disables one."""
    if len(axis_map) != 6:
        raise ValueError(f"SpaceMouse axis_map needs 6 entries (vx vy vz wx wy wz), got {len(axis_map)}")
    out: list[tuple[int, float]] = []
    for spec in axis_map:
        if spec == "0":
            out.append((0, 0.0))
            continue
        m = _AXIS_SPEC.match(spec)
        if not m:
            raise ValueError(
                f"SpaceMouse axis_map entry {spec!r}: expected an optionally signed device axis "
                f"({', '.join(AXES)}) or '0'"
            )
        out.append((AXES.index(m.group(2)), -1.0 if m.group(1) == "-" else 1.0))
    used = [i for (i, s) in out if s]
    if len(used) != len(set(used)):
        raise ValueError(f"SpaceMouse axis_map {list(axis_map)} uses a device axis twice")
    return out


@dataclass
class SpaceMouseConfig(DeviceConfig):
    """SpaceMouse settings (see the module docstring for frames and buttons)."""

    deadzone: float = 0.08  # fraction of full scale; covers the cap's rest drift
    full_scale: float = 350.0  # counts that mean 1.0
    axis_map: list[str] = field(default_factory=lambda: ["-y", "-x", "-z", "-ry", "-rx", "-rz"])
    buttons: dict[str, str] = field(default_factory=lambda: {"0": "gripper", "1": "success"})
    path: str = ""  # hidraw path to open (see `robolearn devices list`); empty: the first one found
    poll_s: float = 0.002  # reader thread sleep when no report is waiting
    stale_s: float = 0.0  # > 0: zero the motion when no report came for this long (0: off)


def state_to_twist(state: SpaceMouseState, config: SpaceMouseConfig) -> np.ndarray:
    """Base-frame twist in [-1, 1]: axis map, scaling, deadzone, then gains."""
    raw = np.asarray(state.axes, dtype=np.float64) / config.full_scale
    mapped = np.array([sign * raw[i] for i, sign in parse_axis_map(config.axis_map)])
    twist = apply_deadzone(np.clip(mapped, -1.0, 1.0), config.deadzone)
    twist[:3] *= config.linear_gain
    twist[3:] *= config.angular_gain
    return np.clip(twist, -1.0, 1.0)


def parse_buttons(buttons: dict[Any, str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for bit, action in buttons.items():
        try:
            index = int(bit)
        except (TypeError, ValueError):
            raise ValueError(f"SpaceMouse buttons: key {bit!r} must be a button bit number (0 left, 1 right)") from None
        if not 0 <= index < 64:
            raise ValueError(f"SpaceMouse buttons: bit {index} out of range 0..63")
        if action not in BUTTON_ACTIONS:
            raise ValueError(
                f"SpaceMouse buttons: unknown action {action!r} for bit {index}; expected one of "
                f"{', '.join(BUTTON_ACTIONS)}"
            )
        out[index] = action
    return out


def import_hid() -> Any:
    try:
        import hid  # noqa: PLC0415 (optional dependency)
    except ImportError as e:
        raise DeviceError("the SpaceMouse device needs hidapi: pip install hidapi") from e
    if not hasattr(hid, "device") or not hasattr(hid, "enumerate"):
        raise DeviceError(
            "the installed `hid` module is not hidapi's (another package named hid?): "
            "pip uninstall hid && pip install hidapi"
        )
    return hid


def find_spacemice(hid: Any) -> list[dict[str, Any]]:
    """hid.enumerate() entries of known 3Dconnexion 6-DoF devices, the multi-axis interface first."""
    found = [d for d in hid.enumerate() if (d.get("vendor_id"), d.get("product_id")) in PRODUCTS]
    # Receivers expose several interfaces; the motion one is usage page 1 (generic desktop), usage 8.
    return sorted(found, key=lambda d: (d.get("usage_page"), d.get("usage")) != (1, 8))


def open_spacemouse(path: str = "") -> Any:
    """An open, non-blocking hidapi handle of the first (or the given) SpaceMouse."""
    hid = import_hid()
    devices = find_spacemice(hid)
    if path:
        devices = [d for d in devices if _path_str(d.get("path")) == path]
        if not devices:
            raise DeviceError(
                f"no SpaceMouse at {path!r}; found: {[_path_str(d.get('path')) for d in find_spacemice(hid)] or 'none'}"
            )
    if not devices:
        raise DeviceError(
            "no SpaceMouse found (3Dconnexion vendor ids 0x046d/0x256f): is it plugged in? "
            "Without root, install the udev rule from docs/devices.md and replug it"
        )
    info = devices[0]
    handle = hid.device()
    try:
        handle.open_path(info["path"])
    except OSError as e:
        raise DeviceError(
            f"could not open {PRODUCTS[(info['vendor_id'], info['product_id'])]} at "
            f"{_path_str(info['path'])}: {e}. Permission denied? Install the udev rule from "
            f"docs/devices.md and replug the device"
        ) from e
    handle.set_nonblocking(1)
    return handle


def _path_str(path: Any) -> str:
    return path.decode(errors="replace") if isinstance(path, bytes) else str(path)


class SpaceMouseDevice(Device):
    """A SpaceMouse read by a background thread. `handle` (anything with read(n) -> list[int] and close())
    replaces the hidapi device, which is how the tests feed recorded reports."""

    name = "spacemouse"
    config_cls = SpaceMouseConfig

    def __init__(
        self, config: SpaceMouseConfig | None = None, *, handle: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or SpaceMouseConfig()
        parse_axis_map(self.config.axis_map)  # fail at construction on a bad config
        self._buttons = parse_buttons(self.config.buttons)
        if self.config.full_scale <= 0:
            raise ValueError(f"SpaceMouse full_scale must be > 0, got {self.config.full_scale}")
        self._given = handle  # reused by connect() after a disconnect()
        self._handle: Any = None
        self._clock = clock
        self._lock = threading.Lock()
        self._state = SpaceMouseState()
        self._last_report = -np.inf
        self._pressed = 0  # button bits pressed since the last read()
        self._bad_reports = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gripper = 0.0

    def connect(self) -> None:
        if self._thread is not None:
            return
        self._handle = self._given if self._given is not None else open_spacemouse(self.config.path)
        with self._lock:  # reports missed while closed: start from rest
            self._state, self._pressed, self._error = SpaceMouseState(), 0, None
            self._last_report = self._clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="spacemouse-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._handle.read(64)
            except BaseException as e:  # unplugged, or the handle was closed under us
                with self._lock:
                    self._error = e
                return
            if not data:
                time.sleep(self.config.poll_s)
                continue
            self._apply(bytes(data))

    def _apply(self, data: bytes) -> None:
        with self._lock:
            try:
                new = parse_report(data, self._state)
            except ValueError as e:
                self._bad_reports += 1
                if self._bad_reports in (1, 10, 100, 1000):
                    log.warning(
                        "spacemouse: ignored malformed report %s (%s; %d so far)", data.hex(), e, self._bad_reports
                    )
                return
            self._pressed |= new.buttons & ~self._state.buttons
            self._state = new
            self._last_report = self._clock()

    def read(self) -> DeviceCommand:
        if self._thread is None:
            self.connect()
        with self._lock:
            if self._error is not None:
                raise DeviceError(
                    f"SpaceMouse stopped responding ({self._error!r}): unplugged? Replug it and restart"
                ) from self._error
            state, pressed, self._pressed = self._state, self._pressed, 0
            last = self._last_report
        twist = state_to_twist(state, self.config)
        if self.config.stale_s > 0 and self._clock() - last > self.config.stale_s:
            twist = np.zeros(6)
        events: set[str] = set()
        enabled = True
        for bit, action in self._buttons.items():
            down = bool(state.buttons >> bit & 1)
            was_pressed = bool(pressed >> bit & 1)
            if action == "hold":
                enabled = enabled and down
            elif action == "gripper":
                if was_pressed:
                    self._gripper = 0.0 if self._gripper >= 0.5 else 1.0
            elif was_pressed:
                events.add(action)
        if not enabled:
            twist = np.zeros(6)
        return DeviceCommand(twist, self._gripper, enabled, events)

    def raw(self) -> str:
        """The latest raw values (counts and pressed button bits), for `robolearn devices echo`."""
        with self._lock:
            s = self._state
        bits = [i for i in range(64) if s.buttons >> i & 1]
        return f"raw {' '.join(f'{n}={v:+d}' for n, v in zip(AXES, s.axes))} buttons {bits or '-'}"

    def params(self) -> dict:
        """Settings recorded with each episode (teleop_params)."""
        return dataclasses.asdict(self.config)

    def disconnect(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None
        if self._handle is not None:
            try:
                self._handle.close()
            except Exception:  # noqa: BLE001 (already gone)
                pass
            self._handle = None
