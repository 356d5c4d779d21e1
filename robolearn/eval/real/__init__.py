"""`robolearn rollout`: run a trained policy on a robot (real or sim) and record every rollout as an episode.

    robolearn rollout --robot tcp://10.0.0.5:5555 --token $TOKEN --policy runs/bc/policy \
        --cameras exterior_1=0 wrist=2 --task put-in-bin --episodes 10 --out data/rollouts/bc
    robolearn rollout --robot sim:press-button --policy runs/bc --success auto --no-realtime --out /tmp/r

The rollout uses the collection station's parts unchanged: the same `Robot` API (sim, `robolearn
robot-server` clients, plugins), the same cameras, the same `ControlLoop` (fixed rate, per-phase
timestamps, cadence report) and the same crash-safe `EpisodeWriter` (same schema as demonstrations: what the
robot returned as applied, frames, timestamps). Nothing in the station had to change: the policy is not
forced into a `Device`; this module composes the pieces itself (`RolloutSession`).

Per step: observe (every camera's newest frame; a dropped frame is recorded as dropped and the policy sees
the camera's last frame) -> read the takeover device -> policy (or the operator, see below) -> send ->
record. The policy gets `{"images": {camera: HxWx3 uint8 as captured}, "proprio": float32 (joint_positions,
ee_position, ee_quaternion wxyz, gripper_position by default: the policy's `proprio_keys`), "language": str}`
and returns one action (its `action_space` form + the gripper target).

Operator takeover: while the takeover device gives a non-zero twist (dead-man held, where the device has
one) or its gripper value changes, or after the "pause" event (keyboard `p`) until it is pressed again, the
device's command is sent instead of the policy's (as cartesian velocity + gripper) and the step's
`intervention` flag is set. The gripper stays where the policy left it until the operator changes it.
Releasing hands control back, and the policy's runner is reset (temporal-ensembling chunks predicted
before the takeover are stale).

Abort (device "quit" - keyboard q/Esc -, Ctrl-C / SIGINT, SIGTERM): the current step completes, the robot is
stopped, the open episode is closed with what was recorded (success unknown, `extra.aborted` = why), and the
session ends cleanly. A second Ctrl-C interrupts at once (the robot is still stopped). A robot, device or
policy failure mid-episode does the same and is reported in `RolloutReport.error`.

Before anything moves the session checks: the policy's cameras exist, the robot takes the policy's action
space with the policy's action size, the proprio the policy expects can be built from the robot state, every
camera delivers frames, and one policy step on the live observation gives a finite action of the right size
(`--dry-run` stops there).
"""

from __future__ import annotations

from robolearn.eval.real.build import (
    build_cameras,
    build_device,
    build_robot,
    load_policy_from,
    parse_robot_uri,
    policy_config_dict,
)
from robolearn.eval.real.config import RolloutConfig, RolloutEpisode, RolloutError, RolloutReport
from robolearn.eval.real.rollout import rollout
from robolearn.eval.real.session import RolloutSession
from robolearn.eval.real.takeover import NullDevice, Takeover

__all__ = [
    "NullDevice",
    "RolloutConfig",
    "RolloutEpisode",
    "RolloutError",
    "RolloutReport",
    "RolloutSession",
    "Takeover",
    "build_cameras",
    "build_device",
    "build_robot",
    "load_policy_from",
    "parse_robot_uri",
    "policy_config_dict",
    "rollout",
]
