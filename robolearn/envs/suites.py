"""How policies trained on our action/proprio layout drive each sim suite (used by recording, training and
evaluation alike, so it lives below them)."""

from __future__ import annotations

import numpy as np

METAWORLD_ROBOT = "sawyer (meta-world)"  # robot_type of Meta-World episodes written in our format
METAWORLD_PROPRIO = ["ee_position", "gripper_position"]  # = MetaWorldEnv's proprio (hand xyz, gripper opening)


def metaworld_action(action7: np.ndarray) -> np.ndarray:
    """Our action vector (cartesian_velocity[6], gripper target 0 open..1 closed) -> Meta-World's 4-d action
    (hand xyz delta, gripper effort -1 open..+1 closed). The angular part is dropped (Meta-World has none)."""
    a = np.asarray(action7, dtype=np.float32)
    return np.concatenate([a[..., :3], 2.0 * a[..., 6:7] - 1.0], axis=-1)
