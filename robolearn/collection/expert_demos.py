"""Expert demonstrations recorded through the real station (sim robot, sim cameras, crash-safe writer).

`record_expert_demos(out, task, scenes, ...)` runs `robolearn collect --robot sim --device expert` once per
(household, scene) into `out/household_<h>_scene_<s>/`, so the demos are exactly what a teleoperated
collection session writes. Used by the evaluation protocol and the demo.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from robolearn.collection.commands import CollectCommand, collect
from robolearn.collection.station import StationConfig
from robolearn.data.reader import list_episodes


def record_expert_demos(out: str | Path, task: str, scenes: list[tuple[int, int]], episodes_per_scene: int,
                        cameras: tuple[str, ...] = ("exterior_1", "wrist"), size: int = 96, noise: float = 0.0,
                        seed: int = 0, lab: str = "sim_lab", operator: str = "expert") -> list[Path]:
    """Record `episodes_per_scene` expert episodes in each scene; returns the episode files written."""
    if episodes_per_scene < 1:
        raise ValueError(f"episodes_per_scene must be >= 1, got {episodes_per_scene}")
    out = Path(out)
    for i, (h, s) in enumerate(scenes):
        folder = out / f"household_{h}_scene_{s}"
        station = StationConfig(lab=lab, operator=operator, realtime=False, scene_check_every=0)
        cfg = CollectCommand(robot="sim", task=task, device="expert", episodes=episodes_per_scene, out=folder,
                             cameras=list(cameras), camera_width=size, camera_height=size, household_id=h,
                             scene_id=s, expert_noise=noise, expert_seed=seed * 1000 + i, station=replace(station))
        rc = collect(cfg)
        if rc:
            raise RuntimeError(f"expert collection failed in household {h} scene {s} (exit {rc})")
    return list_episodes(out)
