"""Task interface: what a household task adds to a scene, how it resets, when it succeeds, how an expert
solves it.

A task instance is bound to one compiled model (`bind`), so ids are looked up once. Positions are in the
world frame, whose origin is the robot base (scenes.py); `sim.table_z` is the table surface height. Tasks see
the simulation through `TaskSim`, the part of envs.household.HouseholdSim they use (so tasks need not import
the env that imports them).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Protocol

import mujoco
import numpy as np

from robolearn.envs.scenes import SceneParams

TOP_DOWN = np.array([0.0, np.sqrt(0.5), np.sqrt(0.5), 0.0])  # tool z down, fingers close along world y


def top_down_quat(yaw: float = 0.0) -> np.ndarray:
    """Tool orientation pointing down, rotated by `yaw` about world z (yaw 0: fingers close along y)."""
    rz = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, rz, TOP_DOWN)
    return out


class TaskSim(Protocol):
    """What a task uses of the simulation it runs in (HouseholdSim provides it)."""

    model: mujoco.MjModel
    data: mujoco.MjData
    table_z: float  # table surface height (world frame)

    def tool_pos(self) -> np.ndarray:
        """The gripper's tool site position."""

    def body_pos(self, body_id: int) -> np.ndarray:
        """A body's world position."""

    def grasped(self, body_id: int) -> bool:
        """Both fingers touch the body."""

    def arm_touching(self, body_id: int) -> bool:
        """Some arm link touches the body."""


@dataclass
class Waypoint:
    """A tool target for the scripted expert: position, yaw, gripper (0 open, 1 closed).

    The expert moves on when the tool is within `tol` metres and, for gripper changes, after `settle` steps.
    """

    pos: np.ndarray
    gripper: float
    yaw: float = 0.0
    tol: float = 0.01
    settle: int = 0
    label: str = ""


class Task(ABC):
    """A household task. Subclasses set `name`, `instructions` (paraphrases), `max_steps`."""

    name: ClassVar[str]
    instructions: ClassVar[tuple[str, ...]]
    max_steps: ClassVar[int] = 200

    # ------------------------------------------------------------------ model
    @abstractmethod
    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        """Add the task's fixtures and objects to the scene spec."""

    @abstractmethod
    def bind(self, model: mujoco.MjModel) -> None:
        """Look up ids in the compiled model."""

    # ------------------------------------------------------------------ episode
    @abstractmethod
    def reset(self, sim: TaskSim, rng: np.random.Generator) -> None:
        """Place fixtures/objects for a new episode (the arm is already at home)."""

    @abstractmethod
    def success(self, sim: TaskSim) -> bool:
        """The success detector."""

    @abstractmethod
    def progress(self, sim: TaskSim) -> float:
        """Dense reward in [0, 1]: staged shaping towards success (1 at success)."""

    @abstractmethod
    def object_state(self, sim: TaskSim) -> np.ndarray:
        """Privileged task state (object poses, articulation positions), fixed length per task."""

    @abstractmethod
    def plan(self, sim: TaskSim) -> list[Waypoint]:
        """Waypoints that solve the task from the current state (the scripted expert's plan)."""

    def on_step(self, sim: TaskSim, steps: int) -> None:
        """Called by the env after each step (`steps` done so far, before success and the observation): tasks
        whose scene changes with time (a cue that turns off, as in button-memory) do it here; a no-op otherwise."""
        return None

    def set_instruction(self, text: str) -> None:
        """The episode's instruction, given by the env at reset after `reset` (a no-op unless the instruction
        chooses what the task is, as in the multi-task scene)."""
        return None


# ---------------------------------------------------------------------- building helpers
def add_box(body: mujoco.MjsBody, name: str, size, pos, rgba, **kw) -> mujoco.MjsGeom:
    return body.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(size), pos=list(pos), rgba=list(rgba), **kw
    )


def add_free_object(spec: mujoco.MjSpec, name: str, shape: str, size, rgba, mass: float = 0.08) -> None:
    """A free rigid object (box half-sizes or cylinder radius/half-height) with grippable contact."""
    body = spec.worldbody.add_body(name=name, pos=[0.0, 0.0, 1.0])
    body.add_freejoint(name=f"{name}_free")
    gtype = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}[shape]
    body.add_geom(
        name=name,
        type=gtype,
        size=list(size),
        rgba=list(rgba),
        mass=mass,
        condim=4,
        friction=[1.2, 0.02, 0.002],
        solref=[0.01, 1.0],
    )


def colour(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.95) -> list[float]:
    return [*(float(v) for v in rng.uniform(lo, hi, 3)), 1.0]


def set_free_pose(model: mujoco.MjModel, data: mujoco.MjData, body: str, pos, yaw: float = 0.0) -> None:
    jnt = model.body(body).jntadr[0]
    adr, vadr = model.jnt_qposadr[jnt], model.jnt_dofadr[jnt]
    data.qpos[adr : adr + 3] = pos
    data.qpos[adr + 3 : adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    data.qvel[vadr : vadr + 6] = 0.0


def body_yaw(data: mujoco.MjData, body_id: int) -> float:
    """Yaw of a body's x axis about world z (for aligning top-down grasps with a box)."""
    mat = data.xmat[body_id].reshape(3, 3)
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def grasp_yaw(yaw: float) -> float:
    """Equivalent box yaw (mod 90 degrees) closest to 0, so the wrist turns as little as possible."""
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)
