"""ChArUco camera calibration: intrinsics and the camera pose relative to the robot, from views of a board the
robot holds (exterior cameras) or a board fixed in the world seen from the wrist camera.

Procedure (docs/calibration.md): the robot moves through a set of tool poses; at each one we record the tool
pose in the base frame (robot state) and one image. The board is detected (cv2.aruco.CharucoDetector);
intrinsics come from cv2.calibrateCamera unless given; each view's board pose in the camera comes from
cv2.solvePnP. With A_i = T_base_tool_i and B_i = T_camera_board_i the fixed unknowns satisfy

    exterior camera (mounted_on="world"):  A_i   Y = X B_i,  X = T_base_camera, Y = T_tool_board
    wrist camera    (mounted_on="tool"):   A_i^-1 Y = X B_i,  X = T_tool_camera, Y = T_base_board

solved linearly (rotations from the null space of the stacked Kronecker system, then translations by least
squares) and refined by Levenberg-Marquardt on the board corners' reprojection error over all views (with
the intrinsics refined too when they were estimated, so the robot's known motion fixes the focal scale).
30 % of the views are held out: the fit on the other 70 % predicts their board poses (held-out pose and
reprojection errors); the stored result is then fitted on all views. Results go to `calibration.json`
keyed by camera name (atomic write).

`calibrate_camera(move_to, tool_pose, grab, poses, ...)` runs the whole thing with callables, so a real
robot uses the same code as `robolearn calibrate --robot sim`, which drives a sim arm holding a rendered
board (`SimBoardRig`).

Modules: `board` (the board, detection, pose helpers), `solver` (views -> CalibrationResult), `driver`
(`calibrate_camera`, `robot_callables`, `sample_poses`, the calibration file), `sim` (`SimBoardRig`,
`calibrate_sim`). The `robolearn calibrate` command lives in robolearn.hardware.commands.
"""

from __future__ import annotations

from robolearn.hardware.calibration.board import (
    BoardSpec,
    CalibrationError,
    Detection,
    detect_board,
    pose_error,
    to_matrix,
    to_pos_quat,
)
from robolearn.hardware.calibration.driver import (
    CALIBRATION_FILE,
    FORMAT,
    FORMAT_VERSION,
    calibrate_camera,
    read_calibration,
    robot_callables,
    sample_poses,
    write_calibration,
)
from robolearn.hardware.calibration.sim import SimBoardRig, add_board, calibrate_sim
from robolearn.hardware.calibration.solver import (
    DISTORTION_MODELS,
    CalibrationResult,
    View,
    board_pose,
    estimate_intrinsics,
    solve_ax_yb,
    solve_calibration,
)

__all__ = [
    "CALIBRATION_FILE",
    "DISTORTION_MODELS",
    "FORMAT",
    "FORMAT_VERSION",
    "BoardSpec",
    "CalibrationError",
    "CalibrationResult",
    "Detection",
    "SimBoardRig",
    "View",
    "add_board",
    "board_pose",
    "calibrate_camera",
    "calibrate_sim",
    "detect_board",
    "estimate_intrinsics",
    "pose_error",
    "read_calibration",
    "robot_callables",
    "sample_poses",
    "solve_ax_yb",
    "solve_calibration",
    "to_matrix",
    "to_pos_quat",
    "write_calibration",
]
