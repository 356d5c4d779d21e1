"""Synthetic episodes for tests, benchmarks and the demo: smooth joint trajectories and camera frames that
look like a coloured scene with a moving object (so JPEG sizes are realistic, not noise or flat colour)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig
from robolearn.lineage import write_card

TASKS = (
    "put the block in the bowl",
    "open the drawer",
    "close the cabinet door",
    "press the button",
    "stack the red block on the blue block",
    "put the mug on the shelf",
)


@dataclass
class SyntheticConfig:
    num_episodes: int = 8
    steps: int = 40
    cameras: tuple[str, ...] = ("wrist", "exterior_1")
    size: int = 128
    depth: bool = False
    encoding: str = "jpeg"
    quality: int = 90
    households: int = 2
    scenes_per_household: int = 2
    labs: tuple[str, ...] = ("lab_a",)
    seed: int = 0
    extra: dict = field(default_factory=dict)


def camera_specs(cfg: SyntheticConfig) -> list[CameraSpec]:
    s = cfg.size
    k = [[s * 0.9, 0.0, s / 2], [0.0, s * 0.9, s / 2], [0.0, 0.0, 1.0]]
    specs = []
    for i, name in enumerate(cfg.cameras):
        ext = np.eye(4)
        ext[:3, 3] = [0.8, 0.3 * (i - 0.5), 0.6]
        specs.append(
            CameraSpec(
                name=name,
                width=s,
                height=s,
                role="wrist" if "wrist" in name else "exterior",
                encoding=cfg.encoding,
                quality=cfg.quality,
                depth=cfg.depth,
                intrinsics=k,
                distortion=[0.0] * 5,
                extrinsics=ext.tolist(),
                mounted_on="tool" if "wrist" in name else "world",
                serial=f"SIM{i:04d}",
                calibration={"method": "simulation_ground_truth", "residual_px": 0.0},
            )
        )
    return specs


def render(t: int, steps: int, cam: int, size: int, rng_colour: np.ndarray) -> np.ndarray:
    """A floor/wall scene with a lit gradient and a disc moving along the episode."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.empty((size, size, 3), np.float32)
    floor = yy > 0.55
    for c in range(3):
        img[..., c] = np.where(floor, rng_colour[c] * (0.6 + 0.4 * yy), 200 - 80 * xx + 20 * c)
    u = 0.2 + 0.6 * t / max(steps - 1, 1)
    cx, cy = (u if cam % 2 == 0 else 1 - u), 0.65
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 < 0.01
    img[disc] = (220, 40, 40)
    img += 6 * np.sin(37 * xx + 23 * yy + cam)[..., None]  # texture
    return np.clip(img, 0, 255).astype(np.uint8)


def episode_steps(steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Smooth state/action trajectories for one episode."""
    t = np.linspace(0, 1, steps)[:, None]
    q0, q1 = rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 7)
    q = q0 + (q1 - q0) * (3 * t**2 - 2 * t**3)
    qd = np.gradient(q, axis=0) * 15
    pos = 0.4 + 0.2 * np.sin(q[:, :3])
    quat = np.tile([1.0, 0, 0, 0], (steps, 1))
    grip = (t[:, 0] > 0.5).astype(np.float64)
    vel = np.clip(np.concatenate([np.gradient(pos, axis=0) * 20, np.zeros((steps, 3))], 1), -1, 1)
    return {"q": q, "qd": qd, "pos": pos, "quat": quat, "grip": grip, "vel": vel}


def write_episode(
    path: Path, cfg: SyntheticConfig, index: int, writer_cfg: WriterConfig | None = None, success: bool | None = None
) -> Path:
    rng = np.random.default_rng(cfg.seed * 100_003 + index)
    n_scenes = cfg.households * cfg.scenes_per_household
    scene = index % n_scenes
    meta = EpisodeMeta(
        lab=cfg.labs[index % len(cfg.labs)],
        household=f"house_{scene // cfg.scenes_per_household}",
        scene_id=f"scene_{scene}",
        operator=f"operator_{index % 3}",
        robot_type="robolearn-arm7-sim",
        robot_serial="SIM-0001",
        control_hz=15.0,
        action_space="cartesian_velocity",
        teleop_device="expert",
        task=TASKS[index % len(TASKS)],
        language=[TASKS[index % len(TASKS)]],
        extra=dict(cfg.extra),
    )
    cams = camera_specs(cfg)
    colours = [rng.uniform(60, 200, 3) for _ in cams]
    tr = episode_steps(cfg.steps, rng)
    with EpisodeWriter(path, meta, cams, writer_cfg) as w:
        for t in range(cfg.steps):
            images = {c.name: render(t, cfg.steps, i, cfg.size, colours[i]) for i, c in enumerate(cams)}
            depth = {c.name: np.full((c.height, c.width), 800 + t, np.uint16) for c in cams} if cfg.depth else None
            w.add_step(
                state={
                    "joint_positions": tr["q"][t],
                    "joint_velocities": tr["qd"][t],
                    "ee_position": tr["pos"][t],
                    "ee_quaternion": tr["quat"][t],
                    "gripper_position": tr["grip"][t],
                },
                action={
                    "cartesian_velocity": tr["vel"][t],
                    "cartesian_position": np.concatenate([tr["pos"][min(t + 1, cfg.steps - 1)], tr["quat"][t]]),
                    "joint_position": tr["q"][min(t + 1, cfg.steps - 1)],
                    "joint_velocity": tr["qd"][t],
                    "gripper_position": tr["grip"][t],
                },
                images=images,
                depth=depth,
                reward=float(t == cfg.steps - 1),
                is_terminal=t == cfg.steps - 1,
            )
        w.set_outcome(bool(index % 4 != 3) if success is None else success)
    return path


def make_dataset(root: str | Path, cfg: SyntheticConfig | None = None) -> list[Path]:
    cfg = cfg or SyntheticConfig()
    root = Path(root)
    paths = [write_episode(root / f"episode_{i:06d}.h5", cfg, i) for i in range(cfg.num_episodes)]
    write_card(root, "episodes", [], cfg, {"episodes": len(paths), "steps": cfg.steps}, files=["**/*.h5"])
    return paths
