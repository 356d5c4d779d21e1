"""Runs INSIDE the LeRobot oracle venv (.venv-lerobot, lerobot 0.6.1), never in robolearn's venv.

python lerobot_oracle.py make DIR [--episodes N --steps T --size S]   LeRobot writes a v3.0 dataset itself
python lerobot_oracle.py load DIR OUT.npz                             LeRobotDataset reads DIR (local root)
python lerobot_oracle.py bench DIR                                    frames/s of a full pass, one JSON line
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def make(root: str, episodes: int, steps: int, size: int) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (8,), "names": [f"q{i}" for i in range(7)] + ["grip"]},
        "action": {"dtype": "float32", "shape": (7,), "names": ["vx", "vy", "vz", "wx", "wy", "wz", "grip"]},
        "observation.images.front": {
            "dtype": "video",
            "shape": (size, size, 3),
            "names": ["height", "width", "channels"],
        },  # noqa: E501
    }
    ds = LeRobotDataset.create("oracle/made", fps=10, features=features, root=root, robot_type="toy", use_videos=True)
    rng = np.random.default_rng(0)
    for e in range(episodes):
        for t in range(steps):
            img = np.zeros((size, size, 3), np.uint8)
            img[..., 0] = (t * 20) % 256
            img[..., 1] = (e * 60) % 256
            img[: size // 2, :, 2] = 200
            ds.add_frame(
                {
                    "observation.state": np.r_[rng.uniform(-1, 1, 7), rng.uniform(0, 1)].astype(np.float32),
                    "action": np.r_[rng.uniform(-1, 1, 6), rng.uniform(0, 1)].astype(np.float32),
                    "observation.images.front": img,
                    "task": f"task number {e % 2}",
                }
            )
        ds.save_episode()
    ds.finalize()


def load(root: str, out: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/robolearn", root=root, video_backend="pyav")
    cols: dict[str, list] = {}
    for i in range(len(ds)):
        item = ds[i]
        for k, v in item.items():
            if hasattr(v, "numpy"):
                v = v.numpy()
            cols.setdefault(k, []).append(v)
    arrays = {k: np.stack(v) if not isinstance(v[0], str) else np.array(v) for k, v in cols.items()}
    arrays["_meta"] = np.array(
        json.dumps(
            {
                "fps": ds.fps,
                "num_episodes": ds.num_episodes,
                "num_frames": ds.num_frames,
                "camera_keys": ds.meta.camera_keys,
                "features": sorted(ds.features),
                "robot_type": ds.meta.robot_type,
            }
        )
    )
    np.savez(out, **arrays)


def bench(root: str) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    t0 = time.perf_counter()
    ds = LeRobotDataset("local/bench", root=root, video_backend="pyav")
    n = 0
    for i in range(len(ds)):
        ds[i]
        n += 1
    dt = time.perf_counter() - t0
    print(json.dumps({"frames": n, "episodes": ds.num_episodes, "seconds": dt}))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["make", "load", "bench"])
    p.add_argument("root")
    p.add_argument("out", nargs="?")
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--size", type=int, default=32)
    a = p.parse_args()
    if a.cmd == "make":
        make(a.root, a.episodes, a.steps, a.size)
    elif a.cmd == "load":
        load(a.root, a.out)
    else:
        bench(a.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
