"""An operator records, labels and resumes a sim dataset from the keyboard (through a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from robolearn.data.reader import Episode, list_episodes


class Terminal:
    """`robolearn collect` on a pty: type keys, wait for text."""

    def __init__(self, args: list[str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "robolearn.cli", "collect", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "MUJOCO_GL": "egl"},
            close_fds=True,
        )
        os.close(slave)
        self.out = ""

    def expect(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.time() + timeout
        while text not in self.out:
            if time.time() > deadline or self.proc.poll() is not None and not self._read(0.1):
                raise AssertionError(f"did not see {text!r}; output so far:\n{self.out}")
            self._read(0.1)

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.out += data.decode(errors="replace")
        return bool(data)

    def type(self, keys: str, hold: float = 0.0) -> None:
        os.write(self.master, keys.encode())
        if hold:
            time.sleep(hold)

    def finish(self, timeout: float = 60.0) -> int:
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read(0.1)
        if self.proc.poll() is None:
            self.proc.kill()
            raise AssertionError(f"collect did not exit; output:\n{self.out}")
        os.close(self.master)
        return self.proc.returncode


def _args(out: Path, *extra: str) -> list[str]:
    return [
        "--robot",
        "sim",
        "--task",
        "press-button",
        "--device",
        "keyboard",
        "--episodes",
        "1",
        "--out",
        str(out),
        "--cameras",
        "wrist",
        "--camera-width",
        "32",
        "--camera-height",
        "24",
        *extra,
    ]


def test_record_label_and_resume_from_the_keyboard(tmp_path: Path) -> None:
    out = tmp_path / "demos"
    t = Terminal(_args(out, "--station.operator", "Ada L", "--station.household", "kitchen_1"))
    t.expect("press start")
    t.type("\r")  # Enter: start recording
    for _ in range(6):
        t.type("r", hold=0.1)  # move up (key repeat keeps the motion alive)
    t.type("y")  # success
    t.expect("episode 1: success")
    assert t.finish() == 0, t.out
    (first,) = list_episodes(out)
    ep = Episode(first)
    assert ep.attrs["success"] == 1 and ep.attrs["label_source"] == "operator"
    assert ep.attrs["operator"] == "Ada L" and ep.attrs["household"] == "kitchen_1"
    z = ep.state("ee_position")[:, 2]
    assert z[-1] > z[0] + 0.01  # the 'r' key moved the tool up

    # Resume: the station settings come back from station.json; this time the time limit ends the episode
    # and the operator labels it at the prompt.
    t = Terminal(_args(out, "--resume", "--station.max-seconds", "0.5"))
    t.expect("press start")
    t.type("\r")
    t.expect("label the episode")
    t.type("n\n")
    t.expect("episode 1: failure")
    assert t.finish() == 0, t.out
    paths = list_episodes(out)
    assert len(paths) == 2
    second = Episode([p for p in paths if p != first][0])
    assert second.attrs["success"] == 0 and second.attrs["operator"] == "Ada L"
