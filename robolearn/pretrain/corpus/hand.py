"""The corpus's manipulator: a floating hand-like tool (a mocap body), not the robot.

A palm with two rigid fingers hanging below it and a forearm above. The body frame sits between the fingertips;
its x axis joins the fingers. It moves kinematically (mocap): its fingers push, poke and hook handles through
contact; "grasping" is a weld constraint switched on while the object sits between the fingers.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

HAND = "hand"
FINGER_T = 0.006  # finger half thickness [m]
SKIN = ((0.93, 0.76, 0.62), (0.78, 0.57, 0.42), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16), (0.2, 0.35, 0.75))


@dataclass(frozen=True)
class HandShape:
    gap: float  # free space between the fingers [m]
    finger_len: float
    rgba: tuple[float, float, float, float]


def add_hand(spec: mujoco.MjSpec, shape: HandShape, grasp_bodies: list[str]) -> None:
    body = spec.worldbody.add_body(name=HAND, mocap=True, pos=[0.0, 0.0, 1.5])
    fx = shape.gap / 2 + FINGER_T
    L = shape.finger_len
    rgba = list(shape.rgba)
    for i, sx in enumerate((-1, 1)):
        body.add_geom(
            name=f"hand_finger{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[FINGER_T, 0.028, L / 2],
            pos=[sx * fx, 0, L / 2],
            rgba=rgba,
            friction=[1.0, 0.02, 0.002],
            solref=[0.005, 1.0],  # stiff: a kinematic finger must not pass through what it pushes
            solmix=10.0,
        )
    body.add_geom(
        name="hand_palm",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[fx + FINGER_T, 0.036, 0.012],
        pos=[0, 0, L + 0.012],
        rgba=rgba,
    )
    body.add_geom(
        name="hand_forearm",
        type=mujoco.mjtGeom.mjGEOM_CAPSULE,
        size=[0.03, 0, 0],
        fromto=[0, 0, L + 0.04, 0, -0.04, L + 0.32],
        rgba=rgba,
        contype=0,
        conaffinity=0,
    )
    for name in grasp_bodies:
        spec.add_equality(
            type=mujoco.mjtEq.mjEQ_WELD,
            name=f"grasp_{name}",
            name1=HAND,
            name2=name,
            objtype=mujoco.mjtObj.mjOBJ_BODY,
            active=False,
            solref=[0.02, 1.0],
        )


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def set_grasp(model: mujoco.MjModel, data: mujoco.MjData, body: str, on: bool) -> None:
    """Switch the weld hand->body on (holding the current relative pose) or off."""
    eq = model.equality(f"grasp_{body}").id
    if on:
        h, b = model.body(HAND).id, model.body(body).id
        # relpose = pose of the body in the hand's frame
        hq_inv = np.zeros(4)
        mujoco.mju_negQuat(hq_inv, data.xquat[h])
        rel_pos = np.zeros(3)
        mujoco.mju_rotVecQuat(rel_pos, data.xpos[b] - data.xpos[h], hq_inv)
        rel_q = np.zeros(4)
        mujoco.mju_mulQuat(rel_q, hq_inv, data.xquat[b])
        model.eq_data[eq, 0:3] = 0.0
        model.eq_data[eq, 3:6] = rel_pos
        model.eq_data[eq, 6:10] = rel_q
        model.eq_data[eq, 10] = 1.0
    data.eq_active[eq] = 1 if on else 0
