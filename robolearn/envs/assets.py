"""Locate robolearn's simulation assets (MJCF files, generated textures).

Looked up in order: $ROBOLEARN_ASSETS, the installed `robolearn.assets` package (wheel installs), the
repository's top-level `assets/` folder (source checkouts and editable installs).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def assets_root() -> Path:
    """The folder holding robolearn's assets (contains `robot/arm7.xml`)."""
    env = os.environ.get("ROBOLEARN_ASSETS")
    if env:
        return Path(env)
    try:
        packaged = Path(str(resources.files("robolearn.assets")))
        if (packaged / "robot").is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "assets"


def asset_path(relative: str) -> Path:
    """Absolute path of an asset; FileNotFoundError naming where it was looked for."""
    path = assets_root() / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"robolearn asset {relative!r} not found at {path} (set ROBOLEARN_ASSETS to the "
            "folder holding robot/arm7.xml)"
        )
    return path
