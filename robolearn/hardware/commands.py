"""The hardware stage's CLI commands: `robolearn robot-server` (serve a robot over the network),
`robolearn devices list|echo` (find and check teleop devices) and `robolearn calibrate` (ChArUco camera
calibration). Each parses its typed config and calls into robolearn.hardware."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robolearn.config import command, opt, positional, save_config
from robolearn.hardware.calibration import DISTORTION_MODELS, CalibrationError, calibrate_sim, write_calibration
from robolearn.hardware.devices.keyboard import KeyboardDevice
from robolearn.hardware.devices.registry import device_names, make_device
from robolearn.hardware.robots.base import RobotError
from robolearn.hardware.robots.registry import RobotSelection, make_robot_from
from robolearn.hardware.robots.server import RobotServer, ServerConfig


# ---------------------------------------------------------------------------------------------- robot-server
@dataclass
class RobotServerCommand(RobotSelection, ServerConfig):
    log_level: str = opt("info", help="debug | info | warning | error")

    def __post_init__(self) -> None:
        RobotSelection.__post_init__(self)
        ServerConfig.__post_init__(self)
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError(f"log_level must be debug, info, warning or error, got {self.log_level!r}")


@command("robot-server", "")
def robot_server(cfg: RobotServerCommand) -> int:
    """Serve a robot to a remote station over ZeroMQ (127.0.0.1 unless given a token)."""
    logging.basicConfig(level=cfg.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server_cfg = ServerConfig(
        cfg.bind, cfg.port, cfg.token, cfg.max_message_bytes, cfg.heartbeat_timeout_s, cfg.takeover_after_s
    )
    try:
        robot = make_robot_from(cfg)
    except (ValueError, TypeError) as e:
        print(f"robolearn robot-server: {e}", file=sys.stderr)
        return 2
    try:
        server = RobotServer(robot, server_cfg)
        address = server.start()
        print(f"robot-server: serving {robot.info().get('robot_type', robot.name)} at {address}", flush=True)
        with _stop_on_sigterm(server):
            server.serve_forever()
    except (RobotError, ValueError) as e:
        print(f"robolearn robot-server: {e}", file=sys.stderr)
        return 1
    finally:
        robot.disconnect()
    return 0


@contextlib.contextmanager
def _stop_on_sigterm(server: RobotServer) -> Iterator[None]:
    """SIGTERM ends the serve loop cleanly (robot stopped) like Ctrl-C; only possible in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: server.shutdown())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------- devices
@dataclass
class DevicesListCommand:
    probe: bool = opt(True, help="also look for connected SpaceMice and gamepads")


@command("devices", "list")
def devices_list(cfg: DevicesListCommand) -> int:
    """List teleop device names (built-in and plugins) and the SpaceMice / gamepads connected now."""
    print("devices: " + ", ".join(device_names()) + " (combine with '+', e.g. spacemouse+keyboard)")
    if cfg.probe:
        for line in _probe():
            print(line)
    return 0


def _probe() -> list[str]:
    from robolearn.hardware.devices import gamepad, spacemouse  # noqa: PLC0415

    lines = []
    try:
        hid = spacemouse.import_hid()
        mice = spacemouse.find_spacemice(hid)
        lines += [
            f"spacemouse: {spacemouse.PRODUCTS[(d['vendor_id'], d['product_id'])]} at {spacemouse._path_str(d['path'])}"
            for d in mice
        ] or ["spacemouse: none found"]
    except RuntimeError as e:
        lines.append(f"spacemouse: {e}")
    try:
        pg = gamepad.import_pygame()
        pg.display.init()
        pg.joystick.init()
        pads = [pg.joystick.Joystick(i).get_name() for i in range(pg.joystick.get_count())]
        lines += [f"gamepad {i}: {n}" for i, n in enumerate(pads)] or ["gamepad: none found"]
    except RuntimeError as e:
        lines.append(f"gamepad: {e}")
    return lines


@dataclass
class DevicesEchoCommand:
    device: str = positional(help="device name (keyboard, spacemouse, gamepad, a plugin, or a+b)")
    options: dict[str, Any] = opt(default_factory=dict, help="device options, e.g. '{\"deadzone\": 0.1}'")
    seconds: float = opt(0.0, help="stop after this long (0: until the device sends quit, or Ctrl+C)")
    hz: float = opt(15.0, help="readings per second")


@command("devices", "echo")
def devices_echo(cfg: DevicesEchoCommand) -> int:
    """Print a device's commands as they change (check axes, signs, buttons and gains before recording)."""
    try:
        if cfg.hz <= 0:
            raise ValueError(f"--hz must be > 0, got {cfg.hz}")
        device = make_device(cfg.device, **cfg.options)
        device.connect()
    except (ValueError, RuntimeError, TypeError) as e:
        print(f"robolearn devices echo: {e}", file=sys.stderr)
        return 2
    if isinstance(device, KeyboardDevice):
        print(device.help_text())
    print(f"reading {device.name} at {cfg.hz:g} Hz; quit event or Ctrl+C stops", flush=True)
    end = time.monotonic() + cfg.seconds if cfg.seconds > 0 else float("inf")
    last = ""
    try:
        with device:
            while time.monotonic() < end:
                cmd = device.read().validated(device.name)
                line = (
                    f"twist [{' '.join(f'{v:+.2f}' for v in cmd.twist)}] gripper {cmd.gripper:.2f} "
                    f"enabled {int(cmd.enabled)} events {','.join(sorted(cmd.events)) or '-'}"
                )
                raw = getattr(device, "raw", None)
                if callable(raw):  # devices that can show their raw input (SpaceMouse counts, button bits)
                    line += f" | {raw()}"
                if line != last:
                    print(line, flush=True)
                    last = line
                if "quit" in cmd.events:
                    break
                time.sleep(1.0 / cfg.hz)
    except KeyboardInterrupt:
        pass
    except (ValueError, RuntimeError) as e:
        print(f"robolearn devices echo: {e}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------------------------- calibrate
@dataclass
class CalibrateCommand:
    out: Path = opt(Path("calibration"), help="folder for calibration.json (merged with an existing file)")
    robot: str = opt("sim", help="robot: only 'sim' from the CLI; real robots use calibrate_camera() in Python")
    camera: str = opt("exterior_1", help="camera to calibrate (sim: exterior_1 or exterior_2)")
    views: int = opt(16, help="number of robot poses")
    seed: int = opt(0, help="pose sampling and hold-out split seed")
    household: int = opt(0, help="sim household")
    scene: int = opt(0, help="sim scene")
    width: int = opt(640, help="image width")
    height: int = opt(480, help="image height")
    holdout: float = opt(0.3, help="fraction of views held out to measure the error")
    true_intrinsics: bool = opt(False, help="sim: use the exact intrinsics instead of estimating them")
    distortion_model: str = opt("k1k2", help=f"distortion terms estimated: {' | '.join(DISTORTION_MODELS)}")
    max_holdout_mm: float = opt(5.0, help="refuse (exit 1, nothing written) above this held-out error")
    max_holdout_deg: float = opt(1.0, help="refuse above this held-out rotation error")
    force: bool = opt(False, help="write the result even when it fails the limits")


@command("calibrate", "")
def calibrate(cfg: CalibrateCommand) -> int:
    """Calibrate a camera (intrinsics + pose in the robot base) with a ChArUco board held by the gripper."""
    if cfg.robot != "sim":
        print(
            f"robolearn calibrate: robot {cfg.robot!r} is not supported from the CLI (only 'sim'); for a real "
            f"robot call robolearn.hardware.calibration.calibrate_camera() with its move/pose/grab functions",
            file=sys.stderr,
        )
        return 2
    t0 = time.monotonic()
    try:
        result, truth = calibrate_sim(
            cfg.camera,
            cfg.views,
            cfg.seed,
            cfg.household,
            cfg.scene,
            cfg.width,
            cfg.height,
            use_true_intrinsics=cfg.true_intrinsics,
            holdout=cfg.holdout,
            distortion_model=cfg.distortion_model,
            progress=lambda s: print(s, flush=True),
        )
    except (CalibrationError, ValueError) as e:
        print(f"robolearn calibrate: {e}", file=sys.stderr)
        return 1
    h = result.holdout
    print(
        f"{cfg.camera}: {result.num_views} views ({result.num_rejected} rejected), reprojection "
        f"{result.residual_px:.3f} px; held-out ({int(h['views'])} views): "
        f"{h.get('translation_mm_mean', float('nan')):.2f} mm, {h.get('rotation_deg_mean', float('nan')):.3f} deg, "
        f"{h.get('reprojection_px', float('nan')):.3f} px; {time.monotonic() - t0:.1f} s"
    )
    print(
        f"sim ground truth: extrinsics error {truth['extrinsics_error_mm']:.2f} mm, "
        f"{truth['extrinsics_error_deg']:.3f} deg; focal error {truth['focal_error_pct']:.3f} %"
    )
    bad = (
        h.get("translation_mm_mean", 0.0) > cfg.max_holdout_mm or h.get("rotation_deg_mean", 0.0) > cfg.max_holdout_deg
    )
    if bad and not cfg.force:
        print(
            f"robolearn calibrate: held-out error above the limits ({cfg.max_holdout_mm} mm, "
            f"{cfg.max_holdout_deg} deg); nothing written (use --force to write anyway)",
            file=sys.stderr,
        )
        return 1
    path = write_calibration(cfg.out, result)
    save_config(cfg, cfg.out, "calibrate")
    print(f"wrote {path}")
    return 0
