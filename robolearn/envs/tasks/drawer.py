"""Open / close the drawer: a small drawer unit on the table, a sliding drawer with a bar handle."""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams
from robolearn.envs.tasks.base import Task, Waypoint, add_box, colour

TRAVEL = 0.16  # drawer travel [m]; joint 0 = closed, positive = pulled out towards the robot
HANDLE_OUT = 0.065  # handle bar distance in front of the drawer panel
HANDLE_Z = 0.08  # handle height above the table
OPENED = 0.12
CLOSED = 0.015


def build_drawer_unit(spec: mujoco.MjSpec, scene: SceneParams) -> None:
    rng = np.random.default_rng([scene.household, scene.scene, scene.seed, 21])
    body_rgba, front_rgba = colour(rng, 0.3, 0.9), colour(rng, 0.2, 0.9)
    unit = spec.worldbody.add_body(name="drawer_unit", pos=[0.5, 0.0, scene.table_z])
    for name, size, pos in (
        ("bottom", (0.11, 0.12, 0.005), (0.11, 0, 0.005)),
        ("top", (0.11, 0.12, 0.005), (0.11, 0, 0.105)),
        ("side_l", (0.11, 0.005, 0.05), (0.11, 0.115, 0.055)),
        ("side_r", (0.11, 0.005, 0.05), (0.11, -0.115, 0.055)),
        ("back", (0.005, 0.12, 0.05), (0.215, 0, 0.055)),
    ):
        add_box(unit, f"drawer_unit_{name}", size, pos, body_rgba)
    drawer = unit.add_body(name="drawer", pos=[0, 0, 0])
    drawer.add_joint(
        name="drawer", type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[-1, 0, 0], range=[0, TRAVEL], damping=8.0, armature=0.05
    )
    for name, size, pos, rgba in (
        ("panel", (0.006, 0.108, 0.042), (-0.006, 0, 0.055), front_rgba),
        ("floor", (0.1, 0.1, 0.004), (0.1, 0, 0.016), body_rgba),
        ("wall_l", (0.1, 0.004, 0.025), (0.1, 0.1, 0.04), body_rgba),
        ("wall_r", (0.1, 0.004, 0.025), (0.1, -0.1, 0.04), body_rgba),
        ("wall_b", (0.004, 0.1, 0.025), (0.196, 0, 0.04), body_rgba),
        (
            "post_l",
            ((HANDLE_OUT - 0.012) / 2, 0.005, 0.005),
            (-0.012 - (HANDLE_OUT - 0.012) / 2, 0.045, HANDLE_Z),
            (0.7, 0.7, 0.72, 1),
        ),
        (
            "post_r",
            ((HANDLE_OUT - 0.012) / 2, 0.005, 0.005),
            (-0.012 - (HANDLE_OUT - 0.012) / 2, -0.045, HANDLE_Z),
            (0.7, 0.7, 0.72, 1),
        ),
    ):
        add_box(drawer, f"drawer_{name}", size, pos, rgba, mass=0.05)
    drawer.add_geom(
        name="drawer_handle",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=[0.008, 0, 0],
        fromto=[-HANDLE_OUT, -0.055, HANDLE_Z, -HANDLE_OUT, 0.055, HANDLE_Z],
        rgba=[0.75, 0.75, 0.78, 1],
        mass=0.05,
        friction=[1.5, 0.02, 0.002],
        condim=4,
    )
    spec.add_exclude(bodyname1="drawer_unit", bodyname2="drawer")


class _DrawerTask(Task):
    max_steps = 150

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        build_drawer_unit(spec, scene)

    def bind(self, model: mujoco.MjModel) -> None:
        self._unit = model.body("drawer_unit").id
        self._drawer = model.body("drawer").id
        self._qadr = model.jnt_qposadr[model.joint("drawer").id]
        self._handle = model.geom("drawer_handle").id

    def opening(self, sim) -> float:
        return float(sim.data.qpos[self._qadr])

    def handle_pos(self, sim) -> np.ndarray:
        return sim.data.geom_xpos[self._handle].copy()

    def _place(self, sim, rng: np.random.Generator, opening: float) -> None:
        sim.model.body_pos[self._unit] = [rng.uniform(0.5, 0.55), rng.uniform(-0.15, 0.15), sim.table_z]
        sim.data.qpos[self._qadr] = opening

    def object_state(self, sim) -> np.ndarray:
        return np.concatenate([self.handle_pos(sim), [self.opening(sim)]])


class OpenDrawer(_DrawerTask):
    name = "open-drawer"
    instructions = (
        "open the drawer",
        "pull the drawer open",
        "pull out the drawer",
        "open the drawer on the table",
        "slide the drawer open",
    )

    def reset(self, sim, rng: np.random.Generator) -> None:
        self._place(sim, rng, rng.uniform(0.0, 0.02))

    def success(self, sim) -> bool:
        return self.opening(sim) >= OPENED

    def progress(self, sim) -> float:
        reach = 1.0 - np.tanh(8.0 * np.linalg.norm(sim.tool_pos() - self.handle_pos(sim)))
        return float(0.3 * reach + 0.7 * min(1.0, self.opening(sim) / OPENED))

    def plan(self, sim) -> list[Waypoint]:
        h = self.handle_pos(sim)
        grip = h + [0, 0, -0.008]  # pads (8 mm above the tool point) centred on the bar
        pull = TRAVEL - self.opening(sim) - 0.015
        yaw = np.pi / 2  # fingers close along x, around the bar
        return [
            Waypoint(grip + [0, 0, 0.1], 0.5, yaw, tol=0.015, label="approach"),
            Waypoint(grip + [0, 0, 0.04], 0.5, yaw, tol=0.004),
            Waypoint(grip, 0.5, yaw, tol=0.005),
            Waypoint(grip, 1.0, yaw, tol=0.01, settle=8),
            Waypoint(grip - [pull, 0, 0], 1.0, yaw, tol=0.01),
            Waypoint(grip - [pull, 0, 0], 0.0, yaw, tol=0.02, settle=6),
            Waypoint(grip - [pull, 0, -0.1], 0.0, yaw, label="retreat"),
        ]


class CloseDrawer(_DrawerTask):
    name = "close-drawer"
    instructions = (
        "close the drawer",
        "push the drawer closed",
        "shut the drawer",
        "push the drawer back in",
        "close the open drawer",
    )

    def reset(self, sim, rng: np.random.Generator) -> None:
        self._place(sim, rng, rng.uniform(0.1, TRAVEL - 0.01))

    def success(self, sim) -> bool:
        return self.opening(sim) <= CLOSED

    def progress(self, sim) -> float:
        panel = self.handle_pos(sim) + [HANDLE_OUT, 0.08, -0.03]
        reach = 1.0 - np.tanh(8.0 * np.linalg.norm(sim.tool_pos() - panel))
        return float(0.3 * reach + 0.7 * (1.0 - min(1.0, self.opening(sim) / TRAVEL)))

    def plan(self, sim) -> list[Waypoint]:
        # Push the panel beside the handle with the closed fingers, from the robot's side.
        h = self.handle_pos(sim)
        face_x = h[0] + HANDLE_OUT - 0.012
        side = 0.085 if h[1] < 0.1 else -0.085
        start = np.array([face_x - 0.035, h[1] + side, h[2] - 0.035])
        end = start + [self.opening(sim) + 0.025, 0, 0]
        return [
            Waypoint(start + [0, 0, 0.1], 1.0, tol=0.015, label="approach"),
            Waypoint(start, 1.0, tol=0.008),
            Waypoint(end, 1.0, tol=0.01),
            Waypoint(end - [0.05, 0, -0.08], 1.0, label="retreat"),
        ]
