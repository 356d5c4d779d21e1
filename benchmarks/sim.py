"""Simulation speed: a household task vs Meta-World drawer-open, side by side in one run.

    python benchmarks/sim.py [--steps 300] [--rounds 3] [--task put-in-bin]

For each rendering setting (no pixels; two 128x128 cameras; two 224x224 cameras) it times, alternating
between the two suites every round (this CPU drifts 2x over minutes):
  ours  HouseholdEnv (robolearn.envs) stepping with random actions, images rendered by the env itself
        (exterior_1 + exterior_2), shadows and multisampling off (the default);
  peer  Meta-World drawer-open-v3 through its own env loop (metaworld's env class .step()), with the same
        two-camera rendering done by a mujoco.Renderer on its model after every step (corner + corner2),
        shadows and multisampling off as well (set before the first render). metaworld runs on the current
        mujoco through robolearn/envs/metaworld_compat.py.
Steps/s is the median over rounds. The control periods differ (ours 15 Hz like the real robot, Meta-World
80 Hz), so the table also gives simulated seconds per wall-clock second without pixels.
Ends with ONE JSON line of figures, ratios and the versions used.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.envs import (
    HouseholdEnv,  # noqa: E402
    metaworld_compat,  # noqa: E402
)

SETTINGS = (("no pixels", 0), ("2 cams 128x128", 128), ("2 cams 224x224", 224))


OURS_DT = 1 / 15
METAWORLD_DT = 0.0125  # frame_skip 5 x timestep 0.0025


def time_ours(task: str, size: int, steps: int) -> float:
    cams = ("exterior_1", "exterior_2") if size else ()
    env = HouseholdEnv(task=task, cameras=cams, image_size=(size or 64, size or 64), household=0, scene=0)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.step(actions[0])  # first render creates the GL context: not timed
    t0 = time.perf_counter()
    for a in actions:
        *_, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset(seed=1)
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


def time_metaworld(size: int, steps: int) -> float:
    metaworld_compat.apply()
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    env = ALL_V3_ENVIRONMENTS["drawer-open-v3"]()
    env._partially_observable = False
    env._freeze_rand_vec = False
    env._set_task_called = True
    env.max_path_length = 10**9
    env.reset(seed=0)
    renderer = None
    if size:
        env.model.vis.quality.shadowsize = 0
        env.model.vis.quality.offsamples = 0
        env.model.vis.global_.offwidth = max(640, size)
        env.model.vis.global_.offheight = max(480, size)
        renderer = mujoco.Renderer(env.model, size, size)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps, 4)).astype(np.float32)

    def one(a):
        env.step(a)
        if renderer is not None:
            for cam in ("corner", "corner2"):
                renderer.update_scene(env.data, camera=cam)
                renderer.render()

    one(actions[0])
    t0 = time.perf_counter()
    for a in actions:
        one(a)
    dt = time.perf_counter() - t0
    if renderer is not None:
        renderer.close()
    env.close()
    return steps / dt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--task", default="put-in-bin")
    args = p.parse_args(argv)
    figures: dict[str, dict[str, float]] = {}
    print(
        f"sim benchmark: {args.steps} steps x {args.rounds} rounds, mujoco {mujoco.__version__}, "
        f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}"
    )
    print(f"{'setting':18s} {'ours ' + args.task:>24s} {'metaworld drawer-open':>22s} {'ratio':>7s}")
    for label, size in SETTINGS:
        ours, peer = [], []
        for _ in range(args.rounds):
            ours.append(time_ours(args.task, size, args.steps))
            peer.append(time_metaworld(size, args.steps))
        o, m = statistics.median(ours), statistics.median(peer)
        figures[label] = {
            "ours_steps_per_s": round(o, 1),
            "metaworld_steps_per_s": round(m, 1),
            "ratio": round(o / m, 2),
        }
        print(f"{label:18s} {o:24.1f} {m:22.1f} {o / m:6.2f}x", flush=True)
    o, m = figures["no pixels"]["ours_steps_per_s"], figures["no pixels"]["metaworld_steps_per_s"]
    figures["sim seconds per second (no pixels)"] = {
        "ours": round(o * OURS_DT, 1),
        "metaworld": round(m * METAWORLD_DT, 1),
        "ratio": round(o * OURS_DT / (m * METAWORLD_DT), 2),
    }
    print(
        f"{'sim-s per s, no px':18s} {o * OURS_DT:24.1f} {m * METAWORLD_DT:22.1f} "
        f"{o * OURS_DT / (m * METAWORLD_DT):6.2f}x"
    )
    goal = figures["2 cams 128x128"]["ratio"] >= 3.0
    print(f"goal (ours >= 3x Meta-World with two 128x128 cameras): {'met' if goal else 'NOT met'}")
    out = {
        "benchmark": "sim",
        "task": args.task,
        "peer": "metaworld drawer-open-v3",
        "steps": args.steps,
        "rounds": args.rounds,
        "figures": figures,
        "goal_3x_at_128": goal,
        **metaworld_compat.versions(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
