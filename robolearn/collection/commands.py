"""`robolearn collect`: record episodes at the station.

robolearn collect --robot sim --task put-in-bin --device keyboard --episodes 10 --out data/demos
robolearn collect --robot sim --task open-drawer --device expert --episodes 50 --out data/auto
robolearn collect --resume --out data/demos --episodes 5          # add episodes, same station settings
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from robolearn.collection.station import STATION_FILE, AutoOperator, Station, StationConfig, TerminalOperator
from robolearn.config import command, opt, save_config
from robolearn.hardware.cameras.base import Camera
from robolearn.hardware.devices.base import Device
from robolearn.hardware.robots.base import Robot
from robolearn.lineage import write_card

SIM_CAMERAS = ("exterior_1", "exterior_2", "wrist")


@dataclass
class CollectCommand:
    out: Path = opt(Path("data/demos"), help="dataset folder (episodes/, station.json, catalog)")
    robot: str = opt("sim", help="sim | remote | an installed robot plugin")
    address: str = opt("tcp://127.0.0.1:5555", help="robot server address (--robot remote)")
    token: str = opt("", help="robot server token (--robot remote)")
    task: str = opt(
        "",
        help="task: a household task id (sim: the scene's task) or free text; empty: choose "
        "from the catalogue at the prompt",
    )
    household_id: int = opt(0, help="sim scene: household id")
    scene_id: int = opt(0, help="sim scene: scene id")
    device: str = opt(
        "keyboard",
        help="keyboard | spacemouse | gamepad | expert | a device plugin; 'a+b' "
        "combines devices (e.g. spacemouse+keyboard)",
    )
    device_options: str = opt("", help="device options as JSON, e.g. '{\"linear_gain\": 0.8}' (docs/devices.md)")
    expert_noise: float = opt(0.0, help="expert device: action noise")
    expert_seed: int = opt(0, help="expert device: noise seed")
    episodes: int = opt(1, help="episodes to save in this session")
    resume: bool = opt(False, help="add to an existing dataset (station settings are reused)")
    cameras: list[str] = opt(
        default_factory=lambda: list(SIM_CAMERAS),
        help="sim: camera names; real robots: OpenCV sources (device index, file, URL)",
    )
    calibration: str = opt(
        "", help="calibration.json from `robolearn calibrate` (OpenCV cameras; sim cameras record their exact pose)"
    )
    camera_width: int = opt(320, help="camera image width")
    camera_height: int = opt(180, help="camera image height")
    station: StationConfig = field(default_factory=StationConfig)


def build_robot(cfg: CollectCommand) -> Robot:
    if cfg.robot == "sim":
        from robolearn.hardware.robots.sim import SimRobot, SimRobotConfig

        return SimRobot(
            SimRobotConfig(
                task=cfg.task, household=cfg.household_id, scene=cfg.scene_id, control_hz=cfg.station.control_hz
            )
        )
    from robolearn.hardware.robots.registry import make_robot

    options = {"address": cfg.address, "token": cfg.token} if cfg.robot == "remote" else {}
    return make_robot(cfg.robot, **options)


def build_cameras(cfg: CollectCommand, robot: Robot) -> list[Camera]:
    if cfg.robot == "sim":
        from robolearn.hardware.cameras.sim import SimCamera

        return [SimCamera(robot, name, cfg.camera_width, cfg.camera_height) for name in cfg.cameras]
    from robolearn.hardware.cameras.registry import make_camera

    return [
        make_camera(
            "opencv",
            source=int(c) if c.isdigit() else c,
            name=f"camera_{i}",
            width=cfg.camera_width,
            height=cfg.camera_height,
            calibration=cfg.calibration,
        )
        for i, c in enumerate(cfg.cameras)
    ]


def build_device(cfg: CollectCommand, robot: Robot) -> Device:
    if cfg.device == "expert":
        from robolearn.hardware.devices.expert import ExpertDevice, ExpertDeviceConfig

        return ExpertDevice(robot, ExpertDeviceConfig(noise=cfg.expert_noise, seed=cfg.expert_seed))
    from robolearn.hardware.devices.registry import make_device

    try:
        options = json.loads(cfg.device_options) if cfg.device_options else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--device-options is not valid JSON ({e}): {cfg.device_options!r}") from None
    return make_device(cfg.device, **options)


def _apply_saved_station(cfg: CollectCommand) -> None:
    """On resume, reuse the saved station identity (lab, household, scene, operator, task...)."""
    path = cfg.out / STATION_FILE
    if cfg.resume and path.exists():
        saved = json.loads(path.read_text())
        for key in ("lab", "household", "scene", "operator", "task", "instruction"):
            if key in saved and getattr(cfg.station, key) == getattr(StationConfig(), key):
                setattr(cfg.station, key, saved[key])


def choose_task(ask=input, say=print) -> str:
    """Pick a task from the household catalogue by number, or type a free-text task."""
    from robolearn.envs.tasks import TASKS

    names = sorted(TASKS)
    say("tasks: " + ", ".join(f"{i + 1}) {n}" for i, n in enumerate(names)))
    while True:
        answer = ask("task number, name or free text: ").strip()
        if answer.isdigit() and 1 <= int(answer) <= len(names):
            return names[int(answer) - 1]
        if answer:
            return answer


@command("collect", "")
def collect(cfg: CollectCommand) -> int:
    """Record episodes with a robot, cameras and a teleop device (or the sim expert)."""
    if cfg.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {cfg.episodes}")
    _apply_saved_station(cfg)
    if not cfg.task:
        cfg.task = cfg.station.task or ("put-in-bin" if cfg.device == "expert" else choose_task())
    cfg.station.robot, cfg.station.device = cfg.robot, cfg.device
    defaults = StationConfig()
    if cfg.robot == "sim":  # sim scenes label themselves unless the operator named them
        if cfg.station.household == defaults.household:
            cfg.station.household = f"household_{cfg.household_id}"
        if cfg.station.scene == defaults.scene:
            cfg.station.scene = f"scene_{cfg.scene_id}"
    cfg.station.task = cfg.station.task or cfg.task
    cfg.station.cameras = list(cfg.cameras)
    robot = build_robot(cfg)
    cameras = build_cameras(cfg, robot)
    device = build_device(cfg, robot)
    operator = AutoOperator() if cfg.device == "expert" else TerminalOperator()
    station = Station(cfg.station, cfg.out, robot, cameras, device, operator)
    try:
        results = station.run(cfg.episodes, resume=cfg.resume)
    finally:
        robot.disconnect()
    save_config(cfg, cfg.out, "collect")
    saved = [r for r in results if r.path]
    ok = sum(r.outcome == "success" for r in saved)
    write_card(cfg.out, "demos", [], cfg, {"episodes": len(saved), "successful": ok}, files=["**/*.h5"])
    print(f"saved {len(saved)} episodes ({ok} successful) in {cfg.out}")
    return 0
