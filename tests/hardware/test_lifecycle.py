"""One lifecycle for robots, cameras and devices (connect / disconnect / is_connected / with), and the
deprecated names and import paths third-party plugins may still use."""

from __future__ import annotations

import importlib
import re
import sys
import warnings

import numpy as np
import pytest

from robolearn.hardware.cameras.base import Camera, Frame
from robolearn.hardware.devices.base import Device, DeviceCommand
from robolearn.hardware.robots.base import Robot
from robolearn.hardware.robots.sim import SimRobot, SimRobotConfig


def old_names(caught: pytest.WarningsRecorder) -> list[str]:
    """'start() -> connect()' for each "implements start(), the old name of connect()" warning."""
    found = [re.search(r"implements (\S+), the old name of (\S+);", str(w.message)) for w in caught]
    return sorted(f"{m[1]} -> {m[2]}" for m in found if m)


def test_old_style_camera_subclass_still_works() -> None:
    calls: list[str] = []
    with pytest.warns(DeprecationWarning) as caught:

        class OldCamera(Camera):
            def start(self) -> None:
                calls.append("start")

            def stop(self) -> None:
                calls.append("stop")

            def read(self) -> Frame:
                return Frame.missing()

            def spec(self):
                raise NotImplementedError

    assert old_names(caught) == ["start() -> connect()", "stop() -> disconnect()"]
    cam = OldCamera()  # not abstract: start() serves connect()
    assert not cam.is_connected
    with cam:
        assert cam.is_connected and calls == ["start"]
    assert not cam.is_connected and calls == ["start", "stop"]


def test_old_style_device_subclass_still_works() -> None:
    calls: list[str] = []
    with pytest.warns(DeprecationWarning) as caught:

        class OldDevice(Device):
            def start(self) -> None:
                super().start()  # the old base's no-op: must not recurse
                calls.append("start")

            def read(self) -> DeviceCommand:
                return DeviceCommand()

            def close(self) -> None:
                calls.append("close")

    assert old_names(caught) == ["close() -> disconnect()", "start() -> connect()"]
    dev = OldDevice()
    dev.connect()
    assert dev.is_connected
    dev.disconnect()
    assert not dev.is_connected and calls == ["start", "close"]


def test_old_style_robot_subclass_still_works() -> None:
    calls: list[str] = []
    with pytest.warns(DeprecationWarning) as caught:

        class OldRobot(Robot):
            def state(self):
                return {}

            def apply(self, action, space):
                return {}

            def home(self, noise: float = 0.0, seed: int | None = None) -> None:
                pass

            def stop(self) -> None:
                calls.append("stop")

            def close(self) -> None:
                calls.append("close")
                super().close()  # the old base's close(): stop

    assert old_names(caught) == ["close() -> disconnect()"]
    with OldRobot() as robot:
        assert robot.is_connected
    assert not robot.is_connected and calls == ["close", "stop"]


def test_old_method_names_on_new_style_classes_warn_and_work() -> None:
    class NewDevice(Device):
        def read(self) -> DeviceCommand:
            return DeviceCommand()

    dev = NewDevice()
    with pytest.warns(DeprecationWarning, match="start\\(\\) is deprecated; call connect\\(\\)"):
        dev.start()
    assert dev.is_connected
    with pytest.warns(DeprecationWarning, match="close\\(\\) is deprecated; call disconnect\\(\\)"):
        dev.close()
    assert not dev.is_connected


def test_new_style_classes_do_not_warn_and_track_is_connected() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        robot = SimRobot(SimRobotConfig(task="put-in-bin"))
        assert not robot.is_connected
        with robot:
            assert robot.is_connected
            robot.apply(np.zeros(7), "cartesian_velocity")
        assert not robot.is_connected


def test_old_import_paths_are_deprecated_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    import robolearn.collection
    from robolearn.hardware import robots
    from robolearn.hardware.devices import base as device_base

    for name in ("robolearn.collection.robots", "robolearn.collection.devices", "robolearn.collection.devices.base"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for attr in ("robots", "devices"):
        monkeypatch.delattr(robolearn.collection, attr, raising=False)
    with pytest.warns(DeprecationWarning, match="robolearn.collection.robots moved to robolearn.hardware.robots"):
        old = importlib.import_module("robolearn.collection.robots")
    assert old.Robot is robots.Robot and old.RobotError is robots.RobotError
    with pytest.warns(DeprecationWarning, match="robolearn.collection.devices moved"):
        from robolearn.collection.devices.base import Device as OldDevice  # as docs/devices.md used to show
    assert OldDevice is device_base.Device
