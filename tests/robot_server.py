"""Start `robolearn robot-server` in a subprocess for tests (collection and eval share it), and the one
`sim_server` fixture both use."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

CLI = "import sys, robolearn.hardware.robots.server; from robolearn.cli import main; sys.exit(main(sys.argv[1:]))"


def start_server_process(*args: str) -> tuple[subprocess.Popen, str]:
    """`robolearn robot-server ... --port 0` in a subprocess; returns it and its address."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "robot-server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not lines or " at tcp://" not in lines[0]:
        proc.kill()
        raise AssertionError(f"robot-server did not start: {lines} {proc.stderr.read() if proc.poll() else ''}")
    return proc, lines[0].rsplit(" at ", 1)[1].strip()


@contextlib.contextmanager
def running_server(*args: str) -> Iterator[str]:
    """The address of a `robolearn robot-server *args` subprocess; it must exit cleanly on SIGTERM."""
    proc, address = start_server_process(*args)
    try:
        yield address
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0  # SIGTERM: clean exit
        finally:
            if proc.poll() is None:
                proc.kill()


def sim_server_fixture(*args: str) -> Callable[[], Iterator[str]]:
    """A module-scoped `sim_server` fixture (assign it in a test module: `sim_server = sim_server_fixture()`):
    the address of `robolearn robot-server --robot sim *args`."""

    @pytest.fixture(scope="module", name="sim_server")
    def fixture() -> Iterator[str]:
        with running_server("--robot", "sim", *args) as address:
            yield address

    return fixture
