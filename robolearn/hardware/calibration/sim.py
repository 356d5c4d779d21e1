"""The sim board rig: a household scene whose MuJoCo arm holds a rendered ChArUco board, driven through the
same `calibrate_camera` procedure as a real robot and checked against the scene's true camera pose."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mujoco
import numpy as np

from robolearn.hardware.calibration.board import BoardSpec, _inv, pose_error, to_matrix, to_pos_quat
from robolearn.hardware.calibration.driver import calibrate_camera, sample_poses
from robolearn.hardware.calibration.solver import CalibrationResult

# ---------------------------------------------------------------------------------------------- sim rig
# Board pose in the hand frame (arm7_hand): printed face towards the hand's +x, centred 0.2 m out along the
# fingers, board x along the hand's y. The board frame is OpenCV's board object frame (z into the board).
_BOARD_IN_HAND_CENTRE = (0.03, 0.0, 0.2)
_BOARD_THICKNESS = 0.004


def add_board(
    spec: mujoco.MjSpec,
    board: BoardSpec,
    parent: str = "arm7_hand",
    pose: np.ndarray | None = None,
    px_per_square: int = 160,
) -> None:
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
    tex = spec.add_texture(
        name="charuco_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=rgb.shape[1], height=rgb.shape[0], nchannel=3
    )
    tex.data = rgb.tobytes()
    mat = spec.add_material(name="charuco_mat", specular=0.0, emission=0.6)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    verts, uv, faces = _board_mesh(w, h, _BOARD_THICKNESS)
    spec.add_mesh(name="charuco_mesh", uservert=verts, userface=faces, usertexcoord=uv)
    _, quat = to_pos_quat(pose)
    body = spec.body(parent).add_body(name="charuco_board", pos=pose[:3, 3].tolist(), quat=quat.tolist())
    body.add_geom(
        name="charuco_board",
        type=mujoco.mjtGeom.mjGEOM_MESH,
        meshname="charuco_mesh",
        material="charuco_mat",
        contype=0,
        conaffinity=0,
        mass=0.01,
    )


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
    return ([float(v) for r in verts for v in r], [float(v) for r in uv for v in r], [int(v) for r in faces for v in r])


class SimBoardRig:
    """A household scene whose sim arm holds a ChArUco board, with `move_to` / `tool_pose` / `grab` for
    calibrate_camera and the ground truth (`true_extrinsics`, `intrinsics`) to check the result against."""

    def __init__(
        self,
        camera: str = "exterior_1",
        board: BoardSpec | None = None,
        household: int = 0,
        scene: int = 0,
        width: int = 640,
        height: int = 480,
    ) -> None:
        from robolearn.envs.robot import SimArm
        from robolearn.envs.scenes import EXTERIOR_CAMERAS, RenderQuality, build_scene, scene_params

        if camera not in EXTERIOR_CAMERAS:
            raise ValueError(f"sim calibration supports the exterior cameras {EXTERIOR_CAMERAS}, got {camera!r}")
        self.camera, self.board = camera, board or BoardSpec()
        self.width, self.height = int(width), int(height)
        spec = build_scene(
            scene_params(household, scene),
            RenderQuality(max_width=max(640, self.width), max_height=max(480, self.height)),
        )
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


def calibrate_sim(
    camera: str = "exterior_1",
    views: int = 16,
    seed: int = 0,
    household: int = 0,
    scene: int = 0,
    width: int = 640,
    height: int = 480,
    board: BoardSpec | None = None,
    use_true_intrinsics: bool = False,
    progress: Callable[[str], None] | None = None,
    **solve: Any,
) -> tuple[CalibrationResult, dict]:
    """The whole procedure on the sim arm; returns the result and its error against the ground truth."""
    rig = SimBoardRig(camera, board, household, scene, width, height)
    try:
        poses = sample_poses(rig.start_pose(), views, seed=seed, pivot=rig.board_centre_in_tool())
        k = rig.intrinsics() if use_true_intrinsics else None
        result = calibrate_camera(
            rig.move_to,
            rig.tool_pose,
            rig.grab,
            poses,
            camera,
            rig.board,
            intrinsics=k,
            seed=seed,
            progress=progress,
            **solve,
        )
        dt, dr = pose_error(result.extrinsics_matrix, rig.true_extrinsics())
        k_true = rig.intrinsics()
        truth = {
            "extrinsics_error_mm": 1000 * dt,
            "extrinsics_error_deg": dr,
            "focal_error_pct": 100 * float(np.asarray(result.intrinsics)[0, 0] / k_true[0, 0] - 1),
            "true_extrinsics": rig.true_extrinsics().tolist(),
        }
        return result, truth
    finally:
        rig.close()
