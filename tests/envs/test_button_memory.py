"""button-memory: the cue shows for the first steps only, the expert presses the cued button, the other fails."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from robolearn.envs import ScriptedExpert, gym_id, make
from robolearn.envs.tasks import TASKS, get_task
from robolearn.envs.tasks.button_memory import ButtonMemory


@pytest.fixture(scope="module")
def env():
    e = make("household/button-memory", image_size=(32, 32), cameras=("exterior_1",))
    yield e
    e.close()


def _run(env, seed: int, flip: bool = False):
    obs, _ = env.reset(seed=seed)
    task = env.sim.task
    frames, cue = [obs["images"]["exterior_1"]], [task.cue_on]
    expert = ScriptedExpert(env)
    if flip:  # the expert plans for the other button
        task.target = 1 - task.target
        expert.target()
        task.target = 1 - task.target
    info = {}
    for _ in range(env.max_steps):
        obs, _, term, trunc, info = env.step(expert.act(obs))
        frames.append(obs["images"]["exterior_1"])
        cue.append(task.cue_on)
        if term or trunc:
            break
    return task, info, frames, cue


def test_expert_presses_the_cued_button_on_both_sides(env):
    targets = set()
    for seed in range(4):
        task, info, frames, cue = _run(env, seed)
        assert info["success"] and task.pressed(env.sim) == task.target and not task.wrong
        targets.add(task.target)
        k = ButtonMemory.cue_steps
        assert cue[:k] == [True] * k and not any(cue[k:])
        # the lamp is visible: the first frame differs from the frame after the cue went off (the arm waits)
        assert np.abs(frames[0].astype(int) - frames[k].astype(int)).max() > 60
    assert targets == {0, 1}


def test_pressing_the_other_button_first_is_a_latched_failure(env):
    task, info, _, _ = _run(env, 0, flip=True)
    assert task.wrong and not info["success"] and task.progress(env.sim) == 0.0
    assert task.pressed(env.sim) in (None, 1 - task.target)
    state = task.object_state(env.sim)
    assert state.shape == (11,) and state[-1] == 1.0 and state[-3] == task.target


def test_registered_as_a_memory_task_not_in_the_default_set():
    assert get_task("button-memory") is ButtonMemory and "button-memory" not in TASKS
    assert gym_id("button-memory") in gym.registry
    with pytest.raises(ValueError, match="button-memory"):
        get_task("button-memry")


def test_the_station_sim_robot_turns_the_cue_off_too():
    """Demos recorded at the station step the arm through SimRobot, which must advance the task's clock."""
    from robolearn.hardware.robots.sim import SimRobot, SimRobotConfig

    robot = SimRobot(SimRobotConfig(task="button-memory"))
    robot.connect()
    task = robot.sim.task
    hold = np.append(np.zeros(6), 1.0)
    for step in range(ButtonMemory.cue_steps):
        assert task.cue_on, step
        robot.apply(hold, "cartesian_velocity")
    assert not task.cue_on
    robot.home(seed=3)
    assert task.cue_on  # a new episode shows the cue again
    robot.disconnect()
