"""Device lookup: `make_device(name, **options)` for the built-in devices and plugins, device combinations
("spacemouse+keyboard": motion from both, events from both), and the device names `robolearn devices list`
shows (the commands live in robolearn.hardware.commands).

The station adds its scripted "expert" device itself (it needs the simulation); it is not registered here.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import numpy as np

from robolearn.hardware import plugins
from robolearn.hardware.devices.base import Device, DeviceCommand
from robolearn.hardware.devices.gamepad import GamepadDevice
from robolearn.hardware.devices.keyboard import KeyboardDevice
from robolearn.hardware.devices.spacemouse import SpaceMouseDevice

BUILTIN: dict[str, type[Device]] = {
    "keyboard": KeyboardDevice,
    "spacemouse": SpaceMouseDevice,
    "gamepad": GamepadDevice,
}


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
            raise ValueError(
                f"combined device {name!r}: options go per device ({', '.join(parts)}=dict), "
                f"got {unknown or 'an empty name'}"
            )
        return CombinedDevice([make_device(p, **(options.get(p) or {})) for p in parts])
    cls = plugins.load(plugins.DEVICES, name, builtin=BUILTIN)
    config_cls = getattr(cls, "config_cls", None)
    if config_cls is not None and dataclasses.is_dataclass(config_cls):
        device = cls(build_config(config_cls, options, name))
    else:
        device = cls(**options)
    if not isinstance(device, Device):
        raise TypeError(
            f"device plugin {name!r} made a {type(device).__name__}, expected a robolearn.hardware.devices.base.Device"
        )
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

    def connect(self) -> None:
        started: list[Device] = []
        try:
            for d in self.devices:
                d.connect()
                started.append(d)
        except BaseException:
            for d in reversed(started):
                d.disconnect()
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
        return DeviceCommand(
            twist if enabled else np.zeros(6), self._gripper, enabled, set().union(*(c.events for c in cmds))
        )

    def disconnect(self) -> None:
        errors: list[BaseException] = []
        for d in reversed(self.devices):
            try:
                d.disconnect()
            except Exception as e:  # noqa: BLE001 (close every device, then report)
                errors.append(e)
        if errors:
            raise errors[0]
