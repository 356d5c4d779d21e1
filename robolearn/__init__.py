"""robolearn: from teleoperated household demonstrations to evaluated robot policies."""

import os as _os

__version__ = "0.1.0"

# MuJoCo picks its OpenGL backend when it is first imported. Without a display (servers, CI, spawned workers)
# the default (GLFW) cannot create a context, so offscreen EGL is the default there; MUJOCO_GL still wins.
if not _os.environ.get("DISPLAY") and not _os.environ.get("WAYLAND_DISPLAY"):
    _os.environ.setdefault("MUJOCO_GL", "egl")
