"""Scripted experts: follow a task's waypoint plan with the env's own action space.

`ScriptedExpert(env)` plans at the first call of each episode (`task.plan(sim)`), then moves the tool to each
waypoint in turn (moving on within `tol`, after `settle` steps for gripper changes, or after `timeout` steps
when blocked, e.g. pressing into a button that stops it). Optional noise makes demos diverse: Gaussian jitter
on waypoint positions marked jitter-able (approach / transport / retreat, never grasp points) and Gaussian
noise on cartesian-velocity actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robolearn.envs.tasks.base import Waypoint, top_down_quat


@dataclass
class ExpertConfig:
    noise: float = 0.0  # std of action noise (cartesian-velocity units) and 1/2 of waypoint jitter (x 1 cm)
    timeout: int = 45  # steps before moving on from a waypoint that cannot be reached
    seed: int | None = None


class ScriptedExpert:
    """The scripted expert for a HouseholdEnv (any action space); call `act(obs)` once per step."""

    def __init__(self, env, config: ExpertConfig | None = None) -> None:
        self.env = env.unwrapped
        self.config = config or ExpertConfig()
        self.rng = np.random.default_rng(self.config.seed)
        self._episode = -1
        self.plan: list[Waypoint] = []
        self.index = 0
        self._since = 0
        self._last_gripper: float | None = None

    def _replan(self) -> None:
        sim = self.env.sim
        self.plan = sim.task.plan(sim)
        if self.config.noise > 0:
            for wp in self.plan:
                if wp.label in ("approach", "transport", "retreat", "lift"):
                    wp.pos = wp.pos + self.rng.normal(0.0, 0.02 * self.config.noise, 3)
        self.index = 0
        self._since = 0
        self._last_gripper = None
        self._episode = self.env.episode

    @property
    def done(self) -> bool:
        return self.index >= len(self.plan)

    def target(self) -> Waypoint:
        if self._episode != self.env.episode:
            self._replan()
        while not self.done:
            wp = self.plan[self.index]
            if self._reached(wp):
                self.index += 1
                self._since = 0
                continue
            return wp
        return self.plan[-1]

    def _reached(self, wp: Waypoint) -> bool:
        close = np.linalg.norm(self.env.sim.tool_pos() - wp.pos) < wp.tol
        settled = self._since >= wp.settle
        return (close and settled) or self._since >= self.config.timeout

    def act(self, obs=None) -> np.ndarray:
        wp = self.target()
        self._since += 1
        self._last_gripper = wp.gripper
        action = self.env.action_towards(wp.pos, top_down_quat(wp.yaw), wp.gripper)
        if self.config.noise > 0 and self.env.config.action_space == "cartesian_velocity":
            action[:6] += self.rng.normal(0.0, self.config.noise, 6).astype(np.float32)
            action = np.clip(action, self.env.action_space.low, self.env.action_space.high)
        return action


def run_expert(
    task: str,
    episodes: int,
    scenes: list[tuple[int, int]] | None = None,
    noise: float = 0.0,
    seed: int = 0,
    action_space: str = "cartesian_velocity",
) -> dict:
    """Roll out the scripted expert for `episodes` seeded episodes, cycling over `scenes` (default grid).

    Returns episodes, successes, success rate, steps to success and the failing (seed, household, scene)s (the
    Wilson interval is eval's business: `robolearn envs check-experts` adds it).
    """
    from robolearn.envs.household import HouseholdEnv
    from robolearn.envs.scenes import default_scenes

    grid = scenes or default_scenes()
    env = HouseholdEnv(task=task, cameras=(), action_space=action_space)
    expert = ScriptedExpert(env, ExpertConfig(noise=noise, seed=seed))
    successes, lengths, failures = 0, [], []
    try:
        for i in range(episodes):
            h, s = grid[i % len(grid)]
            obs, info = env.reset(seed=seed + i, options={"household": h, "scene": s})
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                done = terminated or truncated
            if info["success"]:
                successes += 1
                lengths.append(info["steps"])
            else:
                failures.append({"seed": seed + i, "household": h, "scene": s})
    finally:
        env.close()
    return {
        "task": task,
        "episodes": episodes,
        "successes": successes,
        "success_rate": successes / episodes,
        "mean_steps": float(np.mean(lengths)) if lengths else None,
        "max_steps": int(max(lengths)) if lengths else None,
        "failures": failures,
        "noise": noise,
        "action_space": action_space,
    }


class MetaWorldExpert:
    """Meta-World's own scripted policy behind the same `act(obs)` call (noise: Gaussian action std)."""

    def __init__(self, env, config: ExpertConfig | None = None) -> None:
        self.env = env.unwrapped
        self.config = config or ExpertConfig()

    def act(self, obs=None) -> np.ndarray:
        return self.env.expert_action(self.config.noise)


def make_expert(env, config: ExpertConfig | None = None) -> ScriptedExpert | MetaWorldExpert:
    """The scripted expert for any robolearn env (household or Meta-World)."""
    if hasattr(env.unwrapped, "expert_action"):
        return MetaWorldExpert(env, config)
    return ScriptedExpert(env, config)
