"""Device lookup: `make_device(name, **options)` for the built-in devices and plugins, device combinations
("spacemouse+keyboard": motion from both, events from both), and the `robolearn devices list|echo` commands.

The station adds its scripted "expert" device itself (it needs the simulation); it is not registered here.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

from robolearn.collection import plugins
from robolearn.collection.devices.base import Device, DeviceCommand
from robolearn.collection.devices.gamepad import GamepadDevice
from robolearn.collection.devices.keyboard import KeyboardDevice
from robolearn.collection.devices.spacemouse import SpaceMouseDevice
from robolearn.config import command, opt, positional

BUILTIN: dict[str, type[Device]] = {"keyboard": KeyboardDevice, "spacemouse": SpaceMouseDevice,
                                    "gamepad": GamepadDevice}


def build_config(cls: type, options: dict[str, Any], device: str) -> Any:
    """The dataclass `cls` from `options`; ValueError names an unknown option or a wrong value type."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ValueError(f"device {device!r}: unknown option(s) {unknown}; known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in options.items():
        tp = hints[key]
        base = typing.get_origin(tp) or tp
        if base is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif base is list and isinstance(value, tuple):
            value = list(value)
        elif base is typing.Literal:
            if value not in typing.get_args(tp):
                raise ValueError(f"device {device!r}: option {key}={value!r}, expected one of {typing.get_args(tp)}")
            base = type(value)
        if isinstance(base, type) and not isinstance(value, base) or (base is not bool and isinstance(value, bool)):
            raise ValueError(f"device {device!r}: option {key}={value!r} should be a {getattr(base, '__name__', base)}")
        values[key] = value
    return cls(**values)


def make_device(name: str, **options: Any) -> Device:
    """A device by name: built-ins (keyboard, spacemouse, gamepad), then plugins of the entry-point group
    "robolearn.devices". "a+b" combines devices; its options are given per device: a={...}, b={...}."""
    if "+" in name:
        parts = [p.strip() for p in name.split("+")]
        unknown = sorted(set(options) - set(parts))
        if unknown or not all(parts):
            raise ValueError(f"combined device {name!r}: options go per device ({', '.join(parts)}=dict), "
                             f"got {unknown or 'an empty name'}")
        return CombinedDevice([make_device(p, **(options.get(p) or {})) for p in parts])
    cls = plugins.load(plugins.DEVICES, name, builtin=BUILTIN)
    config_cls = getattr(cls, "config_cls", None)
    if config_cls is not None and dataclasses.is_dataclass(config_cls):
        device = cls(build_config(config_cls, options, name))
    else:
        device = cls(**options)
    if not isinstance(device, Device):
        raise TypeError(f"device plugin {name!r} made a {type(device).__name__}, expected a "
                        f"robolearn.collection.devices.base.Device")
    return device


def device_names() -> list[str]:
    return sorted({*BUILTIN, *plugins.discover(plugins.DEVICES)})


class CombinedDevice(Device):
    """Several devices as one: twists add up (clipped), events merge, motion is enabled only when every
    device enables it, and the gripper follows whichever device changed it last."""

    def __init__(self, devices: list[Device]) -> None:
        if not devices:
            raise ValueError("CombinedDevice needs at least one device")
        self.devices = devices
        self.name = "+".join(d.name for d in devices)
        self._last: list[float | None] = [None] * len(devices)
        self._gripper = 0.0

    def start(self) -> None:
        started: list[Device] = []
        try:
            for d in self.devices:
                d.start()
                started.append(d)
        except BaseException:
            for d in reversed(started):
                d.close()
            raise

    def read(self) -> DeviceCommand:
        cmds = [d.read() for d in self.devices]
        if self._last[0] is None:  # first reading: the first device's gripper
            self._gripper = cmds[0].gripper
        for i, c in enumerate(cmds):
            if self._last[i] is not None and c.gripper != self._last[i]:
                self._gripper = c.gripper
            self._last[i] = c.gripper
        twist = np.clip(np.sum([np.asarray(c.twist, dtype=np.float64) for c in cmds], axis=0), -1.0, 1.0)
        enabled = all(c.enabled for c in cmds)
        return DeviceCommand(twist if enabled else np.zeros(6), self._gripper, enabled,
                             set().union(*(c.events for c in cmds)))

    def close(self) -> None:
        errors: list[BaseException] = []
        for d in reversed(self.devices):
            try:
                d.close()
            except Exception as e:  # noqa: BLE001 (close every device, then report)
                errors.append(e)
        if errors:
            raise errors[0]


# -- CLI ------------------------------------------------------------------------------------------------


@dataclass
class DevicesListCommand:
    probe: bool = opt(True, help="also look for connected SpaceMice and gamepads")


@command("devices", "list")
def devices_list(cfg: DevicesListCommand) -> int:
    """List teleop device names (built-in and plugins) and the SpaceMice / gamepads connected now."""
    print("devices: " + ", ".join(device_names()) + " (combine with '+', e.g. spacemouse+keyboard)")
    if cfg.probe:
        for line in _probe():
            print(line)
    return 0


def _probe() -> list[str]:
    from robolearn.collection.devices import gamepad, spacemouse  # noqa: PLC0415

    lines = []
    try:
        hid = spacemouse.import_hid()
        mice = spacemouse.find_spacemice(hid)
        lines += [f"spacemouse: {spacemouse.PRODUCTS[(d['vendor_id'], d['product_id'])]} at "
                  f"{spacemouse._path_str(d['path'])}" for d in mice] or ["spacemouse: none found"]
    except RuntimeError as e:
        lines.append(f"spacemouse: {e}")
    try:
        pg = gamepad.import_pygame()
        pg.display.init()
        pg.joystick.init()
        pads = [pg.joystick.Joystick(i).get_name() for i in range(pg.joystick.get_count())]
        lines += [f"gamepad {i}: {n}" for i, n in enumerate(pads)] or ["gamepad: none found"]
    except RuntimeError as e:
        lines.append(f"gamepad: {e}")
    return lines


@dataclass
class DevicesEchoCommand:
    device: str = positional(help="device name (keyboard, spacemouse, gamepad, a plugin, or a+b)")
    options: dict[str, Any] = opt(default_factory=dict, help="device options, e.g. '{\"deadzone\": 0.1}'")
    seconds: float = opt(0.0, help="stop after this long (0: until the device sends quit, or Ctrl+C)")
    hz: float = opt(15.0, help="readings per second")


@command("devices", "echo")
def devices_echo(cfg: DevicesEchoCommand) -> int:
    """Print a device's commands as they change (check axes, signs, buttons and gains before recording)."""
    try:
        if cfg.hz <= 0:
            raise ValueError(f"--hz must be > 0, got {cfg.hz}")
        device = make_device(cfg.device, **cfg.options)
        device.start()
    except (ValueError, RuntimeError, TypeError) as e:
        print(f"robolearn devices echo: {e}", file=sys.stderr)
        return 2
    if isinstance(device, KeyboardDevice):
        print(device.help_text())
    print(f"reading {device.name} at {cfg.hz:g} Hz; quit event or Ctrl+C stops", flush=True)
    end = time.monotonic() + cfg.seconds if cfg.seconds > 0 else float("inf")
    last = ""
    try:
        with device:
            while time.monotonic() < end:
                cmd = device.read().validated(device.name)
                line = (f"twist [{' '.join(f'{v:+.2f}' for v in cmd.twist)}] gripper {cmd.gripper:.2f} "
                        f"enabled {int(cmd.enabled)} events {','.join(sorted(cmd.events)) or '-'}")
                raw = getattr(device, "raw", None)
                if callable(raw):  # devices that can show their raw input (SpaceMouse counts, button bits)
                    line += f" | {raw()}"
                if line != last:
                    print(line, flush=True)
                    last = line
                if "quit" in cmd.events:
                    break
                time.sleep(1.0 / cfg.hz)
    except KeyboardInterrupt:
        pass
    except (ValueError, RuntimeError) as e:
        print(f"robolearn devices echo: {e}", file=sys.stderr)
        return 1
    return 0
