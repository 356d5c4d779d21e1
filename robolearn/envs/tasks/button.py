"""Press the button: a spring-loaded push button on the table."""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams
from robolearn.envs.tasks.base import Task, Waypoint, add_box, colour

TRAVEL = 0.012  # cap travel [m]
PRESSED = 0.75 * TRAVEL


def add_button(
    spec: mujoco.MjSpec,
    base: mujoco.MjsBody,
    prefix: str,
    half: float,
    cap_radius: float,
    housing_rgba,
    cap_rgba,
    joint: str,
) -> mujoco.MjsBody:
    """A spring-loaded push button on `base`: a square housing (`half` m half-width) and a cylinder cap on a
    slide joint `joint` that sinks TRAVEL into it (geoms and bodies `<prefix>_housing`, `<prefix>_cap`)."""
    add_box(base, f"{prefix}_housing", (half, half, 0.015), (0, 0, 0.015), housing_rgba)
    cap = base.add_body(name=f"{prefix}_cap", pos=[0, 0, 0.03])
    cap.add_joint(
        name=joint,
        type=mujoco.mjtJoint.mjJNT_SLIDE,
        axis=[0, 0, 1],
        range=[-TRAVEL, 0],
        stiffness=150.0,
        damping=3.0,
        springref=0.0,
    )
    cap.add_geom(
        name=f"{prefix}_cap",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[cap_radius, 0.008],
        pos=[0, 0, 0.008],
        rgba=cap_rgba,
        mass=0.02,
    )
    spec.add_exclude(bodyname1=base.name, bodyname2=f"{prefix}_cap")  # the cap sinks into its housing
    return cap


class PressButton(Task):
    name = "press-button"
    instructions = (
        "press the button",
        "push the button down",
        "press the red button",
        "push down on the button on the table",
        "hit the button",
    )
    max_steps = 120

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        rng = np.random.default_rng([scene.household, scene.scene, scene.seed, 11])
        base = spec.worldbody.add_body(name="button_base", pos=[0.45, 0.0, scene.table_z])
        add_button(spec, base, "button", 0.045, 0.028, colour(rng, 0.1, 0.5), [0.85, 0.1, 0.1, 1], joint="button")

    def bind(self, model: mujoco.MjModel) -> None:
        self._base = model.body("button_base").id
        self._cap = model.body("button_cap").id
        self._qadr = model.jnt_qposadr[model.joint("button").id]

    def reset(self, sim, rng: np.random.Generator) -> None:
        sim.model.body_pos[self._base] = [rng.uniform(0.36, 0.55), rng.uniform(-0.22, 0.22), sim.table_z]

    def depth(self, sim) -> float:
        return float(-sim.data.qpos[self._qadr])

    def success(self, sim) -> bool:
        return self.depth(sim) >= PRESSED

    def progress(self, sim) -> float:
        top = sim.body_pos(self._cap) + [0, 0, 0.016]
        reach = 1.0 - np.tanh(8.0 * np.linalg.norm(sim.tool_pos() - top))
        return float(0.5 * reach + 0.5 * min(1.0, self.depth(sim) / PRESSED))

    def object_state(self, sim) -> np.ndarray:
        return np.concatenate([sim.body_pos(self._cap), [self.depth(sim)]])

    def plan(self, sim) -> list[Waypoint]:
        top = sim.body_pos(self._cap) + [0, 0, 0.016]
        return [
            Waypoint(top + [0, 0, 0.08], 1.0, label="approach", tol=0.015),
            Waypoint(top + [0, 0, 0.02], 1.0, tol=0.006),
            Waypoint(top - [0, 0, 0.02], 1.0, tol=0.004, settle=3, label="press"),
            Waypoint(top + [0, 0, 0.08], 1.0, label="retreat"),
        ]
