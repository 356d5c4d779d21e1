"""Meta-World v3 tasks behind robolearn's shared observation/action interface.

`MetaWorldEnv` wraps one of Meta-World's 50 v3 tasks (metaworld 3.1.1 on current MuJoCo through
`robolearn.envs.metaworld_compat`) as a gymnasium.Env with render_mode "rgb_array":

- observation: ``{"images": {camera: (H, W, 3) uint8, upright}, "proprio": hand xyz + gripper (4,) float32,
  "language": the task instruction, "state": the full 39-d Meta-World observation (privileged_state only)}``.
  "images" is omitted when there are no cameras.
- action: Box(-1, 1, (4,), float32), Meta-World's native hand xyz delta + gripper effort. Values outside
  [-1, 1] are clipped; a wrong shape or NaN/inf raises ValueError.
- step info: "success" (bool), "task", "steps", "mujoco_version" and Meta-World's reward terms.
  terminated=True on success when
  `terminate_on_success`; truncated=True once `max_steps` steps were taken. The reset info also carries
  "versions" (mujoco/metaworld/gymnasium versions and whether the compat shim is active).
- reset(seed=s) is reproducible down to the pixels. With `random_init` (default) every reset samples fresh
  object/goal positions from the env's seeded generator; otherwise it picks one of MT1's 50 fixed variants.

Cameras whose image "up" axis points down in the world (Meta-World's ``corner*`` cameras) are rotated by 180°
so images are upright. Shadows and multisampling are off by default (8-30x faster software rendering).
`expert_action()` runs Meta-World's scripted policy for the task, with optional Gaussian action noise.

step() after the episode ended (terminated or truncated) raises RuntimeError: call reset(). reset's `options`
are ignored. Vector envs: an EGL context does not survive fork, so a process forked after its parent rendered
raises RuntimeError on its first render; use AsyncVectorEnv(..., context="spawn", shared_memory=False) (the Text
language space cannot live in shared memory).
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from robolearn.config import opt
from robolearn.envs import metaworld_compat
from robolearn.envs.interface import LANGUAGE_CHARSET, MAX_INSTRUCTION, new_renderer

__all__ = [
    "ENV_ID",
    "LANGUAGE_CHARSET",
    "PROTOCOL_TASKS",
    "MetaWorldConfig",
    "MetaWorldEnv",
    "RenderQuality",
    "list_tasks",
    "register_metaworld",
    "resolve_task",
    "task_instruction",
]
ENV_ID = "robolearn/MetaWorld-v0"
PROTOCOL_TASKS = ("assembly-v3", "bin-picking-v3", "button-press-topdown-v3", "drawer-open-v3", "hammer-v3")
PROPRIO_DIM = 4  # hand xyz + gripper opening = Meta-World obs[:4]
STATE_DIM = 39
ACTION_DIM = 4
DEFAULT_CAMERA = "corner"

# Instructions for the R3M/Voltron protocol tasks and for names the generic rule below reads badly.
_INSTRUCTIONS = {
    "assembly": "put the nut onto the peg",
    "bin-picking": "move the puck from one bin to the other",
    "button-press-topdown": "press the button from the top",
    "drawer-open": "open the drawer",
    "hammer": "hammer the nail into the wall",
    "basketball": "put the ball into the hoop",
    "coffee-button": "press the button on the coffee machine",
    "coffee-pull": "pull the mug away from the coffee machine",
    "coffee-push": "push the mug under the coffee machine",
    "disassemble": "take the nut off the peg",
    "hand-insert": "move the hand into the hole",
    "pick-out-of-hole": "pick the peg out of the hole",
    "pick-place": "pick up the puck and place it at the goal",
    "pick-place-wall": "pick up the puck and place it behind the wall",
    "push": "push the puck to the goal",
    "push-back": "push the puck back to the goal",
    "push-wall": "push the puck around the wall to the goal",
    "reach": "reach the goal",
    "reach-wall": "reach the goal behind the wall",
    "shelf-place": "place the puck on the shelf",
    "soccer": "kick the ball into the goal",
    "stick-pull": "pull the thermos with the stick",
    "stick-push": "push the thermos with the stick",
    "sweep": "sweep the puck off the table",
    "sweep-into": "sweep the puck into the hole",
}
_VERBS = ("open", "close", "press", "pull", "push", "lock", "unlock", "turn", "insert", "unplug", "slide")
_MODIFIERS = {"topdown": "from the top", "side": "from the side", "wall": "past the wall", "back": "back"}


@dataclass
class RenderQuality:
    """Scene render quality; both off by default (software rendering is 8-30x faster without them)."""

    shadows: bool = opt(False, help="render shadows (the scene's own shadow map size)")
    multisampling: bool = opt(False, help="multisample anti-aliasing (the scene's own sample count)")


@dataclass
class MetaWorldConfig:
    """One Meta-World v3 task as a robolearn env."""

    task: str = opt(help="Meta-World v3 task, e.g. drawer-open-v3 (the -v3 suffix is optional)")
    cameras: tuple[str, ...] = opt((DEFAULT_CAMERA,), help="cameras in the observation (none: state only)")
    image_size: tuple[int, int] = opt((128, 128), help="image height and width in pixels")
    max_steps: int = opt(500, help="steps before truncation (Meta-World's max_path_length is 500)")
    terminate_on_success: bool = opt(True, help="end the episode (terminated=True) at the first success")
    privileged_state: bool = opt(False, help="add the full 39-d Meta-World observation as 'state'")
    render_quality: RenderQuality = field(default_factory=RenderQuality)
    random_init: bool = opt(True, help="fresh random object/goal positions each reset (else MT1's 50 variants)")
    render_camera: str | None = opt(None, help="camera for render() (default: the first camera, else corner)")
    mt1_seed: int = opt(0, help="seed that generates MT1's 50 fixed variants (random_init off)")

    def __post_init__(self) -> None:
        self.task = resolve_task(self.task)
        if isinstance(self.cameras, str):
            self.cameras = (self.cameras,)
        self.cameras = tuple(self.cameras)
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be distinct, got {self.cameras}")
        self.image_size = _check_image_size(self.image_size)
        if not _is_int(self.max_steps) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a positive integer, got {self.max_steps!r}")
        if not _is_int(self.mt1_seed):
            raise ValueError(f"mt1_seed must be an integer, got {self.mt1_seed!r}")
        if isinstance(self.render_quality, dict):
            self.render_quality = RenderQuality(**self.render_quality)
        if not isinstance(self.render_quality, RenderQuality):
            raise ValueError(
                f"render_quality must be a RenderQuality or a dict of its fields, got {self.render_quality!r}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_image_size(size: Any) -> tuple[int, int]:
    if _is_int(size):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_is_int(v) and v > 0 for v in size):
        raise ValueError(f"image_size must be (height, width) in positive pixels, got {size!r}")
    return int(size[0]), int(size[1])


def _env_classes() -> dict[str, type]:
    """Meta-World's v3 env classes by task name (shim applied before any env is built)."""
    metaworld_compat.apply()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return dict(ALL_V3_ENVIRONMENTS)


def list_tasks() -> list[str]:
    """Names of all 50 Meta-World v3 tasks, e.g. 'drawer-open-v3'."""
    return list(_env_classes())


def resolve_task(name: Any) -> str:
    """Canonical task name ('drawer-open' -> 'drawer-open-v3'); ValueError with close matches if unknown."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"task must be a Meta-World task name such as 'drawer-open-v3', got {name!r}")
    tasks = list_tasks()
    key = name.strip().lower()
    for candidate in (key, f"{key}-v3"):
        if candidate in tasks:
            return candidate
    guess = key if key.endswith("-v3") else f"{key}-v3"
    close = difflib.get_close_matches(guess, tasks, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown Meta-World task {name!r}.{hint} robolearn.envs.metaworld.list_tasks() lists all {len(tasks)} tasks."
    )


def task_instruction(task: str) -> str:
    """A short natural-language instruction for a task, e.g. 'drawer-open-v3' -> 'open the drawer'."""
    base = resolve_task(task).removesuffix("-v3")
    if base in _INSTRUCTIONS:
        return _INSTRUCTIONS[base]
    words = base.split("-")
    verb_at = next((i for i, w in enumerate(words) if w in _VERBS), None)
    if not verb_at:  # no verb, or no object before it
        return f"do the {' '.join(words)} task"
    rest = [_MODIFIERS.get(w, w) for w in words[verb_at + 1 :]]
    return " ".join([words[verb_at], "the", *words[:verb_at], *rest])


def _camera_upside_down(data: mujoco.MjData, camera_id: int) -> bool:
    """True when the camera's image-up axis points downward in the world (its image is upside down)."""
    up_world = data.cam_xmat[camera_id].reshape(3, 3)[:, 1]  # camera frame y axis = image up
    return bool(up_world[2] < 0.0)


class MetaWorldEnv(gym.Env):
    """A Meta-World v3 task with robolearn's observation/action interface (see the module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self, config: MetaWorldConfig | None = None, render_mode: str | None = "rgb_array", **overrides: Any
    ) -> None:
        self.config = _make_config(config, overrides)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.render_mode = render_mode
        cfg = self.config
        self.task = cfg.task
        self.instruction = task_instruction(cfg.task)
        self._versions = metaworld_compat.versions()
        height, width = cfg.image_size
        self._raw = _env_classes()[cfg.task](width=width, height=height)
        self._raw.max_path_length = cfg.max_steps
        self._set_render_quality(cfg.render_quality)
        self._mt1_tasks = self._setup_task_sampling()
        self.metadata = {**type(self).metadata, "render_fps": int(round(1.0 / self._raw.dt))}

        self.render_camera = cfg.render_camera or (cfg.cameras[0] if cfg.cameras else DEFAULT_CAMERA)
        self._check_cameras((*cfg.cameras, self.render_camera))
        mujoco.mj_forward(self.model, self.data)
        names = [self.model.camera(i).name for i in range(self.model.ncam)]
        self.flipped_cameras = frozenset(name for i, name in enumerate(names) if _camera_upside_down(self.data, i))

        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.observation_space = self._build_observation_space()
        self._policy: Any = None
        self._renderer: mujoco.Renderer | None = None
        self._raw_obs: np.ndarray | None = None
        self._images: dict[str, np.ndarray] = {}
        self._steps = 0
        self._episode_over = True
        self._expert_rng = np.random.default_rng(0)

    # --- construction helpers -----------------------------------------------------------------------------
    @property
    def model(self) -> mujoco.MjModel:
        """The MuJoCo model of the underlying Meta-World env."""
        return self._raw.model

    @property
    def data(self) -> mujoco.MjData:
        """The MuJoCo data of the underlying Meta-World env."""
        return self._raw.data

    def _check_cameras(self, cameras: tuple[str, ...]) -> None:
        names = [self.model.camera(i).name for i in range(self.model.ncam)]
        unknown = [cam for cam in cameras if cam not in names]
        if unknown:
            self._raw.close()
            raise ValueError(f"unknown camera {unknown[0]!r} for {self.task}; available: {names}")

    def _set_render_quality(self, quality: RenderQuality) -> None:
        # Must happen before the first rendering context is created (contexts read these at creation).
        vis = self.model.vis.quality
        if not quality.shadows:
            vis.shadowsize = 0
        if not quality.multisampling:
            vis.offsamples = 0

    def _setup_task_sampling(self) -> list[Any]:
        """Random init: Meta-World's raw-env flags (private API, metaworld 3.1.1). Else: MT1's fixed variants."""
        raw = self._raw
        if not self.config.random_init:
            import metaworld

            return list(metaworld.MT1(self.config.task, seed=self.config.mt1_seed).train_tasks)
        raw._partially_observable = False  # goal in the observation (the scripted experts need it)
        raw.__dict__.pop("sawyer_observation_space", None)  # cached property: recompute for the new flag
        raw._freeze_rand_vec = False
        raw.seeded_rand_vec = True  # sample positions from raw.np_random, which reset() seeds
        raw._set_task_called = True
        return []

    def _build_observation_space(self) -> spaces.Dict:
        height, width = self.config.image_size
        obs: dict[str, spaces.Space] = {}
        if self.config.cameras:
            obs["images"] = spaces.Dict(
                {cam: spaces.Box(0, 255, (height, width, 3), np.uint8) for cam in self.config.cameras}
            )
        obs["proprio"] = spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32)
        obs["language"] = spaces.Text(max_length=MAX_INSTRUCTION, charset=LANGUAGE_CHARSET)
        if self.config.privileged_state:
            obs["state"] = spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float64)
        return spaces.Dict(obs)

    # --- gymnasium API ------------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self._raw.seed(int(self.np_random.integers(2**31 - 1)))
        self._expert_rng = np.random.default_rng(int(self.np_random.integers(2**63 - 1)))
        info: dict[str, Any] = {
            "success": False,
            "task": self.task,
            "steps": 0,
            "mujoco_version": mujoco.__version__,
            "versions": dict(self._versions),
        }
        if self._mt1_tasks:
            variant = int(self.np_random.integers(len(self._mt1_tasks)))
            self._raw.set_task(self._mt1_tasks[variant])
            info["variant"] = variant
        raw_obs, _ = self._raw.reset()
        self._steps = 0
        self._episode_over = False
        return self._observe(raw_obs), info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._episode_over:
            raise RuntimeError("the episode is over (or never started): call reset() before step()")
        act = self._check_action(action)
        raw_obs, reward, _, _, raw_info = self._raw.step(act)
        self._steps += 1
        success = bool(raw_info.get("success", False))
        terminated = success and self.config.terminate_on_success
        truncated = self._steps >= self.config.max_steps
        self._episode_over = terminated or truncated
        info = {key: float(value) for key, value in raw_info.items() if key != "success"}
        info.update(success=success, task=self.task, steps=self._steps, mujoco_version=mujoco.__version__)
        return self._observe(raw_obs), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The render camera's current image, (H, W, 3) uint8, upright."""
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; create the env with render_mode='rgb_array'")
            return None
        cached = self._images.get(self.render_camera)
        return cached.copy() if cached is not None else self._render(self.render_camera)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        if getattr(self, "_raw", None) is not None:
            self._raw.close()
        super().close()

    # --- robolearn extras ---------------------------------------------------------------------------------
    def expert_action(self, noise_std: float = 0.0) -> np.ndarray:
        """Meta-World's scripted action for the current state, plus N(0, noise_std²) noise, clipped to [-1, 1].

        The noise comes from a generator seeded by reset(), so noisy demos are reproducible per seed.
        """
        if self._raw_obs is None:
            raise RuntimeError("call reset() before expert_action()")
        if not np.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        if self._policy is None:
            from metaworld.policies import ENV_POLICY_MAP

            self._policy = ENV_POLICY_MAP[self.task]()
        with warnings.catch_warnings():  # the policies warn whenever their gains saturate the action
            warnings.simplefilter("ignore")
            action = np.asarray(self._policy.get_action(self._raw_obs), dtype=np.float64)
        if noise_std > 0:
            action = action + self._expert_rng.normal(0.0, noise_std, ACTION_DIM)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def info_versions(self) -> dict[str, Any]:
        """mujoco/metaworld/gymnasium versions and whether the compat shim is active (also in reset info)."""
        return dict(self._versions)

    # --- internals ----------------------------------------------------------------------------------------
    def _check_action(self, action: Any) -> np.ndarray:
        try:
            act = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action must be {ACTION_DIM} numbers (hand dx, dy, dz, gripper), got {action!r}") from exc
        if act.shape != (ACTION_DIM,):
            raise ValueError(
                f"action must have shape ({ACTION_DIM},) (hand dx, dy, dz, gripper), got shape {act.shape}"
            )
        if not np.all(np.isfinite(act)):
            raise ValueError(f"action contains NaN or inf: {act}")
        return np.clip(act, -1.0, 1.0)  # documented: out-of-range values are clipped

    def _observe(self, raw_obs: np.ndarray) -> dict[str, Any]:
        self._raw_obs = np.array(raw_obs, dtype=np.float64)
        self._images = {cam: self._render(cam) for cam in self.config.cameras}
        obs: dict[str, Any] = {}
        if self.config.cameras:
            obs["images"] = {cam: img.copy() for cam, img in self._images.items()}
        obs["proprio"] = self._raw_obs[:PROPRIO_DIM].astype(np.float32)
        obs["language"] = self.instruction
        if self.config.privileged_state:
            obs["state"] = self._raw_obs.copy()
        return obs

    def _render(self, camera: str) -> np.ndarray:
        if self._renderer is None:
            height, width = self.config.image_size
            self._renderer = new_renderer(self.model, height, width)
        self._renderer.update_scene(self.data, camera=camera)
        image = self._renderer.render()
        if camera in self.flipped_cameras:
            image = image[::-1, ::-1]  # rotate 180° to make it upright
        return np.ascontiguousarray(image, dtype=np.uint8)


def _make_config(config: MetaWorldConfig | None, overrides: dict[str, Any]) -> MetaWorldConfig:
    names = {f.name for f in dataclasses.fields(MetaWorldConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown MetaWorldConfig field(s) {unknown}; valid fields: {sorted(names)}")
    if config is None:
        if "task" not in overrides:
            raise ValueError(
                "MetaWorldEnv needs a task, e.g. MetaWorldEnv(task='drawer-open-v3'); "
                "robolearn.envs.metaworld.list_tasks() lists all tasks"
            )
        return MetaWorldConfig(**overrides)
    if not isinstance(config, MetaWorldConfig):
        raise ValueError(f"config must be a MetaWorldConfig, got {type(config).__name__}")
    return dataclasses.replace(config, **overrides) if overrides else config


def register_metaworld() -> None:
    """Register gymnasium id "robolearn/MetaWorld-v0" (kwargs: task=..., plus MetaWorldConfig fields); idempotent."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="robolearn.envs.metaworld:MetaWorldEnv")
