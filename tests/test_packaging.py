"""The wheel must contain every subpackage and the assets (pyproject lists packages explicitly)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "robolearn").rglob("__init__.py")}
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
    assert cfg["package-dir"]["robolearn.assets"] == "assets" and "robolearn.assets" in listed


def test_assets_are_found():
    from robolearn.envs.assets import asset_path

    assert asset_path("robot/arm7.xml").is_file()


def test_mujoco_gl_defaults_to_egl_without_a_display():
    import os
    import subprocess
    import sys

    code = "import os, robolearn; print(os.environ.get('MUJOCO_GL'))"
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "egl"
    given = subprocess.run([sys.executable, "-c", code], env={**env, "MUJOCO_GL": "osmesa"}, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert given.strip() == "osmesa"
