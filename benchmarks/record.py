"""Recording cadence at the station: robolearn's loop vs a DROID-style loop, side by side.

    python benchmarks/record.py [--seconds 120] [--rates 15 30] [--task put-in-bin]

Both record the sim robot driven by the scripted expert (episodes back to back), three sim cameras at
320x180 rendered every step, JPEG. Figures per rate: achieved Hz, loop period p50/p99/max, overruns,
dropped frames, CPU use (process user+sys time / wall time, 2 cores = 200%).

  robolearn  Station (robolearn.collection): absolute deadlines, crash-safe SWMR EpisodeWriter (JPEG frames,
             flushed at least once a second).
  droid-style the loop of DROID's collect_trajectory: sleep(period - compute time) after each step (relative
             pacing), h5py file with one dataset resize per step per key (its TrajectoryWriter's layout), JPEG
             frames stored as variable-length bytes.
The goal (issue 4): 0 dropped frames and p99 period <= 1.1x nominal at 15 Hz. Ends with ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "egl")

import h5py  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import simplejpeg  # noqa: E402

from robolearn.collection.station import AutoOperator, Station, StationConfig  # noqa: E402
from robolearn.hardware.cameras.sim import SimCamera  # noqa: E402
from robolearn.hardware.devices.expert import ExpertDevice  # noqa: E402
from robolearn.hardware.robots.sim import SimRobot, SimRobotConfig  # noqa: E402

CAMERAS = ("exterior_1", "exterior_2", "wrist")
W, H = 320, 180


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _summary(
    periods_ms: np.ndarray, hz: float, overruns: int, dropped: int, steps: int, wall: float, cpu: float
) -> dict:
    return {
        "achieved_hz": round(float(1000 / periods_ms.mean()), 2),
        "steps": steps,
        "period_ms_p50": round(float(np.percentile(periods_ms, 50)), 2),
        "period_ms_p99": round(float(np.percentile(periods_ms, 99)), 2),
        "period_ms_max": round(float(periods_ms.max()), 2),
        "p99_over_nominal": round(float(np.percentile(periods_ms, 99) / (1000 / hz)), 3),
        "overruns": overruns,
        "dropped_frames": dropped,
        "cpu_percent": round(100 * cpu / wall, 1),
    }


def run_robolearn(task: str, hz: float, seconds: float, workdir: Path) -> dict:
    robot = SimRobot(SimRobotConfig(task=task, control_hz=hz))
    cams = [SimCamera(robot, c, W, H) for c in CAMERAS]
    station = Station(
        StationConfig(cameras=list(CAMERAS), control_hz=hz, max_seconds=60, scene_check_every=0),
        workdir / f"robolearn_{hz:g}",
        robot,
        cams,
        ExpertDevice(robot),
        AutoOperator(log=None),
    )
    station.prepare(resume=False)
    robot.connect()
    for c in cams:
        c.connect()
        c.read()
    periods, overruns, dropped, steps = [], 0, 0, 0
    t0, c0 = time.perf_counter(), _cpu()
    i = 0
    while time.perf_counter() - t0 < seconds:
        res = station.record_episode(i)
        i += 1
        periods.append(station.loop.periods_ms())
        overruns += res.cadence["overruns"]
        dropped += res.dropped_frames
        steps += res.steps
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    robot.disconnect()
    return _summary(np.concatenate(periods), hz, overruns, dropped, steps, wall, cpu) | {"episodes": i}


def run_droid_style(task: str, hz: float, seconds: float, workdir: Path) -> dict:
    robot = SimRobot(SimRobotConfig(task=task, control_hz=hz))
    cams = [SimCamera(robot, c, W, H) for c in CAMERAS]
    device = ExpertDevice(robot)
    robot.connect()
    for c in cams:
        c.connect()
        c.read()
    period = 1.0 / hz
    periods, overruns, steps, episodes = [], 0, 0, 0
    t0, c0 = time.perf_counter(), _cpu()
    while time.perf_counter() - t0 < seconds:
        robot.home(noise=0.02)
        device.read()  # the expert's "start"
        with h5py.File(workdir / f"droid_{hz:g}_{episodes}.h5", "w") as f:
            last = None
            for _ in range(900):
                start = time.perf_counter()
                if last is not None:
                    periods.append((start - last) * 1000)
                last = start
                frames = {c.name: c.read() for c in cams}
                state = robot.state()
                cmd = device.read()
                forms = robot.apply(np.append(cmd.twist, cmd.gripper), "cartesian_velocity")
                row = {
                    **{f"state/{k}": np.atleast_1d(v) for k, v in state.items()},
                    **{f"action/{k}": np.atleast_1d(v) for k, v in forms.items()},
                }
                for key, v in row.items():  # one resize per step per key (TrajectoryWriter)
                    if key not in f:
                        f.create_dataset(key, (0, *v.shape), maxshape=(None, *v.shape), dtype=v.dtype)
                    d = f[key]
                    d.resize(d.shape[0] + 1, axis=0)
                    d[-1] = v
                for name, fr in frames.items():
                    key = f"images/{name}"
                    if key not in f:
                        f.create_dataset(key, (0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8))
                    d = f[key]
                    d.resize(d.shape[0] + 1, axis=0)
                    d[-1] = np.frombuffer(simplejpeg.encode_jpeg(fr.image, 90, "RGB"), np.uint8)
                steps += 1
                compute = time.perf_counter() - start
                if compute > period:
                    overruns += 1
                time.sleep(max(0.0, period - compute))
                if cmd.events & {"success", "failure"}:
                    break
        episodes += 1
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    robot.disconnect()
    return _summary(np.asarray(periods), hz, overruns, 0, steps, wall, cpu) | {"episodes": episodes}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=120.0, help="recording time per system and rate")
    p.add_argument("--rates", type=float, nargs="+", default=[15.0, 30.0])
    p.add_argument("--task", default="put-in-bin")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="robolearn_record_bench_"))
    results: dict[str, dict] = {}
    print(
        f"record benchmark: {args.seconds:g} s per run, 3 sim cameras {W}x{H} JPEG, task {args.task}, "
        f"mujoco {mujoco.__version__}, {os.cpu_count()} CPUs"
    )
    cols = (
        "achieved_hz",
        "period_ms_p50",
        "period_ms_p99",
        "period_ms_max",
        "overruns",
        "dropped_frames",
        "cpu_percent",
    )
    print(f"{'system':12s} {'rate':>5s} " + " ".join(f"{c:>15s}" for c in cols))
    try:
        for hz in args.rates:
            for name, fn in (("robolearn", run_robolearn), ("droid-style", run_droid_style)):
                r = fn(args.task, hz, args.seconds, work)
                results[f"{name}@{hz:g}"] = r
                print(f"{name:12s} {hz:5g} " + " ".join(f"{r[c]:15}" for c in cols), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r15 = results.get("robolearn@15")
    goal = None if r15 is None else bool(r15["dropped_frames"] == 0 and r15["p99_over_nominal"] <= 1.1)
    verdict = "not measured (no 15 Hz run)" if goal is None else ("met" if goal else "NOT met")
    print(f"goal (0 dropped, p99 <= 1.1x nominal at 15 Hz): {verdict}")
    print(
        json.dumps(
            {
                "benchmark": "record",
                "seconds": args.seconds,
                "cameras": len(CAMERAS),
                "size": [W, H],
                "results": results,
                "goal_met": goal,
                "mujoco": mujoco.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
