"""Household env: gymnasium API, seeding, rewards, bad input, action spaces, vector envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robolearn.envs  # noqa: F401  (registers the ids)
from robolearn.data.schema import ACTION_FIELDS
from robolearn.envs import TASKS, HouseholdEnv, ScriptedExpert, gym_id, make, make_vector
from robolearn.envs.interface import LANGUAGE_CHARSET

SMALL = {"cameras": ("exterior_1", "wrist"), "image_size": (32, 32)}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_env_checker_passes(task: str) -> None:
    env = HouseholdEnv(task=task, household=1, scene=2, **SMALL)
    check_env(env, skip_render_check=False)
    env.close()


def test_observation_layout_and_info() -> None:
    env = HouseholdEnv(task="press-button", privileged_state=True, **SMALL)
    obs, info = env.reset(seed=3)
    assert set(obs) == {"images", "proprio", "language", "state"}
    assert set(obs["images"]) == {"exterior_1", "wrist"}
    assert obs["images"]["wrist"].shape == (32, 32, 3) and obs["images"]["wrist"].dtype == np.uint8
    assert obs["proprio"].shape == (15,) and obs["proprio"].dtype == np.float32
    assert obs["language"] in TASKS["press-button"].instructions
    assert set(obs["language"]) <= set(LANGUAGE_CHARSET)
    assert info["mujoco_version"] and info["success"] is False
    _, _, _, _, info = env.step(env.action_space.sample())
    assert set(info["action_forms"]) == {f.path.split("/")[-1] for f in ACTION_FIELDS}
    assert obs["state"].shape == env.observation_space["state"].shape
    # The images are not blank: a lit scene with texture.
    assert obs["images"]["exterior_1"].std() > 5


def test_same_seed_same_pixels_and_different_seeds_differ() -> None:
    a, b = HouseholdEnv(task="stack-blocks", **SMALL), HouseholdEnv(task="stack-blocks", **SMALL)
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    for cam in oa["images"]:
        np.testing.assert_array_equal(oa["images"][cam], ob["images"][cam])
    action = a.action_space.sample()
    for _ in range(3):
        oa, *_ = a.step(action)
        ob, *_ = b.step(action)
    np.testing.assert_array_equal(oa["images"]["exterior_1"], ob["images"]["exterior_1"])
    np.testing.assert_array_equal(oa["proprio"], ob["proprio"])
    oc, _ = a.reset(seed=12)
    assert not np.array_equal(oc["images"]["exterior_1"], oa["images"]["exterior_1"])


def test_scene_drawn_per_reset_or_chosen() -> None:
    env = HouseholdEnv(task="press-button", cameras=())
    seen = {(env.reset(seed=s)[1]["household"], env.reset(seed=s)[1]["scene"]) for s in range(12)}
    assert len(seen) > 3
    _, info = env.reset(seed=0, options={"household": 4, "scene": 3})
    assert (info["household"], info["scene"]) == (4, 3)
    fixed = HouseholdEnv(task="press-button", cameras=(), household=2, scene=1)
    assert {fixed.reset(seed=s)[1]["scene"] for s in range(4)} == {1}


def test_instruction_override_and_paraphrases() -> None:
    env = HouseholdEnv(task="open-drawer", cameras=())
    said = {env.reset(seed=s)[0]["language"] for s in range(30)}
    assert len(said) >= 3 and said <= set(TASKS["open-drawer"].instructions)
    obs, _ = env.reset(seed=0, options={"instruction": "open it please"})
    assert obs["language"] == "open it please"
    with pytest.raises(ValueError, match="LANGUAGE_CHARSET"):
        env.reset(seed=0, options={"instruction": "open the drawer \u2603"})


def test_sparse_reward_truncation_and_termination() -> None:
    env = HouseholdEnv(task="press-button", cameras=(), reward="sparse", max_steps=5)
    env.reset(seed=0)
    rewards, truncated = [], False
    for _ in range(5):
        _, r, terminated, truncated, _ = env.step(np.zeros(7, np.float32))
        rewards.append(r)
    assert rewards == [0.0] * 5 and truncated and not terminated
    dense = HouseholdEnv(task="press-button", cameras=())
    dense.reset(seed=0)
    expert = ScriptedExpert(dense)
    first = None
    for _ in range(dense.max_steps):
        _, r, terminated, truncated, info = dense.step(expert.act())
        first = r if first is None else first
        if terminated or truncated:
            break
    assert terminated and info["success"] and r == 1.0 and 0.0 <= first < 1.0


@pytest.mark.parametrize("task", sorted(TASKS))
def test_scripted_expert_succeeds_over_scenes(task: str) -> None:
    from robolearn.envs.experts import run_expert

    scenes = [(0, 0), (1, 3), (2, 1), (3, 2), (4, 0), (4, 3)]
    result = run_expert(task, episodes=6, scenes=scenes, seed=100)
    assert result["success_rate"] >= 5 / 6, result["failures"]


@pytest.mark.parametrize("space", ["cartesian_position", "joint_position", "joint_velocity"])
def test_expert_in_every_action_space(space: str) -> None:
    from robolearn.envs.experts import run_expert

    result = run_expert("open-drawer", episodes=2, scenes=[(0, 1), (3, 3)], seed=7, action_space=space)
    assert result["success_rate"] == 1.0, result


def test_noisy_expert_makes_different_demos() -> None:
    from robolearn.envs.experts import ExpertConfig

    env = HouseholdEnv(task="put-in-bin", cameras=())
    paths = []
    for seed in (1, 2):
        env.reset(seed=5)
        expert = ScriptedExpert(env, ExpertConfig(noise=0.3, seed=seed))
        paths.append(np.array([env.step(expert.act())[0]["proprio"][7:10] for _ in range(20)]))
    assert np.abs(paths[0] - paths[1]).max() > 0.002


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Did you mean open-drawer"):
        HouseholdEnv(task="open-drawr")
    with pytest.raises(ValueError, match="household"):
        HouseholdEnv(task="press-button", household=-1, scene=0, cameras=())
    with pytest.raises(ValueError, match="unknown camera"):
        HouseholdEnv(task="press-button", cameras=("top",))
    with pytest.raises(TypeError, match="unknown HouseholdEnv option"):
        HouseholdEnv(task="press-button", camras=())
    env = HouseholdEnv(task="press-button", cameras=())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        env.step(np.zeros(6))
    with pytest.raises(ValueError, match="NaN"):
        env.step(np.array([0, 0, np.nan, 0, 0, 0, 0]))
    # Out-of-range values are clipped to the action box (documented), not an error.
    obs, *_ = env.step(np.full(7, 50.0))
    assert np.all(np.isfinite(obs["proprio"]))


def test_unreachable_cartesian_target_is_clipped() -> None:
    env = HouseholdEnv(task="press-button", cameras=(), action_space="cartesian_position")
    obs, _ = env.reset(seed=0)
    far = np.array([5.0, 5.0, 5.0, 0.0, 0.7071, 0.7071, 0.0, 0.0], np.float32)  # clipped to the workspace box
    for _ in range(40):
        obs, *_ = env.step(far)
    arm = env.sim.arm
    q = arm.joint_positions
    assert np.all(np.isfinite(obs["proprio"]))
    assert np.all(q >= arm.joint_lower - 1e-3) and np.all(q <= arm.joint_upper + 1e-3)


def test_gym_make_ids_and_short_names() -> None:
    env = gym.make(gym_id("close-drawer"), cameras=("wrist",), image_size=(24, 24))
    obs, _ = env.reset(seed=0)
    assert obs["images"]["wrist"].shape == (24, 24, 3)
    assert env.render().shape == (24, 24, 3)
    env.close()
    assert make("household/put-on-shelf", cameras=()).config.task == "put-on-shelf"
    with pytest.raises(ValueError, match="suite"):
        make("robosuite/lift")


def test_async_vector_env_after_rendering_in_parent() -> None:
    # The parent holds an EGL context; make_vector's forkserver workers must still render.
    parent = HouseholdEnv(task="press-button", cameras=("wrist",), image_size=(24, 24))
    parent.reset(seed=0)
    envs = make_vector("household/press-button", 2, cameras=("wrist",), image_size=(24, 24))
    try:
        obs, _ = envs.reset(seed=0)
        assert obs["images"]["wrist"].shape == (2, 24, 24, 3) and len(obs["language"]) == 2
        for _ in range(3):
            obs, reward, *_ = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and obs["proprio"].shape == (2, 15)
    finally:
        envs.close()
        parent.close()


def test_gymnasium_async_vector_env_with_module_id() -> None:
    envs = gym.vector.AsyncVectorEnv(
        [lambda: gym.make("robolearn.envs:robolearn/CloseDrawer-v0", cameras=()) for _ in range(2)],
        shared_memory=False,
        context="spawn",
    )
    try:
        obs, _ = envs.reset(seed=1)
        obs, *_ = envs.step(envs.action_space.sample())
        assert obs["proprio"].shape == (2, 15)
    finally:
        envs.close()


def test_forked_worker_after_rendering_raises_instead_of_hanging() -> None:
    parent = HouseholdEnv(task="press-button", cameras=("wrist",), image_size=(16, 16))
    parent.reset(seed=0)  # the parent now owns an EGL context
    envs = gym.vector.AsyncVectorEnv(
        [lambda: HouseholdEnv(task="press-button", cameras=("wrist",), image_size=(16, 16))] * 2,
        shared_memory=False,
        context="fork",
    )
    try:
        with pytest.raises(RuntimeError, match="forked"):
            envs.reset(seed=0)
    finally:
        envs.close(terminate=True)
        parent.close()


def test_make_expert_serves_both_suites() -> None:
    from robolearn.envs import make_expert
    from robolearn.envs.experts import MetaWorldExpert

    env = make("metaworld/button-press-topdown-v3", cameras=())
    obs, _ = env.reset(seed=0)
    expert = make_expert(env)
    assert isinstance(expert, MetaWorldExpert)
    for _ in range(150):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    assert info["success"]
    assert isinstance(make_expert(HouseholdEnv(task="press-button", cameras=())), ScriptedExpert)
