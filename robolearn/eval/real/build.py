"""Building a rollout's parts from its config: robot (URI), cameras, takeover device, policy."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict
from typing import Any

from robolearn.eval.real.config import RolloutConfig, RolloutError
from robolearn.eval.real.takeover import NullDevice
from robolearn.hardware.cameras.base import Camera
from robolearn.hardware.devices.base import Device
from robolearn.hardware.robots.base import Robot


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def policy_config_dict(policy: Any) -> dict[str, Any]:
    cfg = policy.config
    if hasattr(cfg, "to_dict"):
        d = cfg.to_dict()
    elif dataclasses.is_dataclass(cfg):
        d = asdict(cfg)
    else:
        d = {k: v for k, v in vars(cfg).items() if not k.startswith("_")}
    return _jsonable(d)


def parse_robot_uri(uri: str, token: str = "", options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A robot URI -> (registry name, options): tcp://HOST:PORT -> remote, sim[:TASK] -> sim, NAME -> plugin."""
    options = dict(options or {})
    uri = uri.strip()
    if not uri:
        raise RolloutError("--robot is empty: give tcp://HOST:PORT, sim[:TASK] or a robot plugin name")
    if uri.startswith("tcp://"):
        return "remote", {"address": uri, **({"token": token} if token else {}), **options}
    if "://" in uri:
        raise RolloutError(f"--robot {uri!r}: unknown scheme; use tcp://HOST:PORT for a `robolearn robot-server`")
    name, _, arg = uri.partition(":")
    if name == "sim" and arg:
        options.setdefault("task", arg)
    elif arg:
        raise RolloutError(f"--robot {uri!r}: only sim takes an argument (sim:TASK); plugins take --robot-options JSON")
    if name == "remote" and token:
        options.setdefault("token", token)
    return name, options


def _default_frame_size(cfg: RolloutConfig, policy: Any) -> tuple[int, int]:
    """(width, height) of stored camera frames."""
    hw = list(getattr(policy.config, "train_image_size", []) or [])
    w = cfg.camera_width or (int(hw[1]) if len(hw) == 2 else 320)
    h = cfg.camera_height or (int(hw[0]) if len(hw) == 2 else 180)
    return w, h


def build_robot(cfg: RolloutConfig, policy: Any) -> Robot:
    from robolearn.hardware.robots.registry import make_robot

    name, options = parse_robot_uri(cfg.robot, cfg.token, cfg.robot_options)
    if name == "sim":
        tasks = list(getattr(policy.config, "train_tasks", []) or [])
        options.setdefault("task", cfg.task or (tasks[0] if tasks else "put-in-bin"))
        if cfg.control_hz:
            options.setdefault("control_hz", cfg.control_hz)
    try:
        return make_robot(name, **options)
    except (TypeError, ValueError) as e:
        raise RolloutError(f"--robot {cfg.robot}: {e}") from None


def build_cameras(cfg: RolloutConfig, robot: Robot, policy: Any) -> list[Camera]:
    """--cameras entries: NAME=SOURCE (OpenCV) or NAME (a sim robot's scene camera)."""
    from robolearn.hardware.cameras.registry import make_camera

    specs = list(cfg.cameras)
    is_sim = hasattr(robot, "sim") and hasattr(robot, "env")
    if not specs:
        if not is_sim:
            raise RolloutError(
                f"give --cameras NAME=SOURCE for the policy's cameras {list(policy.config.cameras)} "
                "(e.g. --cameras exterior_1=0 wrist=2: OpenCV device index, /dev/videoN, file or "
                "URL); the robot server serves no cameras"
            )
        specs = list(policy.config.cameras)
    width, height = _default_frame_size(cfg, policy)
    cams: list[Camera] = []
    for spec in specs:
        name, sep, source = spec.partition("=")
        name, source = name.strip(), source.strip()
        if not name or (sep and not source):
            raise RolloutError(f"--cameras {spec!r}: expected NAME=SOURCE or NAME")
        try:
            if sep:
                cams.append(
                    make_camera(
                        "opencv",
                        source=source,
                        name=name,
                        width=width,
                        height=height,
                        calibration=cfg.calibration,
                        **cfg.camera_options,
                    )
                )
            elif is_sim:
                cams.append(make_camera("sim", robot=robot, camera=name, width=width, height=height))
            else:
                raise RolloutError(
                    f"--cameras {spec!r}: camera {name!r} needs a source (NAME=SOURCE: device index, "
                    "/dev/videoN, file or URL); bare names are sim scene cameras"
                )
        except (TypeError, ValueError) as e:
            if isinstance(e, RolloutError):
                raise
            raise RolloutError(f"--cameras {spec!r}: {e}") from None
    names = [c.name for c in cams]
    if len(set(names)) != len(names):
        raise RolloutError(f"--cameras: duplicate camera names {names}")
    return cams


def build_device(cfg: RolloutConfig) -> Device:
    if cfg.takeover_device in ("none", ""):
        return NullDevice()
    from robolearn.hardware.devices.registry import make_device

    try:
        return make_device(cfg.takeover_device, **cfg.device_options)
    except (TypeError, ValueError) as e:
        raise RolloutError(f"--takeover-device {cfg.takeover_device}: {e}") from None


def load_policy_from(cfg: RolloutConfig) -> tuple[Any, dict[str, Any]]:
    """The policy and what identifies it in the episodes (path, config, training metadata)."""
    from robolearn.policies import load_policy, read_policy_config
    from robolearn.policies.checkpoint import resolve_policy_dir

    if not cfg.policy:
        raise RolloutError("--policy: give a policy checkpoint folder (or a training run folder)")
    policy = load_policy(cfg.policy, device=cfg.policy_device)  # PolicyCheckpointError (a ValueError) if bad
    doc = read_policy_config(cfg.policy)
    path = resolve_policy_dir(cfg.policy).resolve()
    return policy, {
        "path": str(path),
        "config": policy_config_dict(policy),
        "meta": _jsonable(doc.get("meta", {})),
        "format_version": doc.get("version"),
        "robolearn_version": doc.get("robolearn_version"),
    }
