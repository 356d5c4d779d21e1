"""Evaluation throughput: rollouts per minute and policy latency, robolearn's EnvPool vs gymnasium's
AsyncVectorEnv (the peer), for a V-Cond-tiny MAP head at 128x128 (two cameras), 1 and 2 parallel envs.

    OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl .venv/bin/python benchmarks/eval.py [--episodes 6] [--steps 60]

Each way runs --rounds times, alternating the order; medians. Every episode runs exactly --steps steps
(random-weight policy: it never succeeds, so episodes don't end
early). Latency: one `runner.act_envs` call (preprocess + encoder + head + ensembling) per control step, p50 and
p99 over all steps. The peer steps gymnasium.vector.AsyncVectorEnv (forkserver, same envs) with the same
batched policy call. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from robolearn.envs.registry import make_vector  # noqa: E402
from robolearn.eval.rollout import EvalSpec, make_env_fn, rollout_task  # noqa: E402
from robolearn.policies import PolicyConfig, build_policy  # noqa: E402

TASK, CAMS, SIZE = "press-button", ["exterior_1", "wrist"], (128, 128)


def make_policy(lm: str):
    cfg = PolicyConfig(
        encoder="v-cond-tiny",
        encoder_overrides={"image_size": 128},
        language_model=lm,
        cameras=CAMS,
        train_image_size=list(SIZE),
        train_tasks=[TASK],
    )
    return build_policy(cfg).eval()


def ours(policy, n_envs: int, episodes: int, steps: int) -> dict:
    runner = policy.runner(n_envs)
    lat: list[float] = []

    def act(batch):
        envs = sorted(batch)
        t = time.perf_counter()
        out = runner.act_envs(envs, [batch[e] for e in envs])
        lat.append(time.perf_counter() - t)
        return dict(zip(envs, out))

    spec = EvalSpec(
        tasks=[TASK], episodes=episodes, scenes=[(0, 0), (1, 1)], num_envs=n_envs, max_steps=steps, videos=0
    )
    env_fn = make_env_fn("household", TASK, CAMS, SIZE, "cartesian_velocity", steps)
    t = time.perf_counter()
    recs = rollout_task(act, runner.reset, env_fn, spec, TASK, None, None, CAMS[0], progress=False)
    wall = time.perf_counter() - t
    assert len(recs) == episodes and all(r["steps"] == steps for r in recs)
    return {
        "rollouts_per_min": episodes / wall * 60,
        "p50_ms": 1e3 * np.percentile(lat, 50),
        "p99_ms": 1e3 * np.percentile(lat, 99),
        "wall_s": wall,
    }


def peer(policy, n_envs: int, episodes: int, steps: int) -> dict:
    """gymnasium AsyncVectorEnv: every env resets itself (autoreset); count finished episodes."""
    venv = make_vector(TASK, n_envs, cameras=tuple(CAMS), image_size=SIZE, max_steps=steps)
    runner = policy.runner(n_envs)
    lat: list[float] = []
    t = time.perf_counter()
    obs, _ = venv.reset(seed=0)
    done, prev_done = 0, np.zeros(n_envs, bool)
    while done < episodes:
        obs_list = [
            {
                "images": {c: obs["images"][c][i] for c in CAMS},
                "proprio": obs["proprio"][i],
                "language": obs["language"][i],
            }
            for i in range(n_envs)
        ]
        t1 = time.perf_counter()
        actions = np.stack(runner.act_envs(list(range(n_envs)), obs_list))
        lat.append(time.perf_counter() - t1)
        obs, r, term, trunc, info = venv.step(actions)
        ended = (term | trunc) & ~prev_done
        done += int(ended.sum())
        prev_done = term | trunc  # next step is the autoreset step of those envs
    wall = time.perf_counter() - t
    venv.close()
    return {
        "rollouts_per_min": done / wall * 60,
        "p50_ms": 1e3 * np.percentile(lat, 50),
        "p99_ms": 1e3 * np.percentile(lat, 99),
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from robolearn.encoders.offline import write_language_model

    lm = str(write_language_model(tempfile.mkdtemp() + "/lm", vocab_size=1000, dim=32, layers=1, heads=2))
    policy = make_policy(lm)
    ways = [
        ("robolearn EnvPool, 1 env", ours, 1),
        ("robolearn EnvPool, 2 envs", ours, 2),
        ("gymnasium AsyncVectorEnv, 2 envs", peer, 2),
    ]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in ways}
    for r in range(args.rounds):  # alternate the order every round; report the median round
        for name, fn, n in ways if r % 2 == 0 else ways[::-1]:
            runs[name].append(fn(policy, n, args.episodes, args.steps))
    rows = {name: {m: float(np.median([x[m] for x in xs])) for m in xs[0]} for name, xs in runs.items()}
    import mujoco

    print(
        f"{'way':40s} {'rollouts/min':>13s} {'p50 ms':>8s} {'p99 ms':>8s}  ({args.steps}-step episodes, "
        f"V-Cond-tiny MAP head, 2 cameras 128x128, mujoco {mujoco.__version__})"
    )
    for k, v in rows.items():
        print(f"{k:40s} {v['rollouts_per_min']:13.1f} {v['p50_ms']:8.2f} {v['p99_ms']:8.2f}")
    two, one = rows["robolearn EnvPool, 2 envs"], rows["robolearn EnvPool, 1 env"]
    gym2 = rows["gymnasium AsyncVectorEnv, 2 envs"]
    out = {
        "mujoco": mujoco.__version__,
        "steps": args.steps,
        "episodes": args.episodes,
        **{k: {m: round(x, 2) for m, x in v.items()} for k, v in rows.items()},
        "ratio_2env_vs_1env": round(two["rollouts_per_min"] / one["rollouts_per_min"], 2),
        "ratio_ours_vs_gym_2env": round(two["rollouts_per_min"] / gym2["rollouts_per_min"], 2),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
