"""ChArUco calibration: the solver on synthetic data, the whole procedure in sim against the true camera pose,
the calibration file and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from robolearn.hardware import calibration as cal
from robolearn.hardware.calibration import (
    BoardSpec,
    CalibrationError,
    Detection,
    SimBoardRig,
    View,
    calibrate_camera,
    calibrate_sim,
    detect_board,
    pose_error,
    read_calibration,
    solve_calibration,
    write_calibration,
)
from robolearn.hardware.calibration.board import _inv

K = np.array([[520.0, 0, 319.5], [0, 520.0, 239.5], [0, 0, 1]])


def _pose(rng: np.random.Generator, t_scale: float, r_scale: float) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = cv2.Rodrigues(rng.normal(size=3) * r_scale)[0]
    t[:3, 3] = rng.normal(size=3) * t_scale
    return t


def _synthetic_views(mounted_on: str, n: int = 15, noise_px: float = 0.1, seed: int = 0):
    """Views of a board for known X, Y (AY = XB form), projected with K plus pixel noise."""
    rng = np.random.default_rng(seed)
    board = BoardSpec()
    obj = np.asarray(board.board().getChessboardCorners(), dtype=np.float64)
    look = np.eye(4)  # camera 0.9 m in front of the board, looking at it
    look[:3, 3] = [-0.1, -0.14, 0.9]
    x_true = _pose(rng, 0.3, 0.5)
    y_true = _pose(rng, 0.1, 0.5)
    views = []
    for _ in range(n):
        b = look @ _pose(rng, 0.05, 0.3)  # T_camera_board
        a = x_true @ b @ _inv(y_true)  # A with A Y = X B
        tool = a if mounted_on == "world" else _inv(a)
        img, _ = cv2.projectPoints(obj, cv2.Rodrigues(b[:3, :3])[0], b[:3, 3], K, np.zeros(5))
        img = img.reshape(-1, 2) + rng.normal(scale=noise_px, size=(len(obj), 2))
        views.append(View(tool, Detection(img, np.arange(len(obj)), obj)))
    return views, x_true, board


@pytest.mark.parametrize("mounted_on", ["world", "tool"])
def test_solver_recovers_known_transform(mounted_on: str) -> None:
    views, x_true, board = _synthetic_views(mounted_on)
    res = solve_calibration(views, "cam", (640, 480), board, mounted_on=mounted_on, intrinsics=K)
    dt, dr = pose_error(res.extrinsics_matrix, x_true)
    assert dt < 1e-3 and dr < 0.1
    assert res.residual_px < 0.2 and res.num_views == 15 and res.holdout["views"] == 4  # 30 % of 15, rounded
    assert res.holdout["reprojection_px"] < 0.3 and res.intrinsics_source == "given"
    assert res.extrinsics_convention.startswith("T_base_camera" if mounted_on == "world" else "T_tool_camera")


def test_solver_bad_inputs() -> None:
    views, _, board = _synthetic_views("world", n=6)
    with pytest.raises(CalibrationError, match="too few views"):
        solve_calibration(views, "cam", (640, 480), board, intrinsics=K)
    views, _, board = _synthetic_views("world")
    for kw, match in (
        ({"mounted_on": "ceiling"}, "mounted_on"),
        ({"holdout": 0.95}, "holdout"),
        ({"distortion_model": "fisheye"}, "distortion_model"),
        ({"intrinsics": np.eye(4)}, "3x3"),
    ):
        with pytest.raises(ValueError, match=match):
            solve_calibration(views, "cam", (640, 480), board, **{"intrinsics": K, **kw})
    views[0].tool_pose = np.full((4, 4), np.nan)
    with pytest.raises(ValueError, match="finite 4x4"):
        solve_calibration(views, "cam", (640, 480), board, intrinsics=K)


def test_views_with_bad_pnp_fit_are_rejected() -> None:
    views, x_true, board = _synthetic_views("world", n=14)
    views[3].detection.image_points[:5] += 40.0  # a partly misdetected board
    res = solve_calibration(views, "cam", (640, 480), board, intrinsics=K)
    assert res.num_views == 13 and res.num_rejected == 1
    assert pose_error(res.extrinsics_matrix, x_true)[0] < 1e-3


def test_detector_rejects_images_without_board() -> None:
    board = BoardSpec()
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert detect_board(blank, board) is None
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    assert detect_board(noise, board) is None
    printed = cv2.copyMakeBorder(board.image(60), 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    det = detect_board(printed, board)
    assert det is not None and len(det.ids) == (board.squares_x - 1) * (board.squares_y - 1)
    with pytest.raises(ValueError, match="uint8"):
        detect_board(blank.astype(np.float32), board)
    poses = [np.eye(4)] * 10
    with pytest.raises(CalibrationError, match="too few views with a detected board: 0"):
        calibrate_camera(lambda p: None, lambda: np.eye(4), lambda: blank, poses, "cam", board)
    with pytest.raises(ValueError, match="RGB"):
        calibrate_camera(lambda p: None, lambda: np.eye(4), lambda: blank[..., 0], poses, "cam", board)
    with pytest.raises(CalibrationError, match="no poses"):
        calibrate_camera(lambda p: None, lambda: np.eye(4), lambda: blank, [], "cam", board)


def test_board_spec_validation() -> None:
    with pytest.raises(ValueError, match="dictionary"):
        BoardSpec(dictionary="DICT_NOPE")
    with pytest.raises(ValueError, match="marker"):
        BoardSpec(marker_m=0.05)
    with pytest.raises(ValueError, match="2 x 2"):
        BoardSpec(squares_x=1)


def test_sim_board_texture_matches_geometry() -> None:
    """The rendered board's PnP pose (true intrinsics) matches the board body's pose: texture orientation and
    scale are right."""
    rig = SimBoardRig("exterior_1")
    try:
        rig.move_to(rig.start_pose())
        det = detect_board(rig.grab(), rig.board)
        assert det is not None and len(det.ids) >= 20
        measured, rms = cal.board_pose(det, rig.intrinsics(), np.zeros(5))
        truth = _inv(rig.true_extrinsics()) @ rig.tool_pose() @ rig.true_board_in_tool()
        dt, dr = pose_error(measured, truth)
        assert rms < 0.5 and dt < 3e-3 and dr < 1.0
    finally:
        rig.close()


def test_sim_calibration_accuracy(tmp_path: Path) -> None:
    """The whole procedure in sim, intrinsics estimated: extrinsics within 5 mm and 1 degree of the truth."""
    result, truth = calibrate_sim("exterior_1", views=16, seed=0)
    assert truth["extrinsics_error_mm"] < 5.0 and truth["extrinsics_error_deg"] < 1.0
    assert result.num_views >= 14 and result.residual_px < 1.0 and result.intrinsics_source == "estimated"
    h = result.holdout
    assert h["views"] == 5 and h["translation_mm_mean"] < 5.0 and h["rotation_deg_mean"] < 1.0
    assert abs(truth["focal_error_pct"]) < 1.0
    path = write_calibration(tmp_path, result)
    back = read_calibration(path, "exterior_1")
    assert np.allclose(back.extrinsics_matrix, result.extrinsics_matrix) and back.time == result.time


def test_calibration_file(tmp_path: Path) -> None:
    views, _, board = _synthetic_views("world")
    res = solve_calibration(views, "ext_a", (640, 480), board, intrinsics=K)
    path = write_calibration(tmp_path / "calib", res)
    assert path.name == "calibration.json"
    res.camera = "ext_b"
    write_calibration(path, res)
    data = json.loads(path.read_text())
    assert data["format"] == "robolearn.calibration" and sorted(data["cameras"]) == ["ext_a", "ext_b"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(CalibrationError, match="no calibration for camera 'ext_c'.*ext_a"):
        read_calibration(path.parent, "ext_c")
    with pytest.raises(FileNotFoundError, match="robolearn calibrate"):
        read_calibration(tmp_path / "nowhere", "ext_a")
    path.write_text("{broken")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        read_calibration(path, "ext_a")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        write_calibration(path, res)  # never overwrites a file it cannot read
    path.write_text(json.dumps({"cameras": []}))
    with pytest.raises(CalibrationError, match="not a robolearn calibration file"):
        read_calibration(path, "ext_a")


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from robolearn.cli import main

    out = tmp_path / "calib"
    assert main(["calibrate", "--robot", "sim", "--camera", "exterior_2", "--views", "14", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sim ground truth" in text and "wrote" in text
    res = read_calibration(out, "exterior_2")
    assert res.num_views >= 12 and (out / "calibrate.config.json").exists()
    assert main(["calibrate", "--robot", "franka", "--out", str(out)]) == 2
    assert "calibrate_camera()" in capsys.readouterr().err
    assert main(["calibrate", "--camera", "wrist", "--out", str(out)]) == 1
    assert "exterior" in capsys.readouterr().err


def test_robot_callables_drive_a_robolearn_robot() -> None:
    """The adapter for real robots, on the sim Robot + SimCamera: moves, settles, grabs a frame after that."""
    from robolearn.hardware.calibration import robot_callables, to_matrix
    from robolearn.hardware.cameras.sim import SimCamera
    from robolearn.hardware.robots.sim import SimRobot

    robot = SimRobot()
    try:
        robot.connect()
        camera = SimCamera(robot, "exterior_1", 64, 48)
        camera.connect()
        move_to, tool_pose, grab = robot_callables(robot, camera, realtime=False)
        target = tool_pose().copy()
        target[:3, 3] += [0.03, -0.02, 0.02]
        move_to(target)
        dt, dr = pose_error(tool_pose(), target)
        assert dt < 3e-3 and dr < 1.0
        assert grab().shape == (48, 64, 3)
        state = robot.state()
        assert np.allclose(to_matrix(state["ee_position"], state["ee_quaternion"]), tool_pose())
        camera.disconnect()
    finally:
        robot.disconnect()


def test_degenerate_motion_is_refused() -> None:
    views, _, board = _synthetic_views("world")
    for v in views:  # pure translations: the hand-eye problem has no unique solution
        v.tool_pose[:3, :3] = np.eye(3)
    with pytest.raises(CalibrationError, match="degenerate"):
        solve_calibration(views, "cam", (640, 480), board, intrinsics=K)
