"""Pick-and-place tasks: put the object in the bin, stack the blocks, put the object on the shelf."""

from __future__ import annotations

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams
from robolearn.envs.tasks.base import (
    Task,
    Waypoint,
    add_box,
    add_free_object,
    body_yaw,
    colour,
    grasp_yaw,
    set_free_pose,
)

PAD_ABOVE_TOOL = 0.008  # finger pads are centred this far above the tool point


def pick_and_place(obj_pos: np.ndarray, obj_yaw: float, place: np.ndarray, carry_z: float) -> list[Waypoint]:
    """Waypoints: above object, down, close, lift to carry_z, over `place`, down to `place`, open, up.

    `place` is where the object's grasp point (its centre) should be released.
    """
    yaw = grasp_yaw(obj_yaw)
    grip = obj_pos - [0, 0, PAD_ABOVE_TOOL]
    release = place - [0, 0, PAD_ABOVE_TOOL]
    up = max(carry_z, grip[2] + 0.1)
    return [
        Waypoint(np.array([grip[0], grip[1], up]), 0.0, yaw, tol=0.015, label="approach"),
        Waypoint(grip + [0, 0, 0.03], 0.0, yaw, tol=0.008),
        Waypoint(grip, 0.0, yaw, tol=0.005),
        Waypoint(grip, 1.0, yaw, tol=0.02, settle=7),
        Waypoint(np.array([grip[0], grip[1], up]), 1.0, yaw, tol=0.02, label="lift"),
        Waypoint(np.array([release[0], release[1], up]), 1.0, yaw, tol=0.015, label="transport"),
        Waypoint(release, 1.0, yaw, tol=0.008),
        Waypoint(release, 0.0, yaw, tol=0.03, settle=6),
        Waypoint(release + [0, 0, 0.1], 0.0, yaw, label="retreat"),
    ]


def _released(sim, body: int) -> bool:
    return not sim.arm_touching(body)


def _lin_progress(sim, obj: int, goal: np.ndarray, grasped: bool) -> float:
    reach = 1.0 - np.tanh(8.0 * np.linalg.norm(sim.tool_pos() - sim.body_pos(obj)))
    place = 1.0 - np.tanh(5.0 * np.linalg.norm(sim.body_pos(obj) - goal))
    return float(0.2 * reach + 0.2 * grasped + 0.6 * place)


class PutInBin(Task):
    name = "put-in-bin"
    instructions = (
        "put the block in the bin",
        "place the block into the container",
        "pick up the block and drop it in the bin",
        "move the cube into the box",
        "put the cube in the basket",
    )
    max_steps = 200
    HALF = 0.022  # cube half size
    BIN = (0.075, 0.075, 0.06)  # inner half x, half y, wall height

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        rng = np.random.default_rng([scene.household, scene.scene, scene.seed, 31])
        add_free_object(spec, "cube", "box", (self.HALF,) * 3, colour(rng, 0.2, 0.95))
        bx, by, h = self.BIN
        t = 0.006
        rgba = colour(rng, 0.1, 0.8)
        b = spec.worldbody.add_body(name="bin", pos=[0.45, 0.15, scene.table_z])
        add_box(b, "bin_floor", (bx + t, by + t, t / 2), (0, 0, t / 2), rgba)
        for name, size, pos in (
            ("l", (bx + t, t / 2, h / 2), (0, by + t / 2, h / 2)),
            ("r", (bx + t, t / 2, h / 2), (0, -by - t / 2, h / 2)),
            ("f", (t / 2, by, h / 2), (-bx - t / 2, 0, h / 2)),
            ("b", (t / 2, by, h / 2), (bx + t / 2, 0, h / 2)),
        ):
            add_box(b, f"bin_wall_{name}", size, pos, rgba)

    def bind(self, model: mujoco.MjModel) -> None:
        self._cube = model.body("cube").id
        self._bin = model.body("bin").id

    def reset(self, sim, rng: np.random.Generator) -> None:
        side = rng.choice([-1.0, 1.0])
        sim.model.body_pos[self._bin] = [rng.uniform(0.4, 0.5), side * rng.uniform(0.14, 0.22), sim.table_z]
        pos = [rng.uniform(0.36, 0.5), -side * rng.uniform(0.0, 0.2), sim.table_z + self.HALF]
        set_free_pose(sim.model, sim.data, "cube", pos, rng.uniform(-np.pi, np.pi))

    def _in_bin(self, sim) -> bool:
        p, b = sim.body_pos(self._cube), sim.data.xpos[self._bin]
        bx, by, h = self.BIN
        return bool(abs(p[0] - b[0]) < bx and abs(p[1] - b[1]) < by and p[2] < b[2] + h)

    def success(self, sim) -> bool:
        return self._in_bin(sim) and _released(sim, self._cube)

    def progress(self, sim) -> float:
        goal = sim.data.xpos[self._bin] + [0, 0, self.HALF + 0.006]
        return _lin_progress(sim, self._cube, goal, sim.grasped(self._cube))

    def object_state(self, sim) -> np.ndarray:
        d = sim.data
        return np.concatenate([d.xpos[self._cube], d.xquat[self._cube], d.xpos[self._bin]])

    def plan(self, sim) -> list[Waypoint]:
        bin_pos = sim.data.xpos[self._bin]
        place = bin_pos + [0, 0, self.BIN[2] + self.HALF + 0.02]  # release just above the rim
        return pick_and_place(
            sim.body_pos(self._cube), body_yaw(sim.data, self._cube), place, sim.table_z + self.BIN[2] + 0.12
        )


class StackBlocks(Task):
    name = "stack-blocks"
    instructions = (
        "stack the red block on the green block",
        "put the red cube on top of the green cube",
        "place the red block onto the green one",
        "stack the blocks, red on green",
        "pick up the red block and put it on the green block",
    )
    max_steps = 200
    TOP, BOTTOM = 0.02, 0.026  # half sizes

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        add_free_object(spec, "block_red", "box", (self.TOP,) * 3, (0.85, 0.12, 0.1, 1))
        add_free_object(spec, "block_green", "box", (self.BOTTOM,) * 3, (0.15, 0.7, 0.2, 1), mass=0.15)

    def bind(self, model: mujoco.MjModel) -> None:
        self._top = model.body("block_red").id
        self._bottom = model.body("block_green").id

    def reset(self, sim, rng: np.random.Generator) -> None:
        while True:  # at least 10 cm apart
            a = np.array([rng.uniform(0.36, 0.52), rng.uniform(-0.2, 0.2)])
            b = np.array([rng.uniform(0.36, 0.52), rng.uniform(-0.2, 0.2)])
            if np.linalg.norm(a - b) > 0.1:
                break
        set_free_pose(sim.model, sim.data, "block_red", [*a, sim.table_z + self.TOP], rng.uniform(-np.pi, np.pi))
        set_free_pose(sim.model, sim.data, "block_green", [*b, sim.table_z + self.BOTTOM], rng.uniform(-np.pi, np.pi))

    def success(self, sim) -> bool:
        top, bottom = sim.body_pos(self._top), sim.body_pos(self._bottom)
        stacked = (
            np.linalg.norm(top[:2] - bottom[:2]) < self.BOTTOM
            and abs(top[2] - bottom[2] - self.TOP - self.BOTTOM) < 0.008
        )
        return bool(stacked and _released(sim, self._top))

    def progress(self, sim) -> float:
        goal = sim.body_pos(self._bottom) + [0, 0, self.TOP + self.BOTTOM]
        return _lin_progress(sim, self._top, goal, sim.grasped(self._top))

    def object_state(self, sim) -> np.ndarray:
        d = sim.data
        return np.concatenate([d.xpos[self._top], d.xquat[self._top], d.xpos[self._bottom], d.xquat[self._bottom]])

    def plan(self, sim) -> list[Waypoint]:
        bottom = sim.body_pos(self._bottom)
        place = bottom + [0, 0, self.BOTTOM + self.TOP + 0.006]
        return pick_and_place(sim.body_pos(self._top), body_yaw(sim.data, self._top), place, sim.table_z + 0.15)


class PutOnShelf(Task):
    name = "put-on-shelf"
    instructions = (
        "put the can on the shelf",
        "place the can on the shelf",
        "move the can onto the shelf",
        "pick up the can and put it on the shelf",
        "lift the can onto the shelf",
    )
    max_steps = 200
    RADIUS, HALF_H = 0.022, 0.035
    BOARD = (0.07, 0.11, 0.008)  # half sizes of the shelf board
    BOARD_Z = 0.14  # board top above the table

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        rng = np.random.default_rng([scene.household, scene.scene, scene.seed, 41])
        add_free_object(spec, "can", "cylinder", (self.RADIUS, self.HALF_H), colour(rng, 0.2, 0.95), mass=0.1)
        s = spec.worldbody.add_body(name="shelf", pos=[0.55, 0.0, scene.table_z])
        bx, by, bt = self.BOARD
        rgba = colour(rng, 0.2, 0.8)
        add_box(s, "shelf_board", (bx, by, bt), (0, 0, self.BOARD_Z - bt), rgba)
        for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
            add_box(
                s,
                f"shelf_post{i}",
                (0.008, 0.008, (self.BOARD_Z - 2 * bt) / 2),
                (sx * (bx - 0.008), sy * (by - 0.008), (self.BOARD_Z - 2 * bt) / 2),
                rgba,
            )

    def bind(self, model: mujoco.MjModel) -> None:
        self._can = model.body("can").id
        self._shelf = model.body("shelf").id

    def reset(self, sim, rng: np.random.Generator) -> None:
        sy = rng.uniform(-0.15, 0.15)
        sim.model.body_pos[self._shelf] = [rng.uniform(0.5, 0.55), sy, sim.table_z]
        y = sy + rng.choice([-1.0, 1.0]) * rng.uniform(0.0, 0.1)
        set_free_pose(sim.model, sim.data, "can", [rng.uniform(0.32, 0.38), y, sim.table_z + self.HALF_H])

    def success(self, sim) -> bool:
        p, s = sim.body_pos(self._can), sim.data.xpos[self._shelf]
        bx, by, _ = self.BOARD
        on = abs(p[0] - s[0]) < bx and abs(p[1] - s[1]) < by and abs(p[2] - (s[2] + self.BOARD_Z + self.HALF_H)) < 0.01
        return bool(on and _released(sim, self._can))

    def progress(self, sim) -> float:
        goal = sim.data.xpos[self._shelf] + [0, 0, self.BOARD_Z + self.HALF_H]
        return _lin_progress(sim, self._can, goal, sim.grasped(self._can))

    def object_state(self, sim) -> np.ndarray:
        d = sim.data
        return np.concatenate([d.xpos[self._can], d.xquat[self._can], d.xpos[self._shelf]])

    def plan(self, sim) -> list[Waypoint]:
        shelf = sim.data.xpos[self._shelf]
        place = shelf + [0, 0, self.BOARD_Z + self.HALF_H + 0.008]
        return pick_and_place(sim.body_pos(self._can), 0.0, place, sim.table_z + self.BOARD_Z + self.HALF_H * 2 + 0.1)
