"""The observation/action interface shared by every robolearn env suite (household and Meta-World).

Observation: Dict{"images": Dict{camera: (H, W, 3) uint8, upright}, "proprio": float32 vector,
"language": instruction string (gymnasium Text over LANGUAGE_CHARSET), optional "state": privileged float64}.
Action: a float32 Box; out-of-range values are clipped, wrong shapes and NaN/inf raise ValueError.
info carries "success" (bool), "task", "steps" and "mujoco_version".
"""

from __future__ import annotations

import os
import string

import mujoco

LANGUAGE_CHARSET = string.ascii_letters + string.digits + " ,.'-?!"
MAX_INSTRUCTION = 256


# Process that created the first rendering context. EGL (Mesa llvmpipe at least) deadlocks when a process
# forked after that creates a new context, so forked children raise instead of hanging.
_gl_owner_pid: int | None = None


def _load_llvm_users_first() -> None:
    """Mesa's llvmpipe (software EGL) loads its own LLVM. Triton bundles another one, and loading it after an
    EGL context exists segfaults the process (seen with mujoco 4.0.0 + torch 2.14's triton); torch and
    transformers import triton on demand (e.g. a training run after a recording session). Loading it before
    the first context is safe, so do that."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        try:
            import triton  # noqa: F401
        except Exception:  # a broken triton install is torch's business, not the renderer's
            pass


def new_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A mujoco.Renderer, refusing (RuntimeError) in a process forked from one that already rendered."""
    global _gl_owner_pid
    if _gl_owner_pid is not None and _gl_owner_pid != os.getpid():
        raise RuntimeError(
            "cannot render in a process forked from one that already rendered (OpenGL/EGL "
            "contexts deadlock across fork). Use robolearn.envs.make_vector(), or "
            "gymnasium.vector.AsyncVectorEnv(..., context='forkserver' or 'spawn'), or create "
            "the vector env before any rendering."
        )
    if _gl_owner_pid is None:
        _load_llvm_users_first()
    renderer = mujoco.Renderer(model, height, width)
    _gl_owner_pid = _gl_owner_pid or os.getpid()
    return renderer
