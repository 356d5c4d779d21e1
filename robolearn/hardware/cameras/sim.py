"""Sim cameras: render a SimRobot's scene from one of its cameras (exterior_1, exterior_2, wrist).

Rendering happens in `read()`, on the caller's thread, from the current sim state (MuJoCo data must not be
read while another thread steps it). `spec()` carries the exact pinhole intrinsics and the true pose in the
OpenCV camera convention (x right, y down, z forward): T_base_camera for exterior cameras, T_tool_camera for
the wrist camera (mounted_on="tool") - the ground truth calibration is tested against."""

from __future__ import annotations

import time

import mujoco
import numpy as np

from robolearn.data.schema import CameraSpec
from robolearn.envs.interface import new_renderer
from robolearn.hardware.cameras.base import Camera, Frame

MJ_TO_CV = np.diag([1.0, -1.0, -1.0])  # MuJoCo camera axes (x right, y up, z back) -> OpenCV


class SimCamera(Camera):
    def __init__(
        self, robot, camera: str, width: int = 320, height: int = 180, encoding: str = "jpeg", quality: int = 90
    ) -> None:
        self.robot = robot
        self.name = camera
        self.width, self.height = int(width), int(height)
        self.encoding, self.quality = encoding, quality
        self._renderer: mujoco.Renderer | None = None
        self._model: mujoco.MjModel | None = None

    def connect(self) -> None:
        self.robot.connect()
        model = self.robot.sim.model
        try:
            model.camera(self.name)
        except KeyError:
            raise ValueError(
                f"sim camera {self.name!r} not in the scene; cameras: "
                f"{[model.camera(i).name for i in range(model.ncam)]}"
            ) from None

    def read(self) -> Frame:
        sim = self.robot.sim
        if self._renderer is None or self._model is not sim.model:  # the scene was rebuilt
            self._release()
            sim.model.vis.global_.offwidth = max(sim.model.vis.global_.offwidth, self.width)
            sim.model.vis.global_.offheight = max(sim.model.vis.global_.offheight, self.height)
            self._renderer = new_renderer(sim.model, self.height, self.width)
            self._model = sim.model
        t0 = time.monotonic_ns()
        self._renderer.update_scene(sim.data, camera=self.name)
        image = self._renderer.render()
        return Frame(image, t0, time.monotonic_ns())

    def disconnect(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def intrinsics(self) -> np.ndarray:
        m = self.robot.sim.model
        fovy = np.deg2rad(m.cam_fovy[m.camera(self.name).id])
        f = 0.5 * self.height / np.tan(fovy / 2)
        return np.array([[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]])

    def true_pose(self) -> tuple[np.ndarray, str]:
        """4x4 camera pose (OpenCV axes) in the base frame, or in the tool frame for the wrist camera."""
        sim = self.robot.sim
        m, d = sim.model, sim.data
        cid = m.camera(self.name).id
        rot = d.cam_xmat[cid].reshape(3, 3) @ MJ_TO_CV
        pos = d.cam_xpos[cid].copy()
        base = m.body("arm7_base").id
        ref, frame = (m.site("tool").id, "tool") if m.cam_bodyid[cid] != 0 else (None, "world")
        if ref is None:
            r_ref, p_ref = d.xmat[base].reshape(3, 3), d.xpos[base]
        else:
            r_ref, p_ref = d.site_xmat[ref].reshape(3, 3), d.site_xpos[ref]
        t = np.eye(4)
        t[:3, :3] = r_ref.T @ rot
        t[:3, 3] = r_ref.T @ (pos - p_ref)
        return t, frame

    def spec(self) -> CameraSpec:
        pose, frame = self.true_pose()
        role = "wrist" if frame == "tool" else "exterior"
        return CameraSpec(
            name=self.name,
            width=self.width,
            height=self.height,
            role=role,
            encoding=self.encoding,
            quality=self.quality,
            intrinsics=self.intrinsics().tolist(),
            distortion=[0.0] * 5,
            extrinsics=pose.tolist(),
            mounted_on="tool" if frame == "tool" else "world",
            serial=f"sim:{self.name}",
            calibration={"method": "sim_ground_truth"},
        )
