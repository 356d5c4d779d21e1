"""Meta-World peer suite: compat shim, MetaWorldEnv interface, seeding, experts, upright images, bad input."""

from __future__ import annotations

import string
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("metaworld")

from robolearn.envs import metaworld_compat  # noqa: E402
from robolearn.envs.metaworld import (  # noqa: E402
    ENV_ID,
    LANGUAGE_CHARSET,
    PROTOCOL_TASKS,
    MetaWorldConfig,
    MetaWorldEnv,
    list_tasks,
    register_metaworld,
    resolve_task,
    task_instruction,
)

SMALL = (32, 32)


@pytest.fixture
def make_env():
    envs: list[MetaWorldEnv] = []

    def make(**kwargs) -> MetaWorldEnv:
        kwargs.setdefault("task", "drawer-open")
        kwargs.setdefault("image_size", SMALL)
        env = MetaWorldEnv(**kwargs)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def run_expert(env: MetaWorldEnv, seed: int, noise_std: float = 0.0) -> tuple[bool, int, list[np.ndarray]]:
    env.reset(seed=seed)
    actions = []
    while True:
        action = env.expert_action(noise_std)
        actions.append(action)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return info["success"], info["steps"], actions


# --- compat shim -----------------------------------------------------------------------------------------
def test_shim_is_needed_on_this_mujoco_and_idempotent():
    from metaworld.sawyer_xyz_env import SawyerMocapBase

    assert metaworld_compat.eq_data_width() == 12  # MuJoCo >= 3.17: weld data grew from 11 to 12 numbers
    assert metaworld_compat.shim_needed()
    assert metaworld_compat.apply() is True
    patched = SawyerMocapBase.reset_mocap_welds
    assert metaworld_compat.apply() is True  # second call: no double patch
    assert SawyerMocapBase.reset_mocap_welds is patched
    assert metaworld_compat.is_active()
    versions = metaworld_compat.versions()
    assert versions["mujoco"] == mujoco.__version__
    assert versions["metaworld"] == "3.1.1" and versions["metaworld_compat_shim"] is True
    assert versions["gymnasium"] == gym.__version__


def test_weld_rows_written_in_first_11_entries(make_env):
    env = make_env(cameras=())
    model = env.model
    welds = [i for i in range(model.neq) if int(model.eq_type[i]) == int(mujoco.mjtEq.mjEQ_WELD)]
    assert welds
    for i in welds:
        np.testing.assert_array_equal(model.eq_data[i, :11], [0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 5])
        assert np.isfinite(model.eq_data[i, 11])


# --- construction and interface --------------------------------------------------------------------------
def test_task_names_and_instructions():
    tasks = list_tasks()
    assert len(tasks) == 50 and "drawer-open-v3" in tasks
    assert resolve_task("drawer-open") == resolve_task("drawer-open-v3") == "drawer-open-v3"
    assert task_instruction("drawer-open-v3") == "open the drawer"
    assert task_instruction("door-open") == "open the door"  # generic rule from the name
    assert task_instruction("plate-slide-back-side") == "slide the plate back from the side"
    allowed = set(LANGUAGE_CHARSET)
    for task in tasks:
        text = task_instruction(task)
        assert 0 < len(text) <= 256 and set(text) <= allowed, (task, text)


@pytest.mark.parametrize("task", PROTOCOL_TASKS)
def test_protocol_tasks_construct_and_step(make_env, task):
    env = make_env(task=task, cameras=("corner",), privileged_state=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["images"]["corner"].shape == (*SMALL, 3) and obs["images"]["corner"].dtype == np.uint8
    assert obs["proprio"].dtype == np.float32 and obs["proprio"].shape == (4,)
    np.testing.assert_allclose(obs["proprio"], obs["state"][:4], rtol=1e-6)
    assert obs["state"].shape == (39,)
    assert obs["language"] == task_instruction(task)
    assert info["task"] == task and info["steps"] == 0 and info["versions"]["mujoco"] == mujoco.__version__
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and np.isfinite(reward)
    assert (
        set(info) >= {"success", "task", "steps", "mujoco_version"}
        and info["steps"] == 1
        and isinstance(info["success"], bool)
    )
    assert env.render().shape == (*SMALL, 3)


def test_no_cameras_omits_images_and_state_by_default(make_env):
    env = make_env(cameras=())
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"proprio", "language"} and set(env.observation_space.spaces) == {"proprio", "language"}
    assert env.render().shape == (*SMALL, 3)  # render() falls back to the corner camera


def test_check_env_passes(make_env):
    env = make_env(image_size=(64, 64), cameras=("corner", "behindGripper"), privileged_state=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    # Expected notes only: the (-inf, inf) proprio/state bounds, and no spec when not built by gymnasium.make.
    unexpected = [str(w.message) for w in caught if "infinity" not in str(w.message) and "spec" not in str(w.message)]
    assert not unexpected


def test_mt1_fixed_variants(make_env):
    env = make_env(random_init=False, cameras=(), privileged_state=True)
    obs_a, info_a = env.reset(seed=5)
    obs_b, info_b = env.reset(seed=5)
    assert 0 <= info_a["variant"] < 50 and info_a["variant"] == info_b["variant"]
    np.testing.assert_array_equal(obs_a["state"], obs_b["state"])


# --- seeding --------------------------------------------------------------------------------------------
def test_same_seed_same_pixels_and_state(make_env):
    env = make_env(cameras=("corner", "topview"), privileged_state=True)
    first, _ = env.reset(seed=3)
    for _ in range(5):
        env.step(env.action_space.sample())
    again, _ = env.reset(seed=3)
    other_env = make_env(cameras=("corner", "topview"), privileged_state=True)
    twin, _ = other_env.reset(seed=3)
    for obs in (again, twin):
        np.testing.assert_array_equal(first["state"], obs["state"])
        for cam in ("corner", "topview"):
            np.testing.assert_array_equal(first["images"][cam], obs["images"][cam])
    different, _ = env.reset(seed=4)  # random_init: the drawer moves
    assert not np.array_equal(first["state"], different["state"])
    assert not np.array_equal(first["images"]["topview"], different["images"]["topview"])


# --- scripted expert ------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["drawer-open-v3", "button-press-topdown-v3"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_reaches_success(make_env, task, seed):
    env = make_env(task=task, cameras=())
    success, steps, _ = run_expert(env, seed)
    assert success and steps < env.config.max_steps


def test_noisy_expert_is_reproducible_per_seed(make_env):
    env = make_env(cameras=())
    env.reset(seed=0)
    clean = env.expert_action()
    _, _, actions_a = run_expert(env, seed=1, noise_std=0.1)
    _, _, actions_b = run_expert(env, seed=1, noise_std=0.1)
    np.testing.assert_array_equal(np.stack(actions_a), np.stack(actions_b))
    assert clean.dtype == np.float32 and np.all(np.abs(np.stack(actions_a)) <= 1.0)
    with pytest.raises(ValueError, match="noise_std"):
        env.expert_action(-0.1)


# --- upright images -------------------------------------------------------------------------------------
def _wood_pixels(image: np.ndarray) -> tuple[int, int]:
    """Table-top (brown wood) pixel counts in the upper and lower image halves."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    wood = (r > g + 15) & (g > b + 5) & (r > 60) & (r < 200)
    half = image.shape[0] // 2
    return int(wood[:half].sum()), int(wood[half:].sum())


def test_images_are_upright(make_env):
    cams = ("corner", "corner2", "corner4", "behindGripper")
    env = make_env(task="reach", cameras=cams, image_size=(64, 64))
    # Camera frames whose image-up axis points down in the world get rotated: exactly the corner* cameras.
    assert env.flipped_cameras == {"corner", "corner2", "corner3", "corner4"}
    obs, _ = env.reset(seed=0)
    for cam in cams:
        upper, lower = _wood_pixels(obs["images"][cam])
        assert lower > 4 * upper + 50, (cam, upper, lower)  # the table is in the lower part of the image
    # The rotation is what makes it upright: the camera's own render has the table at the top.
    renderer = mujoco.Renderer(env.model, 64, 64)
    renderer.update_scene(env.data, camera="corner")
    raw = renderer.render()
    renderer.close()
    np.testing.assert_array_equal(obs["images"]["corner"], raw[::-1, ::-1])
    upper, lower = _wood_pixels(raw)
    assert upper > 4 * lower


# --- episode ends, clipping -----------------------------------------------------------------------------
def test_terminate_and_truncate(make_env):
    env = make_env(cameras=(), terminate_on_success=False, max_steps=120)
    env.reset(seed=0)
    successes = []
    while True:
        _, _, terminated, truncated, info = env.step(env.expert_action())
        successes.append(info["success"])
        assert not terminated
        if truncated:
            break
    assert info["steps"] == 120 and any(successes)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4))


def test_out_of_range_actions_are_clipped(make_env):
    env = make_env(cameras=(), privileged_state=True)
    env.reset(seed=0)
    big, *_ = env.step(np.array([5.0, -3.0, 2.0, 9.0]))
    env.reset(seed=0)
    unit, *_ = env.step(np.array([1.0, -1.0, 1.0, 1.0], dtype=np.float32))
    np.testing.assert_array_equal(big["state"], unit["state"])


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros(3), r"shape \(4,\)"),
        (np.zeros((2, 4)), r"shape \(4,\)"),
        ([0.0, np.nan, 0.0, 0.0], "NaN or inf"),
        ([0.0, 0.0, np.inf, 0.0], "NaN or inf"),
        ("left", "4 numbers"),
    ],
)
def test_bad_actions_raise(make_env, action, match):
    env = make_env(cameras=())
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_unknown_task_suggests_close_matches():
    with pytest.raises(ValueError, match=r"drawer-open-v3.*list_tasks\(\)"):
        MetaWorldEnv(task="drawer-opn")
    with pytest.raises(ValueError, match="list_tasks"):
        MetaWorldConfig(task="make-coffee-and-toast")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"cameras": ("nosuchcam",)}, "unknown camera 'nosuchcam'.*corner"),
        ({"cameras": ("corner", "corner")}, "distinct"),
        ({"image_size": (0, 32)}, "image_size"),
        ({"image_size": "big"}, "image_size"),
        ({"max_steps": 0}, "max_steps"),
        ({"colour": "red"}, "unknown MetaWorldConfig field"),
        ({"render_mode": "human"}, "render_mode"),
        ({"render_quality": 3}, "render_quality"),
        ({"render_camera": "nosuchcam"}, "unknown camera"),
        ({"mt1_seed": 0.5}, "mt1_seed"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetaWorldEnv(task="drawer-open", **kwargs)


def test_render_without_render_mode_returns_none(make_env):
    env = make_env(render_mode=None)
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_missing_task_and_step_before_reset(make_env):
    with pytest.raises(ValueError, match="needs a task"):
        MetaWorldEnv()
    env = make_env(cameras=())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4))
    with pytest.raises(RuntimeError, match="reset"):
        env.expert_action()


# --- registration and vector envs -----------------------------------------------------------------------
def test_gymnasium_make_registered_id():
    register_metaworld()
    register_metaworld()  # idempotent
    env = gym.make(
        ENV_ID,
        task="button-press-topdown",
        cameras=["corner", "corner2"],
        image_size=SMALL,
        render_quality={"shadows": False},
    )
    try:
        obs, info = env.reset(seed=0)
        assert set(obs["images"]) == {"corner", "corner2"} and info["task"] == "button-press-topdown-v3"
        env.step(env.action_space.sample())
        assert env.render().shape == (*SMALL, 3)
        assert env.unwrapped.model.vis.quality.shadowsize == 0 and env.unwrapped.model.vis.quality.offsamples == 0
    finally:
        env.close()


def _vector_env_fn():
    return MetaWorldEnv(task="drawer-open", image_size=SMALL)


@pytest.mark.timeout(120)
def test_async_vector_env_steps():
    envs = gym.vector.AsyncVectorEnv([_vector_env_fn] * 2, shared_memory=False, context="spawn")
    try:
        obs, info = envs.reset(seed=0)
        assert obs["images"]["corner"].shape == (2, *SMALL, 3) and obs["language"] == ("open the drawer",) * 2
        for _ in range(3):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert obs["proprio"].shape == (2, 4) and list(info["steps"]) == [3, 3] and reward.shape == (2,)
    finally:
        envs.close()


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore:.*(ERROR|Traceback|RuntimeError|cannot render).*:UserWarning")
def test_forked_worker_after_rendering_raises_instead_of_hanging(make_env):
    make_env().reset(seed=0)  # this process now owns a rendering context
    envs = gym.vector.AsyncVectorEnv([_vector_env_fn] * 2, shared_memory=False, context="fork")
    try:
        with pytest.raises(RuntimeError, match="spawn"):
            envs.reset(seed=0)
    finally:
        envs.close(terminate=True)


def test_language_charset_is_the_shared_one():
    assert LANGUAGE_CHARSET == string.ascii_letters + string.digits + " ,.'-?!"
