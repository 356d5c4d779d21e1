"""Keyboard teleoperation from the terminal (works over SSH, no X server, no root).

The terminal is put in cbreak mode (no echo, no line buffering; Ctrl+C still raises KeyboardInterrupt and
output still renders normally) and stdin, or a given file descriptor, is polled with a zero-timeout select.
Terminals send key presses, never key releases: a motion key moves for `hold_s` seconds after its last press
and the terminal's key repeat keeps a held key moving. Shift (an upper-case letter) moves `shift_scale`
times faster. The terminal settings are restored by disconnect(), on an exception inside read(), at exit, and on
SIGTERM (when the program has no SIGTERM handler of its own). After a SIGKILL, `stty sane` (or `reset`) fixes
the terminal.

Default key map (base frame: x forward, y left, z up; rotations are right-handed about the base axes):

    w / s   +x / -x         i / k   +wy / -wy (pitch)      space   toggle gripper
    a / d   +y / -y         j / l   +wz / -wz (yaw)        Enter   start       y  success    n  failure
    r / f   +z / -z         u / o   +wx / -wx (roll)       x       discard     h  home       p  pause
                                                           q, Esc, Ctrl+C      quit
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import select
import signal
import sys
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robolearn.hardware.devices.base import EVENTS, Device, DeviceCommand, DeviceConfig, DeviceError

log = logging.getLogger(__name__)

# Motion actions: name -> (twist index, sign).
MOTIONS: dict[str, tuple[int, float]] = {
    "+x": (0, 1.0),
    "-x": (0, -1.0),
    "+y": (1, 1.0),
    "-y": (1, -1.0),
    "+z": (2, 1.0),
    "-z": (2, -1.0),
    "+wx": (3, 1.0),
    "-wx": (3, -1.0),
    "+wy": (4, 1.0),
    "-wy": (4, -1.0),
    "+wz": (5, 1.0),
    "-wz": (5, -1.0),
}
ACTIONS = (*MOTIONS, "gripper", *EVENTS)
LABELS = {
    "+x": "forward (+x)",
    "-x": "back (-x)",
    "+y": "left (+y)",
    "-y": "right (-y)",
    "+z": "up (+z)",
    "-z": "down (-z)",
    "+wx": "roll + (wx)",
    "-wx": "roll - (wx)",
    "+wy": "pitch + (wy)",
    "-wy": "pitch - (wy)",
    "+wz": "yaw left (+wz)",
    "-wz": "yaw right (-wz)",
    "gripper": "toggle gripper",
    "discard": "discard (re-record)",
}

ESC, CTRL_C = "\x1b", "\x03"
ESC_WAIT_S = 0.02

DEFAULT_KEYMAP: dict[str, str] = {
    "w": "+x",
    "s": "-x",
    "a": "+y",
    "d": "-y",
    "r": "+z",
    "f": "-z",
    "u": "+wx",
    "o": "-wx",
    "i": "+wy",
    "k": "-wy",
    "j": "+wz",
    "l": "-wz",
    " ": "gripper",
    "\r": "start",
    "\n": "start",
    "y": "success",
    "n": "failure",
    "x": "discard",
    "h": "home",
    "p": "pause",
    "q": "quit",
    ESC: "quit",
    CTRL_C: "quit",
}

KEY_NAMES = {" ": "space", "\r": "Enter", "\n": "Enter", ESC: "Esc", CTRL_C: "Ctrl+C"}


@dataclass
class KeyboardConfig(DeviceConfig):
    """Keyboard settings. `keymap` entries are merged over DEFAULT_KEYMAP (key -> action); an empty action
    unbinds a key. Letter keys are case-insensitive; Shift+letter moves `shift_scale` times faster."""

    linear_gain: float = 0.5
    angular_gain: float = 0.5
    hold_s: float = 0.15  # how long one key press keeps moving
    shift_scale: float = 2.0
    keymap: dict[str, str] = field(default_factory=dict)


def build_keymap(overrides: dict[str, str] | None) -> dict[str, str]:
    """DEFAULT_KEYMAP with `overrides` applied; ValueError names a bad key or action."""
    keymap = dict(DEFAULT_KEYMAP)
    for key, action in (overrides or {}).items():
        if not isinstance(key, str) or len(key) != 1:
            raise ValueError(f"keyboard keymap: key {key!r} must be a single character")
        if not action:
            keymap.pop(key, None)
            keymap.pop(key.lower(), None)
            continue
        if action not in ACTIONS:
            raise ValueError(
                f"keyboard keymap: unknown action {action!r} for key {key!r}; expected one of {', '.join(ACTIONS)}"
            )
        keymap[key.lower() if key.isalpha() else key] = action
    return keymap


def parse_keys(data: str) -> list[str]:
    """Split terminal input into keys: arrow/function-key escape sequences are dropped, a lone Esc is kept."""
    keys: list[str] = []
    i = 0
    while i < len(data):
        ch = data[i]
        if ch == ESC and i + 1 < len(data) and data[i + 1] in "[O":
            j = i + 2  # CSI / SS3 sequence: parameters, then one final byte in @..~
            while j < len(data) and not ("@" <= data[j] <= "~"):
                j += 1
            i = j + 1
            continue
        keys.append(ch)
        i += 1
    return keys


class KeyboardDevice(Device):
    """Terminal keyboard teleop. `fd` defaults to stdin (which must then be a terminal); any readable fd
    (a pty or a pipe) works, which is how the tests drive it. `clock` gives seconds (monotonic)."""

    name = "keyboard"
    config_cls = KeyboardConfig

    def __init__(
        self,
        config: KeyboardConfig | None = None,
        *,
        fd: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or KeyboardConfig()
        if self.config.hold_s <= 0:
            raise ValueError(f"keyboard hold_s must be > 0 seconds, got {self.config.hold_s}")
        self.keymap = build_keymap(self.config.keymap)
        self._fd = fd
        self._clock = clock
        self._saved: list | None = None  # termios attributes to restore
        self._sigterm_handler: Callable[[int, object], None] | None = None
        self._started = False
        self._eof = False
        self._until = np.full(6, -np.inf)  # per axis: moving until this time
        self._value = np.zeros(6)  # per axis: signed speed while moving
        self._gripper = 0.0
        self._events: set[str] = set()

    # -- terminal ---------------------------------------------------------------------------------------

    def connect(self) -> None:
        if self._started:
            return
        if self._fd is None:
            if not sys.stdin or not sys.stdin.isatty():
                raise DeviceError(
                    "keyboard device needs a terminal: stdin is not a tty (run in a terminal or "
                    "over `ssh -t`, or choose another device: spacemouse, gamepad)"
                )
            self._fd = sys.stdin.fileno()
        if os.isatty(self._fd):
            self._saved = termios.tcgetattr(self._fd)
            mode = termios.tcgetattr(self._fd)
            mode[3] &= ~(termios.ECHO | termios.ICANON)  # lflag: no echo, no line buffering; ISIG kept
            mode[6][termios.VMIN] = 1
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self._fd, termios.TCSAFLUSH, mode)
            atexit.register(self._restore)
            self._catch_sigterm()
        self._until[:] = -np.inf  # no motion carried over a disconnect()/connect() (e.g. around a prompt)
        self._events.clear()
        self._started = True

    def _catch_sigterm(self) -> None:
        """While the terminal is changed, SIGTERM (when nobody else handles it) restores it before the process
        dies of the signal as it would have."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_sigterm(signum: int, _frame: object) -> None:
            self._restore()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, on_sigterm)
        self._sigterm_handler = on_sigterm

    def _restore(self) -> None:
        if self._saved is not None and self._fd is not None:
            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            except (termios.error, OSError):
                pass  # terminal already gone
            self._saved = None
        atexit.unregister(self._restore)
        handler, self._sigterm_handler = self._sigterm_handler, None
        if (
            handler is not None
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is handler
        ):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def disconnect(self) -> None:
        self._restore()
        self._started = False

    # -- input ------------------------------------------------------------------------------------------

    def _pending(self) -> str:
        """All bytes available now (never blocks); sets _eof at end of input."""
        chunks: list[bytes] = []
        while not self._eof and select.select([self._fd], [], [], self._wait(chunks))[0]:
            try:
                data = os.read(self._fd, 1024)
            except OSError:  # EIO: the terminal (pty) was closed
                data = b""
            if not data:
                self._eof = True
                log.warning("keyboard: input closed (terminal gone); sending 'quit' from now on")
                break
            chunks.append(data)
        return b"".join(chunks).decode("utf-8", errors="ignore")

    @staticmethod
    def _wait(chunks: list[bytes]) -> float:
        """0 (poll), or a short wait when the input so far ends in Esc: an arrow key's escape sequence may
        still be arriving, and must not be read as a lone Esc (quit)."""
        return ESC_WAIT_S if chunks and chunks[-1].endswith(ESC.encode()) else 0.0

    def _press(self, key: str, now: float) -> None:
        fast = key.isalpha() and key.isupper()
        action = self.keymap.get(key.lower() if key.isalpha() else key)
        if action is None:
            return
        if action in MOTIONS:
            axis, sign = MOTIONS[action]
            gain = self.config.linear_gain if axis < 3 else self.config.angular_gain
            self._value[axis] = sign * gain * (self.config.shift_scale if fast else 1.0)
            self._until[axis] = now + self.config.hold_s  # a new press replaces the opposite direction
        elif action == "gripper":
            self._gripper = 0.0 if self._gripper >= 0.5 else 1.0
        else:
            self._events.add(action)

    def read(self) -> DeviceCommand:
        if not self._started:
            self.connect()
        try:
            now = self._clock()
            for key in parse_keys(self._pending()):
                self._press(key, now)
        except BaseException:
            self.disconnect()  # terminal restored; the next read() sets it up again
            raise
        twist = np.where(self._until > now, self._value, 0.0)
        events, self._events = self._events, set()
        if self._eof:  # input gone (SSH dropped, pipe closed): keep asking the station to stop
            events.add("quit")
        return DeviceCommand(np.clip(twist, -1.0, 1.0), self._gripper, True, events)

    # -- description ------------------------------------------------------------------------------------

    def params(self) -> dict:
        """Settings recorded with each episode (teleop_params)."""
        return dataclasses.asdict(self.config) | {"keymap": self.keymap}

    def help_text(self) -> str:
        """The active key map, one 'keys  action' per line, for the station to print."""
        by_action: dict[str, list[str]] = {}
        for key, action in self.keymap.items():
            name = KEY_NAMES.get(key, key)
            if name not in by_action.setdefault(action, []):
                by_action[action].append(name)
        return "\n".join(f"{'/'.join(keys):>14}  {LABELS.get(action, action)}" for action, keys in by_action.items())
