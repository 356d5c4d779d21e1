"""Running a calibration: `calibrate_camera` drives any robot through tool poses via callables
(`robot_callables` builds them from a robolearn Robot and Camera), `sample_poses` spreads the poses, and the
calibration file (`calibration.json`, keyed by camera name) is written atomically and read back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from robolearn.hardware.calibration.board import BoardSpec, CalibrationError, _inv, detect_board, to_matrix, to_pos_quat
from robolearn.hardware.calibration.solver import CalibrationResult, View, solve_calibration
from robolearn.utils import write_text_atomic

CALIBRATION_FILE = "calibration.json"
FORMAT = "robolearn.calibration"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------------------------------- driver
def calibrate_camera(
    move_to: Callable[[np.ndarray], None],
    tool_pose: Callable[[], np.ndarray],
    grab: Callable[[], np.ndarray],
    poses: Sequence[np.ndarray],
    camera: str,
    board: BoardSpec | None = None,
    mounted_on: str = "world",
    min_corners: int = 6,
    progress: Callable[[str], None] | None = None,
    **solve: Any,
) -> CalibrationResult:
    """Move through `poses` (4x4 T_base_tool targets), record (tool pose, image) at each, and solve.

    move_to(pose) must return once the robot has settled (the image and the tool pose must describe the same
    instant); tool_pose() returns the measured 4x4 T_base_tool; grab() returns a fresh RGB image (H, W, 3)
    uint8 taken after the move. Views without a board are skipped and counted; **solve goes to
    solve_calibration (intrinsics, refine_intrinsics, holdout, min_views, max_view_px, seed)."""
    board = board or BoardSpec()
    views, rejected, size = [], 0, None
    for i, target in enumerate(poses):
        move_to(np.asarray(target, dtype=np.float64))
        image = np.asarray(grab())
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"grab() must return an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        if size is not None and size != (image.shape[1], image.shape[0]):
            raise ValueError(f"image size changed during calibration: {size} -> {image.shape[1::-1]}")
        size = (image.shape[1], image.shape[0])
        det = detect_board(image, board, min_corners)
        if det is None:
            rejected += 1
        else:
            views.append(View(np.asarray(tool_pose(), dtype=np.float64), det))
        if progress:
            progress(f"view {i + 1}/{len(poses)}: " + (f"{len(det.ids)} corners" if det else "no board"))
    if size is None:
        raise CalibrationError("no poses given")
    return solve_calibration(views, camera, size, board, mounted_on, num_rejected=rejected, **solve)


def robot_callables(
    robot: Any,
    camera: Any,
    realtime: bool = True,
    settle_velocity: float = 0.01,
    max_move_s: float = 15.0,
    frame_timeout_s: float = 2.0,
) -> tuple[Callable[[np.ndarray], None], Callable[[], np.ndarray], Callable[[], np.ndarray]]:
    """move_to / tool_pose / grab for calibrate_camera from a connected robolearn Robot and a connected Camera.

    move_to streams cartesian_position targets at the robot's control rate (paced in real time unless
    `realtime` is False, e.g. for the sim) until the joints are still (max |qd| < settle_velocity rad/s for
    3 periods); grab returns the first camera frame captured after that (CalibrationError after
    frame_timeout_s of dropped frames)."""
    period = 1.0 / float(robot.control_hz)
    settled_ns = [0]

    def move_to(pose: np.ndarray) -> None:
        pos, quat = to_pos_quat(pose)
        target, still = np.concatenate([pos, quat]), 0
        for _ in range(int(max_move_s / period)):
            t0 = time.monotonic()
            robot.apply(target, "cartesian_position")
            qd = np.asarray(robot.state()["joint_velocities"])
            still = still + 1 if np.max(np.abs(qd)) < settle_velocity else 0
            if realtime:
                time.sleep(max(0.0, period - (time.monotonic() - t0)))
            if still >= 3:
                break
        robot.stop()
        settled_ns[0] = time.monotonic_ns()

    def tool_pose() -> np.ndarray:
        state = robot.state()
        return to_matrix(state["ee_position"], state["ee_quaternion"])

    def grab() -> np.ndarray:
        deadline = time.monotonic() + frame_timeout_s
        while time.monotonic() < deadline:
            frame = camera.read()
            if not frame.dropped and frame.capture_ns >= settled_ns[0]:
                return frame.image
            time.sleep(0.005)
        raise CalibrationError(
            f"camera {getattr(camera, 'name', '?')!r} gave no frame within {frame_timeout_s} s after the robot settled"
        )

    return move_to, tool_pose, grab


def sample_poses(
    center: np.ndarray,
    n: int,
    seed: int = 0,
    translation_m: float = 0.15,
    rotation_deg: float = 40.0,
    pivot: Sequence[float] = (0.0, 0.0, 0.0),
) -> list[np.ndarray]:
    """`n` tool poses around `center` (4x4 T_base_tool, e.g. a pose jogged to where the camera sees the board):
    positions within +-translation_m per axis, rotations up to rotation_deg about random axes through `pivot`
    (a point in the tool frame, e.g. the board centre, so the board stays in view)."""
    rng = np.random.default_rng(seed)
    piv = np.eye(4)
    piv[:3, 3] = pivot
    poses = []
    for _ in range(n):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        rot = np.eye(4)
        rot[:3, :3] = cv2.Rodrigues(axis * np.deg2rad(rng.uniform(0.4, 1.0) * rotation_deg))[0]
        t = center @ piv @ rot @ _inv(piv)
        t[:3, 3] += rng.uniform(-translation_m, translation_m, 3)
        poses.append(t)
    return poses


# ---------------------------------------------------------------------------------------------- file
def write_calibration(path: str | Path, result: CalibrationResult) -> Path:
    """Add/replace `result` under its camera name in the calibration file (a folder means
    folder/calibration.json); written to a temp file then renamed (atomic)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / CALIBRATION_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _read_file(path) if path.exists() else {"format": FORMAT, "version": FORMAT_VERSION, "cameras": {}}
    data["cameras"][result.camera] = result.to_dict()
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CalibrationError(f"{path} is not valid JSON ({e}); restore it or delete it and recalibrate") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("cameras"), dict):
        raise CalibrationError(f"{path} is not a robolearn calibration file (expected format {FORMAT!r})")
    return data


def read_calibration(path: str | Path, camera: str) -> CalibrationResult:
    """The calibration of `camera` from a calibration file (or a folder holding calibration.json)."""
    path = Path(path)
    if path.is_dir():
        path = path / CALIBRATION_FILE
    if not path.exists():
        raise FileNotFoundError(f"calibration file {path} does not exist; run `robolearn calibrate` first")
    cams = _read_file(path)["cameras"]
    if camera not in cams:
        raise CalibrationError(f"{path} has no calibration for camera {camera!r}; it has {sorted(cams)}")
    return CalibrationResult.from_dict(cams[camera])
