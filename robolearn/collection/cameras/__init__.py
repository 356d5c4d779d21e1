"""Cameras: one interface (base.Camera) for sim cameras, OpenCV sources and plugin cameras."""

from robolearn.collection.cameras.base import Camera, Frame

__all__ = ["Camera", "Frame"]
