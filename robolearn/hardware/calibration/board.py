"""The ChArUco board (its spec, image and corner detection) and the 4x4 pose helpers every calibration module
shares (position + wxyz quaternion <-> matrix, inverse, pose error). Also the calibration error type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import mujoco
import numpy as np


class CalibrationError(RuntimeError):
    """Calibration could not be done (too few usable views, degenerate motion, a bad file); says why."""


# ---------------------------------------------------------------------------------------------- board
@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board. Default: 5 x 7 squares of 40 mm, 30 mm markers from DICT_4X4_50 (fits on A4 paper,
    200 x 280 mm). Measure the printed square size and set `square_m` to it: every length scales with it."""

    squares_x: int = 5
    squares_y: int = 7
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if self.squares_x < 2 or self.squares_y < 2:
            raise ValueError(f"board needs at least 2 x 2 squares, got {self.squares_x} x {self.squares_y}")
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(f"board marker size must be in (0, square size {self.square_m}), got {self.marker_m}")
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(
                f"unknown ArUco dictionary {self.dictionary!r}; expected a cv2.aruco.DICT_* name, "
                f"e.g. DICT_4X4_50, DICT_5X5_100"
            )

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    def board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d)

    def image(self, px_per_square: int = 160) -> np.ndarray:
        """The board as a grayscale image without margin (for printing or a sim texture): row 0 is the board's
        y = 0 edge, column 0 its x = 0 edge (OpenCV's board object frame)."""
        return self.board().generateImage(
            (self.squares_x * px_per_square, self.squares_y * px_per_square), marginSize=0, borderBits=1
        )


@dataclass
class Detection:
    """Board corners found in one image: pixel positions, ChArUco ids and board-frame 3D points."""

    image_points: np.ndarray  # (N, 2) float64 px
    ids: np.ndarray  # (N,) int
    object_points: np.ndarray  # (N, 3) float64 m, board frame


_DETECTORS: dict[BoardSpec, tuple[Any, Any]] = {}  # board -> (CharucoBoard, CharucoDetector)


def detect_board(image: np.ndarray, board: BoardSpec, min_corners: int = 6) -> Detection | None:
    """ChArUco corners in an RGB or grayscale image, or None when fewer than `min_corners` are found."""
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.dtype != np.uint8:
        raise ValueError(f"detect_board wants an (H, W) or (H, W, 3) uint8 image, got {img.shape} {img.dtype}")
    if board not in _DETECTORS:
        b = board.board()
        _DETECTORS[board] = (b, cv2.aruco.CharucoDetector(b))
    b, detector = _DETECTORS[board]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    corners, ids, _, _ = detector.detectBoard(gray)
    if ids is None or len(ids) < min_corners:
        return None
    ids = ids.reshape(-1).astype(int)
    obj = np.asarray(b.getChessboardCorners(), dtype=np.float64)[ids]
    return Detection(corners.reshape(-1, 2).astype(np.float64), ids, obj)


# ---------------------------------------------------------------------------------------------- poses
def to_matrix(position: Sequence[float], quat_wxyz: Sequence[float]) -> np.ndarray:
    """4x4 pose from a position and a unit quaternion (wxyz), e.g. a robot state's ee_position/ee_quaternion."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat_wxyz, dtype=np.float64) / np.linalg.norm(quat_wxyz))
    t = np.eye(4)
    t[:3, :3] = mat.reshape(3, 3)
    t[:3, 3] = position
    return t


def to_pos_quat(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(t[:3, :3]).ravel())
    return t[:3, 3].copy(), quat * (1 if quat[0] >= 0 else -1)


def _rt(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3))[0]
    t[:3, 3] = np.asarray(tvec).reshape(3)
    return t


def _inv(t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = t[:3, :3].T
    out[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return out


def _project_so3(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    if np.linalg.det(r) < 0:
        r = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return r


def pose_error(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(translation error [m], rotation error [deg]) between two 4x4 poses."""
    d = _inv(a) @ b
    angle = np.degrees(np.arccos(np.clip((np.trace(d[:3, :3]) - 1) / 2, -1.0, 1.0)))
    return float(np.linalg.norm(a[:3, 3] - b[:3, 3])), float(angle)
