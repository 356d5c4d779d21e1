"""What every importer shares: one job per source episode, run in parallel worker processes, resumable (an
episode whose output file exists is not imported again), each written only through the crash-safe
EpisodeWriter, and a JSON report of what was imported, skipped and why.

A job's function writes one episode and returns {"steps": int, "warnings": [...]}, or raises EpisodeError
naming the source file and field (the episode is skipped and reported; with `strict` the run stops). Nothing
published before is touched: the writer publishes a file only when it is complete, and a `.partial` left by
an interrupted import is removed before that episode is imported again.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.data import schema
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.writer import WriterConfig
from robolearn.utils import one_line, write_text_atomic

# Imports write many steps at once from files, not from a live loop: no background flusher thread, and a
# longer flush interval (a crash loses at most that episode, which the next run imports again).
IMPORT_WRITER = WriterConfig(flush_interval_s=30.0, background_flush=False, min_free_mb=64.0)
REPORT_PREFIX = "import_report"


class ImportFailed(RuntimeError):
    """An import stopped (`strict`, or bad input that concerns the whole source); `report` says how far it got."""

    def __init__(self, message: str, report: ImportReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass
class Job:
    """One source episode: `key` names it in the report, `out` is the episode file it becomes."""

    key: str
    out: Path
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    source: str
    kind: str
    out: str
    config: dict[str, Any] = field(default_factory=dict)
    imported: list[dict[str, Any]] = field(default_factory=list)  # key, path, steps, warnings
    already_done: list[str] = field(default_factory=list)  # keys whose output existed (resumed run)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # key, file, field, error
    seconds: float = 0.0
    stopped: str = ""  # why the run stopped early (strict), "" if it ran through

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, out_dir: Path) -> Path:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        path = Path(out_dir) / f"{REPORT_PREFIX}_{self.kind}.json"
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _skip_entry(key: str, e: BaseException) -> dict[str, Any]:
    if isinstance(e, EpisodeError):
        p = e.problems[0]
        return {"key": key, "file": p.path, "field": p.field, "error": p.message}
    return {"key": key, "file": "", "field": "", "error": one_line(e)}


def _run_one(fn: Callable[[Job], dict[str, Any]], job: Job) -> dict[str, Any]:
    tmp = job.out.with_name(job.out.stem + schema.TMP_SUFFIX)
    tmp.unlink(missing_ok=True)  # left by an interrupted import of this episode: never published, redo it
    job.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        return fn(job)
    except EpisodeError:
        tmp.unlink(missing_ok=True)
        raise
    except H5_ERRORS as e:  # anything a damaged source raises: report it as this episode's problem
        tmp.unlink(missing_ok=True)
        raise EpisodeError(job.key, "file", f"import failed: {type(e).__name__}: {one_line(e)}") from None


def run_jobs(
    jobs: Sequence[Job],
    fn: Callable[[Job], dict[str, Any]],
    report: ImportReport,
    workers: int = 1,
    strict: bool = False,
) -> ImportReport:
    """Run `fn` over the jobs whose output does not exist yet (in `workers` processes when > 1); fill and
    write `report` (also when stopping). `fn` must be a module-level function (it is pickled to workers)."""
    t0 = time.perf_counter()
    todo = []
    for job in jobs:
        if job.out.exists():
            report.already_done.append(job.key)
        else:
            todo.append(job)
    out_dir = Path(report.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    def record(job: Job, fut_result: Callable[[], dict[str, Any]]) -> bool:
        try:
            res = fut_result()
        except (EpisodeError, *H5_ERRORS) as e:
            report.skipped.append(_skip_entry(job.key, e))
            if strict:
                report.stopped = f"--strict: stopped at {job.key}: {report.skipped[-1]['error']}"
                return False
            return True
        report.imported.append({"key": job.key, "path": str(job.out), **res})
        return True

    try:
        if workers <= 1 or len(todo) <= 1:
            for job in todo:
                if not record(job, lambda j=job: _run_one(fn, j)):
                    break
        else:
            _run_parallel(todo, fn, workers, record)
    finally:
        report.seconds = round(time.perf_counter() - t0, 3)
        report.imported.sort(key=lambda r: r["key"])
        report.write(out_dir)
    if report.stopped:
        raise ImportFailed(report.stopped, report)
    return report


def _run_parallel(
    todo: list[Job], fn: Callable[[Job], dict[str, Any]], workers: int, record: Callable[..., bool]
) -> None:
    pending: dict[Future, Job] = {}
    it = iter(todo)
    # spawn, not fork: the parent may hold HDF5 / FFmpeg threads and state that a forked child inherits broken
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, os.cpu_count() or 1, len(todo)), mp_context=ctx) as pool:

        def submit() -> None:
            job = next(it, None)
            if job is not None:
                pending[pool.submit(_run_one, fn, job)] = job

        for _ in range(2 * workers):  # a bounded window: memory stays flat on 76k-episode sources
            submit()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                job = pending.pop(fut)
                if not record(job, fut.result):
                    for f in pending:
                        f.cancel()
                    return
                submit()


def check_finite(src: str | Path, fld: str, x: Any) -> None:
    """EpisodeError naming `src` and `fld` when the array has NaN/Inf (an imported episode is never written
    with them)."""
    a = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1) if a.ndim else ~np.isfinite(a[None])
    if bad.any():
        raise EpisodeError(
            src,
            fld,
            f"non-finite values (NaN/Inf) at {int(bad.sum())} steps, first at step {int(np.flatnonzero(bad)[0])}; "
            "expected finite numbers",
        )
