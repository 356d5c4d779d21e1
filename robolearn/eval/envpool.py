"""A few simulation envs stepping in parallel subprocesses, each reset with its own seed and options.

gymnasium's vector envs reset every sub-env with the same options and auto-reset on their own schedule;
evaluation needs each episode in a chosen scene with a chosen seed, so this pool resets env i explicitly
and steps only the envs that are still running. Workers start from a forkserver (an EGL context does not
survive fork). With one env everything runs in-process.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from typing import Any

import numpy as np


def _worker(conn, make_fn: Callable[[], Any]) -> None:
    env = make_fn()
    try:
        while True:
            cmd, arg = conn.recv()
            if cmd == "reset":
                conn.send(env.reset(seed=arg[0], options=arg[1]))
            elif cmd == "step":
                conn.send(env.step(arg))
            elif cmd == "close":
                break
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        env.close()
        conn.close()


class EnvPool:
    def __init__(self, make_fn: Callable[[], Any], num_envs: int) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self._local = make_fn() if num_envs == 1 else None
        self._conns, self._procs = [], []
        if self._local is None:
            ctx = mp.get_context("forkserver")
            for _ in range(num_envs):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_worker, args=(child, make_fn), daemon=True)
                p.start()
                child.close()
                self._conns.append(parent)
                self._procs.append(p)

    def reset(self, items: dict[int, tuple[int, dict | None]]) -> dict[int, tuple[dict, dict]]:
        """{env: (seed, options)} -> {env: (obs, info)}."""
        if self._local is not None:
            return {i: self._local.reset(seed=s, options=o) for i, (s, o) in items.items()}
        for i, so in items.items():
            self._conns[i].send(("reset", so))
        return {i: self._recv(i) for i in items}

    def step(self, actions: dict[int, np.ndarray]) -> dict[int, tuple]:
        """{env: action} -> {env: (obs, reward, terminated, truncated, info)}."""
        if self._local is not None:
            return {i: self._local.step(a) for i, a in actions.items()}
        for i, a in actions.items():
            self._conns[i].send(("step", a))
        return {i: self._recv(i) for i in actions}

    def _recv(self, i: int) -> Any:
        try:
            return self._conns[i].recv()
        except EOFError:
            raise RuntimeError(f"evaluation env worker {i} died (exit code {self._procs[i].exitcode})") from None

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        for c in self._conns:
            try:
                c.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()

    def __enter__(self) -> EnvPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
