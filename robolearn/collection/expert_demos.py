"""Expert demonstrations recorded through the real station (sim robot, sim cameras, crash-safe writer).

`record_expert_demos(out, task, scenes, ...)` runs `robolearn collect --robot sim --device expert` once per
(household, scene) into `out/household_<h>_scene_<s>/`, so the demos are exactly what a teleoperated
collection session writes. Used by the evaluation protocol and the demo.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from robolearn.collection.commands import CollectCommand, collect
from robolearn.collection.station import StationConfig
from robolearn.data import schema
from robolearn.data.reader import list_episodes
from robolearn.envs.suites import METAWORLD_ROBOT
from robolearn.lineage import write_card


def record_expert_demos(
    out: str | Path,
    task: str,
    scenes: list[tuple[int, int]],
    episodes_per_scene: int,
    cameras: tuple[str, ...] = ("exterior_1", "wrist"),
    size: int = 96,
    noise: float = 0.0,
    seed: int = 0,
    lab: str = "sim_lab",
    operator: str = "expert",
) -> list[Path]:
    """Record `episodes_per_scene` expert episodes in each scene; returns the episode files written."""
    if episodes_per_scene < 1:
        raise ValueError(f"episodes_per_scene must be >= 1, got {episodes_per_scene}")
    out = Path(out)
    for i, (h, s) in enumerate(scenes):
        folder = out / f"household_{h}_scene_{s}"
        station = StationConfig(lab=lab, operator=operator, realtime=False, scene_check_every=0)
        cfg = CollectCommand(
            robot="sim",
            task=task,
            device="expert",
            episodes=episodes_per_scene,
            out=folder,
            cameras=list(cameras),
            camera_width=size,
            camera_height=size,
            household_id=h,
            scene_id=s,
            expert_noise=noise,
            expert_seed=seed * 1000 + i,
            station=replace(station),
        )
        rc = collect(cfg)
        if rc:
            raise RuntimeError(f"expert collection failed in household {h} scene {s} (exit {rc})")
    made = {"task": task, "scenes": scenes, "per_scene": episodes_per_scene, "size": size, "noise": noise, "seed": seed}
    n = len(list_episodes(out))
    sessions = [out / f"household_{h}_scene_{s}" for h, s in scenes]  # each has its `collect` card
    write_card(out, "episodes", sessions, {**made, "device": "expert", "lab": lab}, {"episodes": n}, files=["**/*.h5"])
    return list_episodes(out)


# ---- Meta-World: the peer suite has no robot server; its expert's episodes are written directly ------------
def record_metaworld_demos(
    out: str | Path,
    task: str,
    episodes: int,
    cameras: tuple[str, ...] = ("corner",),
    size: int = 64,
    noise: float = 0.0,
    seed: int = 0,
    only_successful: bool = True,
    max_tries: int | None = None,
) -> list[Path]:
    """Meta-World's scripted expert written in the episode format (one HDF5 per episode).

    State: ee_position = hand xyz, gripper_position = Meta-World's gripper observation (as the env's proprio
    gives it), joint_positions/velocities = the Sawyer's 7 arm joints, ee_quaternion = identity (Meta-World
    controls position only). Actions: cartesian_velocity = (hand delta xyz, 0, 0, 0), gripper_position =
    (effort + 1) / 2, cartesian_position = the hand target, joint forms = the joint state."""
    from robolearn.data.schema import CameraSpec
    from robolearn.data.writer import EpisodeMeta, EpisodeWriter
    from robolearn.envs.experts import ExpertConfig, make_expert
    from robolearn.envs.registry import make

    out = Path(out)
    env = make(f"metaworld/{task}", cameras=tuple(cameras), image_size=(size, size))
    expert = make_expert(env, ExpertConfig(noise=noise))
    raw = env.unwrapped
    specs = [CameraSpec(name=c, width=size, height=size, role="fixed") for c in cameras]
    written: list[Path] = []
    tries = 0
    try:
        while len(written) < episodes and tries < (max_tries or 4 * episodes):
            obs, info = env.reset(seed=seed * 100000 + tries)
            tries += 1
            path = out / f"ep_{tries - 1:06d}{schema.EPISODE_SUFFIX}"
            meta = EpisodeMeta(
                lab="sim_lab",
                household="metaworld",
                scene_id=task,
                operator="expert",
                robot_type=METAWORLD_ROBOT,
                control_hz=float(env.metadata.get("render_fps", 80) or 80),
                action_space="cartesian_velocity",
                teleop_device="expert",
                task=task,
                language=[obs["language"]],
                language_source="task",
                extra={"suite": "metaworld", "seed": seed * 100000 + tries - 1},
            )
            success, steps = False, 0
            with EpisodeWriter(path, meta, specs) as w:
                done = False
                while not done:
                    a4 = np.asarray(expert.act(obs), dtype=np.float64)
                    qpos = np.asarray(raw.data.qpos[:7], dtype=np.float64)
                    hand = obs["proprio"][:3].astype(np.float64)
                    state = {
                        "joint_positions": qpos,
                        "joint_velocities": np.asarray(raw.data.qvel[:7]),
                        "ee_position": hand,
                        "ee_quaternion": np.array([1.0, 0, 0, 0]),
                        "gripper_position": float(obs["proprio"][3]),
                    }
                    action = {
                        "cartesian_velocity": np.concatenate([a4[:3], np.zeros(3)]),
                        "cartesian_position": np.concatenate([hand + a4[:3] / 100.0, [1.0, 0, 0, 0]]),
                        "joint_position": qpos,
                        "joint_velocity": np.zeros(7),
                        "gripper_position": float((np.clip(a4[3], -1, 1) + 1) / 2),
                    }
                    images = dict(obs["images"])
                    obs, r, term, trunc, info = env.step(a4)
                    steps += 1
                    success = success or bool(info.get("success"))
                    done = term or trunc
                    w.add_step(state=state, action=action, images=images, reward=float(r), is_terminal=bool(term))
                if only_successful and not success:
                    w.discard()
                    continue
                w.set_outcome(success, "detector")
            written.append(path)
    finally:
        env.close()
    if len(written) < episodes:
        raise RuntimeError(
            f"Meta-World expert reached {len(written)}/{episodes} successful episodes of {task} in {tries} tries"
        )
    made = {"task": task, "episodes": episodes, "size": size, "noise": noise, "seed": seed, "device": "expert"}
    write_card(out, "episodes", [], made, {"episodes": len(written), "tries": tries}, files=["*.h5"])
    return written
