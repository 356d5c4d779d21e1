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
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import mujoco
import numpy as np

from robolearn.config import command, opt, save_config

CALIBRATION_FILE = "calibration.json"
FORMAT = "robolearn.calibration"
FORMAT_VERSION = 1


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
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r}; expected a cv2.aruco.DICT_* name, "
                             f"e.g. DICT_4X4_50, DICT_5X5_100")

    @property
    def size_m(self) -> tuple[float, float]:
        return self.squares_x * self.square_m, self.squares_y * self.square_m

    def board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d)

    def image(self, px_per_square: int = 160) -> np.ndarray:
        """The board as a grayscale image without margin (for printing or a sim texture): row 0 is the board's
        y = 0 edge, column 0 its x = 0 edge (OpenCV's board object frame)."""
        return self.board().generateImage((self.squares_x * px_per_square, self.squares_y * px_per_square),
                                          marginSize=0, borderBits=1)


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


# ---------------------------------------------------------------------------------------------- solver
@dataclass
class View:
    """One sample: the tool pose in the base frame and the board detection in the image."""

    tool_pose: np.ndarray  # 4x4 T_base_tool
    detection: Detection


def board_pose(det: Detection, k: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, float]:
    """T_camera_board by PnP (IPPE for the planar board, then LM refinement) and its RMS reprojection [px]."""
    ok, rvec, tvec = cv2.solvePnP(det.object_points, det.image_points, k, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("solvePnP failed on a board view")
    rvec, tvec = cv2.solvePnPRefineLM(det.object_points, det.image_points, k, dist, rvec, tvec)
    proj, _ = cv2.projectPoints(det.object_points, rvec, tvec, k, dist)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - det.image_points) ** 2, axis=1))))
    return _rt(rvec, tvec), rms


def solve_ax_yb(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Linear least-squares X, Y with A_i Y = X B_i (4x4 each). Rotations: null vector of the stacked
    [-(R_Bi^T kron I), (I kron R_Ai)] system projected onto SO(3); then translations by least squares."""
    rows = [np.hstack([-np.kron(bi[:3, :3].T, np.eye(3)), np.kron(np.eye(3), ai[:3, :3])]) for ai, bi in zip(a, b)]
    _, _, vt = np.linalg.svd(np.vstack(rows))
    v = vt[-1]
    rx, ry = v[:9].reshape(3, 3, order="F"), v[9:].reshape(3, 3, order="F")
    if np.linalg.det(rx) < 0:
        rx, ry = -rx, -ry
    rx, ry = _project_so3(rx), _project_so3(ry)
    lhs = np.vstack([np.hstack([-np.eye(3), ai[:3, :3]]) for ai in a])
    rhs = np.concatenate([rx @ bi[:3, 3] - ai[:3, 3] for ai, bi in zip(a, b)])
    t = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    x, y = np.eye(4), np.eye(4)
    x[:3, :3], x[:3, 3] = rx, t[:3]
    y[:3, :3], y[:3, 3] = ry, t[3:]
    return x, y


@dataclass
class _Fit:
    x: np.ndarray
    y: np.ndarray
    k: np.ndarray
    dist: np.ndarray
    rms_px: float


def _predicted(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """T_camera_board predicted by the model for one view (a = A_i in the AY = XB form)."""
    return _inv(x) @ a @ y


def _residuals(views_a: list[np.ndarray], dets: list[Detection], x: np.ndarray, y: np.ndarray, k: np.ndarray,
               dist: np.ndarray) -> np.ndarray:
    out = []
    for a, det in zip(views_a, dets):
        t = _predicted(a, x, y)
        proj, _ = cv2.projectPoints(det.object_points, cv2.Rodrigues(t[:3, :3])[0], t[:3, 3], k, dist)
        out.append((proj.reshape(-1, 2) - det.image_points).ravel())
    return np.concatenate(out)


# Distortion models: which of OpenCV's k1 k2 p1 p2 k3 are estimated (the rest stay 0). Radial k1 k2 suits most
# modern lenses; tangential terms trade off against the principal point and cost rotation accuracy.
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {"none": (), "k1k2": (0, 1), "k1k2p1p2": (0, 1, 2, 3)}


def _unpack(p: np.ndarray, x0: np.ndarray, y0: np.ndarray, k0: np.ndarray, d0: np.ndarray,
            free_dist: tuple[int, ...] | None):
    x, y = x0.copy(), y0.copy()
    x[:3, :3] = cv2.Rodrigues(p[0:3])[0] @ x0[:3, :3]
    x[:3, 3] = x0[:3, 3] + p[3:6]
    y[:3, :3] = cv2.Rodrigues(p[6:9])[0] @ y0[:3, :3]
    y[:3, 3] = y0[:3, 3] + p[9:12]
    k, dist = k0.copy(), d0.copy()
    if free_dist is not None:
        q = p[12:]
        k[0, 0], k[1, 1], k[0, 2], k[1, 2] = k0[0, 0] + q[0], k0[1, 1] + q[1], k0[0, 2] + q[2], k0[1, 2] + q[3]
        dist[list(free_dist)] += q[4:]
    return x, y, k, dist


def _refine(views_a: list[np.ndarray], dets: list[Detection], x: np.ndarray, y: np.ndarray, k: np.ndarray,
            dist: np.ndarray, free_dist: tuple[int, ...] | None, iterations: int = 30) -> _Fit:
    """Levenberg-Marquardt on the reprojection error of every corner of every view (numeric Jacobian) over
    X and Y, plus fx fy cx cy and the `free_dist` distortion terms unless free_dist is None."""
    n_intr = 0 if free_dist is None else 4 + len(free_dist)
    steps = np.r_[np.full(12, 1e-6), np.full(4, 1e-3), np.full(n_intr - 4 if n_intr else 0, 1e-6)]
    p = np.zeros(12 + n_intr)

    def f(p_: np.ndarray) -> np.ndarray:
        return _residuals(views_a, dets, *_unpack(p_, x, y, k, dist, free_dist))

    r = f(p)
    cost, lam = float(r @ r), 1e-3
    for _ in range(iterations):
        jac = np.empty((r.size, p.size))
        for j in range(p.size):
            dp = np.zeros_like(p)
            dp[j] = steps[j]
            jac[:, j] = (f(p + dp) - r) / steps[j]
        jtj, jtr = jac.T @ jac, jac.T @ r
        improved = False
        while lam < 1e8:
            delta = -np.linalg.solve(jtj + lam * np.diag(np.diag(jtj) + 1e-12), jtr)
            r_new = f(p + delta)
            if float(r_new @ r_new) < cost:
                p, r, lam, improved = p + delta, r_new, max(lam / 10, 1e-9), True
                break
            lam *= 10
        if not improved:
            break
        old, cost = cost, float(r @ r)
        if old - cost < 1e-10 * old:
            break
    xf, yf, kf, df = _unpack(p, x, y, k, dist, free_dist)
    return _Fit(xf, yf, kf, df, float(np.sqrt(cost / (r.size / 2))))


def _fit(views: list[View], mounted_on: str, size: tuple[int, int], k: np.ndarray | None,
         dist: np.ndarray | None, refine_intrinsics: bool | None, distortion_model: str) -> _Fit:
    dets = [v.detection for v in views]
    if k is None:
        k, dist = estimate_intrinsics(dets, size, distortion_model)
        refine = True if refine_intrinsics is None else refine_intrinsics
    else:
        dist = _dist5(dist)
        refine = bool(refine_intrinsics)
    a = [v.tool_pose if mounted_on == "world" else _inv(v.tool_pose) for v in views]
    b = [board_pose(d, k, dist)[0] for d in dets]
    x, y = solve_ax_yb(a, b)
    fit = _refine(a, dets, x, y, k, dist, free_dist=None)
    if refine:
        fit = _refine(a, dets, fit.x, fit.y, fit.k, fit.dist, free_dist=DISTORTION_MODELS[distortion_model])
    return fit


def _dist5(dist: Sequence[float] | None) -> np.ndarray:
    d = np.zeros(5)
    if dist is not None:
        given = np.asarray(dist, dtype=np.float64).ravel()
        if given.size > 5:
            raise ValueError(f"distortion must have at most 5 values (k1 k2 p1 p2 k3), got {given.size}")
        d[: given.size] = given
    return d


def estimate_intrinsics(dets: Sequence[Detection], size: tuple[int, int],
                        distortion_model: str = "k1k2") -> tuple[np.ndarray, np.ndarray]:
    """K and distortion (k1 k2 p1 p2 k3; the terms outside `distortion_model` fixed at 0) from board views
    by cv2.calibrateCamera."""
    if distortion_model not in DISTORTION_MODELS:
        raise ValueError(f"distortion_model must be one of {tuple(DISTORTION_MODELS)}, got {distortion_model!r}")
    w, h = size
    k0 = np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1]], dtype=np.float64)
    obj = [d.object_points.astype(np.float32) for d in dets]
    img = [d.image_points.astype(np.float32) for d in dets]
    free = DISTORTION_MODELS[distortion_model]
    flags = cv2.CALIB_USE_INTRINSIC_GUESS | cv2.CALIB_FIX_K3
    flags |= 0 if 0 in free else cv2.CALIB_FIX_K1
    flags |= 0 if 1 in free else cv2.CALIB_FIX_K2
    flags |= 0 if 2 in free else cv2.CALIB_ZERO_TANGENT_DIST
    _, k, dist, _, _ = cv2.calibrateCamera(obj, img, (w, h), k0, np.zeros(5), flags=flags)
    return k, _dist5(dist.ravel()[:5])


@dataclass
class CalibrationResult:
    """One camera's calibration, stored in calibration.json under its name."""

    camera: str
    width: int
    height: int
    mounted_on: str  # world: extrinsics = T_base_camera; tool: T_tool_camera
    extrinsics: list[list[float]]  # 4x4, camera axes OpenCV (x right, y down, z forward)
    intrinsics: list[list[float]]  # 3x3 K at width x height
    distortion: list[float]  # k1 k2 p1 p2 k3
    board_pose: list[list[float]]  # 4x4 T_tool_board (world mount) or T_base_board (tool mount)
    residual_px: float  # RMS reprojection error of the final fit over all views
    holdout: dict[str, float]  # fit on 70 %, measured on the held-out 30 %
    num_views: int  # views used (board found, PnP residual below the limit)
    num_rejected: int  # views without a board or with a PnP residual above max_view_px
    intrinsics_source: str  # estimated | given | given+refined
    time: str  # ISO-8601 UTC
    board: dict[str, Any] = field(default_factory=dict)
    method: str = "charuco_handeye_ba"
    extrinsics_convention: str = "T_base_camera;cam_axes=opencv"

    @property
    def extrinsics_matrix(self) -> np.ndarray:
        return np.asarray(self.extrinsics, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibrationResult:
        missing = [k for k in ("camera", "width", "height", "extrinsics", "intrinsics") if k not in d]
        if missing:
            raise CalibrationError(f"calibration entry lacks {missing}")
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def summary(self) -> dict[str, Any]:
        """What an episode's CameraSpec.calibration records."""
        return {"method": self.method, "time": self.time, "residual_px": self.residual_px,
                "samples": self.num_views, "holdout": self.holdout, "intrinsics_source": self.intrinsics_source}


def solve_calibration(views: Sequence[View], camera: str, size: tuple[int, int], board: BoardSpec,
                      mounted_on: str = "world", intrinsics: np.ndarray | None = None,
                      distortion: Sequence[float] | None = None, refine_intrinsics: bool | None = None,
                      distortion_model: str = "k1k2",
                      holdout: float = 0.3, min_views: int = 8, max_view_px: float = 3.0, num_rejected: int = 0,
                      seed: int = 0) -> CalibrationResult:
    """Calibrate from recorded views (see the module docstring). Raises CalibrationError when too few usable
    views remain. `intrinsics` None: estimated (and refined jointly); given: kept fixed unless
    `refine_intrinsics` (then fx fy cx cy and the `distortion_model` terms are refined with the poses)."""
    if mounted_on not in ("world", "tool"):
        raise ValueError(f"mounted_on must be 'world' (exterior camera) or 'tool' (wrist), got {mounted_on!r}")
    if distortion_model not in DISTORTION_MODELS:
        raise ValueError(f"distortion_model must be one of {tuple(DISTORTION_MODELS)}, got {distortion_model!r}")
    if not 0.0 <= holdout < 0.9:
        raise ValueError(f"holdout must be in [0, 0.9), got {holdout}")
    views = list(views)
    for v in views:
        if np.asarray(v.tool_pose).shape != (4, 4) or not np.all(np.isfinite(v.tool_pose)):
            raise ValueError(f"tool poses must be finite 4x4 matrices, got {np.asarray(v.tool_pose).shape}")
    k0 = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
    if k0 is not None and k0.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got {k0.shape}")
    _need(len(views), min_views, "views with a detected board")
    # Drop views whose own PnP fit is poor (blur, a partly hidden board): they would bias the solve.
    k_check, d_check = (k0, _dist5(distortion)) if k0 is not None \
        else estimate_intrinsics([v.detection for v in views], size, distortion_model)
    good = [v for v in views if board_pose(v.detection, k_check, d_check)[1] <= max_view_px]
    num_rejected += len(views) - len(good)
    _need(len(good), min_views, f"views with a PnP residual <= {max_view_px} px")
    order = np.random.default_rng(seed).permutation(len(good))
    n_hold = round(holdout * len(good))
    held = [good[i] for i in order[:n_hold]]
    train = [good[i] for i in order[n_hold:]]
    _need(len(train), 4, "training views after holding out")
    _check_motion([v.tool_pose for v in good])
    hold_stats: dict[str, float] = {"views": float(len(held))}
    if held:
        fit = _fit(train, mounted_on, size, k0, distortion, refine_intrinsics, distortion_model)
        hold_stats.update(_holdout_errors(fit, held, mounted_on))
    final = _fit(good, mounted_on, size, k0, distortion, refine_intrinsics, distortion_model)
    source = "estimated" if k0 is None else ("given+refined" if refine_intrinsics else "given")
    convention = "T_base_camera;cam_axes=opencv" if mounted_on == "world" else "T_tool_camera;cam_axes=opencv"
    return CalibrationResult(
        camera=camera, width=int(size[0]), height=int(size[1]), mounted_on=mounted_on,
        extrinsics=final.x.tolist(), intrinsics=final.k.tolist(), distortion=final.dist.tolist(),
        board_pose=final.y.tolist(), residual_px=final.rms_px, holdout=hold_stats, num_views=len(good),
        num_rejected=num_rejected, intrinsics_source=source,
        time=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), board=asdict(board),
        extrinsics_convention=convention)


def _check_motion(tool_poses: list[np.ndarray], min_deg: float = 2.0) -> None:
    """Hand-eye needs tool rotations about at least two different axes; pure translations (or one axis)
    leave the solution undetermined."""
    axes = []
    for t in tool_poses[1:]:
        rvec = cv2.Rodrigues(tool_poses[0][:3, :3].T @ t[:3, :3])[0].ravel()
        if np.degrees(np.linalg.norm(rvec)) > min_deg:
            axes.append(rvec / np.linalg.norm(rvec))
    sv = np.linalg.svd(np.array(axes), compute_uv=False) if len(axes) >= 2 else np.zeros(2)
    if sv[1] < 0.1 * max(sv[0], 1e-12):
        raise CalibrationError(f"the robot motion is degenerate: the tool must rotate (more than {min_deg} deg) "
                               "about at least two different axes between views; vary the orientation")


def _need(have: int, need: int, what: str) -> None:
    if have < need:
        raise CalibrationError(f"too few {what}: {have}, need at least {need}. Make sure the whole board is "
                               f"visible and sharp in the camera at each pose, or add poses")


def _holdout_errors(fit: _Fit, held: list[View], mounted_on: str) -> dict[str, float]:
    """Board pose predicted by the fit vs measured by PnP on each held-out view, and reprojection."""
    trans, rot = [], []
    a = [v.tool_pose if mounted_on == "world" else _inv(v.tool_pose) for v in held]
    for ai, v in zip(a, held):
        measured, _ = board_pose(v.detection, fit.k, fit.dist)
        dt, dr = pose_error(_predicted(ai, fit.x, fit.y), measured)
        trans.append(dt)
        rot.append(dr)
    r = _residuals(a, [v.detection for v in held], fit.x, fit.y, fit.k, fit.dist)
    return {"translation_mm_mean": 1000 * float(np.mean(trans)), "translation_mm_max": 1000 * float(np.max(trans)),
            "rotation_deg_mean": float(np.mean(rot)), "rotation_deg_max": float(np.max(rot)),
            "reprojection_px": float(np.sqrt(np.mean(r ** 2) * 2))}


# ---------------------------------------------------------------------------------------------- driver
def calibrate_camera(move_to: Callable[[np.ndarray], None], tool_pose: Callable[[], np.ndarray],
                     grab: Callable[[], np.ndarray], poses: Sequence[np.ndarray], camera: str,
                     board: BoardSpec | None = None, mounted_on: str = "world", min_corners: int = 6,
                     progress: Callable[[str], None] | None = None, **solve: Any) -> CalibrationResult:
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


def robot_callables(robot: Any, camera: Any, realtime: bool = True, settle_velocity: float = 0.01,
                    max_move_s: float = 15.0, frame_timeout_s: float = 2.0
                    ) -> tuple[Callable[[np.ndarray], None], Callable[[], np.ndarray], Callable[[], np.ndarray]]:
    """move_to / tool_pose / grab for calibrate_camera from a connected robolearn Robot and a started Camera.

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
        raise CalibrationError(f"camera {getattr(camera, 'name', '?')!r} gave no frame within {frame_timeout_s} s "
                               f"after the robot settled")

    return move_to, tool_pose, grab


def sample_poses(center: np.ndarray, n: int, seed: int = 0, translation_m: float = 0.15,
                 rotation_deg: float = 40.0, pivot: Sequence[float] = (0.0, 0.0, 0.0)) -> list[np.ndarray]:
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path


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


# ---------------------------------------------------------------------------------------------- sim rig
# Board pose in the hand frame (arm7_hand): printed face towards the hand's +x, centred 0.2 m out along the
# fingers, board x along the hand's y. The board frame is OpenCV's board object frame (z into the board).
_BOARD_IN_HAND_CENTRE = (0.03, 0.0, 0.2)
_BOARD_THICKNESS = 0.004


def add_board(spec: mujoco.MjSpec, board: BoardSpec, parent: str = "arm7_hand",
              pose: np.ndarray | None = None, px_per_square: int = 160) -> None:
    """Add a ChArUco board body (a thin textured mesh; no collisions, 10 g) to `spec` under body `parent`.
    `pose` is the 4x4 board-frame pose in the parent (default: held in the gripper, facing the hand's +x)."""
    w, h = board.size_m
    if pose is None:
        rot = np.column_stack([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])  # x_B, y_B, z_B in hand
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = np.asarray(_BOARD_IN_HAND_CENTRE) - rot @ [w / 2, h / 2, 0.0]
    gray = board.image(px_per_square)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    tex = spec.add_texture(name="charuco_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=rgb.shape[1],
                           height=rgb.shape[0], nchannel=3)
    tex.data = rgb.tobytes()
    mat = spec.add_material(name="charuco_mat", specular=0.0, emission=0.6)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    verts, uv, faces = _board_mesh(w, h, _BOARD_THICKNESS)
    spec.add_mesh(name="charuco_mesh", uservert=verts, userface=faces, usertexcoord=uv)
    _, quat = to_pos_quat(pose)
    body = spec.body(parent).add_body(name="charuco_board", pos=pose[:3, 3].tolist(), quat=quat.tolist())
    body.add_geom(name="charuco_board", type=mujoco.mjtGeom.mjGEOM_MESH, meshname="charuco_mesh",
                  material="charuco_mat", contype=0, conaffinity=0, mass=0.01)


def _board_mesh(w: float, h: float, t: float) -> tuple[list[float], list[float], list[int]]:
    """A w x h x t slab in the board frame: the printed face is z = 0 (seen from -z), texture coordinate
    (0, 0) at the board origin (image row 0, column 0); the other faces take the texture's corner pixel."""
    verts: list[list[float]] = []
    uv: list[list[float]] = []
    faces: list[list[int]] = []

    def quad(pts: list[list[float]], coords: list[list[float]]) -> None:
        i = len(verts)
        verts.extend(pts)
        uv.extend(coords)
        faces.extend([[i, i + 1, i + 2], [i, i + 2, i + 3]])

    zero = [[0.0, 0.0]] * 4
    quad([[0, 0, 0], [0, h, 0], [w, h, 0], [w, 0, 0]], [[0, 0], [0, 1], [1, 1], [1, 0]])  # printed face
    quad([[0, 0, t], [w, 0, t], [w, h, t], [0, h, t]], zero)
    quad([[0, 0, 0], [w, 0, 0], [w, 0, t], [0, 0, t]], zero)
    quad([[0, h, 0], [0, h, t], [w, h, t], [w, h, 0]], zero)
    quad([[0, 0, 0], [0, 0, t], [0, h, t], [0, h, 0]], zero)
    quad([[w, 0, 0], [w, h, 0], [w, h, t], [w, 0, t]], zero)
    return ([float(v) for r in verts for v in r], [float(v) for r in uv for v in r],
            [int(v) for r in faces for v in r])


class SimBoardRig:
    """A household scene whose sim arm holds a ChArUco board, with `move_to` / `tool_pose` / `grab` for
    calibrate_camera and the ground truth (`true_extrinsics`, `intrinsics`) to check the result against."""

    def __init__(self, camera: str = "exterior_1", board: BoardSpec | None = None, household: int = 0,
                 scene: int = 0, width: int = 640, height: int = 480) -> None:
        from robolearn.envs.robot import SimArm
        from robolearn.envs.scenes import EXTERIOR_CAMERAS, RenderQuality, build_scene, scene_params

        if camera not in EXTERIOR_CAMERAS:
            raise ValueError(f"sim calibration supports the exterior cameras {EXTERIOR_CAMERAS}, got {camera!r}")
        self.camera, self.board = camera, board or BoardSpec()
        self.width, self.height = int(width), int(height)
        spec = build_scene(scene_params(household, scene),
                           RenderQuality(max_width=max(640, self.width), max_height=max(480, self.height)))
        add_board(spec, self.board)
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        self.arm = SimArm(self.model, self.data)
        self._renderer: mujoco.Renderer | None = None
        self._cam = self.model.camera(camera).id
        self._base = self.model.body("arm7_base").id

    def move_to(self, pose: np.ndarray, max_steps: int = 120) -> None:
        """Drive the tool towards `pose` with cartesian_position commands until it stops moving."""
        pos, quat = to_pos_quat(pose)
        target = np.concatenate([pos, quat])
        for i in range(max_steps):
            self.arm.step(target, "cartesian_position")
            if i > 3 and np.max(np.abs(self.arm.joint_velocities)) < 2e-3:
                break

    def tool_pose(self) -> np.ndarray:
        return to_matrix(*self.arm.ee_pose())

    def grab(self) -> np.ndarray:
        from robolearn.envs.interface import new_renderer

        if self._renderer is None:
            self._renderer = new_renderer(self.model, self.height, self.width)
        self._renderer.update_scene(self.data, camera=self.camera)
        return self._renderer.render().copy()

    def intrinsics(self) -> np.ndarray:
        f = 0.5 * self.height / np.tan(np.deg2rad(self.model.cam_fovy[self._cam]) / 2)
        return np.array([[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]])

    def _world_pose(self, rot: np.ndarray, pos: np.ndarray) -> np.ndarray:
        d = self.data
        base = np.eye(4)
        base[:3, :3], base[:3, 3] = d.xmat[self._base].reshape(3, 3), d.xpos[self._base]
        t = np.eye(4)
        t[:3, :3], t[:3, 3] = rot, pos
        return _inv(base) @ t

    def true_extrinsics(self) -> np.ndarray:
        """T_base_camera, OpenCV camera axes (MuJoCo's camera y up / z back flipped)."""
        d = self.data
        rot = d.cam_xmat[self._cam].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        return self._world_pose(rot, d.cam_xpos[self._cam])

    def true_board_in_tool(self) -> np.ndarray:
        d, bid = self.data, self.model.body("charuco_board").id
        return _inv(self.tool_pose()) @ self._world_pose(d.xmat[bid].reshape(3, 3), d.xpos[bid])

    def start_pose(self, distance: float = 0.45) -> np.ndarray:
        """A tool pose that shows the board to the camera (what an operator would jog to): board centre on the
        line from the camera to the table centre, `distance` from the arm's reach point, facing the camera."""
        cam = self.true_extrinsics()[:3, 3]
        centre = np.array([0.45, 0.0, 0.25])
        board_c = centre + 0.25 * (cam - centre) / np.linalg.norm(cam - centre) * (distance / 0.45)
        normal = (cam - board_c) / np.linalg.norm(cam - board_c)  # printed face points at the camera
        # Board frame: z_B = -normal, y_B (board rows) up in the world so the gripper points down.
        z_b = -normal
        x_b = np.cross([0.0, 0.0, 1.0], z_b)
        x_b /= np.linalg.norm(x_b)
        y_b = np.cross(z_b, x_b)
        board = np.eye(4)
        board[:3, :3] = np.column_stack([x_b, y_b, z_b])
        w, h = self.board.size_m
        board[:3, 3] = board_c - board[:3, :3] @ [w / 2, h / 2, 0.0]
        return board @ _inv(self.nominal_board_in_tool())

    def nominal_board_in_tool(self) -> np.ndarray:
        """The board's designed pose in the tool frame (from the scene, not used by the solver)."""
        mujoco.mj_kinematics(self.model, self.data)
        return self.true_board_in_tool()

    def board_centre_in_tool(self) -> np.ndarray:
        w, h = self.board.size_m
        return (self.nominal_board_in_tool() @ [w / 2, h / 2, 0.0, 1.0])[:3]

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def calibrate_sim(camera: str = "exterior_1", views: int = 16, seed: int = 0, household: int = 0, scene: int = 0,
                  width: int = 640, height: int = 480, board: BoardSpec | None = None,
                  use_true_intrinsics: bool = False, progress: Callable[[str], None] | None = None,
                  **solve: Any) -> tuple[CalibrationResult, dict]:
    """The whole procedure on the sim arm; returns the result and its error against the ground truth."""
    rig = SimBoardRig(camera, board, household, scene, width, height)
    try:
        poses = sample_poses(rig.start_pose(), views, seed=seed, pivot=rig.board_centre_in_tool())
        k = rig.intrinsics() if use_true_intrinsics else None
        result = calibrate_camera(rig.move_to, rig.tool_pose, rig.grab, poses, camera, rig.board,
                                  intrinsics=k, seed=seed, progress=progress, **solve)
        dt, dr = pose_error(result.extrinsics_matrix, rig.true_extrinsics())
        k_true = rig.intrinsics()
        truth = {"extrinsics_error_mm": 1000 * dt, "extrinsics_error_deg": dr,
                 "focal_error_pct": 100 * float(np.asarray(result.intrinsics)[0, 0] / k_true[0, 0] - 1),
                 "true_extrinsics": rig.true_extrinsics().tolist()}
        return result, truth
    finally:
        rig.close()


# ---------------------------------------------------------------------------------------------- CLI
@dataclass
class CalibrateCommand:
    out: Path = opt(Path("calibration"), help="folder for calibration.json (merged with an existing file)")
    robot: str = opt("sim", help="robot: only 'sim' from the CLI; real robots use calibrate_camera() in Python")
    camera: str = opt("exterior_1", help="camera to calibrate (sim: exterior_1 or exterior_2)")
    views: int = opt(16, help="number of robot poses")
    seed: int = opt(0, help="pose sampling and hold-out split seed")
    household: int = opt(0, help="sim household")
    scene: int = opt(0, help="sim scene")
    width: int = opt(640, help="image width")
    height: int = opt(480, help="image height")
    holdout: float = opt(0.3, help="fraction of views held out to measure the error")
    true_intrinsics: bool = opt(False, help="sim: use the exact intrinsics instead of estimating them")
    distortion_model: str = opt("k1k2", help=f"distortion terms estimated: {' | '.join(DISTORTION_MODELS)}")
    max_holdout_mm: float = opt(5.0, help="refuse (exit 1, nothing written) above this held-out error")
    max_holdout_deg: float = opt(1.0, help="refuse above this held-out rotation error")
    force: bool = opt(False, help="write the result even when it fails the limits")


@command("calibrate", "")
def calibrate(cfg: CalibrateCommand) -> int:
    """Calibrate a camera (intrinsics + pose in the robot base) with a ChArUco board held by the gripper."""
    if cfg.robot != "sim":
        print(f"robolearn calibrate: robot {cfg.robot!r} is not supported from the CLI (only 'sim'); for a real "
              f"robot call robolearn.collection.calibration.calibrate_camera() with its move/pose/grab functions",
              file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        result, truth = calibrate_sim(cfg.camera, cfg.views, cfg.seed, cfg.household, cfg.scene, cfg.width,
                                      cfg.height, use_true_intrinsics=cfg.true_intrinsics, holdout=cfg.holdout,
                                      distortion_model=cfg.distortion_model,
                                      progress=lambda s: print(s, flush=True))
    except (CalibrationError, ValueError) as e:
        print(f"robolearn calibrate: {e}", file=sys.stderr)
        return 1
    h = result.holdout
    print(f"{cfg.camera}: {result.num_views} views ({result.num_rejected} rejected), reprojection "
          f"{result.residual_px:.3f} px; held-out ({int(h['views'])} views): "
          f"{h.get('translation_mm_mean', float('nan')):.2f} mm, {h.get('rotation_deg_mean', float('nan')):.3f} deg, "
          f"{h.get('reprojection_px', float('nan')):.3f} px; {time.monotonic() - t0:.1f} s")
    print(f"sim ground truth: extrinsics error {truth['extrinsics_error_mm']:.2f} mm, "
          f"{truth['extrinsics_error_deg']:.3f} deg; focal error {truth['focal_error_pct']:.3f} %")
    bad = (h.get("translation_mm_mean", 0.0) > cfg.max_holdout_mm
           or h.get("rotation_deg_mean", 0.0) > cfg.max_holdout_deg)
    if bad and not cfg.force:
        print(f"robolearn calibrate: held-out error above the limits ({cfg.max_holdout_mm} mm, "
              f"{cfg.max_holdout_deg} deg); nothing written (use --force to write anyway)", file=sys.stderr)
        return 1
    path = write_calibration(cfg.out, result)
    save_config(cfg, cfg.out, "calibrate")
    print(f"wrote {path}")
    return 0
