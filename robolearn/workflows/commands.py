"""`robolearn demo` and `robolearn eval protocol`: thin wrappers over the workflows' Python API."""

from __future__ import annotations

import sys
from pathlib import Path

from robolearn.config import command
from robolearn.workflows.demo import DemoConfig, run_demo
from robolearn.workflows.protocol import ProtocolConfig, run_protocol


@command("demo", "")
def demo(cfg: DemoConfig) -> int:
    """Run the whole product at small scale (record, curate, pretrain, train, evaluate, report)."""
    return run_demo(cfg)


@command("eval", "protocol")
def protocol_cmd(cfg: ProtocolConfig) -> int:
    """R3M-style protocol: expert demos -> frozen encoder + head per (encoder, demos, seed) -> eval -> leaderboard."""
    try:
        runs = run_protocol(cfg)
    except (ValueError, FileNotFoundError) as e:
        print(f"robolearn eval protocol: {e}", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs; leaderboard: {Path(cfg.out) / 'leaderboard.html'}")
    return 0
