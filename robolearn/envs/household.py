"""Household tasks as gymnasium environments.

`HouseholdEnv(task=..., ...)` (or `gymnasium.make("robolearn/<Task>-v0")`) gives:
- observation: Dict{"images": Dict{camera: (H, W, 3) uint8}, "proprio": (15,) float32 = joint positions (7),
  tool position (3), tool quaternion wxyz (4), gripper (1); "language": the episode's instruction;
  "state" (only with privileged_state=True): proprio + joint velocities + the task's object state}.
- action: Box in the configured action space (default cartesian_velocity: 6 values in [-1, 1] + gripper in
  [0, 1]). Values outside the box are clipped (documented); a wrong shape or NaN/inf raises ValueError.
- reward: dense staged progress in [0, 1] (reward="dense") or 1.0 at success (reward="sparse");
  terminated at success (terminate_on_success), truncated at the task's step limit.
- info: success, task, steps, household, scene, instruction, action_forms (every action form applied, keyed
  like the episode format's action fields) and mujoco_version.

Scenes: a fixed (household, scene) or, by default, one of the default grid drawn per reset from the seed (or
chosen with reset(options={"household": h, "scene": s})). Compiled scenes are cached per env.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from robolearn.envs.interface import LANGUAGE_CHARSET, MAX_INSTRUCTION, new_renderer
from robolearn.envs.robot import ACTION_DIMS, FINGER_JOINTS, HOME_QPOS, ControllerConfig, SimArm, quat_error
from robolearn.envs.scenes import CAMERAS, RenderQuality, SceneParams, build_scene, default_scenes, scene_params
from robolearn.envs.tasks import TASKS, Task, get_task

PROPRIO_DIM = 15
# Cartesian-position action bounds (base frame, metres): generous around the reachable workspace.
WORKSPACE_LOW = np.array([0.0, -0.7, -0.3])
WORKSPACE_HIGH = np.array([0.95, 0.7, 0.9])


@dataclass
class HouseholdConfig:
    """Everything that defines a household env (saved with every result that uses one)."""

    task: str = "press-button"
    household: int | None = None  # None with scene None: draw from `scenes` per reset
    scene: int | None = None
    scene_seed: int = 0
    scenes: list[tuple[int, int]] = field(default_factory=default_scenes)
    cameras: tuple[str, ...] = CAMERAS
    image_size: tuple[int, int] = (128, 128)  # (H, W)
    action_space: str = "cartesian_velocity"
    control_hz: float = 15.0
    max_steps: int | None = None  # None: the task's step limit
    reward: str = "dense"  # dense | sparse
    terminate_on_success: bool = True
    privileged_state: bool = False
    instruction: str | None = None  # fixed instruction; None samples a paraphrase per episode
    shadows: bool = False
    multisampling: bool = False
    render_camera: str | None = None  # camera for render(); default: the first camera (or exterior_1)
    init_joint_noise: float = 0.02  # rad, per joint, on the home posture at reset

    def validate(self) -> None:
        get_task(self.task)  # raises for unknown tasks
        if self.action_space not in ACTION_DIMS:
            raise ValueError(f"unknown action_space {self.action_space!r}; expected one of {tuple(ACTION_DIMS)}")
        if self.reward not in ("dense", "sparse"):
            raise ValueError(f"reward must be 'dense' or 'sparse', got {self.reward!r}")
        bad = [c for c in self.cameras if c not in CAMERAS]
        if bad:
            raise ValueError(f"unknown camera(s) {bad}; household scenes have {CAMERAS}")
        if len(self.image_size) != 2 or min(self.image_size) < 8 or max(self.image_size) > 2048:
            raise ValueError(f"image_size must be (H, W) between 8 and 2048, got {self.image_size}")
        if (self.household is None) != (self.scene is None):
            raise ValueError("set both household and scene, or neither (then scenes are drawn per reset)")
        if self.household is None and not self.scenes:
            raise ValueError("scenes is empty: give at least one (household, scene) pair")


class HouseholdSim:
    """One compiled scene + task: model, data, arm controller, renderer (created on first render)."""

    def __init__(self, task: Task, scene: SceneParams, config: HouseholdConfig) -> None:
        h, w = config.image_size
        quality = RenderQuality(config.shadows, config.multisampling, max(640, w), max(480, h))
        spec = build_scene(scene, quality)
        task.build(spec, scene)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.arm = SimArm(self.model, self.data, ControllerConfig(control_hz=config.control_hz))
        self.task = task
        self.scene = scene
        self.table_z = scene.table_z
        task.bind(self.model)
        m = self.model
        self._finger_bodies = [m.body(f"arm7_{n}").id for n in FINGER_JOINTS]
        self._arm_bodies = {i for i in range(m.nbody) if m.body(i).name.startswith("arm7_")}
        self._tool = m.site("tool").id
        self._renderer: mujoco.Renderer | None = None
        self._size = (h, w)

    def tool_pos(self) -> np.ndarray:
        return self.data.site_xpos[self._tool].copy()

    def body_pos(self, body_id: int) -> np.ndarray:
        return self.data.xpos[body_id].copy()

    def touching(self, body_id: int) -> set[int]:
        """Bodies in contact with `body_id`."""
        d = self.data
        if d.ncon == 0:
            return set()
        bodies = self.model.geom_bodyid[d.contact.geom[: d.ncon]]  # (ncon, 2)
        return {int(b) for b in bodies[bodies[:, 0] == body_id, 1]} | {
            int(b) for b in bodies[bodies[:, 1] == body_id, 0]
        }

    def grasped(self, body_id: int) -> bool:
        """Both fingers touch the body."""
        t = self.touching(body_id)
        return all(f in t for f in self._finger_bodies)

    def arm_touching(self, body_id: int) -> bool:
        return bool(self.touching(body_id) & self._arm_bodies)

    def render(self, camera: str) -> np.ndarray:
        if self._renderer is None:
            self._renderer = new_renderer(self.model, *self._size)
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class HouseholdEnv(gym.Env):
    """See the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(
        self, config: HouseholdConfig | None = None, render_mode: str | None = "rgb_array", **overrides
    ) -> None:
        cfg = config or HouseholdConfig()
        if overrides:
            known = {f.name for f in fields(HouseholdConfig)}
            unknown = sorted(set(overrides) - known)
            if unknown:
                raise TypeError(
                    f"unknown HouseholdEnv option(s) {unknown}; expected HouseholdConfig fields {sorted(known)}"
                )
            cfg = HouseholdConfig(**{**cfg.__dict__, **overrides})
        cfg.cameras = tuple(cfg.cameras)
        cfg.image_size = tuple(int(v) for v in cfg.image_size)  # type: ignore[assignment]
        cfg.scenes = [tuple(s) for s in cfg.scenes]  # type: ignore[misc]
        cfg.validate()
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.config = cfg
        self.render_mode = render_mode
        self.task_cls = get_task(cfg.task)
        self.max_steps = cfg.max_steps or self.task_cls.max_steps
        self._sims: dict[tuple[int, int, int], HouseholdSim] = {}
        self.sim = self._get_sim(*self._first_scene())
        self.observation_space = self._make_observation_space()
        self.action_space = self._make_action_space()
        self._steps = 0
        self._episode = 0
        self.instruction = ""

    # ------------------------------------------------------------------ spaces
    def _first_scene(self) -> tuple[int, int]:
        c = self.config
        return (c.household, c.scene) if c.household is not None else c.scenes[0]  # type: ignore[return-value]

    def _make_observation_space(self) -> spaces.Dict:
        h, w = self.config.image_size
        obs: dict[str, spaces.Space] = {}
        if self.config.cameras:
            obs["images"] = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in self.config.cameras})
        obs["proprio"] = spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)
        obs["language"] = spaces.Text(max_length=MAX_INSTRUCTION, charset=LANGUAGE_CHARSET)
        if self.config.privileged_state:
            n = PROPRIO_DIM + 7 + len(self.sim.task.object_state(self.sim))
            obs["state"] = spaces.Box(-np.inf, np.inf, (n,), np.float64)
        return spaces.Dict(obs)

    def _make_action_space(self) -> spaces.Box:
        space, arm = self.config.action_space, self.sim.arm
        if space == "cartesian_velocity":
            low, high = -np.ones(6), np.ones(6)
        elif space == "cartesian_position":
            low = np.concatenate([WORKSPACE_LOW, -np.ones(4)])
            high = np.concatenate([WORKSPACE_HIGH, np.ones(4)])
        elif space == "joint_position":
            low, high = arm.joint_lower, arm.joint_upper
        else:
            v = arm.config.max_joint_speed
            low, high = -np.full(7, v), np.full(7, v)
        return spaces.Box(
            np.append(low, 0.0).astype(np.float32), np.append(high, 1.0).astype(np.float32), dtype=np.float32
        )

    # ------------------------------------------------------------------ scenes
    def _get_sim(self, household: int, scene: int) -> HouseholdSim:
        key = (int(household), int(scene), self.config.scene_seed)
        if key not in self._sims:
            self._sims[key] = HouseholdSim(self.task_cls(), scene_params(*key), self.config)
        return self._sims[key]

    def _pick_scene(self, options: dict | None) -> tuple[int, int]:
        if options and ("household" in options or "scene" in options):
            if "household" not in options or "scene" not in options:
                raise ValueError("reset options must give both 'household' and 'scene'")
            return int(options["household"]), int(options["scene"])
        if self.config.household is not None:
            return self._first_scene()
        scenes = self.config.scenes
        return scenes[int(self.np_random.integers(len(scenes)))]

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        household, scene = self._pick_scene(options)
        self.sim = self._get_sim(household, scene)
        sim, cfg = self.sim, self.config
        mujoco.mj_resetData(sim.model, sim.data)
        noise = rng.normal(0.0, cfg.init_joint_noise, 7) if cfg.init_joint_noise > 0 else 0.0
        sim.arm.reset(HOME_QPOS + noise)
        sim.task.reset(sim, rng)
        mujoco.mj_forward(sim.model, sim.data)
        for _ in range(10):  # let objects settle on their supports with the arm holding still
            mujoco.mj_step(sim.model, sim.data, nstep=sim.arm.substeps)
        sim.arm.reset(sim.arm.joint_positions)  # controller targets = settled state, velocities zero
        given = (options or {}).get("instruction") or cfg.instruction
        self.instruction = str(given) if given else str(rng.choice(self.task_cls.instructions))
        self._check_instruction(self.instruction)
        sim.task.set_instruction(self.instruction)
        self._steps = 0
        self._episode += 1
        return self._observation(), self._info(success=False)

    def step(self, action):
        a = self._check_action(action)
        forms = self.sim.arm.step(a, self.config.action_space)
        if not np.all(np.isfinite(self.sim.data.qpos)):
            raise RuntimeError(
                f"simulation became unstable (non-finite state) in task {self.config.task!r} after action {a.tolist()}"
            )
        self._steps += 1
        self.sim.task.on_step(self.sim, self._steps)
        success = bool(self.sim.task.success(self.sim))
        reward = (
            1.0 if success else (0.0 if self.config.reward == "sparse" else float(self.sim.task.progress(self.sim)))
        )
        terminated = success and self.config.terminate_on_success
        truncated = self._steps >= self.max_steps and not terminated
        info = self._info(success=success)
        info["action_forms"] = forms
        return self._observation(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        cam = self.config.render_camera or (self.config.cameras[0] if self.config.cameras else "exterior_1")
        return self.sim.render(cam)

    def close(self) -> None:
        for sim in self._sims.values():
            sim.close()

    # ------------------------------------------------------------------ helpers
    @property
    def steps(self) -> int:
        return self._steps

    @property
    def episode(self) -> int:
        """Number of resets so far (experts use it to notice a new episode)."""
        return self._episode

    def robot_state(self) -> dict[str, np.ndarray]:
        """The robot state keyed like the episode format's state fields (for recording)."""
        return self.sim.arm.state()

    def _observation(self) -> dict:
        sim, arm = self.sim, self.sim.arm
        pos, quat = arm.ee_pose()
        proprio = np.concatenate([arm.joint_positions, pos, quat, [arm.gripper_position]]).astype(np.float32)
        obs: dict = {}
        if self.config.cameras:
            obs["images"] = {c: sim.render(c) for c in self.config.cameras}
        obs["proprio"] = proprio
        obs["language"] = self.instruction
        if self.config.privileged_state:
            obs["state"] = np.concatenate([proprio, arm.joint_velocities, sim.task.object_state(sim)])
        return obs

    def _info(self, success: bool) -> dict:
        return {
            "success": success,
            "task": self.config.task,
            "steps": self._steps,
            "household": self.sim.scene.household,
            "scene": self.sim.scene.scene,
            "instruction": self.instruction,
            "mujoco_version": mujoco.__version__,
        }

    def _check_action(self, action) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        n = self.action_space.shape[0]
        if a.shape != (n,):
            raise ValueError(
                f"action must have shape ({n},) for action space {self.config.action_space!r} "
                f"(arm values + gripper), got shape {a.shape}"
            )
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains NaN or inf: {a.tolist()}")
        return np.clip(a, self.action_space.low, self.action_space.high)

    @staticmethod
    def _check_instruction(text: str) -> None:
        bad = sorted(set(text) - set(LANGUAGE_CHARSET))
        if bad or len(text) > MAX_INSTRUCTION:
            raise ValueError(
                f"instruction {text!r} must be at most {MAX_INSTRUCTION} characters from "
                f"LANGUAGE_CHARSET; offending characters: {bad}"
            )

    # ------------------------------------------------------------------ expert support
    def action_towards(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> np.ndarray:
        """The action (in the configured action space) that moves the tool towards pose (pos, quat)."""
        arm, space = self.sim.arm, self.config.action_space
        base_pos, base_mat = self.sim.data.xpos[arm._base], self.sim.data.xmat[arm._base].reshape(3, 3)
        p_goal = base_mat.T @ (np.asarray(pos) - base_pos)
        q_goal = quat  # the base is not rotated in household scenes (world-aligned)
        if space == "cartesian_position":
            arm_part = np.concatenate([p_goal, q_goal])
        elif space == "cartesian_velocity":
            p_now, q_now = arm.reference_pose()
            c = arm.config
            lin = (p_goal - p_now) / (c.max_linear_speed * arm.dt)
            ang = quat_error(q_goal, q_now) / (c.max_angular_speed * arm.dt)
            lin /= max(1.0, float(np.max(np.abs(lin))))
            ang /= max(1.0, float(np.max(np.abs(ang))))
            arm_part = np.concatenate([lin, ang])
        else:
            q_now = arm.joint_positions
            # Move along a straight line: IK towards a point at most one step of max speed away.
            p_now, q_rot = arm.ee_pose()
            step = arm.config.max_linear_speed * arm.dt
            d = p_goal - p_now
            p_t = p_now + d * min(1.0, step / max(float(np.linalg.norm(d)), 1e-9))
            q_ik = arm.solve_ik(p_t, q_goal, q_now)
            arm_part = q_ik if space == "joint_position" else (q_ik - q_now) / arm.dt
        return np.clip(np.append(arm_part, gripper), self.action_space.low, self.action_space.high).astype(np.float32)


def task_names() -> list[str]:
    return sorted(TASKS)
