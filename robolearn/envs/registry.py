"""Env ids: every household task and Meta-World registered with gymnasium, plus `make()` by short name.

import robolearn.envs, gymnasium as gym
env = gym.make("robolearn/OpenDrawer-v0", image_size=(96, 96))
env = robolearn.envs.make("household/open-drawer")          # same env
env = robolearn.envs.make("metaworld/drawer-open-v3")       # Meta-World peer suite
env = gym.make("robolearn.envs:robolearn/OpenDrawer-v0")    # imports robolearn.envs first (subprocesses)
envs = robolearn.envs.make_vector("household/open-drawer", 4)  # AsyncVectorEnv, safe with EGL
"""

from __future__ import annotations

import functools

import gymnasium as gym

from robolearn.envs.tasks import MEMORY_TASKS, TASKS, get_task

HOUSEHOLD_ENTRY = "robolearn.envs.household:HouseholdEnv"


def gym_id(task: str) -> str:
    """gymnasium id of a household task: 'open-drawer' -> 'robolearn/OpenDrawer-v0'."""
    return "robolearn/" + "".join(p.capitalize() for p in task.split("-")) + "-v0"


def register_envs() -> None:
    """Register all household tasks and the Meta-World adapter (idempotent)."""
    for name in (*TASKS, *MEMORY_TASKS):
        env_id = gym_id(name)
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point=HOUSEHOLD_ENTRY,
                kwargs={"task": name},
                max_episode_steps=None,
                disable_env_checker=True,
            )
    try:
        from robolearn.envs.metaworld import register_metaworld
    except ImportError:  # Meta-World not installed: the household suite still works
        return
    register_metaworld()


def make(name: str, **kwargs) -> gym.Env:
    """Make an env by short name: 'household/<task>' (or just '<task>') or 'metaworld/<task>'."""
    suite, _, task = name.rpartition("/")
    if suite in ("", "household"):
        get_task(task)  # clear error for unknown names
        from robolearn.envs.household import HouseholdEnv

        return HouseholdEnv(task=task, **kwargs)
    if suite == "metaworld":
        from robolearn.envs.metaworld import MetaWorldEnv

        return MetaWorldEnv(task=task, **kwargs)
    raise ValueError(f"unknown env suite {suite!r} in {name!r}; expected 'household/<task>' or 'metaworld/<task>'")


def make_vector(name: str, num_envs: int, context: str = "forkserver", **kwargs) -> gym.vector.AsyncVectorEnv:
    """`num_envs` copies of `make(name, **kwargs)` stepping in subprocesses.

    Workers start from a fresh forkserver by default: forking a process that already holds an EGL render
    context (any env that rendered) deadlocks the child's renderer. Observations travel through pipes
    (shared_memory=False), since the language Text space has no shared-memory layout.
    """
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    fns = [functools.partial(make, name, **kwargs) for _ in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, shared_memory=False, context=context)
