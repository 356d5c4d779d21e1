"""Offscreen rendering that keeps one OpenGL context per process across clips.

Every clip is a new model, and `mujoco.Renderer` makes a new GL context per model: 0.2-0.5 s per clip on
software EGL, more than rendering the clip. Here the context lives for the process; each model only gets its
own (cheap) MjrContext.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from robolearn.envs import interface

_GL: tuple[int, mujoco.GLContext] | None = None  # (pid, context)


def _context() -> mujoco.GLContext:
    global _GL
    if _GL is None or _GL[0] != os.getpid():
        if interface._gl_owner_pid not in (None, os.getpid()):
            raise RuntimeError("cannot render in a process forked from one that already rendered (use spawn)")
        if interface._gl_owner_pid is None:
            interface._load_llvm_users_first()  # see there: triton's LLVM must load before the first context
            interface._gl_owner_pid = os.getpid()
        _GL = (os.getpid(), mujoco.GLContext(64, 64))
    _GL[1].make_current()
    return _GL[1]


class ClipRenderer:
    """Renders one model from one of its cameras; `close()` frees its GPU-side context."""

    def __init__(self, model: mujoco.MjModel, height: int, width: int, camera: str) -> None:
        _context()
        self._model = model
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_50.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._scene = mujoco.MjvScene(model, 1000)
        self._opt = mujoco.MjvOption()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._cam.fixedcamid = model.camera(camera).id
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._shape = (height, width, 3)

    def render(self, data: mujoco.MjData) -> np.ndarray:
        mujoco.mjv_updateScene(self._model, data, self._opt, None, self._cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        mujoco.mjr_render(self._rect, self._scene, self._ctx)
        rgb = np.empty(self._shape, np.uint8)
        mujoco.mjr_readPixels(rgb, None, self._rect, self._ctx)
        return np.flipud(rgb)

    def close(self) -> None:
        self._ctx.free()
