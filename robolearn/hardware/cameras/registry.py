"""Cameras by kind: built-ins "opencv" (devices, files, streams) and "sim" (a sim robot's scene cameras), then
plugin cameras registered under the entry-point group "robolearn.cameras".

    make_camera("opencv", source=0, name="exterior_1", width=640, height=480, calibration="calib/")
    make_camera("sim", robot=sim_robot, camera="exterior_1", width=320, height=180)
    make_camera("myzed", serial="12345")            # the plugin's class/factory called with the options
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from robolearn.hardware import plugins
from robolearn.hardware.cameras.base import Camera


def _make_opencv(**options: Any) -> Camera:
    from robolearn.hardware.cameras.opencv import OpenCVCamera, OpenCVCameraConfig

    plugins.check_options("camera", "opencv", options, [f.name for f in dataclasses.fields(OpenCVCameraConfig)])
    return OpenCVCamera(OpenCVCameraConfig(**options))


def _make_sim(**options: Any) -> Camera:
    from robolearn.hardware.cameras.sim import SimCamera

    known = list(inspect.signature(SimCamera.__init__).parameters)[1:]
    plugins.check_options("camera", "sim", options, known)
    missing = [k for k in ("robot", "camera") if k not in options]
    if missing:
        raise ValueError(f"camera 'sim' needs option(s) {missing} (the SimRobot and one of its scene cameras)")
    return SimCamera(**options)


BUILTIN: dict[str, Callable[..., Camera]] = {"opencv": _make_opencv, "sim": _make_sim}


def available_cameras() -> list[str]:
    """Built-in camera kinds, then installed plugin kinds (sorted)."""
    return plugins.available(plugins.CAMERAS, BUILTIN)


def make_camera(kind: str, **options: Any) -> Camera:
    """A new (not connected) camera of `kind` built with `options`. ValueError for an unknown kind (with
    suggestions) or options it does not take; TypeError when a plugin does not build a Camera."""
    return plugins.build(plugins.CAMERAS, kind, BUILTIN, options, Camera, "camera")
