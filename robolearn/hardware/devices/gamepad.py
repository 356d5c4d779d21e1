"""Gamepad teleoperation through pygame's SDL2 backend (`pip install pygame`, or pygame-ce; headless: no
window is opened, SDL's dummy video driver is used and background joystick events are allowed).

Pads that SDL knows (Xbox, PlayStation, Switch Pro, 8BitDo and hundreds more, through SDL's game-controller
database) are read by button *name*, so the layout below is the same on all of them; unknown pads fall back
to raw joystick indices (`joystick_axes`, `joystick_buttons`, default: the Linux xpad layout).

Default mapping (base frame: x forward, y left, z up; stick up = forward):
    left stick          vx (up = forward), vy (left = left)
    right stick         vz (up = up), wz (left = yaw left)
    d-pad               wx (right = +roll), wy (down = +pitch)
    left shoulder (LB)  dead-man: no motion unless held ("" disables it)
    triggers            gripper: right closes, left opens (latched); gripper_mode=analog: right trigger = gripper
    A success, B failure, X discard, Y home, Start start, Back quit
Names: a b x y back guide start left_stick right_stick left_shoulder right_shoulder dpad_up dpad_down
dpad_left dpad_right; axes: left_x left_y right_x right_y trigger_left trigger_right (sticks in [-1, 1], y
positive down as SDL reports it; triggers in [0, 1]) and the virtual dpad_x (right +) and dpad_y (down +).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from robolearn.hardware.devices.base import EVENTS, Device, DeviceCommand, DeviceConfig, DeviceError, apply_deadzone

BUTTONS = (
    "a",
    "b",
    "x",
    "y",
    "back",
    "guide",
    "start",
    "left_stick",
    "right_stick",
    "left_shoulder",
    "right_shoulder",
    "dpad_up",
    "dpad_down",
    "dpad_left",
    "dpad_right",
)  # SDL game-controller order
AXES = ("left_x", "left_y", "right_x", "right_y", "trigger_left", "trigger_right")  # SDL game-controller order
TWIST_SOURCES = (*AXES[:4], "dpad_x", "dpad_y")
_AXIS_SPEC = re.compile(r"^([+-]?)(\w+)$")


@dataclass
class GamepadConfig(DeviceConfig):
    """Gamepad settings (see the module docstring for the layout)."""

    deadzone: float = 0.12  # sticks rest a little off centre
    index: int = 0  # which pad, when several are plugged in
    axis_map: list[str] = field(
        default_factory=lambda: ["-left_y", "-left_x", "-right_y", "dpad_x", "dpad_y", "-right_x"]
    )
    deadman: str = "left_shoulder"
    gripper_mode: Literal["latch", "analog"] = "latch"
    trigger_threshold: float = 0.6  # above a raw trigger's 0.5 before it was first touched
    events: dict[str, str] = field(
        default_factory=lambda: {
            "a": "success",
            "b": "failure",
            "x": "discard",
            "y": "home",
            "start": "start",
            "back": "quit",
        }
    )
    joystick_axes: dict[str, int] = field(
        default_factory=lambda: {
            "left_x": 0,
            "left_y": 1,
            "trigger_left": 2,
            "right_x": 3,
            "right_y": 4,
            "trigger_right": 5,
        }
    )
    joystick_buttons: dict[str, int] = field(
        default_factory=lambda: {
            "a": 0,
            "b": 1,
            "x": 2,
            "y": 3,
            "left_shoulder": 4,
            "right_shoulder": 5,
            "back": 6,
            "start": 7,
            "guide": 8,
            "left_stick": 9,
            "right_stick": 10,
        }
    )


def check_config(config: GamepadConfig) -> list[tuple[str, float]]:
    """ValueError naming any bad entry; returns the parsed axis map [(source, sign)] ('0' -> ('', 0))."""
    if len(config.axis_map) != 6:
        raise ValueError(f"gamepad axis_map needs 6 entries (vx vy vz wx wy wz), got {len(config.axis_map)}")
    parsed: list[tuple[str, float]] = []
    for spec in config.axis_map:
        m = _AXIS_SPEC.match(spec)
        if spec == "0":
            parsed.append(("", 0.0))
        elif m and m.group(2) in TWIST_SOURCES:
            parsed.append((m.group(2), -1.0 if m.group(1) == "-" else 1.0))
        else:
            raise ValueError(
                f"gamepad axis_map entry {spec!r}: expected an optionally signed axis "
                f"({', '.join(TWIST_SOURCES)}) or '0'"
            )
    if config.deadman and config.deadman not in BUTTONS:
        raise ValueError(f"gamepad deadman {config.deadman!r}: expected a button ({', '.join(BUTTONS)}) or ''")
    for button, event in config.events.items():
        if button not in BUTTONS:
            raise ValueError(f"gamepad events: unknown button {button!r}; expected one of {', '.join(BUTTONS)}")
        if event not in EVENTS:
            raise ValueError(f"gamepad events: unknown event {event!r} for {button!r}; expected one of {EVENTS}")
    if config.gripper_mode not in ("latch", "analog"):
        raise ValueError(f"gamepad gripper_mode {config.gripper_mode!r}: expected 'latch' or 'analog'")
    return parsed


def map_gamepad(
    axes: Mapping[str, float],
    held: set[str] | frozenset[str],
    pressed: set[str] | frozenset[str],
    gripper: float,
    config: GamepadConfig,
) -> DeviceCommand:
    """The command for one reading: `axes` by name (missing ones read 0), `held` buttons down now, `pressed`
    buttons that went down since the last reading, `gripper` the previous gripper value (for latching)."""
    sources = {name: float(axes.get(name, 0.0)) for name in AXES[:4]}
    sources["dpad_x"] = float("dpad_right" in held) - float("dpad_left" in held)
    sources["dpad_y"] = float("dpad_down" in held) - float("dpad_up" in held)
    twist = np.array([sign * sources[name] if sign else 0.0 for name, sign in check_config(config)])
    twist = apply_deadzone(np.clip(twist, -1.0, 1.0), config.deadzone)
    twist[:3] *= config.linear_gain
    twist[3:] *= config.angular_gain
    enabled = not config.deadman or config.deadman in held
    if not enabled:
        twist = np.zeros(6)
    right, left = float(axes.get("trigger_right", 0.0)), float(axes.get("trigger_left", 0.0))
    if config.gripper_mode == "analog":
        gripper = right
    elif right >= config.trigger_threshold:
        gripper = 1.0
    elif left >= config.trigger_threshold:
        gripper = 0.0
    events = {config.events[b] for b in pressed if b in config.events}
    return DeviceCommand(np.clip(twist, -1.0, 1.0), float(np.clip(gripper, 0.0, 1.0)), enabled, events)


def joystick_to_named(
    axis_values: list[float], button_values: list[bool], hat: tuple[int, int], config: GamepadConfig
) -> tuple[dict[str, float], set[str]]:
    """Raw joystick readings (pygame's Joystick: axes in [-1, 1], triggers resting at -1; hat (x, y) with y
    up +) -> (axes by name, held buttons by name) using the config's index maps."""
    axes: dict[str, float] = {}
    for name, i in config.joystick_axes.items():
        if 0 <= i < len(axis_values):
            v = float(axis_values[i])
            axes[name] = (v + 1.0) / 2.0 if name.startswith("trigger") else v
    held = {name for name, i in config.joystick_buttons.items() if 0 <= i < len(button_values) and button_values[i]}
    hx, hy = hat
    held |= {
        n for n, on in (("dpad_left", hx < 0), ("dpad_right", hx > 0), ("dpad_up", hy > 0), ("dpad_down", hy < 0)) if on
    }
    return axes, held


class GamepadSource(Protocol):
    def poll(self) -> tuple[dict[str, float], set[str], set[str]]:
        """(axes by name, held buttons, buttons pressed since the last poll)."""

    def close(self) -> None: ...


def import_pygame() -> Any:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")  # no window has focus
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame  # noqa: PLC0415 (optional dependency)
    except ImportError as e:
        raise DeviceError("the gamepad device needs pygame: pip install 'pygame>=2.6' (or pygame-ce)") from e
    return pygame


class PygameSource:
    """Reads pad `index` with SDL's game-controller API when SDL knows the pad, else the joystick API."""

    def __init__(self, config: GamepadConfig) -> None:
        pg = self.pg = import_pygame()
        self.config = config
        pg.display.init()  # the dummy driver: needed for the event queue, opens no window
        pg.joystick.init()
        count = pg.joystick.get_count()
        if count == 0:
            raise DeviceError(
                "no gamepad found: SDL sees no joystick (is it plugged in and paired? Without "
                "root, your user needs read access to /dev/input/event*: the 'input' group)"
            )
        if not 0 <= config.index < count:
            raise DeviceError(f"gamepad index {config.index} out of range: {count} pad(s) found")
        self.controller = None
        try:
            from pygame._sdl2 import controller  # noqa: PLC0415

            controller.init()
            if controller.is_controller(config.index):
                self.controller = controller.Controller(config.index)
        except (ImportError, AttributeError):
            pass
        self.joystick = pg.joystick.Joystick(config.index)
        self.joystick.init()
        self.name = self.joystick.get_name()
        self.instance_id = self.joystick.get_instance_id()
        self._prev = self._levels()[1]  # buttons already down at start are not presses

    def poll(self) -> tuple[dict[str, float], set[str], set[str]]:
        pg = self.pg
        pressed: set[str] = set()
        for ev in pg.event.get():
            if getattr(ev, "instance_id", self.instance_id) != self.instance_id:
                continue
            if ev.type in (pg.JOYDEVICEREMOVED, getattr(pg, "CONTROLLERDEVICEREMOVED", -1)):
                raise DeviceError(f"gamepad {self.name!r} disconnected")
            if self.controller is not None and ev.type == getattr(pg, "CONTROLLERBUTTONDOWN", -1):
                if 0 <= ev.button < len(BUTTONS):
                    pressed.add(BUTTONS[ev.button])
            elif self.controller is None and ev.type == pg.JOYBUTTONDOWN:
                pressed |= {n for n, i in self.config.joystick_buttons.items() if i == ev.button}
            elif self.controller is None and ev.type == pg.JOYHATMOTION:
                pressed |= joystick_to_named([], [], ev.value, self.config)[1]
        axes, held = self._levels()
        # A press seen only as a level change (its event lost) still counts once.
        pressed |= held - self._prev
        self._prev = held
        return axes, held, pressed

    def _levels(self) -> tuple[dict[str, float], set[str]]:
        """Axes and held buttons by name, now."""
        if self.controller is not None:
            axes = {n: self.controller.get_axis(i) / 32767.0 for i, n in enumerate(AXES)}
            return axes, {n for i, n in enumerate(BUTTONS) if self.controller.get_button(i)}
        js = self.joystick
        return joystick_to_named(
            [js.get_axis(i) for i in range(js.get_numaxes())],
            [bool(js.get_button(i)) for i in range(js.get_numbuttons())],
            js.get_hat(0) if js.get_numhats() else (0, 0),
            self.config,
        )

    def close(self) -> None:
        try:
            if self.controller is not None:
                self.controller.quit()
            self.joystick.quit()
        except Exception:  # noqa: BLE001 (already gone)
            pass


class GamepadDevice(Device):
    """A gamepad. `source` (an object with poll() and close(), see GamepadSource) replaces pygame in tests."""

    name = "gamepad"
    config_cls = GamepadConfig

    def __init__(self, config: GamepadConfig | None = None, *, source: GamepadSource | None = None) -> None:
        self.config = config or GamepadConfig()
        check_config(self.config)
        self._given = source  # reused by connect() after a disconnect()
        self._source: GamepadSource | None = None
        self._gripper = 0.0

    def connect(self) -> None:
        if self._source is None:
            self._source = self._given if self._given is not None else PygameSource(self.config)

    def params(self) -> dict:
        """Settings recorded with each episode (teleop_params)."""
        return dataclasses.asdict(self.config)

    def read(self) -> DeviceCommand:
        if self._source is None:
            self.connect()
        axes, held, pressed = self._source.poll()
        cmd = map_gamepad(axes, held, pressed, self._gripper, self.config)
        self._gripper = cmd.gripper
        return cmd

    def disconnect(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
