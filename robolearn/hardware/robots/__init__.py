"""Robots: one interface (base.Robot) for the sim arm, the network client and plugin drivers."""

from robolearn.hardware.robots.base import Robot, RobotError

__all__ = ["Robot", "RobotError"]
