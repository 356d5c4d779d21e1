"""The simulated arm: model, state fields, the four action spaces, limits, gripper and wrist camera."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from robolearn.data.schema import ACTION_FIELDS, ACTION_SPACES, STATE_FIELDS
from robolearn.envs import ARM_JOINTS, SimArm, basic_scene_spec


@pytest.fixture
def arm() -> SimArm:
    return SimArm(basic_scene_spec().compile())


def _angle(q1: np.ndarray, q2: np.ndarray) -> float:
    return 2 * float(np.arccos(min(1.0, abs(float(np.dot(q1, q2))))))


def test_model_has_seven_arm_joints_and_gripper(arm: SimArm) -> None:
    m = arm.model
    assert len(ARM_JOINTS) == 7 and all(m.joint(n).type == 3 for n in ARM_JOINTS)  # hinge
    assert m.actuator("gripper").id >= 0 and m.site("tool").id >= 0 and m.camera("wrist").id >= 0
    assert arm.substeps * m.opt.timestep == pytest.approx(1 / 15)


def test_state_matches_schema_fields(arm: SimArm) -> None:
    state = arm.state()
    for f in STATE_FIELDS:
        key = f.path.split("/")[-1]
        assert np.shape(state[key]) == f.shape, key
    quat = state["ee_quaternion"]
    assert np.linalg.norm(quat) == pytest.approx(1.0) and quat[0] >= 0
    # Home: tool points down (tool z = -world z); wxyz convention: rotation of pi about an axis in xy.
    assert abs(quat[0]) < 0.01


def test_cartesian_velocity_moves_tool_along_x(arm: SimArm) -> None:
    p0, q0 = arm.ee_pose()
    for _ in range(15):  # 1 s at 15 Hz, full speed +x
        forms = arm.step(np.array([1.0, 0, 0, 0, 0, 0]), "cartesian_velocity")
    p1, q1 = arm.ee_pose()
    expected = arm.config.max_linear_speed * 1.0
    assert p1[0] - p0[0] == pytest.approx(expected, rel=0.15)
    assert np.linalg.norm((p1 - p0)[1:]) < 0.01
    assert _angle(q0, q1) < 0.02
    assert set(forms) == {f.path.split("/")[-1] for f in ACTION_FIELDS}
    for f in ACTION_FIELDS:
        assert np.shape(forms[f.path.split("/")[-1]]) == f.shape


def test_cartesian_position_reaches_target(arm: SimArm) -> None:
    p0, q0 = arm.ee_pose()
    target = np.concatenate([p0 + [0.05, 0.1, 0.05], q0])
    for _ in range(20):
        arm.step(target, "cartesian_position")
    p, q = arm.ee_pose()
    assert np.linalg.norm(p - target[:3]) < 0.005
    assert _angle(q, q0) < 0.01


def test_unreachable_target_is_clipped_not_nan(arm: SimArm) -> None:
    p0, q0 = arm.ee_pose()
    for _ in range(30):
        arm.step(np.concatenate([[3.0, 0, 0.2], q0]), "cartesian_position")
    assert np.all(np.isfinite(arm.data.qpos))
    assert np.all(arm.joint_positions <= arm.joint_upper + 0.02)


def test_joint_limits_respected(arm: SimArm) -> None:
    for _ in range(60):
        forms = arm.step(np.full(7, 10.0), "joint_velocity")
        assert np.all(np.abs(forms["joint_velocity"]) <= arm.config.max_joint_speed + 1e-9)
    q = arm.joint_positions
    assert np.all(q <= arm.joint_upper + 0.02)
    arm.reset()
    for _ in range(60):
        forms = arm.step(np.full(7, -10.0), "joint_position")
    assert np.all(forms["joint_position"] >= arm.joint_lower)
    assert np.all(arm.joint_positions >= arm.joint_lower - 0.02)


def test_gripper_closes_and_opens(arm: SimArm) -> None:
    assert arm.gripper_position == pytest.approx(0.0, abs=0.01)
    hold = arm.joint_positions
    for _ in range(10):
        arm.step(np.concatenate([hold, [1.0]]), "joint_position")
    assert arm.gripper_position > 0.95
    for _ in range(10):
        arm.step(np.concatenate([hold, [0.0]]), "joint_position")
    assert arm.gripper_position < 0.05


@pytest.mark.parametrize("bad", [np.zeros(3), np.array([np.nan] * 6)])
def test_bad_actions_raise(arm: SimArm, bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="cartesian_velocity"):
        arm.step(bad, "cartesian_velocity")


def test_unknown_space_raises(arm: SimArm) -> None:
    with pytest.raises(ValueError, match="unknown action space"):
        arm.step(np.zeros(6), "torque")
    assert set(ACTION_SPACES) <= {"cartesian_velocity", "cartesian_position", "joint_position", "joint_velocity"}


_RENDER = """
import mujoco, numpy as np
from robolearn.envs import SimArm, basic_scene_spec
arm = SimArm(basic_scene_spec(table_height=0.1).compile())
r = mujoco.Renderer(arm.model, 48, 64)
r.update_scene(arm.data, camera="wrist")
img = r.render()
assert img.shape == (48, 64, 3) and img.dtype == np.uint8 and img.std() > 0, (img.shape, img.dtype)
print("OK")
"""


def test_wrist_camera_renders_with_egl() -> None:
    env = dict(os.environ, MUJOCO_GL="egl", PYOPENGL_PLATFORM="egl")
    proc = subprocess.run([sys.executable, "-c", _RENDER], env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "AssertionError" not in proc.stderr:
        pytest.skip(f"EGL rendering unavailable: {proc.stderr.strip().splitlines()[-1:]}")
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr
