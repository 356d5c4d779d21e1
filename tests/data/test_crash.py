"""Crash safety of the episode writer, end to end, with real processes.

A child process records episodes in a loop with the real EpisodeWriter (two 32x32 cameras, ~150 Hz,
deterministic content per (episode, step)) and reports every added step and every closed episode on stdout.
The parent SIGKILLs it at random points (during add_step, during a flush, during close, between episodes),
then checks that closed episodes are byte-for-byte unchanged, that `repair` salvages the open episode (or
quarantines it when nothing was committed), that the salvaged copy validates and holds every step that was
added more than one flush interval before the kill, with exactly the data that was written.

This file is also the child: `python test_crash.py OUT START COUNT STEPS[,STEPS...] FLUSH_S HZ`.
"""

from __future__ import annotations

import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from robolearn.data import codec, schema
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig

CAMS = [
    CameraSpec("wrist", 32, 32, role="wrist", encoding="jpeg"),
    CameraSpec(
        "ext",
        32,
        32,
        encoding="png",
        intrinsics=[[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]],
        extrinsics=np.eye(4).tolist(),
    ),
]
HZ = 150.0
MARGIN_S = 0.3  # scheduling slack on a loaded 2-core machine, on top of the flush interval


# ---- deterministic content (shared by the child that writes and the parent that checks) -----------------
def step_content(e: int, t: int) -> dict:
    base = e * 1000.0 + t
    ang = 0.01 * t
    quat = [np.cos(ang), np.sin(ang), 0.0, 0.0]
    state = {
        "joint_positions": base + np.arange(7) * 0.01,
        "joint_velocities": -base - np.arange(7),
        "ee_position": [t * 0.001, e, 1.0],
        "ee_quaternion": quat,
        "gripper_position": (t % 10) / 10,
    }
    action = {
        "cartesian_velocity": np.full(6, ((t % 20) - 10) / 10),
        "cartesian_position": [t, e, 1.0, *quat],
        "joint_position": base + 1 + np.arange(7),
        "joint_velocity": np.full(7, t / 100),
        "gripper_position": float(t % 2),
    }
    yy, xx = np.mgrid[0:32, 0:32]
    img = np.stack([(xx * 8 + t) % 256, (yy * 8 + e) % 256, np.full_like(xx, t % 256)], -1).astype(np.uint8)
    dropped = t % 13 == 5  # the wrist camera misses a frame now and then
    cam0 = e * 10**9 + 10**6 + t * 1000
    return dict(
        state=state,
        action=action,
        images={"wrist": None if dropped else img, "ext": img[::-1].copy()},
        camera_times={"wrist": (0, 0) if dropped else (cam0 + 1, cam0 + 2), "ext": (cam0 + 3, cam0 + 4)},
        reward=t / 1000,
        language_index=0,
    )


def episode_name(e: int) -> str:
    return f"ep_{e:04d}.h5"


def child_main(out: Path, start: int, count: int, steps: list[int], flush_s: float, hz: float = HZ) -> None:
    """Record `count` episodes, episode i with steps[i % len(steps)] steps, at `hz` (0: as fast as possible).
    Prints `ready`, `open e`, `step e t on_disk`, `closing e`, `closed e`, each with
    the monotonic time in ns (same clock as the parent's)."""

    def say(*words: object) -> None:
        print(*words, time.monotonic_ns(), flush=True)

    say("ready")
    for e in range(start, start + count):
        meta = EpisodeMeta(lab="crash", operator="child", task=f"episode {e}", language=[f"episode {e}"], control_hz=HZ)
        cfg = WriterConfig(flush_interval_s=flush_s, min_free_mb=0)
        try:
            with EpisodeWriter(out / episode_name(e), meta, CAMS, cfg) as w:
                say("open", e)
                tick = time.monotonic()
                for t in range(steps[(e - start) % len(steps)]):
                    w.add_step(**step_content(e, t))
                    say("step", e, t, w.num_steps)
                    if hz:
                        tick += 1 / hz
                        time.sleep(max(0.0, tick - time.monotonic()))
                w.set_outcome(True)
                say("closing", e)
        except Exception as exc:  # noqa: BLE001  (report and stop like a recorder would)
            print("error", e, type(exc).__name__, str(exc).replace("\n", " "), flush=True)
            sys.exit(3)
        say("closed", e)


# ---- parent side ----------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One child process and what it reported."""

    proc: subprocess.Popen
    lines: list[list[str]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    kill_ns: int = 0
    stderr: str = ""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start_child(
    out: Path, start: int, count: int, steps: list[int], flush_s: float, hz: float = HZ, trigger=None, preexec_fn=None
) -> tuple[Run, threading.Thread]:
    """Start a recording child; a thread reads its lines, hashes each closed episode as soon as it is
    reported, and calls `trigger(run, words)` per line (it may kill the child)."""
    cmd = [sys.executable, __file__, str(out), str(start), str(count), ",".join(map(str, steps)), str(flush_s), str(hz)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=preexec_fn
    )
    run = Run(proc)

    def read() -> None:
        for line in proc.stdout:
            if not line.endswith("\n"):  # cut short by the kill
                continue
            words = line.split()
            run.lines.append(words)
            if words and words[0] == "closed":
                p = out / episode_name(int(words[1]))
                run.hashes[str(p)] = sha256(p)
            if trigger is not None:
                trigger(run, words)

    th = threading.Thread(target=read, daemon=True)
    th.start()
    return run, th


def kill(run: Run) -> None:
    if run.kill_ns == 0 and run.proc.poll() is None:
        run.kill_ns = time.monotonic_ns()
        os.kill(run.proc.pid, signal.SIGKILL)


def steps_reported(run: Run, e: int) -> list[tuple[int, int, int]]:
    """(t, steps the writer had flushed, time ns) for every step of episode e the child reported."""
    return [(int(w[2]), int(w[3]), int(w[4])) for w in run.lines if w[:2] == ["step", str(e)]]


def check_content(path: Path, e: int, n: int) -> None:
    """The first n steps of the file equal what the child wrote for episode e."""
    import h5py

    with h5py.File(path, "r") as f:
        for t in range(n):
            want = step_content(e, t)
            for group, key in [("state", k) for k in want["state"]] + [("action", k) for k in want["action"]]:
                prefix = schema.STATE_GROUP if group == "state" else schema.ACTION_GROUP
                np.testing.assert_array_equal(
                    f[f"{prefix}/{key}"][t],
                    np.asarray(want[group][key], float),
                    err_msg=f"{path}: {prefix}/{key} step {t}",
                )
            assert f["reward"][t] == np.float32(t / 1000), (path, t)
            assert bool(f["is_first"][t]) == (t == 0) and bool(f["is_last"][t]) == (t == n - 1), (path, t)
            for cam in CAMS:
                g = schema.camera_group(cam.name)
                img = want["images"][cam.name]
                off, length = f[f"{g}/rgb/index"][t]
                got = f[f"{g}/rgb/data"][off : off + length].tobytes()
                expect = b"" if img is None else codec.encode_rgb(img, cam.encoding, cam.quality)
                assert got == expect, f"{path}: {g}/rgb frame {t} differs from what was written"
                assert bool(f[f"{g}/dropped"][t]) == (img is None)
                assert (f[f"{g}/capture_ns"][t], f[f"{g}/receive_ns"][t]) == want["camera_times"][cam.name]
        assert f["timestamp/control/step_end_ns"][:n].min() > 0


def wait_for(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "child did not report in time"
        time.sleep(0.005)


def stop(run: Run, th: threading.Thread) -> None:
    kill(run)
    run.proc.wait(timeout=30)
    th.join(timeout=30)
    run.stderr = run.proc.stderr.read()
    run.proc.stdout.close()
    run.proc.stderr.close()


def kill_spot(run: Run) -> str:
    """Where the kill landed, from the last line the child printed before it."""
    before = [w for w in run.lines if int(w[-1]) <= run.kill_ns]
    last = before[-1][0] if before else "ready"
    return {
        "step": "recording",
        "open": "recording",
        "closing": "closing",
        "closed": "between episodes",
        "ready": "between episodes",
    }.get(last, last)


def trigger_for(mode: str, rng: random.Random, flush_s: float):
    """A per-line callback that kills the child at a chosen kind of moment (None: the parent kills at random)."""

    def on_line(run: Run, words: list[str]) -> None:
        if mode == "closing" and words[0] == "closing":  # inside close(): final flush, attrs, fsync, rename
            time.sleep(rng.uniform(0, 0.012))
            kill(run)
        elif mode == "closed" and words[0] == "closed":  # between episodes / while creating the next file
            time.sleep(rng.uniform(0, 0.004))
            kill(run)
        elif mode == "flush" and words[0] == "open":  # the first flush is due flush_s after the file opens
            time.sleep(flush_s + rng.uniform(-0.003, 0.01))
            kill(run)

    return None if mode == "random" else on_line


def check_open_episode(out: Path, run: Run, e: int, steps: int, flush_s: float) -> tuple[str, int, float]:
    """After repair: episode e (open at the kill) is salvaged with every step committed or added more than
    flush_s + MARGIN_S before the kill, and with exactly the data written; or nothing of it was committed.
    Returns (outcome, steps salvaged, age at the kill of the oldest lost step in s)."""
    import h5py

    from robolearn.data.validate import validate_episode

    reported = steps_reported(run, e)
    flushed = max((d for _, d, _ in reported), default=0)
    cutoff = run.kill_ns - int((flush_s + MARGIN_S) * 1e9)
    old = max((t + 1 for t, _, ns in reported if ns < cutoff), default=0)
    need = max(flushed, old)
    final = out / episode_name(e)

    def lost_age(n: int) -> float:
        return max(((run.kill_ns - ns) / 1e9 for t, _, ns in reported if t >= n), default=0.0)

    if not final.exists():
        assert need == 0, f"{final}: {need} steps were committed before the kill but nothing was salvaged"
        return "nothing", 0, lost_age(0)
    errors = [p for p in validate_episode(final) if p.severity == "error"]
    assert not errors, [str(p) for p in errors]
    with h5py.File(final, "r") as f:
        n, complete = int(f.attrs["num_steps"]), bool(f.attrs["complete"])
    assert need <= n <= len(reported) + 1, f"{final}: salvaged {n}, needed >= {need}, reported {len(reported)}"
    if complete:
        assert n == steps
    check_content(final, e, n)
    return ("published" if complete else "salvaged"), n, lost_age(n)


@pytest.mark.slow
def test_sigkill_at_random_points_loses_at_most_one_flush_interval(tmp_path):
    from collections import Counter

    from robolearn.data.quarantine import find_partials
    from robolearn.data.reader import list_episodes
    from robolearn.data.repair import repair_dataset
    from robolearn.data.validate import validate_dataset

    rng = random.Random(20240611)
    out = tmp_path / "rec"
    out.mkdir()
    flush_s, steps = 0.2, 60
    kills = int(os.environ.get("ROBOLEARN_CRASH_KILLS", "24"))  # raise for a soak run
    modes = ["random", "closing", "random", "flush", "random", "closed"]
    hashes: dict[str, str] = {}
    spots: Counter = Counter()
    outcomes: Counter = Counter()
    salvaged_steps, worst_loss = 0, 0.0
    start = 0
    for k in range(kills):
        mode = modes[k % len(modes)]
        run, th = start_child(out, start, 50, [steps], flush_s, trigger=trigger_for(mode, rng, flush_s))
        try:
            wait_for(lambda: run.lines or run.proc.poll() is not None)
            if mode == "random":
                time.sleep(rng.uniform(0.0, 1.0))
                kill(run)
            else:
                wait_for(lambda: run.kill_ns or run.proc.poll() is not None)
        finally:
            stop(run, th)
        assert run.kill_ns, f"child exited before the kill: {run.stderr}"
        spots[kill_spot(run)] += 1
        hashes.update(run.hashes)
        for p, h in hashes.items():  # closed episodes: untouched by the kill ...
            assert sha256(Path(p)) == h, f"{p}: a closed episode changed"
        results = repair_dataset(out, min_age_s=0)
        assert not find_partials(out), [r.line() for r in results]
        for p, h in hashes.items():  # ... and by repair
            assert sha256(Path(p)) == h, f"{p}: a closed episode changed during repair"
        e = start + sum(w[0] == "closed" for w in run.lines)
        outcome, n, loss = check_open_episode(out, run, e, steps, flush_s)
        outcomes[outcome] += 1
        salvaged_steps += n
        worst_loss = max(worst_loss, loss)
        start = e + 1
    report = validate_dataset(out)
    assert not report.errors, [str(p) for p in report.errors]
    assert len(list_episodes(out)) >= kills // 2
    print(
        f"\n{kills} kills landed: {dict(spots)}; open episode: {dict(outcomes)}; "
        f"{salvaged_steps} steps salvaged; {len(hashes)} closed episodes verified; oldest lost step added "
        f"{worst_loss:.3f} s before its kill (flush interval {flush_s} s)"
    )


# ---- write failures ------------------------------------------------------------------------------------------
SIZE_LIMIT_STEPS = [20, 5000]  # episode 0 closes under the limit; episode 1 grows until it hits it


@pytest.fixture(scope="module")
def size_limited_recording(tmp_path_factory) -> tuple[Path, Run]:
    """A child recording under RLIMIT_FSIZE: episode 0 closes, episode 1 hits the limit mid-episode. The
    folder is shared: tests copy it before changing anything."""
    probe = tmp_path_factory.mktemp("probe")
    child_main(probe, 0, 1, SIZE_LIMIT_STEPS[:1], 0.2, hz=0)  # in-process: the size of a closed episode 0
    limit = (probe / episode_name(0)).stat().st_size + 200_000
    out = tmp_path_factory.mktemp("size_limited")

    def set_limit() -> None:  # in the child; Python ignores SIGXFSZ, so writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run, th = start_child(out, 0, 2, SIZE_LIMIT_STEPS, 0.2, hz=300, preexec_fn=set_limit)
    run.proc.wait(timeout=120)
    stop(run, th)
    return out, run


def test_file_size_limit_mid_episode_raises_and_keeps_flushed_steps(size_limited_recording, tmp_path):
    import h5py

    from robolearn.data.repair import repair_dataset
    from robolearn.data.validate import validate_episode

    src, run = size_limited_recording
    errors = [w for w in run.lines if w[0] == "error"]
    assert errors, f"the child never failed (exit {run.proc.returncode})"
    e, kind, msg = int(errors[0][1]), errors[0][2], " ".join(errors[0][3:])
    assert (e, kind) == (1, "EpisodeWriteError")
    assert episode_name(1) + schema.TMP_SUFFIX[3:] in msg and "File too large" in msg and "repair" in msg, msg
    # Exit code 3, as the child chose; HDF5 2.0 may then segfault in its atexit clean-up of the file it could
    # not close (H5_term_library -> H5D_close), after the child's last write.
    assert run.proc.returncode in (3, -signal.SIGSEGV)
    out = tmp_path / "rec"
    shutil.copytree(src, out)
    closed = out / episode_name(0)
    assert [w[:2] for w in run.lines if w[0] == "closed"] == [["closed", "0"]]
    assert run.hashes[str(src / episode_name(0))] == sha256(closed)
    assert not [p for p in validate_episode(closed) if p.severity == "error"]
    [result] = repair_dataset(out, min_age_s=0)
    assert result.action == "salvaged", result.line()
    flushed = max(d for _, d, _ in steps_reported(run, 1))
    assert flushed > 0
    final = out / episode_name(1)
    assert not [str(p) for p in validate_episode(final) if p.severity == "error"]
    with h5py.File(final, "r") as f:
        n = int(f.attrs["num_steps"])
        assert not f.attrs["complete"]
    assert flushed <= n <= len(steps_reported(run, 1)) + 1
    check_content(final, 1, n)
    assert sha256(closed) == run.hashes[str(src / episode_name(0))]


def test_commit_marker_never_covers_rows_whose_data_failed_to_write(size_limited_recording):
    from robolearn.data.reader import Episode

    src, run = size_limited_recording
    with Episode(src / (episode_name(1)[:-3] + schema.TMP_SUFFIX), swmr=True) as ep:
        n = ep.num_steps  # rows committed by the writer's marker, as the reader and repair count them
        for cam in ep.camera_names:
            for t in range(n):
                ep.frame(cam, t)  # raises EpisodeError on bytes that never reached the disk
    assert n <= max(d for _, d, _ in steps_reported(run, 1))


def test_exception_in_with_block_leaves_a_partial_that_repair_salvages(tmp_path):
    import h5py

    from robolearn.data.errors import Problem
    from robolearn.data.repair import repair_dataset
    from robolearn.data.validate import validate_episode

    final = tmp_path / episode_name(7)
    meta = EpisodeMeta(task="t", language=["t"])
    with pytest.raises(RuntimeError, match="control loop"):
        with EpisodeWriter(final, meta, CAMS, WriterConfig(flush_interval_s=60, min_free_mb=0)) as w:
            for t in range(25):
                w.add_step(**step_content(7, t))
            raise RuntimeError("control loop crashed")
    partial = tmp_path / (episode_name(7)[:-3] + schema.TMP_SUFFIX)
    assert partial.exists() and not final.exists()
    [result] = repair_dataset(tmp_path, min_age_s=0)
    assert (result.action, result.salvaged_steps, result.output) == ("salvaged", 25, final)
    problems = validate_episode(final)
    assert problems == [Problem(str(final), "attrs/complete", problems[0].message, "warning")]
    with h5py.File(final, "r") as f:
        assert not f.attrs["complete"] and f.attrs["num_steps"] == 25
    check_content(final, 7, 25)
    assert (tmp_path / "_quarantine" / partial.name).exists() and not partial.exists()


if __name__ == "__main__":
    a = sys.argv[1:]
    child_main(Path(a[0]), int(a[1]), int(a[2]), [int(x) for x in a[3].split(",")], float(a[4]), float(a[5]))
