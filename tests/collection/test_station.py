"""The station: expert collection, labels, discard, resume, faults (robot error, NaN device, dropped
frames, SIGKILL mid-episode)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robolearn.cli import main
from robolearn.collection.station import AutoOperator, Station, StationConfig
from robolearn.data import catalog
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.repair import repair_dataset
from robolearn.data.validate import validate_dataset
from robolearn.hardware.cameras.base import Camera, Frame
from robolearn.hardware.cameras.sim import SimCamera
from robolearn.hardware.devices.base import Device, DeviceCommand
from robolearn.hardware.devices.expert import ExpertDevice
from robolearn.hardware.loop import ControlLoop
from robolearn.hardware.robots.base import RobotError
from robolearn.hardware.robots.sim import SimRobot, SimRobotConfig
from robolearn.lineage import fingerprint, read_card


def _station(out: Path, device_factory, cameras=("wrist",), answers=None, robot=None, **cfg) -> Station:
    robot = robot or SimRobot(SimRobotConfig(task="press-button"))
    cams = [SimCamera(robot, c, 32, 24) for c in cameras]
    config = StationConfig(cameras=list(cameras), **cfg)
    return Station(config, out, robot, cams, device_factory(robot), AutoOperator(answers, log=None))


class Scripted(Device):
    """Emits 'start', then a fixed twist for `steps` steps, then `final` events."""

    name = "scripted"

    def __init__(self, steps: int = 5, final: str = "failure", twist=None) -> None:
        self.steps, self.final, self.n = steps, final, -1
        self.twist = np.zeros(6) if twist is None else twist

    def read(self) -> DeviceCommand:
        self.n += 1
        if self.n == 0:
            return DeviceCommand(events={"start"})
        events = {self.final} if self.n > self.steps and self.final else set()
        if events:
            self.n = -1  # the next episode starts with 'start' again
        return DeviceCommand(self.twist, 0.0, True, events)


def test_expert_collection_writes_valid_labelled_episodes(tmp_path: Path) -> None:
    st = _station(tmp_path / "ds", ExpertDevice, cameras=("wrist", "exterior_1"))
    results = st.run(2)
    assert [r.outcome for r in results] == ["success", "success"]
    paths = list_episodes(tmp_path / "ds")
    assert len(paths) == 2
    ep = Episode(paths[0])
    assert ep.attrs["success"] == 1 and ep.attrs["label_source"] == "detector"
    assert ep.attrs["teleop_device"] == "expert" and ep.num_steps == results[0].steps
    cadence = ep.attrs["cadence"]
    assert cadence["steps"] == ep.num_steps and cadence["target_hz"] == 15.0
    assert ep.frame("wrist", 0).shape == (24, 32, 3)
    report = validate_dataset(tmp_path / "ds")
    assert not report.errors, report.errors
    assert len(catalog.query(tmp_path / "ds", ["success=1"])) == 2
    assert json.loads((tmp_path / "ds" / "station.json").read_text())["cameras"] == ["wrist", "exterior_1"]


def test_discard_failure_and_time_limit_labels(tmp_path: Path) -> None:
    res = _station(tmp_path / "b", lambda r: Scripted(4, "failure")).run(1)
    assert res[0].outcome == "failure" and Episode(res[0].path).attrs["success"] == 0
    # No end event: the time limit ends it and the operator labels it (scripted answer 'y').
    res = _station(tmp_path / "c", lambda r: Scripted(10**6, ""), answers=["y"], max_seconds=0.4).run(1)
    ep = Episode(res[0].path)
    assert ep.attrs["success"] == 1 and ep.attrs["label_source"] == "operator" and ep.num_steps == 6


def test_discarded_episode_leaves_no_file(tmp_path: Path) -> None:
    devices = iter([Scripted(3, "discard"), Scripted(3, "failure")])
    dev = next(devices)

    class Switch(Device):
        name = "switch"

        def read(self):
            nonlocal dev
            cmd = dev.read()
            if "discard" in cmd.events:
                dev = next(devices)
            return cmd

    res = _station(tmp_path / "ds", lambda r: Switch()).run(1)
    assert [r.outcome for r in res] == ["discarded", "failure"]
    assert len(list_episodes(tmp_path / "ds")) == 1
    assert not list((tmp_path / "ds").rglob("*.partial"))


def test_resume_rules(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    _station(out, lambda r: Scripted(2)).run(1)
    with pytest.raises(FileExistsError, match="--resume"):
        _station(out, lambda r: Scripted(2)).run(1)
    _station(out, lambda r: Scripted(2)).run(2, resume=True)
    assert len(list_episodes(out)) == 3
    with pytest.raises(ValueError, match="control_hz"):
        _station(out, lambda r: Scripted(2), control_hz=30.0).run(1, resume=True)


def test_scene_change_prompt_updates_scene(tmp_path: Path) -> None:
    st = _station(tmp_path / "ds", lambda r: Scripted(2), answers=["y"], scene_check_every=1, scene="scene_3")
    st.run(1)
    assert json.loads((tmp_path / "ds" / "station.json").read_text())["scene"] == "scene_4"


class FailingRobot(SimRobot):
    def __init__(self, fail_at: int) -> None:
        super().__init__(SimRobotConfig(task="press-button"))
        self.fail_at, self.n = fail_at, 0

    def apply(self, action, space):
        self.n += 1
        if self.n >= self.fail_at:
            raise RobotError("robot server at tcp://127.0.0.1:5555 did not answer within 0.5 s")
        return super().apply(action, space)


def test_robot_error_keeps_recorded_steps_and_marks_episode(tmp_path: Path) -> None:
    st = _station(tmp_path / "ds", lambda r: Scripted(100), robot=FailingRobot(fail_at=6))
    with pytest.raises(RobotError, match="did not answer"):
        st.run(1)
    (path,) = list_episodes(tmp_path / "ds")
    ep = Episode(path)
    assert ep.num_steps == 5 and ep.attrs["success"] == -1
    assert "did not answer" in ep.attrs["extra"]["aborted"]


def test_nan_device_is_a_clear_error_and_data_is_kept(tmp_path: Path) -> None:
    st = _station(tmp_path / "ds", lambda r: Scripted(100, twist=np.array([0, 0, 0, 0, 0, 0.0])))
    dev = st.device
    real = dev.read

    def read():
        cmd = real()
        if dev.n == 4:  # the 4th recorded step
            cmd.twist = np.array([np.nan, 0, 0, 0, 0, 0])
        return cmd

    dev.read = read
    with pytest.raises(ValueError, match="non-finite"):
        st.run(1)
    (path,) = list_episodes(tmp_path / "ds")
    assert Episode(path).num_steps == 3


class FlakyCamera(Camera):
    name = "flaky"

    def __init__(self, inner: SimCamera) -> None:
        self.inner, self.n = inner, 0

    def connect(self) -> None:
        self.inner.connect()

    def read(self) -> Frame:
        self.n += 1
        return Frame.missing() if self.n % 2 == 0 else self.inner.read()

    def spec(self):
        s = self.inner.spec()
        s.name = "flaky"
        return s


def test_dropped_frames_are_recorded_not_fatal(tmp_path: Path) -> None:
    robot = SimRobot(SimRobotConfig(task="press-button"))
    cam = FlakyCamera(SimCamera(robot, "wrist", 32, 24))
    st = Station(StationConfig(cameras=["flaky"]), tmp_path / "ds", robot, [cam], Scripted(6), AutoOperator(log=None))
    (res,) = st.run(1)
    ep = Episode(res.path)
    dropped = ep.array("cameras/flaky/dropped")
    assert dropped.any() and not dropped.all() and res.dropped_frames == int(dropped.sum())
    assert not validate_dataset(tmp_path / "ds").errors


def test_control_loop_counts_overruns_with_a_fake_clock() -> None:
    now = [0]
    loop = ControlLoop(10.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + int(s * 1e9)))
    for work_ms in (10, 10, 150, 10):
        loop.begin()
        now[0] += work_ms * 1_000_000
        loop.mark("observe_end")
        loop.end()
    r = loop.report()
    assert r["steps"] == 4 and r["overruns"] == 1 and r["worst_step_ms"] == pytest.approx(150)
    assert r["period_ms_p50"] == pytest.approx(100)
    with pytest.raises(ValueError, match="phase"):
        loop.mark("thinking")


def test_sigkill_mid_episode_keeps_closed_episodes_and_salvages_the_open_one(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cmd = [
        sys.executable,
        "-m",
        "robolearn.cli",
        "collect",
        "--robot",
        "sim",
        "--task",
        "put-in-bin",
        "--device",
        "expert",
        "--episodes",
        "50",
        "--out",
        str(out),
        "--cameras",
        "wrist",
        "--camera-width",
        "32",
        "--camera-height",
        "24",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "MUJOCO_GL": "egl"}
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out.exists() and list_episodes(out)):
            time.sleep(0.2)
        while time.time() < deadline and not list(out.rglob("*.partial")):
            time.sleep(0.05)
        time.sleep(1.5)  # let the open episode flush some steps
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    closed = list_episodes(out)
    assert closed, "no episode was closed before the kill"
    assert all(Episode(p).attrs["complete"] for p in closed)
    results = repair_dataset(out, min_age_s=0.0)
    assert results and all(r.action in ("salvaged", "quarantined", "published") for r in results), results
    assert not validate_dataset(out).errors


def test_unattended_expert_collection_of_50_episodes(tmp_path: Path) -> None:
    out = tmp_path / "auto"
    rc = main(
        [
            "collect",
            "--robot",
            "sim",
            "--task",
            "press-button",
            "--device",
            "expert",
            "--episodes",
            "50",
            "--out",
            str(out),
            "--cameras",
            "wrist",
            "--camera-width",
            "32",
            "--camera-height",
            "24",
            "--no-station.realtime",
        ]
    )
    assert rc == 0
    paths = list_episodes(out)
    assert len(paths) == 50
    rows = catalog.query(out, ["success=1"])
    assert len(rows) >= 45  # the expert's bar is 90%
    assert (out / "collect.config.json").exists() and (out / "station.json").exists()
    card = read_card(out)  # the demos' lineage card: raw data, its id the hash of the episodes it counts
    assert card["kind"] == "demos" and card["inputs"] == [] and card["config"]["task"] == "press-button"
    assert card["figures"] == {"episodes": 50, "successful": len(rows)}
    assert card["id"] == fingerprint(out, ["**/*.h5"])[0] and card["id_method"]["count"] == 50


def test_robot_server_killed_mid_episode_marks_the_episode(tmp_path: Path) -> None:
    from robolearn.hardware.robots.remote import RemoteRobot

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "robolearn.cli",
            "robot-server",
            "--robot",
            "sim",
            "--task",
            "press-button",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "MUJOCO_GL": "egl"},
    )
    try:
        line = ""
        deadline = time.time() + 60
        while "serving" not in line and time.time() < deadline:
            line = server.stdout.readline()
        address = line.split(" at ")[-1].split()[0]
        robot = RemoteRobot(address, timeout_s=0.5)
        device = Scripted(10**6)
        real_read = device.read

        def read():
            if device.n == 5:
                server.kill()
            return real_read()

        device.read = read
        st = Station(StationConfig(cameras=[]), tmp_path / "ds", robot, [], device, AutoOperator(log=None))
        with pytest.raises(RobotError, match="robot server"):
            st.run(1)
    finally:
        server.kill()
        server.wait(timeout=10)
    (path,) = list_episodes(tmp_path / "ds")
    ep = Episode(path)
    assert ep.num_steps >= 3 and ep.attrs["success"] == -1
    assert "robot server" in ep.attrs["extra"]["aborted"]


def test_task_from_the_catalogue_or_free_text() -> None:
    from robolearn.collection.commands import choose_task
    from robolearn.envs.tasks import TASKS

    answers = iter(["", "2"])
    assert choose_task(lambda _: next(answers), lambda _: None) == sorted(TASKS)[1]
    assert choose_task(lambda _: "fold the towel", lambda _: None) == "fold the towel"


def test_calibration_and_opencv_camera_are_written_into_every_episode(tmp_path: Path) -> None:
    import cv2

    from robolearn.hardware.calibration import calibrate_sim, write_calibration
    from robolearn.hardware.cameras.opencv import OpenCVCamera, OpenCVCameraConfig

    result, _ = calibrate_sim("exterior_1", views=12)
    calib = write_calibration(tmp_path / "calib", result)
    video = tmp_path / "cam.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(200):
        writer.write(np.full((48, 64, 3), i % 255, np.uint8))
    writer.release()
    cam = OpenCVCamera(
        OpenCVCameraConfig(
            source=str(video), name="exterior_1", width=64, height=48, calibration=str(calib), loop_file=True
        )
    )
    robot = SimRobot(SimRobotConfig(task="press-button"))
    st = Station(
        StationConfig(cameras=["exterior_1"]), tmp_path / "ds", robot, [cam], Scripted(5), AutoOperator(log=None)
    )
    (res,) = st.run(1)
    spec = Episode(res.path).camera("exterior_1")
    np.testing.assert_allclose(np.asarray(spec.extrinsics), np.asarray(result.extrinsics), atol=1e-9)
    assert spec.calibration and spec.intrinsics is not None
    # Intrinsics are rescaled from the calibrated 640x480 to the stored 64x48.
    assert np.asarray(spec.intrinsics)[0, 0] == pytest.approx(np.asarray(result.intrinsics)[0, 0] * 64 / 640)
