"""Compatibility shim that lets Meta-World 3.1.1 run on current MuJoCo (4.0 here).

Why "newest MuJoCo + shim" instead of pinning ``mujoco==3.3.0`` (metaworld 3.1.1's declared pin):

- robolearn's own household envs and IK (robolearn.envs.robot) are built and tested on the newest MuJoCo, and
  mink needs ``mujoco>=3.10``; one environment for everything is simpler than a second venv for Meta-World.
- The only break Meta-World hits is one small function (below), so the shim is a few lines.
- With the patch, Meta-World on MuJoCo 4.0 matches 3.3.0 (docs anchors, simulation.md §1 and Addendum): the same
  scripted-policy success rates; steps-to-success identical for assembly and button-press-topdown, with small
  drift in some tasks (drawer-open 86 -> 87, pick-place 49 -> 50, door-open much more). Every result should
  therefore record the versions: use ``versions()``.
- metaworld is installed with ``--no-deps``, so ``pip check`` reports the ``mujoco==3.3.0`` pin mismatch. That
  is expected.

The break: from MuJoCo 3.17 a weld equality constraint stores 12 numbers in ``model.eq_data`` (``mjNEQDATA``
went 11 -> 12). ``SawyerMocapBase.reset_mocap_welds`` assigns an 11-value array to each weld row, which fails
with ``ValueError: could not broadcast input array from shape (11,) into shape (12,)`` while constructing any
env. The replacement writes the same 11 values into the first 11 entries of each weld row and leaves the
extra entries at the values MuJoCo compiled.

Also checked on MuJoCo 4.0.0: comparisons between MuJoCo enums and numpy integers (False from MuJoCo 3.12 per
the anchors note) evaluate correctly here for Meta-World's one such comparison, which the replacement makes
explicit with ``int(...)`` anyway. No other break was hit constructing, resetting and running the scripted
expert on all 50 v3 tasks.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any

import mujoco
import numpy as np

logger = logging.getLogger(__name__)

# eq_data width that Meta-World 3.1.1 was written for (MuJoCo < 3.17).
METAWORLD_EQ_DATA_WIDTH = 11
# The values Meta-World writes into every weld row: anchor (3), relative pose (pos 3 + quat 4), torquescale.
_WELD_VALUES = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])

_state: dict[str, Any] = {"active": False, "original": None}


def eq_data_width() -> int:
    """Numbers per equality constraint in ``MjModel.eq_data`` for the installed MuJoCo."""
    width = getattr(mujoco, "mjNEQDATA", None)
    if width is not None:
        return int(width)
    xml = (
        "<mujoco><worldbody><body name='a' mocap='true'/><body name='b'><freejoint/><geom size='.1'/>"
        "</body></worldbody><equality><weld body1='a' body2='b'/></equality></mujoco>"
    )
    return int(mujoco.MjModel.from_xml_string(xml).eq_data.shape[1])


def shim_needed() -> bool:
    """Whether the installed MuJoCo's weld data width differs from the one Meta-World writes."""
    return eq_data_width() != METAWORLD_EQ_DATA_WIDTH


def _reset_mocap_welds(self: Any) -> None:
    """Replacement for ``SawyerMocapBase.reset_mocap_welds``: fill only the first 11 entries of weld rows."""
    model = self.model
    if model.nmocap == 0 or model.neq == 0:
        return
    weld = int(mujoco.mjtEq.mjEQ_WELD)
    for i in range(model.neq):
        if int(model.eq_type[i]) == weld:
            model.eq_data[i, :METAWORLD_EQ_DATA_WIDTH] = _WELD_VALUES


def _sawyer_mocap_base() -> type:
    try:
        from metaworld.sawyer_xyz_env import SawyerMocapBase
    except ImportError as exc:
        raise ImportError(
            "Meta-World is not installed. Install it with `pip install metaworld==3.1.1 --no-deps` "
            "plus robolearn's `metaworld` extra (see docs/sim.md)."
        ) from exc
    return SawyerMocapBase


def apply() -> bool:
    """Patch Meta-World for the installed MuJoCo if needed; idempotent. Returns whether the shim is active."""
    if _state["active"]:
        return True
    base = _sawyer_mocap_base()
    width = eq_data_width()
    if width == METAWORLD_EQ_DATA_WIDTH:
        logger.debug("metaworld_compat: eq_data width %d, no patch needed", width)
        return False
    _state["original"] = base.reset_mocap_welds
    base.reset_mocap_welds = _reset_mocap_welds
    _state["active"] = True
    logger.info(
        "metaworld_compat: patched SawyerMocapBase.reset_mocap_welds (mujoco %s, eq_data width %d != %d)",
        mujoco.__version__,
        width,
        METAWORLD_EQ_DATA_WIDTH,
    )
    return True


def is_active() -> bool:
    """Whether `apply()` has patched Meta-World in this process."""
    return bool(_state["active"])


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, Any]:
    """Versions to record with every Meta-World result, and whether the shim is active."""
    return {
        "mujoco": mujoco.__version__,
        "metaworld": _package_version("metaworld"),
        "gymnasium": _package_version("gymnasium"),
        "eq_data_width": eq_data_width(),
        "metaworld_compat_shim": is_active(),
    }
