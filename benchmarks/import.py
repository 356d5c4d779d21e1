"""Import speed: LeRobot v3.0 -> robolearn episodes, next to LeRobot's own loader reading the same data.

    python benchmarks/import.py [--episodes 12] [--steps 60] [--size 96] [--workers 2] [--reps 2]

Data: synthetic robolearn episodes with 3 cameras (wrist, exterior_1, exterior_2, as DROID), exported once
to LeRobot v3.0 (h264 MP4s, many episodes per file). Per rep, alternating:

  robolearn   `import_lerobot` with --workers processes: parquet + MP4 decode, JPEG encode, crash-safe
              HDF5 write of every episode (what `robolearn data import lerobot` does).
  lerobot     lerobot 0.6.1's LeRobotDataset (oracle venv `.venv-lerobot`, pyav backend) constructed on the
              folder and indexed frame by frame over the whole dataset (decode only, nothing written), timed
              inside its subprocess. "not installed" without the venv (`make oracle-lerobot`).

DROID raw layout: the same number of episodes and steps written by tests/data/droid_fixture.py (trajectory.h5,
3 cameras as MP4s, metadata JSON; frames at the fixture's size), imported by `import_droid` with --workers.
DROID's own loader (its RLDS/TensorFlow pipeline) is not installable here: no peer column. The row says "not
available" when the DROID importer or its fixture writer is missing.
Figures: episodes per minute (higher is better) and the ratio robolearn / lerobot. Ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from robolearn.data.interop.lerobot import ImportConfig, export_lerobot, import_lerobot  # noqa: E402
from robolearn.data.reader import list_episodes  # noqa: E402
from robolearn.data.synthetic import SyntheticConfig, make_dataset  # noqa: E402

ORACLE_PY = Path(os.environ.get("ROBOLEARN_LEROBOT_PYTHON", REPO / ".venv-lerobot/bin/python"))
ORACLE_SCRIPT = REPO / "tests/data/interop/lerobot_oracle.py"
CAMERAS = ("wrist", "exterior_1", "exterior_2")
DROID_MAX_STEPS = 25  # the fixture writes step t's brightness as 20 + 9 t: at most ~26 steps fit in uint8


def ours(src: Path, work: Path, workers: int) -> float:
    out = work / "imported"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    rep = import_lerobot(src, out, ImportConfig(workers=workers))
    dt = time.perf_counter() - t0
    assert not rep.skipped, rep.skipped
    return dt


def lerobot(src: Path, work: Path) -> float | None:
    if not ORACLE_PY.exists():
        return None
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(work / "hf"))
    env.pop("PYTHONPATH", None)
    r = subprocess.run(
        [str(ORACLE_PY), str(ORACLE_SCRIPT), "bench", str(src)], capture_output=True, text=True, env=env, cwd=work
    )
    if r.returncode != 0:
        raise RuntimeError(f"lerobot bench failed: {r.stderr[-2000:]}")
    return float(json.loads(r.stdout.strip().splitlines()[-1])["seconds"])


def droid(work: Path, episodes: int, steps: int, workers: int, reps: int) -> float | None:
    """Best seconds to import `episodes` DROID-layout episodes, or None if the importer/fixture is missing."""
    try:
        sys.path.insert(0, str(REPO / "tests" / "data"))
        from droid_fixture import write_episode

        from robolearn.data.interop.droid import import_droid
    except ImportError:
        return None
    src = work / "droid_raw"
    steps = min(steps, DROID_MAX_STEPS)
    for i in range(episodes):
        write_episode(src / "LAB" / "success" / "2023-07-07" / f"ep_{i:04d}", steps, scene_id=i)
    best = float("inf")
    for _ in range(reps):
        out = work / "droid_imported"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        rep = import_droid(src, out, workers=workers)
        best = min(best, time.perf_counter() - t0)
        assert not rep.skipped, rep.skipped
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--size", type=int, default=96, help="camera image side in pixels")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rl-import-bench-"))
    try:
        rl = work / "robolearn"
        make_dataset(rl, SyntheticConfig(num_episodes=a.episodes, steps=a.steps, size=a.size, cameras=CAMERAS))
        src = work / "lerobot_v3"
        export_lerobot(list_episodes(rl), src)
        times: dict[str, list[float]] = {"robolearn": [], "lerobot": []}
        peer_installed = ORACLE_PY.exists()
        for _ in range(a.reps):  # alternate, so both see the same machine load
            times["robolearn"].append(ours(src, work, a.workers))
            t = lerobot(src, work)
            if t is not None:
                times["lerobot"].append(t)
        epm = {k: (a.episodes / min(v) * 60 if v else None) for k, v in times.items()}
        print(
            f"LeRobot v3.0 dataset: {a.episodes} episodes x {a.steps} steps, {len(CAMERAS)} cameras "
            f"{a.size}x{a.size}, best of {a.reps}"
        )
        row = "{:<48}{:>14}{:>10}"
        print(row.format("reader", "episodes/min", "s (best)"))
        print(
            row.format(
                f"robolearn import_lerobot (workers={a.workers})",
                f"{epm['robolearn']:.1f}",
                f"{min(times['robolearn']):.2f}",
            )
        )
        peer = (f"{epm['lerobot']:.1f}", f"{min(times['lerobot']):.2f}") if peer_installed else ("not installed", "")
        print(row.format("lerobot 0.6.1 LeRobotDataset full pass", *peer))
        t_droid = droid(work, a.episodes, a.steps, a.workers, a.reps)
        epm_droid = a.episodes / t_droid * 60 if t_droid else None
        shown = (f"{epm_droid:.1f}", f"{t_droid:.2f}") if t_droid else ("not available", "")
        label = f"robolearn import_droid, DROID raw ({min(a.steps, DROID_MAX_STEPS)} steps)"
        print(row.format(label, *shown))
        print(row.format("DROID's own loader (RLDS / TensorFlow)", "not installed", ""))
        ratio = epm["robolearn"] / epm["lerobot"] if peer_installed else None
        if ratio is not None:
            print(f"robolearn / lerobot episodes per minute: {ratio:.2f}x")
        print(
            json.dumps(
                {
                    "benchmark": "import",
                    "episodes": a.episodes,
                    "steps": a.steps,
                    "cameras": len(CAMERAS),
                    "size": a.size,
                    "workers": a.workers,
                    "lerobot_import_epm": round(epm["robolearn"], 2),
                    "lerobot_loader_epm": round(epm["lerobot"], 2) if peer_installed else "not installed",
                    "ratio_import_vs_loader": round(ratio, 3) if ratio is not None else None,
                    "droid_import_epm": round(epm_droid, 2) if epm_droid else None,
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
