"""The calibration solver: each view's board pose (solvePnP), the linear AX = YB solution, the
Levenberg-Marquardt refinement on corner reprojection (intrinsics too when estimated), hold-out errors and
the `CalibrationResult` it returns. Pure maths on recorded views: no robot, camera or file."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

from robolearn.hardware.calibration.board import (
    BoardSpec,
    CalibrationError,
    Detection,
    _inv,
    _project_so3,
    _rt,
    pose_error,
)


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


def _residuals(
    views_a: list[np.ndarray], dets: list[Detection], x: np.ndarray, y: np.ndarray, k: np.ndarray, dist: np.ndarray
) -> np.ndarray:
    out = []
    for a, det in zip(views_a, dets):
        t = _predicted(a, x, y)
        proj, _ = cv2.projectPoints(det.object_points, cv2.Rodrigues(t[:3, :3])[0], t[:3, 3], k, dist)
        out.append((proj.reshape(-1, 2) - det.image_points).ravel())
    return np.concatenate(out)


# Distortion models: which of OpenCV's k1 k2 p1 p2 k3 are estimated (the rest stay 0). Radial k1 k2 suits most
# modern lenses; tangential terms trade off against the principal point and cost rotation accuracy.
DISTORTION_MODELS: dict[str, tuple[int, ...]] = {"none": (), "k1k2": (0, 1), "k1k2p1p2": (0, 1, 2, 3)}


def _unpack(
    p: np.ndarray, x0: np.ndarray, y0: np.ndarray, k0: np.ndarray, d0: np.ndarray, free_dist: tuple[int, ...] | None
):
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


def _refine(
    views_a: list[np.ndarray],
    dets: list[Detection],
    x: np.ndarray,
    y: np.ndarray,
    k: np.ndarray,
    dist: np.ndarray,
    free_dist: tuple[int, ...] | None,
    iterations: int = 30,
) -> _Fit:
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


def _fit(
    views: list[View],
    mounted_on: str,
    size: tuple[int, int],
    k: np.ndarray | None,
    dist: np.ndarray | None,
    refine_intrinsics: bool | None,
    distortion_model: str,
) -> _Fit:
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


def estimate_intrinsics(
    dets: Sequence[Detection], size: tuple[int, int], distortion_model: str = "k1k2"
) -> tuple[np.ndarray, np.ndarray]:
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
        return {
            "method": self.method,
            "time": self.time,
            "residual_px": self.residual_px,
            "samples": self.num_views,
            "holdout": self.holdout,
            "intrinsics_source": self.intrinsics_source,
        }


def solve_calibration(
    views: Sequence[View],
    camera: str,
    size: tuple[int, int],
    board: BoardSpec,
    mounted_on: str = "world",
    intrinsics: np.ndarray | None = None,
    distortion: Sequence[float] | None = None,
    refine_intrinsics: bool | None = None,
    distortion_model: str = "k1k2",
    holdout: float = 0.3,
    min_views: int = 8,
    max_view_px: float = 3.0,
    num_rejected: int = 0,
    seed: int = 0,
) -> CalibrationResult:
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
    k_check, d_check = (
        (k0, _dist5(distortion))
        if k0 is not None
        else estimate_intrinsics([v.detection for v in views], size, distortion_model)
    )
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
        camera=camera,
        width=int(size[0]),
        height=int(size[1]),
        mounted_on=mounted_on,
        extrinsics=final.x.tolist(),
        intrinsics=final.k.tolist(),
        distortion=final.dist.tolist(),
        board_pose=final.y.tolist(),
        residual_px=final.rms_px,
        holdout=hold_stats,
        num_views=len(good),
        num_rejected=num_rejected,
        intrinsics_source=source,
        time=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        board=asdict(board),
        extrinsics_convention=convention,
    )


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
        raise CalibrationError(
            f"the robot motion is degenerate: the tool must rotate (more than {min_deg} deg) "
            "about at least two different axes between views; vary the orientation"
        )


def _need(have: int, need: int, what: str) -> None:
    if have < need:
        raise CalibrationError(
            f"too few {what}: {have}, need at least {need}. Make sure the whole board is "
            f"visible and sharp in the camera at each pose, or add poses"
        )


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
    return {
        "translation_mm_mean": 1000 * float(np.mean(trans)),
        "translation_mm_max": 1000 * float(np.max(trans)),
        "rotation_deg_mean": float(np.mean(rot)),
        "rotation_deg_max": float(np.max(rot)),
        "reprojection_px": float(np.sqrt(np.mean(r**2) * 2)),
    }
