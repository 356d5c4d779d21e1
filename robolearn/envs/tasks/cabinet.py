"""Open the cabinet door: a small cabinet with a hinged door (left or right hinge, per scene) and a bar
handle near the door's free edge; the door swings open towards the robot."""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams
from robolearn.envs.tasks.base import Task, Waypoint, add_box, colour

WIDTH, HEIGHT, DEPTH = 0.16, 0.14, 0.18  # door width/height, cabinet depth [m]
HANDLE_OUT = 0.065  # handle bar distance in front of the door
HANDLE_Z = 0.125  # handle height above the table (near the top: the hand's palm clears the door)
OPENED = 0.9  # rad (~52 deg)


class OpenCabinet(Task):
    name = "open-cabinet"
    instructions = (
        "open the cabinet door",
        "open the cabinet",
        "swing the cabinet door open",
        "pull the cabinet door open",
        "open the door of the cabinet",
    )
    max_steps = 200

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        rng = np.random.default_rng([scene.household, scene.scene, scene.seed, 51])
        self.side = float(rng.choice([-1.0, 1.0]))  # +1: hinge on the +y edge
        s = self.side
        body_rgba, door_rgba = colour(rng, 0.3, 0.9), colour(rng, 0.2, 0.9)
        # Cabinet frame origin: the hinge line at table height, at the front face.
        cab = spec.worldbody.add_body(name="cabinet", pos=[0.5, 0.0, scene.table_z])
        cy = -s * WIDTH / 2
        half_w, half_h, side_x = WIDTH / 2, HEIGHT / 2, DEPTH / 2
        for name, size, pos in (
            ("bottom", (side_x, half_w + 0.01, 0.005), (side_x, cy, 0.005)),
            ("top", (side_x, half_w + 0.01, 0.005), (side_x, cy, HEIGHT + 0.015)),
            ("side_a", (side_x, 0.005, half_h + 0.005), (side_x, cy + half_w + 0.005, half_h + 0.01)),
            ("side_b", (side_x, 0.005, half_h + 0.005), (side_x, cy - half_w - 0.005, half_h + 0.01)),
            ("back", (0.005, half_w, half_h + 0.005), (DEPTH - 0.005, cy, half_h + 0.01)),
        ):
            add_box(cab, f"cabinet_{name}", size, pos, body_rgba)
        door = cab.add_body(name="cabinet_door", pos=[-0.001, 0.0, 0.0])
        door.add_joint(
            name="cabinet_door",
            type=mujoco.mjtJoint.mjJNT_HINGE,
            axis=[0, 0, -s],
            range=[0, 1.7],
            damping=0.15,
            armature=0.01,
        )
        free_y = -s * (WIDTH - 0.03)
        add_box(
            door,
            "cabinet_door_panel",
            (0.006, WIDTH / 2 - 0.002, HEIGHT / 2),
            (-0.006, cy, HEIGHT / 2 + 0.01),
            door_rgba,
            mass=0.2,
        )
        post = (HANDLE_OUT - 0.012) / 2
        for i, dy in enumerate((-0.025, 0.025)):
            add_box(
                door,
                f"cabinet_handle_post{i}",
                (post, 0.005, 0.005),
                (-0.012 - post, free_y + dy, HANDLE_Z),
                (0.7, 0.7, 0.72, 1),
                mass=0.01,
            )
        door.add_geom(
            name="cabinet_handle",
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,
            size=[0.008, 0, 0],
            fromto=[-HANDLE_OUT, free_y - 0.035, HANDLE_Z, -HANDLE_OUT, free_y + 0.035, HANDLE_Z],
            rgba=[0.75, 0.75, 0.78, 1],
            mass=0.02,
            friction=[1.5, 0.02, 0.002],
            condim=4,
        )
        spec.add_exclude(bodyname1="cabinet", bodyname2="cabinet_door")

    def bind(self, model: mujoco.MjModel) -> None:
        self._cab = model.body("cabinet").id
        self._qadr = model.jnt_qposadr[model.joint("cabinet_door").id]
        self._handle = model.geom("cabinet_handle").id
        self._axis_sign = -float(model.jnt_axis[model.joint("cabinet_door").id][2])  # = side

    def angle(self, sim) -> float:
        return float(sim.data.qpos[self._qadr])

    def handle_pos(self, sim) -> np.ndarray:
        return sim.data.geom_xpos[self._handle].copy()

    def reset(self, sim, rng: np.random.Generator) -> None:
        hinge_y = self._axis_sign * WIDTH / 2 + rng.uniform(-0.1, 0.1)
        sim.model.body_pos[self._cab] = [rng.uniform(0.5, 0.55), hinge_y, sim.table_z]
        sim.data.qpos[self._qadr] = rng.uniform(0.0, 0.05)

    def success(self, sim) -> bool:
        return self.angle(sim) >= OPENED

    def progress(self, sim) -> float:
        reach = 1.0 - np.tanh(8.0 * np.linalg.norm(sim.tool_pos() - self.handle_pos(sim)))
        return float(0.3 * reach + 0.7 * min(1.0, self.angle(sim) / OPENED))

    def object_state(self, sim) -> np.ndarray:
        return np.concatenate([self.handle_pos(sim), [self.angle(sim)]])

    def plan(self, sim) -> list[Waypoint]:
        s = self._axis_sign
        hinge = sim.data.xpos[self._cab].copy()
        angle0 = self.angle(sim)
        grip = self.handle_pos(sim) + [0, 0, -0.008]
        yaw0 = np.pi / 2 - s * angle0  # fingers close across the bar, perpendicular to the door
        plan = [
            Waypoint(grip + [0, 0, 0.1], 0.5, yaw0, tol=0.015, label="approach"),
            Waypoint(grip + [0, 0, 0.04], 0.5, yaw0, tol=0.004),
            Waypoint(grip, 0.5, yaw0, tol=0.005),
            Waypoint(grip, 1.0, yaw0, tol=0.01, settle=8),
        ]
        # Follow the handle's arc around the hinge, turning the wrist with the door.
        for target in np.arange(angle0 + 0.15, 1.25, 0.15):
            turn = target - angle0
            c, si = np.cos(-s * turn), np.sin(-s * turn)
            rel = grip[:2] - hinge[:2]
            xy = hinge[:2] + [c * rel[0] - si * rel[1], si * rel[0] + c * rel[1]]
            plan.append(Waypoint(np.array([xy[0], xy[1], grip[2]]), 1.0, yaw0 - s * turn, tol=0.015))
        last = plan[-1]
        plan += [
            Waypoint(last.pos, 0.0, last.yaw, tol=0.03, settle=6),
            Waypoint(last.pos + [0, 0, 0.1], 0.0, last.yaw, label="retreat"),
        ]
        return plan
