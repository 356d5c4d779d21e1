"""Deprecated alias of robolearn.hardware.robots (moved there; see docs/robot-drivers.md)."""

from robolearn.collection._moved import alias

alias(__name__, "robolearn.hardware.robots", globals())
