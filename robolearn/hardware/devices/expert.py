"""The scripted expert as a teleop device, for unattended collection in simulation and for tests.

It drives a SimRobot's task expert (robolearn.envs ScriptedExpert) in cartesian velocity and emits
"success" once the task's success detector has held for `hold_steps` steps (so the demo ends at rest, with
the object released), or "failure" when the episode reaches `max_steps`. It also emits "start" on its first
read of each episode, so the station's flow needs no operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robolearn.config import opt
from robolearn.envs.experts import ExpertConfig, ScriptedExpert
from robolearn.hardware.devices.base import Device, DeviceCommand


@dataclass
class ExpertDeviceConfig:
    noise: float = opt(0.0, help="expert noise (action std, cartesian-velocity units)")
    hold_steps: int = opt(3, help="steps the success detector must hold before 'success'")
    max_steps: int = opt(0, help="steps before 'failure' (0: the task's step limit)")
    seed: int = opt(0, help="noise seed")


class ExpertDevice(Device):
    name = "expert"

    def __init__(self, robot, config: ExpertDeviceConfig | None = None) -> None:
        if not hasattr(robot, "env"):
            raise ValueError("the expert device needs the sim robot (--robot sim): it reads the task state")
        self.robot = robot
        self.config = config or ExpertDeviceConfig()
        self._expert = ScriptedExpert(robot.env, ExpertConfig(noise=self.config.noise, seed=self.config.seed))
        self._episode = -1
        self._held = 0
        self._steps = 0

    def read(self) -> DeviceCommand:
        env = self.robot.env
        events: set[str] = set()
        if self._episode != env.episode:
            self._episode, self._held, self._steps = env.episode, 0, 0
            events.add("start")
        action = self._expert.act()
        self._steps += 1
        self._held = self._held + 1 if self.robot.task_success() else 0
        limit = self.config.max_steps or env.max_steps
        if self._held >= self.config.hold_steps:
            events.add("success")
        elif self._steps >= limit:
            events.add("failure")
        return DeviceCommand(np.asarray(action[:6], dtype=np.float64), float(action[6]), True, events)
