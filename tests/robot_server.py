"""Start `robolearn robot-server` in a subprocess for tests (collection and eval share it)."""

from __future__ import annotations

import subprocess
import sys
import threading

CLI = "import sys, robolearn.hardware.robots.server; from robolearn.cli import main; sys.exit(main(sys.argv[1:]))"


def start_server_process(*args: str) -> tuple[subprocess.Popen, str]:
    """`robolearn robot-server ... --port 0` in a subprocess; returns it and its address."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, "robot-server", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=30)
    if not lines or " at tcp://" not in lines[0]:
        proc.kill()
        raise AssertionError(f"robot-server did not start: {lines} {proc.stderr.read() if proc.poll() else ''}")
    return proc, lines[0].rsplit(" at ", 1)[1].strip()
