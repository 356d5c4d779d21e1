"""Teleop devices: keyboard through a pty, SpaceMouse through recorded HID reports, gamepad mapping, the
registry and the `robolearn devices` commands. No hardware needed."""

from __future__ import annotations

import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest

from robolearn.hardware import commands as hw_commands
from robolearn.hardware import plugins
from robolearn.hardware.devices import gamepad as gp
from robolearn.hardware.devices import registry
from robolearn.hardware.devices import spacemouse as sm
from robolearn.hardware.devices.base import EVENTS, Device, DeviceCommand
from robolearn.hardware.devices.keyboard import (
    DEFAULT_KEYMAP,
    MOTIONS,
    KeyboardConfig,
    KeyboardDevice,
    build_keymap,
    parse_keys,
)

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def tty():
    master, slave = pty.openpty()
    yield master, slave
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def send(master: int, data: str) -> None:
    os.write(master, data.encode())
    time.sleep(0.01)  # let the line discipline pass it on


# ---------------------------------------------------------------------------------------------- keyboard


def test_every_key_of_the_keymap_through_a_pty(tty):
    master, slave = tty
    clock = Clock()
    kb = KeyboardDevice(fd=slave, clock=clock)
    with kb:
        gripper = 0.0
        for key, action in DEFAULT_KEYMAP.items():
            if key == "\x03":  # Ctrl+C: the tty turns it into SIGINT (ISIG stays on); tested through a pipe
                continue
            clock.t += 1.0  # past any previous hold window
            send(master, key)
            cmd = kb.read()
            if action in MOTIONS:
                axis, sign = MOTIONS[action]
                expected = np.zeros(6)
                expected[axis] = sign * 0.5
                np.testing.assert_allclose(cmd.twist, expected, err_msg=f"key {key!r}")
                assert cmd.events == set()
            elif action == "gripper":
                gripper = 1.0 - gripper
                assert cmd.gripper == gripper and not cmd.events
            else:
                assert cmd.events == {action}, f"key {key!r}"
                assert not cmd.twist.any()
            assert cmd.enabled
            assert kb.read().events == set()  # events are delivered once


def test_ctrl_c_and_eof_through_a_pipe():
    r, w = os.pipe()
    try:
        kb = KeyboardDevice(fd=r)
        os.write(w, b"\x03")
        assert kb.read().events == {"quit"}
        os.close(w)
        w = -1
        assert kb.read().events == {"quit"}  # input gone: quit, and again on every read
        assert kb.read().events == {"quit"}
        kb.disconnect()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_hold_window_repeat_shift_and_opposite_keys(tty):
    master, slave = tty
    clock = Clock()
    kb = KeyboardDevice(KeyboardConfig(hold_s=0.15), fd=slave, clock=clock)
    with kb:
        send(master, "w")
        assert kb.read().twist[0] == 0.5
        clock.t += 0.1
        assert kb.read().twist[0] == 0.5  # still inside the hold window
        clock.t += 0.1
        assert kb.read().twist[0] == 0.0  # released after hold_s
        send(master, "w")
        kb.read()
        clock.t += 0.1
        send(master, "w")  # key repeat keeps it moving
        clock.t += 0.1
        assert kb.read().twist[0] == 0.5
        send(master, "s")  # the opposite key replaces the direction
        assert kb.read().twist[0] == -0.5
        send(master, "Wa")  # Shift = faster (2 x 0.5); two axes at once
        np.testing.assert_allclose(kb.read().twist[:2], [1.0, 0.5])
        send(master, "\x1b[A\x1bOP")  # arrow / function keys: ignored, not read as Esc
        assert kb.read().events == set()
        send(master, "\x1b")  # a lone Esc quits
        assert kb.read().events == {"quit"}


def test_terminal_restored_after_close_and_on_error(tty):
    master, slave = tty
    before = termios.tcgetattr(slave)
    assert before[3] & termios.ECHO and before[3] & termios.ICANON
    kb = KeyboardDevice(fd=slave)
    kb.connect()
    during = termios.tcgetattr(slave)
    assert not during[3] & termios.ECHO and not during[3] & termios.ICANON
    assert during[3] & termios.ISIG  # Ctrl+C still interrupts
    kb.disconnect()
    assert termios.tcgetattr(slave) == before
    kb.disconnect()  # idempotent
    kb.connect()  # restartable (the station releases the device around prompts)
    kb.disconnect()
    assert termios.tcgetattr(slave) == before

    def broken_clock() -> float:
        raise RuntimeError("clock failed")

    kb = KeyboardDevice(fd=slave, clock=broken_clock)
    kb.connect()
    with pytest.raises(RuntimeError, match="clock failed"):
        kb.read()
    assert termios.tcgetattr(slave) == before  # restored on the exception inside read()


def test_terminal_restored_at_exit_when_the_process_dies_of_an_exception(tty):
    """A process that never calls close() (uncaught exception) still restores the terminal via atexit."""
    master, slave = tty
    before = termios.tcgetattr(slave)
    code = textwrap.dedent("""
        import sys, termios
        from robolearn.hardware.devices.keyboard import KeyboardDevice
        kb = KeyboardDevice()
        kb.read()
        assert not termios.tcgetattr(0)[3] & termios.ECHO
        print("cbreak", flush=True)
        raise SystemExit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", code], stdin=slave, stdout=subprocess.PIPE, timeout=30, text=True)
    assert proc.returncode == 3 and "cbreak" in proc.stdout
    assert termios.tcgetattr(slave) == before


def test_terminal_restored_when_the_process_is_terminated(tty):
    """SIGTERM while the keyboard holds the terminal: it is restored, and the process still dies of SIGTERM."""
    master, slave = tty
    before = termios.tcgetattr(slave)
    code = textwrap.dedent("""
        import time
        from robolearn.hardware.devices.keyboard import KeyboardDevice
        kb = KeyboardDevice()
        kb.connect()
        print("ready", flush=True)
        while True:
            kb.read()
            time.sleep(0.01)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert not termios.tcgetattr(slave)[3] & termios.ECHO
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert termios.tcgetattr(slave) == before


def test_keyboard_needs_a_terminal(monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(RuntimeError, match="needs a terminal"):
        KeyboardDevice().connect()


def test_keymap_overrides_and_errors():
    km = build_keymap({"W": "-x", "q": "", "z": "pause"})
    assert km["w"] == "-x" and "q" not in km and km["z"] == "pause"
    with pytest.raises(ValueError, match="unknown action 'fly'"):
        build_keymap({"e": "fly"})
    with pytest.raises(ValueError, match="single character"):
        build_keymap({"ab": "+x"})
    with pytest.raises(ValueError, match="hold_s"):
        KeyboardDevice(KeyboardConfig(hold_s=0))
    assert parse_keys("a\x1b[1;5Cb\x1bq") == ["a", "b", "\x1b", "q"]


def test_keyboard_help_and_params(tty):
    kb = KeyboardDevice(fd=tty[1])
    assert "forward (+x)" in kb.help_text() and "q/Esc/Ctrl+C" in kb.help_text()
    p = kb.params()
    assert p["hold_s"] == 0.15 and p["keymap"]["w"] == "+x"


# ------------------------------------------------------------------------------- DeviceCommand.validated


@pytest.mark.parametrize(
    "twist,gripper", [([np.nan, 0, 0, 0, 0, 0], 0.0), ([0, 0, np.inf, 0, 0, 0], 0.0), ([0] * 6, np.nan)]
)
def test_non_finite_device_values_are_rejected(twist, gripper):
    with pytest.raises(ValueError, match="'spacemouse' returned non-finite"):
        DeviceCommand(np.array(twist, dtype=float), gripper).validated("spacemouse")


def test_validated_shape_events_and_clipping():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        DeviceCommand(np.zeros(3)).validated("pad")
    with pytest.raises(ValueError, match="unknown events"):
        DeviceCommand(events={"teleport"}).validated("pad")
    cmd = DeviceCommand(np.array([2.0, -3, 0, 0, 0, 0.5]), 1.5, True, {"start"}).validated("pad")
    np.testing.assert_allclose(cmd.twist, [1, -1, 0, 0, 0, 0.5])
    assert cmd.gripper == 1.0


# ---------------------------------------------------------------------------------------------- spacemouse


def report(rid: int, *values: int) -> bytes:
    return bytes([rid]) + struct.pack(f"<{len(values)}h", *values)


def buttons(mask: int) -> bytes:
    return bytes([3]) + mask.to_bytes(2, "little")


def test_parse_report_translation_rotation_buttons_and_six_axis():
    s = sm.SpaceMouseState()
    s = sm.parse_report(report(1, 10, -350, 200), s)
    assert s.axes == (10, -350, 200, 0, 0, 0)
    s = sm.parse_report(report(2, -5, 6, 300), s)
    assert s.axes == (10, -350, 200, -5, 6, 300)
    s = sm.parse_report(buttons(0b10), s)
    assert s.buttons == 2 and s.axes[2] == 200
    s = sm.parse_report(report(1, 1, 2, 3, 4, 5, 6), s)  # 13-byte report: all six axes (newer devices)
    assert s.axes == (1, 2, 3, 4, 5, 6)
    assert sm.parse_report(bytes([0x17, 90]), s) == s  # battery report etc.: ignored
    with pytest.raises(ValueError, match="report id 1 has 3 data bytes"):
        sm.parse_report(report(1, 1, 2)[:4], s)
    with pytest.raises(ValueError, match="empty"):
        sm.parse_report(b"", s)


def test_twist_mapping_deadzone_and_gain():
    cfg = sm.SpaceMouseConfig()
    push = sm.SpaceMouseState(axes=(0, -350, 0, 0, 0, 0))  # cap pushed fully forward
    np.testing.assert_allclose(sm.state_to_twist(push, cfg), [1, 0, 0, 0, 0, 0])
    left_up = sm.SpaceMouseState(axes=(-175, 0, -700, 0, 0, 0))  # half left, pulled up past full scale
    t = sm.state_to_twist(left_up, cfg)
    assert t[1] == pytest.approx((0.5 - cfg.deadzone) / (1 - cfg.deadzone)) and t[2] == 1.0
    twist_ccw = sm.SpaceMouseState(axes=(0, 0, 0, 0, 0, -350))  # twisted counter-clockwise from above
    assert sm.state_to_twist(twist_ccw, cfg)[5] == 1.0
    drift = sm.SpaceMouseState(axes=(20, -20, 15, 25, -10, 5))  # rest drift inside the deadzone
    assert not sm.state_to_twist(drift, cfg).any()
    gains = sm.SpaceMouseConfig(linear_gain=0.5, angular_gain=0.25, deadzone=0.0)
    np.testing.assert_allclose(
        sm.state_to_twist(sm.SpaceMouseState(axes=(0, -350, 0, 0, 0, -350)), gains), [0.5, 0, 0, 0, 0, 0.25]
    )
    facing = sm.SpaceMouseConfig(axis_map=["y", "x", "-z", "ry", "rx", "-rz"], deadzone=0.0)
    assert sm.state_to_twist(push, facing)[0] == -1.0


def test_bad_spacemouse_config():
    with pytest.raises(ValueError, match="'w'"):
        sm.parse_axis_map(["w", "x", "z", "rx", "ry", "rz"])
    with pytest.raises(ValueError, match="twice"):
        sm.parse_axis_map(["x", "-x", "z", "rx", "ry", "rz"])
    assert sm.parse_axis_map(["x", "y", "z", "0", "0", "rz"])[3] == (0, 0.0)
    with pytest.raises(ValueError, match="unknown action 'jump'"):
        sm.SpaceMouseDevice(sm.SpaceMouseConfig(buttons={"0": "jump"}))
    with pytest.raises(ValueError, match="button bit number"):
        sm.SpaceMouseDevice(sm.SpaceMouseConfig(buttons={"left": "gripper"}))


class FakeHandle:
    """A hidapi handle replaying queued reports; read() returns [] when none is waiting."""

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.closed = False
        self.fail: Exception | None = None

    def read(self, n: int) -> list[int]:
        if self.fail:
            raise self.fail
        return list(self.queue.pop(0)) if self.queue else []

    def close(self) -> None:
        self.closed = True


def drain(handle: FakeHandle, timeout: float = 2.0) -> None:
    end = time.monotonic() + timeout
    while handle.queue and time.monotonic() < end:
        time.sleep(0.002)
    time.sleep(0.01)  # the last report is being applied


def test_spacemouse_device_with_a_fake_handle():
    handle = FakeHandle()
    dev = sm.SpaceMouseDevice(handle=handle)
    with dev:
        handle.queue += [report(1, 0, -350, 0), report(2, 0, 0, 0)]
        drain(handle)
        cmd = dev.read()
        assert cmd.twist[0] == 1.0 and cmd.gripper == 0.0 and cmd.enabled and not cmd.events
        # a quick click between two reads still counts: left toggles the gripper, right sends success
        handle.queue += [buttons(1), buttons(0), buttons(2), buttons(0)]
        drain(handle)
        cmd = dev.read()
        assert cmd.gripper == 1.0 and cmd.events == {"success"}
        assert dev.read().events == set() and dev.read().gripper == 1.0
        handle.queue += [bytes([1, 5, 0])]  # malformed: ignored, the state is kept
        drain(handle)
        assert dev.read().twist[0] == 1.0
        assert dev.params()["deadzone"] == 0.08
        handle.queue += [buttons(1 << 12)]  # a bigger model's extra button
        drain(handle)
        assert dev.raw() == "raw x=+0 y=-350 z=+0 rx=+0 ry=+0 rz=+0 buttons [12]"
    assert handle.closed
    dev.connect()  # restartable; starts from rest (reports were missed while closed)
    assert not dev.read().twist.any()
    dev.disconnect()


def test_spacemouse_hold_button_and_stale_reports():
    clock = Clock()
    handle = FakeHandle()
    cfg = sm.SpaceMouseConfig(buttons={"0": "gripper", "1": "hold"}, stale_s=0.5)
    with sm.SpaceMouseDevice(cfg, handle=handle, clock=clock) as dev:
        handle.queue += [report(1, 0, -350, 0)]
        drain(handle)
        cmd = dev.read()
        assert not cmd.enabled and not cmd.twist.any()  # dead-man not held
        handle.queue += [buttons(2)]
        drain(handle)
        cmd = dev.read()
        assert cmd.enabled and cmd.twist[0] == 1.0
        clock.t += 1.0  # no report for 1 s while displaced: motion zeroed
        assert not dev.read().twist.any()


def test_spacemouse_unplugged_raises_a_clear_error():
    handle = FakeHandle()
    dev = sm.SpaceMouseDevice(handle=handle)
    dev.connect()
    handle.fail = OSError("read error")
    time.sleep(0.05)
    with pytest.raises(RuntimeError, match="SpaceMouse stopped responding.*read error"):
        dev.read()
    dev.disconnect()


class FakeHid:
    def __init__(self, devices: list[dict], open_error: Exception | None = None) -> None:
        self.devices, self.open_error, self.opened = devices, open_error, []
        outer = self

        class Dev:
            def open_path(self, path: bytes) -> None:
                if outer.open_error:
                    raise outer.open_error
                outer.opened.append(path)

            def set_nonblocking(self, on: int) -> None:
                pass

        self.device = Dev

    def enumerate(self) -> list[dict]:
        return self.devices


def test_spacemouse_discovery_and_open_errors(monkeypatch):
    mouse = {"vendor_id": 0x046D, "product_id": 0xC52B, "path": b"/dev/hidraw0"}  # a Logitech receiver
    recv_kbd = {"vendor_id": 0x256F, "product_id": 0xC652, "path": b"/dev/hidraw1", "usage_page": 1, "usage": 6}
    recv_6dof = {"vendor_id": 0x256F, "product_id": 0xC652, "path": b"/dev/hidraw2", "usage_page": 1, "usage": 8}
    fake = FakeHid([mouse, recv_kbd, recv_6dof])
    monkeypatch.setattr(sm, "import_hid", lambda: fake)
    assert [d["path"] for d in sm.find_spacemice(fake)] == [b"/dev/hidraw2", b"/dev/hidraw1"]
    sm.open_spacemouse()
    assert fake.opened == [b"/dev/hidraw2"]
    with pytest.raises(RuntimeError, match="no SpaceMouse at '/dev/hidraw9'"):
        sm.open_spacemouse("/dev/hidraw9")
    fake.open_error = OSError("open failed")
    with pytest.raises(RuntimeError, match="could not open 3Dconnexion Universal Receiver.*udev rule"):
        sm.open_spacemouse()
    fake.devices = [mouse]
    with pytest.raises(RuntimeError, match="no SpaceMouse found"):
        sm.SpaceMouseDevice().connect()


def test_spacemouse_without_hidapi(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(RuntimeError, match="pip install hidapi"):
        sm.import_hid()


def test_real_hidapi_finds_no_spacemouse_here():
    hid = pytest.importorskip("hid")
    assert sm.find_spacemice(hid) == []


# ---------------------------------------------------------------------------------------------- gamepad


def test_gamepad_mapping_sticks_deadman_and_events():
    cfg = gp.GamepadConfig(deadzone=0.0)
    axes = {"left_x": -1.0, "left_y": -0.5, "right_x": 1.0, "right_y": -1.0}  # stick up = negative (SDL)
    idle = gp.map_gamepad(axes, set(), set(), 0.0, cfg)
    assert not idle.enabled and not idle.twist.any()  # dead-man not held: no motion
    cmd = gp.map_gamepad(axes, {"left_shoulder"}, set(), 0.0, cfg)
    np.testing.assert_allclose(cmd.twist, [0.5, 1.0, 1.0, 0, 0, -1.0])
    assert cmd.enabled and cmd.events == set()
    cmd = gp.map_gamepad({}, {"left_shoulder", "dpad_right", "dpad_up"}, set(), 0.0, cfg)
    np.testing.assert_allclose(cmd.twist, [0, 0, 0, 1.0, -1.0, 0])
    pressed = {"a", "b", "x", "y", "start", "back"}
    assert gp.map_gamepad({}, pressed, pressed, 0.0, cfg).events == {
        "success",
        "failure",
        "discard",
        "home",
        "start",
        "quit",
    }
    assert gp.map_gamepad({}, {"a"}, set(), 0.0, cfg).events == set()  # held, not newly pressed
    free = gp.GamepadConfig(deadman="", linear_gain=0.5)
    assert gp.map_gamepad({"left_y": -1.0}, set(), set(), 0.0, free).twist[0] == 0.5


def test_gamepad_deadzone_and_triggers():
    cfg = gp.GamepadConfig(deadman="")
    assert not gp.map_gamepad({"left_x": 0.1, "right_y": -0.11}, set(), set(), 0.0, cfg).twist.any()
    assert gp.map_gamepad({"trigger_right": 0.7}, set(), set(), 0.0, cfg).gripper == 1.0  # close, latched
    assert gp.map_gamepad({"trigger_right": 0.2}, set(), set(), 1.0, cfg).gripper == 1.0
    assert gp.map_gamepad({"trigger_left": 0.9}, set(), set(), 1.0, cfg).gripper == 0.0  # open
    analog = gp.GamepadConfig(gripper_mode="analog")
    assert gp.map_gamepad({"trigger_right": 0.3}, set(), set(), 1.0, analog).gripper == pytest.approx(0.3)


def test_gamepad_config_errors():
    for cfg, match in [
        (gp.GamepadConfig(deadman="lt"), "deadman 'lt'"),
        (gp.GamepadConfig(events={"z": "start"}), "unknown button 'z'"),
        (gp.GamepadConfig(events={"a": "win"}), "unknown event 'win'"),
        (gp.GamepadConfig(axis_map=["left_x"] * 5), "6 entries"),
        (gp.GamepadConfig(axis_map=["-left_y", "tilt", "0", "0", "0", "0"]), "'tilt'"),
    ]:
        with pytest.raises(ValueError, match=match):
            gp.GamepadDevice(cfg)


def test_raw_joystick_layout():
    cfg = gp.GamepadConfig()
    axes, held = gp.joystick_to_named([0.5, -1.0, -1.0, 0.0, 0.2, 1.0], [True, False, False, False, True], (1, 1), cfg)
    assert axes["left_x"] == 0.5 and axes["trigger_left"] == 0.0 and axes["trigger_right"] == 1.0
    assert held == {"a", "left_shoulder", "dpad_right", "dpad_up"}


class FakeSource:
    def __init__(self) -> None:
        self.readings = [({"left_y": -1.0, "trigger_right": 1.0}, {"left_shoulder"}, {"start"})]
        self.closed = False

    def poll(self):
        return self.readings.pop(0) if self.readings else ({}, set(), set())

    def close(self) -> None:
        self.closed = True


def test_gamepad_device_with_a_fake_source():
    src = FakeSource()
    with gp.GamepadDevice(source=src) as dev:
        cmd = dev.read()
        assert cmd.twist[0] == 1.0 and cmd.gripper == 1.0 and cmd.events == {"start"}
        cmd = dev.read()
        assert cmd.gripper == 1.0 and not cmd.enabled  # latched gripper; dead-man released
        assert dev.params()["deadman"] == "left_shoulder"
    assert src.closed


class FakeJoystick:
    def __init__(self) -> None:
        self.axes = [0.0, -1.0, -1.0, 0.0, 0.0, -1.0]
        self.buttons = [False] * 11
        self.hat = (0, 0)

    def init(self) -> None: ...
    def quit(self) -> None: ...
    def get_name(self) -> str:
        return "Fake Pad"

    def get_instance_id(self) -> int:
        return 7

    def get_numaxes(self) -> int:
        return len(self.axes)

    def get_axis(self, i: int) -> float:
        return self.axes[i]

    def get_numbuttons(self) -> int:
        return len(self.buttons)

    def get_button(self, i: int) -> bool:
        return self.buttons[i]

    def get_numhats(self) -> int:
        return 1

    def get_hat(self, i: int) -> tuple[int, int]:
        return self.hat


class FakeController:
    def __init__(self, index: int) -> None:
        self.axes = [0] * 6
        self.buttons = [False] * 15

    def get_axis(self, i: int) -> int:
        return self.axes[i]

    def get_button(self, i: int) -> bool:
        return self.buttons[i]

    def quit(self) -> None: ...


def fake_pygame(js: FakeJoystick, queue: list) -> types.SimpleNamespace:
    ev = types.SimpleNamespace
    return ev(
        JOYDEVICEREMOVED=1,
        JOYBUTTONDOWN=2,
        JOYHATMOTION=3,
        CONTROLLERBUTTONDOWN=4,
        CONTROLLERDEVICEREMOVED=5,
        display=ev(init=lambda: None),
        joystick=ev(init=lambda: None, get_count=lambda: 1, Joystick=lambda i: js),
        event=ev(get=lambda: [queue.pop(0) for _ in list(queue)]),
    )


def test_pygame_source_raw_joystick(monkeypatch):
    js, queue = FakeJoystick(), []
    monkeypatch.setattr(gp, "import_pygame", lambda: fake_pygame(js, queue))
    monkeypatch.setitem(sys.modules, "pygame._sdl2", None)  # SDL does not know this pad: raw joystick indices
    dev = gp.GamepadDevice()
    dev.connect()
    js.axes[1], js.axes[5] = -1.0, 1.0  # left stick up, right trigger in
    js.buttons[4] = True  # LB held: dead-man
    queue += [
        types.SimpleNamespace(type=2, button=0, instance_id=7),  # A clicked and released between reads
        types.SimpleNamespace(type=2, button=0, instance_id=8),
    ]  # another pad: ignored
    cmd = dev.read()
    assert cmd.twist[0] == 1.0 and cmd.enabled and cmd.gripper == 1.0 and cmd.events == {"success"}
    js.buttons[7] = True  # Start seen only as a level change
    assert dev.read().events == {"start"}
    assert dev.read().events == set()
    queue.append(types.SimpleNamespace(type=1, instance_id=7))
    with pytest.raises(RuntimeError, match="gamepad 'Fake Pad' disconnected"):
        dev.read()
    dev.disconnect()


def test_pygame_source_game_controller_api(monkeypatch):
    js, queue = FakeJoystick(), []
    monkeypatch.setattr(gp, "import_pygame", lambda: fake_pygame(js, queue))
    made: list[FakeController] = []

    def controller(i: int) -> FakeController:
        made.append(FakeController(i))
        return made[-1]

    module = types.SimpleNamespace(init=lambda: None, is_controller=lambda i: True, Controller=controller)
    monkeypatch.setitem(sys.modules, "pygame._sdl2", types.SimpleNamespace(controller=module))
    dev = gp.GamepadDevice(gp.GamepadConfig(deadman="right_shoulder"))
    dev.connect()
    pad = made[0]
    pad.axes[0], pad.axes[4] = -32768, 32767  # left stick fully left, left trigger in
    pad.buttons[10] = True  # right shoulder
    queue.append(types.SimpleNamespace(type=4, button=3, instance_id=7))  # Y
    cmd = dev.read()
    assert cmd.twist[1] == 1.0 and cmd.enabled and cmd.gripper == 0.0 and cmd.events == {"home"}
    dev.disconnect()


def test_gamepad_headless_reports_no_gamepad():
    pytest.importorskip("pygame")
    code = (
        "from robolearn.hardware.devices.gamepad import GamepadDevice\n"
        "try:\n    GamepadDevice().connect()\nexcept RuntimeError as e:\n    print(e)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SDL_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "no gamepad found" in out.stdout, out.stdout + out.stderr


def test_gamepad_without_pygame(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(RuntimeError, match="pip install 'pygame"):
        gp.GamepadDevice().connect()


# ---------------------------------------------------------------------------------------------- registry


def test_make_device_builtins_options_and_errors():
    kb = registry.make_device("keyboard", hold_s=1, keymap={"e": "+z"})
    assert isinstance(kb, KeyboardDevice) and kb.config.hold_s == 1.0 and kb.keymap["e"] == "+z"
    assert isinstance(
        registry.make_device("spacemouse", axis_map=("x", "y", "z", "rx", "ry", "rz")), sm.SpaceMouseDevice
    )
    assert isinstance(registry.make_device("gamepad", gripper_mode="analog"), gp.GamepadDevice)
    with pytest.raises(ValueError, match="Did you mean keyboard"):
        registry.make_device("keybord")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['speed'\]"):
        registry.make_device("keyboard", speed=2)
    with pytest.raises(ValueError, match="hold_s='long' should be a float"):
        registry.make_device("keyboard", hold_s="long")
    with pytest.raises(ValueError, match="expected one of"):
        registry.make_device("gamepad", gripper_mode="toggle")


class PluginDevice(Device):
    name = "plugin"

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed

    def read(self) -> DeviceCommand:
        return DeviceCommand(np.full(6, self.speed), 0.0, True, set())


class FakeEntryPoint:
    def __init__(self, obj: object) -> None:
        self.obj = obj

    def load(self) -> object:
        return self.obj


def test_plugin_devices_through_the_entry_point_group(monkeypatch):
    eps = {"mydev": FakeEntryPoint(PluginDevice), "broken": FakeEntryPoint(lambda: object())}
    monkeypatch.setattr(plugins, "discover", lambda group: eps if group == plugins.DEVICES else {})
    dev = registry.make_device("mydev", speed=0.3)
    assert isinstance(dev, PluginDevice) and dev.read().twist[0] == 0.3
    assert "mydev" in registry.device_names()
    with pytest.raises(TypeError, match="expected a robolearn.hardware.devices.base.Device"):
        registry.make_device("broken")


def test_combined_devices():
    a = PluginDevice(0.6)
    src = FakeSource()
    src.readings = [({}, set(), {"a"}), ({"trigger_right": 1.0}, set(), set())]
    combo = registry.CombinedDevice([a, gp.GamepadDevice(gp.GamepadConfig(deadman=""), source=src)])
    with combo:
        cmd = combo.read()
        assert cmd.twist[0] == 0.6 and cmd.events == {"success"} and cmd.gripper == 0.0
        assert combo.read().gripper == 1.0  # the gamepad changed the gripper
    assert src.closed
    with pytest.raises(ValueError, match="options go per device"):
        registry.make_device("keyboard+gamepad", deadzone=0.1)
    combo = registry.make_device("keyboard+gamepad", gamepad={"deadman": ""})
    assert combo.name == "keyboard+gamepad"


def test_devices_list_command(capsys):
    assert hw_commands.devices_list(hw_commands.DevicesListCommand()) == 0
    out = capsys.readouterr().out
    assert "gamepad, keyboard, spacemouse" in out and "spacemouse:" in out


def test_devices_commands_through_the_cli(capsys):
    from robolearn.cli import main

    assert main(["devices", "list", "--no-probe"]) == 0
    assert "keyboard" in capsys.readouterr().out
    assert main(["devices", "echo", "gamepad", "--options", '{"deadman": "z"}']) == 2
    assert "deadman 'z'" in capsys.readouterr().err


def test_devices_echo_in_a_terminal(tty):
    """`robolearn devices echo keyboard` on a pty: keys show up as commands, q quits, terminal restored."""
    master, slave = tty
    before = termios.tcgetattr(slave)
    code = (
        "import sys\nfrom robolearn.hardware.commands import DevicesEchoCommand, devices_echo\n"
        "sys.exit(devices_echo(DevicesEchoCommand(device='keyboard', seconds=20)))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, cwd=REPO)
    try:
        out = b""

        def wait_for(text: bytes, timeout: float = 20.0) -> None:
            nonlocal out
            end = time.monotonic() + timeout
            while text not in out and time.monotonic() < end:
                if select.select([master], [], [], 0.1)[0]:
                    out += os.read(master, 4096)
            assert text in out, out.decode(errors="replace")

        wait_for(b"Ctrl+C stops")
        os.write(master, b"w")
        wait_for(b"twist [+0.50 +0.00")
        os.write(master, b"q")
        wait_for(b"events quit")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert termios.tcgetattr(slave) == before


def test_devices_echo_errors(capsys):
    rc = hw_commands.devices_echo(hw_commands.DevicesEchoCommand(device="keyboard", options={"hold": 1}))
    assert rc == 2 and "unknown option(s) ['hold']" in capsys.readouterr().err
    rc = hw_commands.devices_echo(hw_commands.DevicesEchoCommand(device="keyboard", hz=0))
    assert rc == 2 and "--hz must be > 0" in capsys.readouterr().err


def test_events_are_known():
    assert set(DEFAULT_KEYMAP.values()) - set(MOTIONS) - {"gripper"} <= set(EVENTS)
    assert set(gp.GamepadConfig().events.values()) <= set(EVENTS)
