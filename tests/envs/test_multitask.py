"""The multi-task scene: the instruction picks the sub-task whose success counts; experts solve each one."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.envs import TASKS, HouseholdEnv, ScriptedExpert
from robolearn.envs.tasks import get_task
from robolearn.envs.tasks.multi import PARAPHRASES, SUBTASKS, MultiTask, subtask_for

SCENES = [(0, 0), (1, 3), (3, 2), (4, 1)]


def _rollout(env: HouseholdEnv, expert: ScriptedExpert) -> dict:
    done, info = False, {}
    while not done:
        _, _, terminated, truncated, info = env.step(expert.act())
        done = terminated or truncated
    return info


@pytest.mark.parametrize("sub", list(SUBTASKS))
def test_each_subtask_expert_succeeds_and_only_its_success_counts(sub: str) -> None:
    env = HouseholdEnv(task="multi-task", cameras=())
    for i, (h, s) in enumerate(SCENES):
        text = PARAPHRASES[sub]["train"][i % len(PARAPHRASES[sub]["train"])]
        obs, _ = env.reset(seed=10 + i, options={"household": h, "scene": s, "instruction": text})
        assert obs["language"] == text and env.sim.task.active == sub
        assert not any(env.sim.task.subtask_success(env.sim).values())  # nothing is done at the start
        info = _rollout(env, ScriptedExpert(env))
        assert info["success"], (sub, h, s)
        done = env.sim.task.subtask_success(env.sim)
        assert done[sub] and not any(v for k, v in done.items() if k != sub), done
    env.close()


def test_another_subtasks_success_does_not_count() -> None:
    env = HouseholdEnv(task="multi-task", cameras=(), max_steps=80)
    env.reset(seed=3, options={"household": 2, "scene": 1, "instruction": "press the button"})
    task = env.sim.task
    expert = ScriptedExpert(env)
    expert.target()  # plans for the instructed sub-task (the button) ...
    expert.plan, expert.index = task.subtasks["open-drawer"].plan(env.sim), 0  # ... but opens the drawer
    terminated = truncated = False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(expert.act())
    assert task.subtask_success(env.sim)["open-drawer"]  # the drawer's own detector fires
    assert not info["success"] and not terminated and truncated and reward < 1.0  # it is not the episode's task
    env.close()


def test_instructions_select_subtasks_and_paraphrase_sets() -> None:
    for sub, sets in PARAPHRASES.items():
        assert not set(sets["train"]) & set(sets["heldout"])
        assert all(subtask_for(t) == sub for t in (*sets["train"], *sets["heldout"]))
    assert subtask_for("  Open the   DRAWER ") == "open-drawer"
    with pytest.raises(ValueError, match="names no sub-task"):
        subtask_for("make me a sandwich")
    env = HouseholdEnv(task="multi-task", cameras=())
    train = {t for s in PARAPHRASES.values() for t in s["train"]}
    said = {env.reset(seed=k)[0]["language"] for k in range(20)}
    assert said <= train and len({subtask_for(t) for t in said}) == len(SUBTASKS)  # sampled: training phrases
    held = PARAPHRASES["put-in-bin"]["heldout"][0]
    env.reset(seed=0, options={"instruction": held})
    assert env.sim.task.active == "put-in-bin"
    with pytest.raises(ValueError, match="names no sub-task"):
        env.reset(seed=0, options={"instruction": "dance"})
    assert get_task("multi-task") is MultiTask and "multi-task" not in TASKS  # single-task registry unchanged
    # privileged state: every sub-task's object state plus the one-hot of the active sub-task
    env = HouseholdEnv(task="multi-task", cameras=(), privileged_state=True)
    obs, _ = env.reset(seed=1, options={"instruction": "hit the button"})
    assert obs["state"].shape == env.observation_space["state"].shape
    np.testing.assert_array_equal(obs["state"][-3:], [1.0, 0.0, 0.0])
