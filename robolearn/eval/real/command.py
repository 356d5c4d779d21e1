"""`rollout()` (the Python API) and the `robolearn rollout` command."""

from __future__ import annotations

import sys
from typing import Any

from robolearn.hardware.cameras.base import Camera
from robolearn.hardware.devices.base import Device, DeviceError
from robolearn.hardware.robots.base import Robot, RobotError
from robolearn.collection.station import AutoOperator, Operator, TerminalOperator
from robolearn.config import command, save_config
from robolearn.data.writer import WriterConfig
from robolearn.eval.real.build import build_cameras, build_device, build_robot, load_policy_from, policy_config_dict
from robolearn.eval.real.config import RolloutConfig, RolloutReport
from robolearn.eval.real.session import RolloutSession


# ---------------------------------------------------------------------------------------------------- API + CLI
def rollout(config: RolloutConfig, *, policy: Any = None, robot: Robot | None = None,
            cameras: list[Camera] | None = None, device: Device | None = None, operator: Operator | None = None,
            writer_config: WriterConfig | None = None) -> RolloutReport:
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


@command("rollout", "")
def rollout_cmd(cfg: RolloutConfig) -> int:
    """Run a policy on a robot (real or sim) with operator takeover; every rollout is recorded as an episode."""
    try:
        report = rollout(cfg)
    except KeyboardInterrupt:
        print("robolearn rollout: interrupted before the robot moved", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, DeviceError) as e:
        print(f"robolearn rollout: {e}", file=sys.stderr)
        return 2
    except RobotError as e:
        print(f"robolearn rollout: {e}", file=sys.stderr)
        return 1
    if cfg.dry_run and not report.aborted:
        print("dry run ok: every check passed; nothing moved")
        return 0
    if report.episodes:
        save_config(cfg, cfg.out, "rollout")
    print(report.summary())
    if report.error:
        return 1
    if report.aborted.split(" ")[0] in ("SIGINT", "SIGTERM", "KeyboardInterrupt"):
        return 130
    return 0
