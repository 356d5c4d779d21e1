"""Writing shards: decode clip tasks with a worker function (in this process or a crash-tolerant process pool),
pack whole clips into shards written as `.partial` and renamed when complete, skip clips finished by earlier
runs (`write_shards`), and lock the output folder for the whole run (`output_lock`).
"""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.pretrain.shards.layout import (
    _STR,
    SHARD_FORMAT,
    SHARD_RE,
    VERSION,
    PrepareError,
    scan_output,
    shard_name,
)


@dataclass(frozen=True)
class ClipTask:
    """One clip to decode: id, split, and whatever the worker needs (a video path, an episode segment)."""

    id: str
    split: str
    payload: Any


@dataclass
class ClipResult:
    """A worker's answer: JPEG frames, or an error message."""

    id: str
    split: str
    frames: list[bytes] | None = None
    fps: float = 0.0
    source_hw: tuple[int, int] = (0, 0)
    error: str | None = None


@dataclass
class WriteStats:
    """What `write_shards` did in this run."""

    total: int = 0  # clips asked for
    done_before: int = 0  # already in finished shards (skipped)
    decoded: int = 0  # clips handed to workers in this run
    written: int = 0  # clips written in this run
    failed: int = 0  # clips that failed in this run
    frames: int = 0  # frames written in this run
    bytes: int = 0
    new_shards: list[str] = field(default_factory=list)
    removed_partial: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _write_shard(path: Path, clips: list[ClipResult], failures: list[ClipResult], attrs: dict[str, Any]) -> int:
    """Write one shard as `<path>.partial`, then rename to `path`; returns the bytes of frame data."""
    sizes = [len(b) for c in clips for b in c.frames or ()]
    total = int(sum(sizes))
    index = np.zeros((len(sizes), 2), np.int64)
    if sizes:
        index[:, 1] = sizes
        index[1:, 0] = np.cumsum(sizes)[:-1]
    n_frames = np.array([len(c.frames or ()) for c in clips], np.int64)
    first = np.concatenate([[0], np.cumsum(n_frames)[:-1]]).astype(np.int64) if len(clips) else np.zeros(0, np.int64)
    tmp = path.with_name(path.name + ".partial")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({k: v for k, v in attrs.items() if v is not None})
        f.attrs["format"], f.attrs["version"], f.attrs["complete"] = SHARD_FORMAT, VERSION, False
        data = f.create_dataset("frames/data", shape=(total,), dtype=np.uint8)  # contiguous: pread-able
        pos, block, held = 0, [], 0
        for b in (b for c in clips for b in c.frames or ()):  # write in ~32 MB blocks
            block.append(b)
            held += len(b)
            if held >= 32 << 20:
                buf = np.frombuffer(b"".join(block), np.uint8)
                data[pos : pos + buf.size] = buf
                pos, block, held = pos + buf.size, [], 0
        if block:
            buf = np.frombuffer(b"".join(block), np.uint8)
            data[pos : pos + buf.size] = buf
        f.create_dataset("frames/index", data=index)
        f.create_dataset("clips/id", data=np.array([c.id for c in clips], dtype=_STR), dtype=_STR)
        f.create_dataset("clips/split", data=np.array([c.split for c in clips], dtype=_STR), dtype=_STR)
        f.create_dataset("clips/first", data=first)
        f.create_dataset("clips/n_frames", data=n_frames)
        f.create_dataset("clips/fps", data=np.array([c.fps for c in clips], np.float64))
        f.create_dataset("clips/source_hw", data=np.array([c.source_hw for c in clips], np.int64).reshape(-1, 2))
        for key, vals in (
            ("id", [c.id for c in failures]),
            ("split", [c.split for c in failures]),
            ("error", [c.error or "" for c in failures]),
        ):
            f.create_dataset(f"failed/{key}", data=np.array(vals, dtype=_STR), dtype=_STR)
        f.attrs["complete"] = True
        f.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return total


LOCK_NAME = ".prepare.lock"


@contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder for a whole prepare run: a second run on the same folder
    (which would delete the first one's partial shards) fails at once instead."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise PrepareError(
                f"{out}: another prepare run (pid {holder}) is writing this folder; wait for it or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield out
    finally:
        os.close(fd)  # releases the lock


DIED = "the decoding process died on this clip (a crash inside the decoder?)"


def _ping() -> int:
    """A no-op task: proves a worker process can start."""
    return os.getpid()


def _alone(task: ClipTask, worker: Callable[[ClipTask], ClipResult], ctx: Any) -> ClipResult:
    """Run one task in a fresh single process; its death becomes the clip's error, unless no process can run at
    all (then nothing is blamed on the clip: a PrepareError)."""
    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
        try:
            ex.submit(_ping).result()
        except BrokenProcessPool:
            raise PrepareError(
                "decoding worker processes die before doing any work (with the 'spawn' start "
                "method a script calling prepare must guard its code with `if __name__ == "
                "'__main__':`); nothing was recorded for the clips in flight"
            ) from None
        try:
            return ex.submit(worker, task).result()
        except BrokenProcessPool:
            return ClipResult(task.id, task.split, error=DIED)


def _results(
    tasks: Sequence[ClipTask], worker: Callable[[ClipTask], ClipResult], workers: int, start_method: str | None
) -> Iterator[ClipResult]:
    """Results in task order. With workers > 0: a process pool with a bounded window of tasks in flight (memory
    stays bounded when one clip is slow); if a worker process dies, the tasks in flight are redone one process
    each, so only the clip that kills its process is marked failed, and the pool is restarted."""
    if workers <= 0:
        yield from map(worker, tasks)
        return
    ctx = mp.get_context(start_method)
    window = workers * 4
    todo = iter(tasks)
    pending: deque[tuple[ClipTask, Future]] = deque()
    ex = ProcessPoolExecutor(workers, mp_context=ctx)
    try:
        while True:
            while len(pending) < window and (t := next(todo, None)) is not None:
                pending.append((t, ex.submit(worker, t)))
            if not pending:
                return
            task, fut = pending.popleft()
            try:
                yield fut.result()
            except BrokenProcessPool:
                ex.shutdown(wait=True, cancel_futures=True)
                for t, f in [(task, fut), *pending]:
                    ok = f.done() and not f.cancelled() and f.exception() is None
                    yield f.result() if ok else _alone(t, worker, ctx)
                pending.clear()
                ex = ProcessPoolExecutor(workers, mp_context=ctx)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def write_shards(
    out: str | Path,
    tasks: Sequence[ClipTask],
    worker: Callable[[ClipTask], ClipResult],
    attrs: dict[str, Any],
    workers: int = 0,
    frames_per_shard: int = 8192,
    retry_failed: bool = False,
    start_method: str | None = "spawn",
    check_attrs: Sequence[str] = ("size", "encoding", "source"),
    on_shard: Callable[[str, WriteStats], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> WriteStats:
    """Decode `tasks` with `worker` (a picklable top-level function; `workers` processes, 0 = in this process)
    into new shards of about `frames_per_shard` frames, skipping clips already in finished shards.

    `on_shard(name, stats)` is called after each shard is committed (progress; tests use it to simulate a crash)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if frames_per_shard < 1:
        raise PrepareError(f"frames_per_shard must be >= 1, got {frames_per_shard}")
    t0 = time.perf_counter()
    shards, removed = scan_output(out, {k: attrs.get(k) for k in check_attrs})
    done: set[str] = set()
    for sc in shards:
        done.update(sc.ids)
        if not retry_failed:
            done.update(sc.failed)
    todo = [t for t in tasks if t.id not in done]
    stats = WriteStats(total=len(tasks), done_before=len(tasks) - len(todo), decoded=len(todo), removed_partial=removed)
    next_i = max((int(SHARD_RE.match(s.name).group(1)) + 1 for s in shards), default=0)  # type: ignore[union-attr]
    clips: list[ClipResult] = []
    failures: list[ClipResult] = []
    n_frames = 0

    def commit() -> None:
        nonlocal next_i, clips, failures, n_frames
        name = shard_name(next_i)
        stats.bytes += _write_shard(out / name, clips, failures, attrs)
        stats.new_shards.append(name)
        stats.written += len(clips)
        stats.failed += len(failures)
        stats.frames += n_frames
        next_i, clips, failures, n_frames = next_i + 1, [], [], 0
        if on_shard:
            on_shard(name, stats)

    for i, r in enumerate(_results(todo, worker, workers, start_method)):
        if r.error is None and r.frames:
            clips.append(r)
            n_frames += len(r.frames)
        else:
            r.error = r.error or "no frames decoded"
            r.frames = None
            failures.append(r)
        if n_frames >= frames_per_shard:
            commit()
        if progress:
            progress(i + 1, len(todo))
    if clips or failures:
        commit()
    stats.seconds = time.perf_counter() - t0
    return stats
