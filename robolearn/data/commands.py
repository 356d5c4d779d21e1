"""`robolearn data ...`: the dataset toolkit's commands. Each module registers its own with @command;
importing them here builds the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robolearn.config import command, opt, positional, save_config
from robolearn.data import browser, catalog, repair, robomimic, stats, toolkit, validate, video  # noqa: F401 (registers commands)
from robolearn.data.synthetic import SyntheticConfig, make_dataset


@dataclass
class SynthCommand:
    out: Path = positional(help="output dataset folder")
    episodes: int = opt(8, help="number of episodes")
    steps: int = opt(40, help="steps per episode")
    size: int = opt(128, help="image side in pixels")
    cameras: list[str] = opt(default_factory=lambda: ["wrist", "exterior_1"], help="camera names")
    depth: bool = opt(False, help="also store depth")
    encoding: str = opt("jpeg", help="jpeg | png")
    households: int = opt(2, help="households")
    scenes_per_household: int = opt(2, help="scenes per household")
    seed: int = opt(0, help="random seed")


@command("data", "synth")
def synth(cfg: SynthCommand) -> int:
    """Write a synthetic dataset (for trying the toolkit, tests and benchmarks)."""
    paths = make_dataset(cfg.out, SyntheticConfig(
        num_episodes=cfg.episodes, steps=cfg.steps, size=cfg.size, cameras=tuple(cfg.cameras), depth=cfg.depth,
        encoding=cfg.encoding, households=cfg.households, scenes_per_household=cfg.scenes_per_household,
        seed=cfg.seed))
    save_config(cfg, cfg.out, "synth")
    print(f"wrote {len(paths)} episodes to {cfg.out}")
    return 0
