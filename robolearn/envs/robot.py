"""Simulated 7-DoF arm (`assets/robot/arm7.xml`) with the real-robot action spaces and state fields.

`SimArm` wraps an `mujoco.MjModel`/`MjData` holding the arm (alone or inside a scene) and offers:

- `state()`: the episode format's robot state (schema.STATE_FIELDS): joint positions/velocities, tool pose
  in the robot base frame (position + unit quaternion wxyz) and gripper opening (0 open, 1 closed).
- `step(action, space)`: one control period (default 15 Hz) for any of schema.ACTION_SPACES, gripper last.
  Every space is turned into a joint-position target for the arm's position actuators:
    cartesian_velocity  6 values in [-1, 1] scaled by `max_linear_speed` / `max_angular_speed`,
                        integrated into a persistent pose target, then differential IK;
    cartesian_position  xyz [m] + quaternion wxyz; the per-step motion towards it is clipped to the max
                        speeds (so far targets are approached in a straight line), then differential IK;
    joint_position      [rad], clipped to joint limits and rate-limited by `max_joint_speed`;
    joint_velocity      [rad/s], clipped to `max_joint_speed`, integrated into the joint target.
  Differential IK is damped least squares on `mj_jacSite` with a null-space pull to the home posture;
  joint targets are clipped to the joint limits (minus a margin) and the joint speed limit.
  Unreachable cartesian targets are a documented clip: the arm moves as close as the limits allow.
  It returns every action form actually applied (the commanded form, sanitised, plus the derived ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robolearn.envs.assets import asset_path

ARM_XML = "robot/arm7.xml"
ARM_JOINTS = tuple(f"arm_j{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
ARM_ACTUATORS = ARM_JOINTS
GRIPPER_ACTUATOR = "gripper"
BASE_BODY = "arm7_base"
TOOL_SITE = "tool"
WRIST_CAMERA = "wrist"
HOME_QPOS = np.array([0.0, 0.5, 0.0, 1.9, 0.0, 0.74, 0.0])
FINGER_OPEN = 0.04  # finger travel [m] per side at fully open

# Dimensions of each action space, without the trailing gripper value.
ACTION_DIMS: dict[str, int] = {
    "cartesian_velocity": 6,
    "cartesian_position": 7,
    "joint_position": 7,
    "joint_velocity": 7,
}


def arm_xml_path() -> Path:
    """Path of the arm's MJCF file."""
    return asset_path(ARM_XML)


def arm_spec() -> mujoco.MjSpec:
    """The arm alone as an editable MjSpec (add it to scenes with `attach` or edit the worldbody)."""
    return mujoco.MjSpec.from_file(str(arm_xml_path()))


def basic_scene_spec(table_height: float = 0.0) -> mujoco.MjSpec:
    """Minimal scene: the arm on a floor, a light, a low table in front and one exterior camera.

    `table_height` > 0 adds a table top (0.6 x 0.8 m) with its surface at that height, in front of the arm.
    """
    spec = arm_spec()
    spec.modelname = "arm7_test_scene"
    world = spec.worldbody
    world.add_light(name="top", pos=[0.3, 0, 2.0], dir=[0, 0, -1], castshadow=False)
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.05], rgba=[0.5, 0.5, 0.5, 1])
    if table_height > 0:
        half = table_height / 2
        world.add_geom(
            name="table",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.3, 0.4, half],
            pos=[0.6, 0, half],
            rgba=[0.6, 0.45, 0.3, 1],
        )
    world.add_camera(name="exterior", pos=[1.4, -0.9, 1.0], xyaxes=[0.54, 0.84, 0, -0.35, 0.22, 0.91])
    return spec


@dataclass
class ControllerConfig:
    """Controller limits and gains (defaults match the real-robot interface: 15 Hz)."""

    control_hz: float = 15.0
    max_linear_speed: float = 0.25  # m/s at |action| = 1
    max_angular_speed: float = 1.0  # rad/s at |action| = 1
    max_joint_speed: float = 2.0  # rad/s, per joint
    limit_margin: float = 0.02  # rad kept away from joint limits
    ik_damping: float = 0.05  # damped least squares lambda
    ik_iterations: int = 4
    nullspace_gain: float = 0.2  # pull towards home posture in the Jacobian null space
    target_reset_m: float = 0.05  # re-seed the velocity-mode pose target when it leads the tool by more


class SimArm:
    """The arm inside `model`/`data` (which may hold a larger scene); see the module docstring."""

    def __init__(
        self,
        model: mujoco.MjModel | None = None,
        data: mujoco.MjData | None = None,
        config: ControllerConfig | None = None,
    ) -> None:
        self.model = model if model is not None else mujoco.MjModel.from_xml_path(str(arm_xml_path()))
        self.data = data if data is not None else mujoco.MjData(self.model)
        self.config = config or ControllerConfig()
        m = self.model
        self.dt = 1.0 / self.config.control_hz
        # Substeps: a whole number of physics steps per control period (timestep adjusted to divide it).
        self.substeps = max(1, round(self.dt / m.opt.timestep))
        m.opt.timestep = self.dt / self.substeps
        jids = [m.joint(n).id for n in ARM_JOINTS]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jids])
        self._vadr = np.array([m.jnt_dofadr[j] for j in jids])
        self._finger_qadr = np.array([m.jnt_qposadr[m.joint(n).id] for n in FINGER_JOINTS])
        self._act = np.array([m.actuator(n).id for n in ARM_ACTUATORS])
        self._grip_act = m.actuator(GRIPPER_ACTUATOR).id
        self._site = m.site(TOOL_SITE).id
        self._base = m.body(BASE_BODY).id
        self.camera_id = m.camera(WRIST_CAMERA).id
        lo, hi = m.jnt_range[jids].T
        self.joint_lower = lo + self.config.limit_margin
        self.joint_upper = hi - self.config.limit_margin
        self._scratch = mujoco.MjData(m)  # kinematics-only copy for IK and forward kinematics
        self._jacp = np.zeros((3, m.nv))
        self._jacr = np.zeros((3, m.nv))
        self._pose_target: tuple[np.ndarray, np.ndarray] | None = None
        self._last_space = ""
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self, qpos: np.ndarray | None = None, gripper: float = 0.0) -> None:
        """Put the arm at `qpos` (default home) at rest, gripper at `gripper` (0 open), targets = state."""
        q = HOME_QPOS if qpos is None else np.clip(np.asarray(qpos, float), self.joint_lower, self.joint_upper)
        d = self.data
        d.qpos[self._qadr] = q
        d.qvel[self._vadr] = 0.0
        d.qpos[self._finger_qadr] = FINGER_OPEN * (1.0 - gripper)
        d.qvel[self.model.jnt_dofadr[[self.model.joint(n).id for n in FINGER_JOINTS]]] = 0.0
        self._q_target = q.copy()
        self._gripper_target = float(np.clip(gripper, 0.0, 1.0))
        self._apply_ctrl()
        self._pose_target = None
        self._last_space = ""
        mujoco.mj_forward(self.model, d)

    def hold(self) -> None:
        """Stop: joint targets = the measured positions (velocity-mode target dropped); gripper kept."""
        self._q_target = np.clip(self.joint_positions, self.joint_lower, self.joint_upper)
        self._pose_target = None
        self._last_space = ""
        self._apply_ctrl()

    @property
    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qadr].copy()

    @property
    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._vadr].copy()

    @property
    def gripper_position(self) -> float:
        """Measured opening, 0 = fully open, 1 = fully closed (mean of the two fingers)."""
        opening = float(np.mean(self.data.qpos[self._finger_qadr]))
        return float(np.clip(1.0 - opening / FINGER_OPEN, 0.0, 1.0))

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """Tool position and unit quaternion (wxyz, w >= 0) in the robot base frame."""
        return self._site_pose(self.data)

    def state(self) -> dict[str, np.ndarray]:
        """Robot state keyed like schema.STATE_FIELDS (last path component)."""
        pos, quat = self.ee_pose()
        return {
            "joint_positions": self.joint_positions,
            "joint_velocities": self.joint_velocities,
            "ee_position": pos,
            "ee_quaternion": quat,
            "gripper_position": np.float64(self.gripper_position),
        }

    def _site_pose(self, d: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        base_pos, base_mat = d.xpos[self._base], d.xmat[self._base].reshape(3, 3)
        pos = base_mat.T @ (d.site_xpos[self._site] - base_pos)
        mat = base_mat.T @ d.site_xmat[self._site].reshape(3, 3)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, mat.ravel())
        return pos, _canonical(quat)

    def forward_kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool pose (base frame, wxyz) for arm joint angles `q`, other joints at their current values."""
        s = self._scratch
        s.qpos[:] = self.data.qpos
        s.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, s)
        return self._site_pose(s)

    # ------------------------------------------------------------------ control
    def action_dim(self, space: str) -> int:
        """Length of an action vector for `space`, including the trailing gripper value."""
        _check_space(space)
        return ACTION_DIMS[space] + 1

    def step(self, action: np.ndarray, space: str = "cartesian_velocity") -> dict[str, np.ndarray]:
        """Apply one control period of `action` in `space` (gripper last, optional) and simulate it.

        Returns every action form actually applied, keyed like schema.ACTION_FIELDS: the commanded form
        (sanitised: clipped, quaternion normalised) and the forms derived from the applied joint target.
        Raises ValueError for an unknown space, a wrong shape or non-finite values.
        """
        arm_cmd, gripper = self._parse(action, space)
        q_now = self.joint_positions
        pose_now = self.ee_pose()
        q_prev_target = self._q_target.copy()
        commanded = self._command(arm_cmd, space, q_now, pose_now)
        if gripper is not None:
            self._gripper_target = gripper
        self._apply_ctrl()
        forms = self._derived_forms(q_prev_target, pose_now)
        forms[space] = commanded
        forms["gripper_position"] = np.float64(self._gripper_target)
        self._last_space = space
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        return forms

    def _parse(self, action: np.ndarray, space: str) -> tuple[np.ndarray, float | None]:
        _check_space(space)
        a = np.asarray(action, dtype=np.float64).ravel()
        n = ACTION_DIMS[space]
        if a.shape[0] not in (n, n + 1):
            raise ValueError(
                f"action for {space!r} must have {n} values (+1 optional gripper), got shape {np.shape(action)}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action for {space!r} contains NaN or inf: {a.tolist()}")
        gripper = float(np.clip(a[n], 0.0, 1.0)) if a.shape[0] == n + 1 else None
        return a[:n], gripper

    def _command(
        self, cmd: np.ndarray, space: str, q_now: np.ndarray, pose_now: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """Set self._q_target from the command; return the sanitised commanded form."""
        c = self.config
        if space == "joint_position":
            target = np.clip(cmd, self.joint_lower, self.joint_upper)
            step = np.clip(target - self._q_target, -c.max_joint_speed * self.dt, c.max_joint_speed * self.dt)
            self._set_joint_target(self._q_target + step, q_now)
            return target
        if space == "joint_velocity":
            qd = np.clip(cmd, -c.max_joint_speed, c.max_joint_speed)
            self._set_joint_target(self._q_target + qd * self.dt, q_now)
            return qd
        if space == "cartesian_velocity":
            twist = np.clip(cmd, -1.0, 1.0)
            pos_t, quat_t = self._velocity_pose_target(pose_now)
            pos_t = pos_t + twist[:3] * c.max_linear_speed * self.dt
            quat_t = _integrate_quat(quat_t, twist[3:] * c.max_angular_speed * self.dt)
            self._pose_target = (pos_t, quat_t)
            self._track_pose(pos_t, quat_t, q_now)
            return twist
        # cartesian_position: approach the target at most at the max speeds per step.
        pos_goal, quat_goal = cmd[:3].copy(), _normalise_quat(cmd[3:])
        pos_t = pose_now[0] + _clip_norm(pos_goal - pose_now[0], c.max_linear_speed * self.dt)
        rot_err = quat_error(quat_goal, pose_now[1])
        quat_t = _integrate_quat(pose_now[1], _clip_norm(rot_err, c.max_angular_speed * self.dt))
        self._pose_target = None
        self._track_pose(pos_t, quat_t, q_now)
        return np.concatenate([pos_goal, quat_goal])

    def reference_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The pose the next cartesian_velocity command is integrated from (base frame): the persistent
        velocity-mode target while it tracks, else the measured tool pose. A controller that wants the target
        to land on a goal commands (goal - reference) / (max speed * dt)."""
        return (
            self._velocity_pose_target(self.ee_pose()) if self._last_space == "cartesian_velocity" else self.ee_pose()
        )

    def _velocity_pose_target(self, pose_now: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Persistent pose target for velocity mode (avoids drift); re-seeded from the measured pose."""
        t = self._pose_target
        if (
            t is None
            or self._last_space != "cartesian_velocity"
            or np.linalg.norm(t[0] - pose_now[0]) > self.config.target_reset_m
        ):
            return pose_now[0].copy(), pose_now[1].copy()
        return t

    def _track_pose(self, pos: np.ndarray, quat: np.ndarray, q_now: np.ndarray) -> None:
        q = self.solve_ik(pos, quat, q_now)
        self._set_joint_target(q, q_now)

    def solve_ik(self, pos: np.ndarray, quat: np.ndarray, q_init: np.ndarray) -> np.ndarray:
        """Damped least squares IK from `q_init` towards the base-frame pose; joint limits clipped each
        iteration; returns the best joint vector found (a documented clip when unreachable)."""
        c, m, s = self.config, self.model, self._scratch
        s.qpos[:] = self.data.qpos
        q = np.clip(q_init.copy(), self.joint_lower, self.joint_upper)
        base_mat = self.data.xmat[self._base].reshape(3, 3)
        lam2 = c.ik_damping**2
        for _ in range(c.ik_iterations):
            s.qpos[self._qadr] = q
            mujoco.mj_kinematics(m, s)
            mujoco.mj_comPos(m, s)
            p, qt = self._site_pose(s)
            err = np.concatenate([pos - p, quat_error(quat, qt)])
            mujoco.mj_jacSite(m, s, self._jacp, self._jacr, self._site)
            jac = np.vstack([base_mat.T @ self._jacp[:, self._vadr], base_mat.T @ self._jacr[:, self._vadr]])
            # One SVD gives both the damped pseudo-inverse (task step) and the exact null-space projector
            # (a damped projector would leak the posture pull into the task).
            u, sv, vt = np.linalg.svd(jac, full_matrices=False)
            dq = vt.T @ ((sv / (sv * sv + lam2)) * (u.T @ err))
            rank_rows = vt[sv > 1e-3 * sv[0]]
            posture = c.nullspace_gain * (HOME_QPOS - q)
            dq += posture - rank_rows.T @ (rank_rows @ posture)
            q = np.clip(q + dq, self.joint_lower, self.joint_upper)
            if np.linalg.norm(err) < 1e-4:  # 0.1 mm / mrad: well below what the servos resolve
                break
        return q

    def _set_joint_target(self, q: np.ndarray, q_now: np.ndarray) -> None:
        """Clip to joint limits and to what the joint speed limit allows from the measured position."""
        lim = self.config.max_joint_speed * self.dt
        dq = q - q_now
        worst = float(np.max(np.abs(dq)))
        if worst > lim:  # scale uniformly: keeps the direction (straight cartesian paths stay straight)
            q = q_now + dq * (lim / worst)
        self._q_target = np.clip(q, self.joint_lower, self.joint_upper)

    def _apply_ctrl(self) -> None:
        self.data.ctrl[self._act] = self._q_target
        self.data.ctrl[self._grip_act] = FINGER_OPEN * (1.0 - self._gripper_target)

    def _derived_forms(
        self, q_prev_target: np.ndarray, pose_now: tuple[np.ndarray, np.ndarray]
    ) -> dict[str, np.ndarray]:
        c = self.config
        pos_t, quat_t = self.forward_kinematics(self._q_target)
        lin = (pos_t - pose_now[0]) / self.dt / c.max_linear_speed
        ang = quat_error(quat_t, pose_now[1]) / self.dt / c.max_angular_speed
        return {
            "joint_position": self._q_target.copy(),
            "joint_velocity": (self._q_target - q_prev_target) / self.dt,
            "cartesian_position": np.concatenate([pos_t, quat_t]),
            "cartesian_velocity": np.clip(np.concatenate([lin, ang]), -1.0, 1.0),
        }


# ---------------------------------------------------------------------- helpers
def _check_space(space: str) -> None:
    if space not in ACTION_DIMS:
        raise ValueError(f"unknown action space {space!r}; expected one of {tuple(ACTION_DIMS)}")


def _canonical(quat: np.ndarray) -> np.ndarray:
    q = quat / np.linalg.norm(quat)
    return -q if q[0] < 0 else q


def _normalise_quat(quat: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(quat)
    if n < 1e-9:
        raise ValueError(f"cartesian_position quaternion must be non-zero (wxyz), got {quat.tolist()}")
    return _canonical(quat / n)


def quat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector (world/base frame) taking `current` to `target`."""
    err = np.zeros(3)
    conj = np.array([current[0], -current[1], -current[2], -current[3]])
    diff = np.zeros(4)
    mujoco.mju_mulQuat(diff, target, conj)
    mujoco.mju_quat2Vel(err, _canonical(diff), 1.0)
    return err


def _integrate_quat(quat: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """Rotate `quat` by the base-frame rotation vector `rotvec`."""
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return quat.copy()
    dq = np.zeros(4)
    mujoco.mju_axisAngle2Quat(dq, rotvec / angle, angle)
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, dq, quat)
    return _canonical(out)


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    n = np.linalg.norm(v)
    return v * (limit / n) if n > limit else v
