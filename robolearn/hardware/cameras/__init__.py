"""Cameras: one interface (base.Camera) for sim cameras, OpenCV sources and plugin cameras."""

from robolearn.hardware.cameras.base import Camera, Frame
from robolearn.hardware.cameras.registry import make_camera

__all__ = ["Camera", "Frame", "make_camera"]
