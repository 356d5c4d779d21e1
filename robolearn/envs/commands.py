"""`robolearn envs ...`: list tasks, render the scene grid. (`robolearn envs check-experts` reports Wilson
intervals, an eval number, so robolearn/eval/commands.py registers it.)"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from robolearn.config import command, opt
from robolearn.envs.household import HouseholdEnv
from robolearn.envs.registry import gym_id
from robolearn.envs.scenes import CAMERAS, DEFAULT_HOUSEHOLDS, DEFAULT_SCENES_PER_HOUSEHOLD
from robolearn.envs.tasks import TASKS


@dataclass
class ListCommand:
    metaworld: bool = opt(False, help="also list the Meta-World tasks")


@command("envs", "list")
def list_envs(cfg: ListCommand) -> int:
    """List the household tasks (gymnasium id, step limit, instructions) and optionally Meta-World's."""
    for name, task in TASKS.items():
        print(f"{name:14s} {gym_id(name):28s} max_steps={task.max_steps:<4d} e.g. {task.instructions[0]!r}")
    if cfg.metaworld:
        from robolearn.envs.metaworld import list_tasks

        names = list_tasks()
        print(f"\nmetaworld ({len(names)} tasks, make('metaworld/<task>')):")
        print("  " + ", ".join(names))
    return 0


@dataclass
class RenderScenesCommand:
    out: Path = opt(Path("scenes.png"), help="output PNG")
    households: int = opt(DEFAULT_HOUSEHOLDS, help="rows: households 0..N-1")
    scenes: int = opt(DEFAULT_SCENES_PER_HOUSEHOLD, help="columns: scenes 0..N-1")
    task: str = opt("put-in-bin", help="task whose objects appear in the scenes")
    camera: str = opt("exterior_1", help=f"one of {CAMERAS}")
    size: int = opt(160, help="cell size in pixels")
    seed: int = opt(0, help="episode seed (object placement)")
    scene_seed: int = opt(0, help="scene variant seed")


@command("envs", "render-scenes")
def render_scenes(cfg: RenderScenesCommand) -> int:
    """Write a grid picture of scenes: rows are households, columns scenes."""
    grid = render_scene_grid(cfg.households, cfg.scenes, cfg.task, cfg.camera, cfg.size, cfg.seed, cfg.scene_seed)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(cfg.out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {cfg.out}")
    print(f"wrote {cfg.out} ({cfg.households} households x {cfg.scenes} scenes, {grid.shape[1]}x{grid.shape[0]} px)")
    return 0


def render_scene_grid(
    households: int,
    scenes: int,
    task: str = "put-in-bin",
    camera: str = "exterior_1",
    size: int = 160,
    seed: int = 0,
    scene_seed: int = 0,
) -> np.ndarray:
    """(households*size, scenes*size, 3) uint8 grid of first frames, each cell labelled h/s."""
    if households < 1 or scenes < 1:
        raise ValueError(f"need at least one household and one scene, got {households} x {scenes}")
    env = HouseholdEnv(
        task=task, cameras=(camera,), image_size=(size, size), household=0, scene=0, scene_seed=scene_seed
    )
    rows = []
    try:
        for h in range(households):
            row = []
            for s in range(scenes):
                obs, _ = env.reset(seed=seed, options={"household": h, "scene": s})
                img = np.ascontiguousarray(obs["images"][camera])
                cv2.putText(img, f"h{h} s{s}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
                row.append(img)
            rows.append(np.concatenate(row, axis=1))
    finally:
        env.close()
    return np.concatenate(rows, axis=0)
