"""The observation/action interface shared by every robolearn env suite (household and Meta-World).

Observation: Dict{"images": Dict{camera: (H, W, 3) uint8, upright}, "proprio": float32 vector,
"language": instruction string (gymnasium Text over LANGUAGE_CHARSET), optional "state": privileged float64}.
Action: a float32 Box; out-of-range values are clipped, wrong shapes and NaN/inf raise ValueError.
info carries "success" (bool), "task", "steps" and "mujoco_version".
"""

from __future__ import annotations

import string

LANGUAGE_CHARSET = string.ascii_letters + string.digits + " ,.'-?!"
MAX_INSTRUCTION = 256
