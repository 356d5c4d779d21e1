"""Teleoperation devices: one interface (base.Device) for keyboard, SpaceMouse, gamepad and the expert."""

from robolearn.hardware.devices.base import EVENTS, Device, DeviceCommand, DeviceError

__all__ = ["EVENTS", "Device", "DeviceCommand", "DeviceError"]
