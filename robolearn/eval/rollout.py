"""Policy rollouts in simulation: `evaluate(config) -> results` (household or Meta-World suite).

Each (task, seed) runs `episodes` episodes; episode i of seed k is reset with seed 10000*k + i in scene
scenes[(i + k) % len(scenes)] (household), so two policies evaluated with the same config face exactly the
same initial states. Envs step in parallel worker processes (EnvPool) and the policy acts on the batch of
running envs at once; temporal ensembling state is per env. A scene counts as "seen" when the policy's
training episodes came from it (their household/scene labels).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from robolearn.eval.envpool import EnvPool


@dataclass
class EvalSpec:
    """What to roll out (the Python-API twin of `robolearn eval`'s flags)."""

    suite: str = "household"
    tasks: list[str] = field(default_factory=list)
    episodes: int = 10
    seeds: list[int] = field(default_factory=lambda: [0])
    scenes: list[tuple[int, int]] | None = None  # household: None = the default 5 x 4 grid
    num_envs: int = 1
    max_steps: int = 0  # 0: the task's limit
    videos: int = 1  # per (task, seed)
    video_camera: str = ""  # default: the policy's first camera
    save_episodes: bool = False  # household: write every episode to OUT/rollouts/episodes (robolearn.eval.record)
    policy_label: str = ""  # recorded in saved episodes (teleop_params.policy)


class RandomPolicy:
    """Uniform random actions in the env's action space: the floor every policy must beat."""

    name = "random"

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int = 0) -> None:
        self.low, self.high, self.rng = low, high, np.random.default_rng(seed)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        n = np.asarray(obs["proprio"]).shape[0] if np.asarray(obs["proprio"]).ndim == 2 else None
        shape = (n, *self.low.shape) if n else self.low.shape
        return self.rng.uniform(self.low, self.high, size=shape).astype(np.float32)

    def reset(self, env: int | None = None) -> None:
        pass


def scene_label(household: Any, scene: Any) -> str:
    return f"household_{household}/scene_{scene}"


def make_env_fn(
    suite: str, task: str, cameras: list[str], image_size: tuple[int, int], action_space: str, max_steps: int
) -> Callable[[], Any]:
    from robolearn.envs.registry import make

    kw: dict[str, Any] = {"cameras": tuple(cameras), "image_size": tuple(image_size)}
    if suite == "household":
        kw["action_space"] = action_space
    if max_steps:
        kw["max_steps"] = max_steps
    return functools.partial(make, f"{suite}/{task}", **kw)


def write_mp4(frames: list[np.ndarray], path: Path, fps: float = 15.0) -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    h2, w2 = h + h % 2, w + w % 2
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=int(round(fps)))
        s.width, s.height, s.pix_fmt = w2, h2, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast"}
        for f in frames:
            if (h2, w2) != (h, w):
                f = np.pad(f, ((0, h2 - h), (0, w2 - w), (0, 0)), mode="edge")
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def rollout_task(
    act: Callable[[dict[int, dict]], dict[int, np.ndarray]],
    reset_env: Callable[[int], None],
    env_fn: Callable[[], Any],
    spec: EvalSpec,
    task: str,
    seen_scenes: set[str] | None,
    video_dir: Path | None,
    video_camera: str,
    progress: bool = True,
    recorder: Any = None,
) -> list[dict[str, Any]]:
    """All episodes of one task; `act({env: obs}) -> {env: action}`. Returns the episode records. With a
    `recorder` (robolearn.eval.record.RolloutRecorder; env_fn wrapped by recording_env_fn) every episode is
    also written as an episode file, its path in the record's "episode_file"."""
    try:
        return _rollout_task(
            act, reset_env, env_fn, spec, task, seen_scenes, video_dir, video_camera, progress, recorder
        )
    except BaseException as e:
        if recorder is not None:
            recorder.abort(f"evaluation failed: {type(e).__name__}: {e}")
        raise


def _rollout_task(act, reset_env, env_fn, spec, task, seen_scenes, video_dir, video_camera, progress, recorder):
    scenes = spec.scenes
    if spec.suite == "household" and scenes is None:
        from robolearn.envs.scenes import default_scenes

        scenes = default_scenes()
    jobs = []
    for k in spec.seeds:
        for i in range(spec.episodes):
            opts = None
            if spec.suite == "household":
                h, s = scenes[(i + k) % len(scenes)]
                opts = {"household": h, "scene": s}
            jobs.append((k, i, 10000 * k + i, opts))
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(jobs), desc=f"eval {task}", unit="ep", disable=not progress, leave=False)
    with EnvPool(env_fn, min(spec.num_envs, len(jobs))) as pool:
        free, running = list(range(pool.num_envs)), {}
        obs: dict[int, dict] = {}
        queue = list(jobs)
        while queue or running:
            starts = {}
            while free and queue:
                e = free.pop(0)
                job = queue.pop(0)
                starts[e] = job
            for e, (o, info) in pool.reset({e: (j[2], j[3]) for e, j in starts.items()}).items():
                k, i = starts[e][0], starts[e][1]
                reset_env(e)
                record_video = video_dir is not None and i < spec.videos
                running[e] = {
                    "task": task,
                    "seed": k,
                    "episode": i,
                    "household": info.get("household"),
                    "scene": info.get("scene"),
                    "success": False,
                    "steps": 0,
                    "steps_to_success": None,
                    "return": 0.0,
                    "frames": [o["images"][video_camera]] if record_video else None,
                }
                obs[e] = o
                if recorder is not None:
                    recorder.start(e, task, o, info, {"seed": k, "episode": i, "reset_seed": starts[e][2]})
            actions = act({e: obs[e] for e in running})
            for e, (o, r, term, trunc, info) in pool.step(actions).items():
                rec = running[e]
                rec["steps"] += 1
                rec["return"] += float(r)
                if info.get("success") and rec["steps_to_success"] is None:
                    rec["steps_to_success"] = rec["steps"]
                    rec["success"] = True
                if rec["frames"] is not None:
                    rec["frames"].append(o["images"][video_camera])
                obs[e] = o
                if recorder is not None:
                    recorder.step(e, r, term, o, info)
                if term or trunc:
                    if recorder is not None:
                        rec["episode_file"] = str(recorder.finish(e, rec["success"]))
                    frames = rec.pop("frames")
                    rec["video"] = None
                    if frames:
                        name = f"{task}_seed{rec['seed']}_ep{rec['episode']:03d}.mp4"
                        write_mp4(frames, video_dir / name)
                        rec["video"] = f"videos/{name}"
                    if rec["household"] is not None and seen_scenes is not None:
                        rec["seen"] = scene_label(rec["household"], rec["scene"]) in seen_scenes
                    else:
                        rec["seen"] = None
                    records.append(rec)
                    del running[e]
                    free.append(e)
                    bar.update(1)
    bar.close()
    return sorted(records, key=lambda r: (r["seed"], r["episode"]))


def evaluate_policy(
    policy: Any, spec: EvalSpec, out: Path | None = None, progress: bool = True
) -> list[dict[str, Any]]:
    """Roll out a robolearn Policy (or the string "random") on every task of `spec`; episode records."""
    from robolearn.envs.registry import make

    records: list[dict[str, Any]] = []
    random_policy = isinstance(policy, str) and policy == "random"
    cfg = None if random_policy else policy.config
    tasks = spec.tasks or (cfg.train_tasks if cfg else [])
    if not tasks:
        raise ValueError("no tasks to evaluate: give --tasks (the policy records none)")
    if cfg and spec.suite != cfg.train_suite:
        raise ValueError(
            f"the policy was trained on {cfg.train_suite} episodes; evaluate it with --suite "
            f"{cfg.train_suite}, not {spec.suite}"
        )
    cameras = list(cfg.cameras) if cfg else (["exterior_1"] if spec.suite == "household" else ["corner"])
    size = tuple(cfg.train_image_size) if cfg and cfg.train_image_size else (64, 64)
    video_camera = spec.video_camera or cameras[0]
    if video_camera not in cameras:
        cameras.append(video_camera)
    seen = set(cfg.train_scenes) if cfg and cfg.train_scenes else None
    action_space = cfg.action_space if cfg else "cartesian_velocity"
    recorder = None
    if spec.save_episodes:
        from robolearn.eval.record import ROLLOUTS, RolloutRecorder

        if spec.suite != "household" or out is None:
            raise ValueError("--save-episodes: rollout episodes are recorded for the household suite into a run folder")
        label = spec.policy_label or ("random" if random_policy else f"{cfg.encoder} + {cfg.head.name}")
        recorder = RolloutRecorder(Path(out) / ROLLOUTS, cameras, size, label, action_space)
    for task in tasks:
        env_fn = make_env_fn(spec.suite, task, cameras, size, action_space, spec.max_steps)
        if recorder is not None:
            from robolearn.eval.record import recording_env_fn

            env_fn = recording_env_fn(env_fn)
        if random_policy:
            probe = make(f"{spec.suite}/{task}", cameras=(), image_size=size)
            space = probe.action_space
            probe.close()
            runner: Any = RandomPolicy(space.low, space.high, seed=spec.seeds[0])
        else:
            runner = policy.runner(spec.num_envs)

        def act(batch: dict[int, dict], runner=runner) -> dict[int, np.ndarray]:
            envs = sorted(batch)
            if random_policy:
                return {e: runner.act(batch[e]) for e in envs}
            actions = dict(zip(envs, runner.act_envs(envs, [batch[e] for e in envs])))
            if spec.suite == "metaworld":
                from robolearn.envs.suites import metaworld_action

                actions = {e: metaworld_action(a) for e, a in actions.items()}
            return actions

        records += rollout_task(
            act,
            runner.reset,
            env_fn,
            spec,
            task,
            seen,
            None if out is None else Path(out) / "videos",
            video_camera,
            progress,
            recorder,
        )
    return records
