"""`rollout()`: the Python API behind `robolearn rollout` (whose command lives in robolearn/eval/commands.py)."""

from __future__ import annotations

from typing import Any

from robolearn.collection.station import AutoOperator, Operator, TerminalOperator
from robolearn.data.writer import WriterConfig
from robolearn.eval.real.build import build_cameras, build_device, build_robot, load_policy_from, policy_config_dict
from robolearn.eval.real.config import RolloutConfig, RolloutReport
from robolearn.eval.real.session import RolloutSession
from robolearn.hardware.cameras.base import Camera
from robolearn.hardware.devices.base import Device
from robolearn.hardware.robots.base import Robot


def rollout(
    config: RolloutConfig,
    *,
    policy: Any = None,
    robot: Robot | None = None,
    cameras: list[Camera] | None = None,
    device: Device | None = None,
    operator: Operator | None = None,
    writer_config: WriterConfig | None = None,
) -> RolloutReport:
    """Run the rollouts `config` describes. Any part given here replaces the one the config would build (a
    policy object with `.config` and `.runner()`, a Robot, Cameras, a takeover Device, an Operator).

    Raises RolloutError (a ValueError) for a configuration the robot, cameras and policy do not fit, before
    anything moves; FileExistsError for a used --out without --resume. Faults during the episodes (robot
    link lost, device failure, a policy error) end the session with the data kept; they are returned in
    `report.error`, aborts (quit, Ctrl-C, SIGTERM) in `report.aborted`."""
    policy_info = None
    if policy is None:
        policy, policy_info = load_policy_from(config)
    elif config.policy:
        policy_info = {"path": config.policy, "config": policy_config_dict(policy)}
    own_robot = robot is None
    robot = robot if robot is not None else build_robot(config, policy)
    try:
        cameras = cameras if cameras is not None else build_cameras(config, robot, policy)
        device = device if device is not None else build_device(config)
        operator = operator or (AutoOperator(log=print) if config.unattended else TerminalOperator())
        session = RolloutSession(config, policy, robot, cameras, device, operator, policy_info, writer_config)
        session.check_config()  # cameras, spaces: refuse before connecting to anything
        return session.run()
    finally:
        if own_robot:
            robot.disconnect()
