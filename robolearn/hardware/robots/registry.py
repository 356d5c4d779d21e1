"""Robots by name: built-ins "sim" (the MuJoCo arm) and "remote" (a `robolearn robot-server` over the
network), then plugin drivers registered under the entry-point group "robolearn.robots".

    make_robot("sim", task="put-in-bin")                     # SimRobot(SimRobotConfig(task=...))
    make_robot("remote", address="tcp://10.0.0.2:5555", token="...")
    make_robot("myarm", port="/dev/ttyUSB0")                 # the plugin's class/factory called with the options

`RobotSelection` is a config mixin for CLI commands that choose a robot (`--robot NAME --task ...
--robot-options JSON`); `make_robot_from(selection)` builds it.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robolearn.config import opt
from robolearn.hardware import plugins
from robolearn.hardware.robots.base import Robot


def _make_sim(**options: Any) -> Robot:
    from robolearn.hardware.robots.sim import SimRobot, SimRobotConfig

    plugins.check_options("robot", "sim", options, [f.name for f in dataclasses.fields(SimRobotConfig)])
    return SimRobot(SimRobotConfig(**options))


def _make_remote(**options: Any) -> Robot:
    from robolearn.hardware.robots.remote import RemoteRobot

    plugins.check_options("robot", "remote", options, list(inspect.signature(RemoteRobot.__init__).parameters)[1:])
    return RemoteRobot(**options)


BUILTIN: dict[str, Callable[..., Robot]] = {"sim": _make_sim, "remote": _make_remote}


def available_robots() -> list[str]:
    """Built-in robot names, then installed plugin names (sorted)."""
    return plugins.available(plugins.ROBOTS, BUILTIN)


def make_robot(name: str, **options: Any) -> Robot:
    """A new (not yet connected) robot called `name`, built with `options`. ValueError for an unknown name
    (with suggestions) or options the robot does not take; TypeError when a plugin does not build a Robot."""
    return plugins.build(plugins.ROBOTS, name, BUILTIN, options, Robot, "robot")


def _for(robot: str, default: Any, help: str) -> Any:
    """A RobotSelection field that only applies to the robot called `robot`."""
    return dataclasses.field(default=default, metadata={"help": help, "robot": robot})


@dataclass
class RobotSelection:
    """Which robot to use and its options, as flat CLI flags (`--robot sim --task put-in-bin`). The sim flags
    apply to "sim" only; any robot takes `--robot-options '{"port": "/dev/ttyUSB0"}'` (JSON, keyword
    arguments of its class: for "remote" address/token/timeout_s, for a plugin whatever it declares)."""

    robot: str = opt("sim", help="robot: sim, remote or an installed plugin (entry-point group robolearn.robots)")
    task: str = _for("sim", "put-in-bin", help="sim: household task")
    household: int = _for("sim", 0, help="sim: household id")
    scene: int = _for("sim", 0, help="sim: scene id within the household")
    scene_seed: int = _for("sim", 0, help="sim: scene variant seed")
    control_hz: float = _for("sim", 15.0, help="sim: control rate")
    robot_options: dict[str, Any] = opt(default_factory=dict, help="options for the robot's class")

    def __post_init__(self) -> None:
        if not self.robot:
            raise ValueError(f"robot name is empty; expected one of {available_robots()}")
        if not isinstance(self.robot_options, dict):
            raise ValueError(f"robot_options must be a JSON object, got {self.robot_options!r}")

    def options(self) -> dict[str, Any]:
        """The options that apply to `robot`; ValueError if a flag meant for another robot was changed."""
        chosen: dict[str, Any] = {}
        for f in dataclasses.fields(RobotSelection):
            owner = f.metadata.get("robot")
            if owner is None:
                continue
            value = getattr(self, f.name)
            if owner == self.robot:
                chosen[f.name] = value
            elif value != f.default:
                raise ValueError(f"--{f.name.replace('_', '-')} applies to the {owner!r} robot, not {self.robot!r}")
        return {**chosen, **self.robot_options}


def make_robot_from(selection: RobotSelection) -> Robot:
    return make_robot(selection.robot, **selection.options())
