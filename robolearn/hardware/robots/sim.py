"""The MuJoCo sim arm as a `Robot`: a household scene + task (robolearn.envs) stepped one control period per
`apply`. `home()` starts a new episode of the scene (objects re-placed from the seed), like an operator
resetting the table; `task_success()` exposes the task's success detector for automatic labelling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from robolearn.config import opt
from robolearn.envs.household import HouseholdEnv
from robolearn.envs.robot import ACTION_DIMS
from robolearn.hardware.robots.base import Robot, RobotError


@dataclass
class SimRobotConfig:
    task: str = opt("put-in-bin", help="household task (robolearn envs list)")
    household: int = opt(0, help="household id of the scene")
    scene: int = opt(0, help="scene id within the household")
    scene_seed: int = opt(0, help="scene variant seed")
    control_hz: float = opt(15.0, help="control rate")


class SimRobot(Robot):
    name = "sim"

    def __init__(self, config: SimRobotConfig | None = None) -> None:
        self.config = config or SimRobotConfig()
        c = self.config
        self.control_hz = c.control_hz
        self.env = HouseholdEnv(
            task=c.task,
            household=c.household,
            scene=c.scene,
            scene_seed=c.scene_seed,
            cameras=(),
            control_hz=c.control_hz,
            terminate_on_success=False,
        )
        self._episode_seed = 0
        self._steps = 0  # actions applied since the last reset (Task.on_step)
        self._connected = False
        self._closed = False

    @property
    def sim(self):
        return self.env.sim

    def connect(self) -> None:
        if self._closed:
            raise RobotError("sim robot was closed; create a new one")
        if not self._connected:
            self.env.reset(seed=self._episode_seed)
            self._steps = 0
            self._connected = True

    def _check(self) -> None:
        if not self._connected:
            raise RobotError("sim robot is not connected: call connect() first")

    def state(self) -> dict[str, np.ndarray]:
        self._check()
        return self.env.robot_state()

    def apply(self, action: np.ndarray, space: str) -> dict[str, np.ndarray]:
        self._check()
        if space not in ACTION_DIMS:
            raise ValueError(f"unknown action space {space!r}; expected one of {tuple(ACTION_DIMS)}")
        forms = self.sim.arm.step(action, space)  # validates shape and finiteness
        if not np.all(np.isfinite(self.sim.data.qpos)):
            raise RobotError(f"sim became unstable after action {np.asarray(action).tolist()} in {space}")
        self._steps += 1
        self.sim.task.on_step(self.sim, self._steps)  # time-dependent scenes (button-memory's cue), as env.step
        return forms

    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        """New episode: the scene's objects re-placed from `seed` (default: next seed), arm at home + noise."""
        self._check()
        self._episode_seed = self._episode_seed + 1 if seed is None else int(seed)
        self.env.config.init_joint_noise = float(noise)
        self.env.reset(seed=self._episode_seed)
        self._steps = 0

    def stop(self) -> None:
        if self._connected:
            self.sim.arm.hold()

    def disconnect(self) -> None:
        if not self._closed:
            self.stop()
            self.env.close()
            self._closed = True

    def task_success(self) -> bool:
        return bool(self.sim.task.success(self.sim))

    def instruction(self) -> str:
        return self.env.instruction

    def info(self) -> dict[str, Any]:
        c = self.config
        return {
            **super().info(),
            "robot_type": "robolearn_sim_arm7",
            "robot_serial": "sim",
            "env": {
                "suite": "household",
                "task": c.task,
                "household": c.household,
                "scene": c.scene,
                "scene_seed": c.scene_seed,
                "mujoco_version": mujoco.__version__,
            },
        }
