"""Rendering (Mesa llvmpipe's LLVM) then importing triton (its own LLVM) used to segfault the process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed with this torch")
def test_training_imports_after_rendering_do_not_crash():
    code = (
        "from robolearn.envs.household import HouseholdEnv\n"
        "env = HouseholdEnv(task='press-button', cameras=('exterior_1',), image_size=(32, 32))\n"
        "env.reset(seed=0)\n"
        "import triton\n"
        "print('alive')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "alive" in r.stdout, r.stderr[-2000:]
