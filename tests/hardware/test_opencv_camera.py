"""OpenCVCamera on generated video files and a scripted fake device; the camera registry."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from robolearn.hardware import plugins
from robolearn.hardware.calibration import CalibrationResult, write_calibration
from robolearn.hardware.cameras.base import Camera, Frame
from robolearn.hardware.cameras.opencv import CameraError, OpenCVCamera, OpenCVCameraConfig
from robolearn.hardware.cameras.registry import available_cameras, make_camera

BITS = 6  # frame index drawn as 6 black/white blocks: survives MPEG-4 compression


def _frame(i: int, w: int = 320, h: int = 240) -> np.ndarray:
    f = np.zeros((h, w, 3), np.uint8)
    f[:, :, 0] = 200  # BGR blue: the RGB frame must have it in channel 2
    bw = w // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            f[: h // 2, b * bw : (b + 1) * bw, 1] = 255
    return f


def _index(rgb: np.ndarray) -> int:
    h, w = rgb.shape[:2]
    bw = w // BITS
    return sum(1 << b for b in range(BITS) if rgb[h // 4, b * bw + bw // 2, 1] > 128)


def _video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (320, 240))
    assert writer.isOpened()
    for i in range(n):
        writer.write(_frame(i))
    writer.release()
    return path


def _collect(cam: OpenCVCamera, seconds: float, until: int | None = None) -> list[Frame]:
    frames, end = [], time.monotonic() + seconds
    while time.monotonic() < end and (until is None or len(frames) < until):
        f = cam.read()
        if not f.dropped:
            frames.append(f)
        elif cam.stats()["ended"]:
            break
        time.sleep(0.002)
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _video(tmp_path_factory.mktemp("video") / "clip.mp4", 30)


def test_file_frames_in_order_then_ended(video: Path) -> None:
    cam = OpenCVCamera(OpenCVCameraConfig(source=str(video), name="ext", width=160, height=120, fps=60))
    with cam:
        frames = _collect(cam, 5.0)
        stats = cam.stats()
        assert stats["ended"] and stats["frames_grabbed"] == 30
        # read() never returns the same frame twice: indices and timestamps strictly increase
        idx = [_index(f.image) for f in frames]
        assert idx == sorted(set(idx)) and len(frames) == stats["frames_returned"] >= 10
        receive = [f.receive_ns for f in frames]
        assert all(b > a for a, b in zip(receive, receive[1:]))
        for f in frames:
            assert f.image.shape == (120, 160, 3) and f.image.dtype == np.uint8  # resized from 320x240
            assert f.capture_ns < f.receive_ns  # estimate: one frame period earlier
            assert f.image[..., 2].mean() > 150 and f.image[..., 0].mean() < 50  # BGR -> RGB
        assert stats["source_size"] == (320, 240)
        # The file ended ("camera unplugged"): reads return dropped frames at once, counted
        before = cam.stats()["dropped_reads"]
        t0 = time.perf_counter()
        missing = [cam.read() for _ in range(20)]
        assert time.perf_counter() - t0 < 0.5
        assert all(f.dropped and f.image is None for f in missing)
        assert cam.stats()["dropped_reads"] == before + 20


def test_read_returns_newest_and_drops_when_nothing_new(video: Path) -> None:
    cam = OpenCVCamera(OpenCVCameraConfig(source=str(video), fps=30))
    with cam:
        time.sleep(0.3)  # several frames arrive; only the newest is returned
        first = cam.read()
        assert not first.dropped and _index(first.image) >= 3
        assert cam.read().dropped  # nothing new within microseconds at 30 fps


def test_loop_file_keeps_playing(video: Path) -> None:
    cam = OpenCVCamera(OpenCVCameraConfig(source=str(video), fps=200, loop_file=True))
    with cam:
        deadline = time.monotonic() + 5
        while cam.stats()["loops"] < 2 and time.monotonic() < deadline:
            cam.read()
            time.sleep(0.01)
        stats = cam.stats()
        assert stats["loops"] >= 2 and stats["frames_grabbed"] >= 60 and not stats["ended"]
        assert not _collect(cam, 1.0, until=1)[0].dropped


def test_bad_sources_fail_at_start(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        OpenCVCamera(OpenCVCameraConfig(source=str(tmp_path / "missing.mp4"))).connect()
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="99"):
        OpenCVCamera(OpenCVCameraConfig(source=99)).connect()
    assert time.monotonic() - t0 < 5
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(CameraError, match="junk.mp4"):
        OpenCVCamera(OpenCVCameraConfig(source=str(junk))).connect()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"width": 0}, "width"),
        ({"fps": 0}, "fps"),
        ({"role": "top"}, "role"),
        ({"source": -1}, "source"),
        ({"fourcc": "MJPEG"}, "fourcc"),
        ({"encoding": "bmp"}, "encoding"),
    ],
)
def test_bad_config(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OpenCVCamera(OpenCVCameraConfig(**kw)).spec()


def test_source_digits_become_index() -> None:
    assert OpenCVCameraConfig(source="2").source == 2
    assert OpenCVCameraConfig(source="rtsp://cam/1").kind == "stream"
    assert OpenCVCameraConfig(source="/dev/video0").kind == "device"


class FakeDevice:
    """A scripted device: opens fail while `down`, reads fail after `fail_after` frames (unplugged)."""

    def __init__(self, state: dict) -> None:
        self.state = state
        state["opens"] += 1
        self.ok = not state["down"]

    def isOpened(self) -> bool:
        return self.ok

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(0.01)
        s = self.state
        if s["down"] or s["served"] >= s["fail_after"]:
            s["down"] = True
            return False, None
        s["served"] += 1
        return True, _frame(s["served"])

    def get(self, prop: int) -> float:
        return 0.0

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.state["released"] += 1


def test_device_unplugged_then_reconnects() -> None:
    state = dict(down=False, served=0, fail_after=5, opens=0, released=0)
    cam = OpenCVCamera(OpenCVCameraConfig(source=0, reconnect_s=0.05), open_capture=lambda c: FakeDevice(state))
    cam.connect()
    try:
        assert len(_collect(cam, 3.0, until=5)) == 5
        deadline = time.monotonic() + 3  # unplugged: dropped frames while the thread retries
        while cam.stats()["reconnect_attempts"] < 3 and time.monotonic() < deadline:
            assert cam.read().dropped
            time.sleep(0.01)
        stats = cam.stats()
        assert stats["failures"] == 1 and stats["reconnect_attempts"] >= 3 and not stats["connected"]
        state.update(down=False, fail_after=10**9)  # plugged back in
        frames = _collect(cam, 3.0, until=3)
        assert len(frames) == 3 and cam.stats()["reconnects"] == 1 and cam.stats()["connected"]
    finally:
        cam.disconnect()
    assert state["released"] == state["opens"]  # every capture released


def test_open_timeout_then_restart() -> None:
    state = dict(down=False, served=0, fail_after=10**9, opens=0, released=0)
    calls = []

    def slow_open(config: OpenCVCameraConfig) -> FakeDevice:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)  # a stream that takes too long to answer
        return FakeDevice(state)

    cam = OpenCVCamera(OpenCVCameraConfig(source=0, open_timeout_s=0.2), open_capture=slow_open)
    t0 = time.monotonic()
    with pytest.raises(CameraError, match="did not open within 0.2 s"):
        cam.connect()
    assert time.monotonic() - t0 < 1.0
    cam.connect()  # a new run; the abandoned one exits on its own
    try:
        assert len(_collect(cam, 3.0, until=2)) == 2
    finally:
        cam.disconnect()


def test_stop_ends_thread_and_is_idempotent(video: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    cam = OpenCVCamera(OpenCVCameraConfig(source=str(video), name="stopme", fps=30, loop_file=True))
    cam.connect()
    cam.connect()  # idempotent
    assert "camera-stopme" in {t.name for t in threading.enumerate()}
    t0 = time.monotonic()
    cam.disconnect()
    cam.disconnect()
    assert time.monotonic() - t0 < 2.0
    assert {t.name for t in threading.enumerate()} == before
    assert cam.read().dropped
    cam.connect()  # restartable
    assert len(_collect(cam, 3.0, until=1)) == 1
    cam.disconnect()


def test_process_exits_without_stop(video: Path) -> None:
    code = (
        "from robolearn.hardware.cameras.opencv import OpenCVCamera, OpenCVCameraConfig\n"
        f"OpenCVCamera(OpenCVCameraConfig(source={str(video)!r}, loop_file=True)).connect()\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "ok" in out.stdout


def _calibration(camera: str, w: int = 640, h: int = 480) -> CalibrationResult:
    ext = np.eye(4)
    ext[:3, 3] = [1.0, 0.5, 0.8]
    return CalibrationResult(
        camera=camera,
        width=w,
        height=h,
        mounted_on="world",
        extrinsics=ext.tolist(),
        intrinsics=[[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]],
        distortion=[0.01, -0.02, 0, 0, 0],
        board_pose=np.eye(4).tolist(),
        residual_px=0.2,
        holdout={"views": 5.0},
        num_views=16,
        num_rejected=0,
        intrinsics_source="estimated",
        time="2025-01-01T00:00:00+00:00",
        board={},
    )


def test_spec_from_calibration_file(tmp_path: Path) -> None:
    write_calibration(tmp_path, _calibration("ext"))
    spec = OpenCVCamera(OpenCVCameraConfig(name="ext", calibration=str(tmp_path))).spec()
    assert spec.extrinsics[0][3] == 1.0 and spec.intrinsics[0][0] == 500.0 and spec.distortion[0] == 0.01
    assert spec.calibration["samples"] == 16 and spec.mounted_on == "world" and spec.serial == "opencv:0"
    half = OpenCVCamera(OpenCVCameraConfig(name="ext", width=320, height=240, calibration=str(tmp_path))).spec()
    assert half.intrinsics[0][0] == 250.0 and half.intrinsics[0][2] == pytest.approx(159.5)  # scaled to 320x240
    plain = OpenCVCamera(OpenCVCameraConfig(name="other")).spec()
    assert plain.intrinsics is None and plain.extrinsics is None
    with pytest.raises(Exception, match="no calibration for camera 'other'"):
        OpenCVCamera(OpenCVCameraConfig(name="other", calibration=str(tmp_path)))


def test_registry_builtins_and_plugins(video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cam = make_camera("opencv", source=str(video), name="e1", width=64, height=48)
    assert isinstance(cam, OpenCVCamera) and cam.spec().width == 64
    with pytest.raises(ValueError, match="unknown option"):
        make_camera("opencv", sorce=0)
    with pytest.raises(ValueError, match="opencv"):
        make_camera("opencvv")
    with pytest.raises(ValueError, match="robot"):
        make_camera("sim", camera="exterior_1")

    class Dummy(Camera):
        def __init__(self, serial: str = "") -> None:
            self.serial = serial

        def connect(self) -> None: ...

        def read(self) -> Frame:
            return Frame.missing()

        def spec(self):
            raise NotImplementedError

    class EP:
        def __init__(self, obj: object) -> None:
            self.obj = obj

        def load(self) -> object:
            return self.obj

    monkeypatch.setattr(
        plugins,
        "discover",
        lambda group: {"dummy": EP(Dummy), "bad": EP(lambda **kw: object())} if group == plugins.CAMERAS else {},
    )
    assert isinstance(make_camera("dummy", serial="42"), Dummy)
    assert "dummy" in available_cameras()
    with pytest.raises(ValueError, match="rejected options"):
        make_camera("dummy", nope=1)
    with pytest.raises(TypeError, match="expected a"):
        make_camera("bad")


def test_registry_sim_camera() -> None:
    from robolearn.hardware.cameras.sim import SimCamera
    from robolearn.hardware.robots.sim import SimRobot

    robot = SimRobot()
    try:
        cam = make_camera("sim", robot=robot, camera="exterior_1", width=64, height=48)
        assert isinstance(cam, SimCamera)
        with cam:
            assert cam.read().image.shape == (48, 64, 3)
    finally:
        robot.disconnect()
