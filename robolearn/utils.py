"""Small helpers every floor shares: atomic file replacement, one-line error messages and the loopback test.

This module imports nothing of robolearn, so any stage may use it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    """fsync a file or a folder (a folder after creating, renaming or removing entries in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temp path beside `path`; when the block ends without error, the temp file replaces `path`
    atomically (a reader sees the old or the new file, never a mix). On error the temp file is removed
    and `path` is left as it was. For writers that want a file name (torch.save, safetensors, numpy)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fsync_path(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes, fsync: bool = True) -> Path:
    """Replace `path` with `data` atomically (temp file beside it, fsync, rename, fsync the folder)."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return path


def write_text_atomic(path: str | Path, text: str, fsync: bool = True) -> Path:
    """Replace a small side file (JSON, lists, reports) atomically: a crash leaves the old or the new
    content, never a mix; the temp file is removed on failure."""
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def one_line(e: BaseException | str) -> str:
    """An error message on one line (for the command line): every run of white space becomes one space."""
    return " ".join(str(e).split())


def is_loopback(host: str) -> bool:
    """True for "localhost" and loopback IP addresses; False for "*", interface names and host names."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
