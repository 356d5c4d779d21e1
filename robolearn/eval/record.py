"""Rollout episodes from `robolearn eval --save-episodes`: every evaluation episode written as an episode
file (same schema as demonstrations) through the collection's EpisodeRecorder, labelled by the task's
success detector (success=1 or 0, label_source=detector, teleop_device=policy), into
RUN/rollouts/episodes/. Failures recorded this way are the rejected side of DPO pairs
(robolearn.policies.preference).

The envs run in EnvPool workers; `recording_env_fn` wraps each so that its info carries the robot state
(`robot_state`, the episode format's state fields) next to the applied action forms (`action_forms`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.collection.recorder import EpisodeRecorder
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta

ROLLOUTS = "rollouts"


class _StateInfo(gym.Wrapper):
    """Adds the robot state (for recording) to every reset and step info."""

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        return obs, {**info, "robot_state": self.env.unwrapped.robot_state()}

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, r, term, trunc, {**info, "robot_state": self.env.unwrapped.robot_state()}


def _make_recording(env_fn: Callable[[], Any]) -> gym.Env:
    return _StateInfo(env_fn())


def recording_env_fn(env_fn: Callable[[], Any]) -> Callable[[], Any]:
    """`env_fn` whose envs report their robot state in info (picklable for EnvPool's workers)."""
    return functools.partial(_make_recording, env_fn)


class RolloutRecorder:
    """One EpisodeRecorder per env slot, all writing into `out`/episodes; episode indices count up."""

    def __init__(self, out: Path, cameras: list[str], image_size: tuple[int, int], policy: str, action_space: str):
        self.out, self.cameras, self.size = Path(out), list(cameras), tuple(image_size)
        self.policy, self.action_space = policy, action_space
        self.recorders: dict[int, EpisodeRecorder] = {}
        self.pending: dict[int, tuple[dict[str, Any], dict[str, np.ndarray]]] = {}
        self.index = len(EpisodeRecorder(self.out).existing())

    def start(self, env: int, task: str, obs: dict[str, Any], info: dict[str, Any], job: dict[str, Any]) -> None:
        """Open the episode env `env` was just reset into (obs, info from the reset)."""
        import mujoco

        rec = self.recorders.setdefault(env, EpisodeRecorder(self.out))
        h, s = info.get("household"), info.get("scene")
        meta = EpisodeMeta(
            lab="sim_lab",
            household=f"household_{h}",
            scene_id=f"scene_{s}",
            operator="policy",
            robot_type="robolearn_sim_arm7",
            robot_serial="sim",
            action_space=self.action_space,
            teleop_device="policy",
            teleop_params={"policy": self.policy},
            task=task,
            language=[str(obs.get("language") or info.get("instruction", ""))],
            language_source="task",
            env={"suite": "household", "task": task, "household": h, "scene": s, "mujoco_version": mujoco.__version__},
            extra={"eval": {"policy": self.policy, **job}},
        )
        h_, w_ = self.size
        specs = [
            CameraSpec(name=c, width=w_, height=h_, role="wrist" if c == "wrist" else "exterior") for c in self.cameras
        ]
        rec.open(self.index, meta, specs)
        self.index += 1
        self.pending[env] = (obs, info["robot_state"])

    def step(self, env: int, reward: float, terminated: bool, obs: dict[str, Any], info: dict[str, Any]) -> None:
        """Record the step just taken: the state and frames it started from, the action forms applied."""
        prev, state = self.pending[env]
        self.recorders[env].writer.add_step(
            state=state,
            action=info["action_forms"],
            images={c: prev["images"][c] for c in self.cameras},
            reward=float(reward),
            is_terminal=bool(terminated),
        )
        self.pending[env] = (obs, info["robot_state"])

    def finish(self, env: int, success: bool) -> Path:
        """Close env `env`'s episode labelled by the success detector; its path."""
        self.pending.pop(env, None)
        return self.recorders[env].finish(bool(success), "detector")

    def abort(self, why: str) -> None:
        """Close every open episode with what it holds (success unknown): a failed evaluation keeps its data."""
        for rec in self.recorders.values():
            if rec.writer is not None:
                rec.abort(why, {})
        self.pending.clear()
