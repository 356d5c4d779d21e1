"""Button memory: two identical buttons; a lamp beside one of them lights for the first `cue_steps` steps, then
both lamps go dark. Success = the cued button pressed; pressing the other one first is a failure (latched).

The scripted expert waits (holding still above the table) until the cue is off and only then moves to the
cued button, so once the lamps are dark nothing in the current frame or proprio tells which button to press:
a policy has to remember the first frames (the Hyena head's benchmark task, benchmarks/hyena.py).
"""

from __future__ import annotations

from typing import ClassVar

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams
from robolearn.envs.tasks.base import Task, Waypoint, add_box, colour
from robolearn.envs.tasks.button import PRESSED, add_button

LAMP_ON = np.array([1.0, 0.9, 0.0, 1.0])
LAMP_OFF = np.array([0.12, 0.12, 0.12, 1.0])
SIDES = ("left", "right")  # +y, -y in the robot's frame


class ButtonMemory(Task):
    name = "button-memory"
    instructions = (
        "press the button whose light was on",
        "press the button that lit up",
        "push the button the light showed",
        "remember which button lit up and press it",
        "press the button that was lit at the start",
    )
    max_steps = 140
    cue_steps: ClassVar[int] = 6  # steps the lamp stays lit (observations 0..cue_steps-1 show it)

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        rng = np.random.default_rng([scene.household, scene.scene, scene.seed, 17])
        housing, cap_rgba = colour(rng, 0.1, 0.5), [0.2, 0.3, 0.85, 1]  # both buttons look the same
        for side in SIDES:
            base = spec.worldbody.add_body(name=f"{side}_base", pos=[0.45, 0.0, scene.table_z])
            add_button(spec, base, side, 0.04, 0.026, housing, cap_rgba, joint=f"{side}_button")
            add_box(base, f"{side}_lamp", (0.08, 0.08, 0.004), (0.14, 0, 0.004), LAMP_OFF, contype=0, conaffinity=0)

    def bind(self, model: mujoco.MjModel) -> None:
        self._base = [model.body(f"{s}_base").id for s in SIDES]
        self._cap = [model.body(f"{s}_cap").id for s in SIDES]
        self._lamp = [model.geom(f"{s}_lamp").id for s in SIDES]
        self._qadr = [model.jnt_qposadr[model.joint(f"{s}_button").id] for s in SIDES]
        self.target, self.wrong, self.cue_on = 0, False, True

    def reset(self, sim, rng: np.random.Generator) -> None:
        x = rng.uniform(0.38, 0.48)
        for i, sign in enumerate((1.0, -1.0)):
            sim.model.body_pos[self._base[i]] = [
                x + rng.uniform(-0.02, 0.02),
                sign * rng.uniform(0.15, 0.2),
                sim.table_z,
            ]
        self.target, self.wrong = int(rng.integers(2)), False
        self._show_cue(sim, True)

    def _show_cue(self, sim, on: bool) -> None:
        self.cue_on = on
        for i, g in enumerate(self._lamp):
            sim.model.geom_rgba[g] = LAMP_ON if on and i == self.target else LAMP_OFF

    def on_step(self, sim, steps: int) -> None:
        """After env step `steps`: the cue goes dark at `cue_steps`; pressing the wrong button first latches failure."""
        if self.cue_on and steps >= self.cue_steps:
            self._show_cue(sim, False)
        other = 1 - self.target
        if self.depth(sim, other) >= PRESSED and self.depth(sim, self.target) < PRESSED:
            self.wrong = True

    def depth(self, sim, i: int) -> float:
        return float(-sim.data.qpos[self._qadr[i]])

    def pressed(self, sim) -> int | None:
        """Which button (0 left, 1 right) is pressed now (the deeper one), None if neither."""
        d = [self.depth(sim, i) for i in range(2)]
        return int(np.argmax(d)) if max(d) >= PRESSED else None

    def success(self, sim) -> bool:
        return not self.wrong and self.depth(sim, self.target) >= PRESSED

    def progress(self, sim) -> float:
        if self.wrong:
            return 0.0
        top = sim.body_pos(self._cap[self.target]) + [0, 0, 0.016]
        reach = 1.0 - np.tanh(8.0 * np.linalg.norm(sim.tool_pos() - top))
        return float(0.5 * reach + 0.5 * min(1.0, self.depth(sim, self.target) / PRESSED))

    def object_state(self, sim) -> np.ndarray:
        caps = [np.concatenate([sim.body_pos(c), [self.depth(sim, i)]]) for i, c in enumerate(self._cap)]
        return np.concatenate([*caps, [float(self.target), float(self.cue_on), float(self.wrong)]])

    def plan(self, sim) -> list[Waypoint]:
        top = sim.body_pos(self._cap[self.target]) + [0, 0, 0.016]
        hold = sim.tool_pos()
        return [
            Waypoint(hold, 1.0, tol=10.0, settle=self.cue_steps + 2, label="wait"),  # until the cue is off
            Waypoint(top + [0, 0, 0.08], 1.0, label="approach", tol=0.015),
            Waypoint(top + [0, 0, 0.02], 1.0, tol=0.006),
            Waypoint(top - [0, 0, 0.02], 1.0, tol=0.004, settle=3, label="press"),
            Waypoint(top + [0, 0, 0.08], 1.0, label="retreat"),
        ]
