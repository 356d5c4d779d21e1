"""The corruption corpus (issue 16): a seeded, bounded set of damaged episode files (truncations, one-byte flips
in every region of the file, targeted damage) run through validate, info, index (catalog update), repair and
the loader (EpisodeDataset.__getitem__). Every file must end in a named error or a reported validation error
(no traceback), within 30 s (each file runs in a worker process that is killed past the limit), and no file
whose readable content changed may pass validate (a flip that changes nothing readable counts as unchanged).

    python tests/data/test_corpus.py [--seed N] [-v]

prints the counts: tried / named / traceback / hang / silent / unchanged.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corruptions import Case, content_digest, make_corpus  # noqa: E402

from robolearn.data.catalog import update  # noqa: E402
from robolearn.data.errors import EpisodeError  # noqa: E402
from robolearn.data.info import info  # noqa: E402
from robolearn.data.loader import EpisodeDataset, LoaderConfig  # noqa: E402
from robolearn.data.repair import repair_partial  # noqa: E402
from robolearn.data.synthetic import SyntheticConfig, make_dataset  # noqa: E402
from robolearn.data.validate import validate_episode  # noqa: E402

TIMEOUT_S = 30.0
OUTCOMES = ("named", "traceback", "hang", "silent", "unchanged")


# ---- one file through every tool -----------------------------------------------------------------------------
def check_file(path: Path, original: str | None, work: Path) -> tuple[str, str]:
    """(outcome, detail) for one damaged file: traceback (some tool raised something other than a named error;
    validate, index and repair must not raise at all), named (validate reported an error), unchanged (validate
    passed and the readable content is the original's) or silent (validate passed, content changed)."""
    tracebacks: list[str] = []

    def guard(tool: str, fn: Callable[[], Any], allowed: tuple[type[BaseException], ...] = (EpisodeError,)) -> Any:
        try:
            return fn()
        except allowed:
            return None
        except Exception as e:  # noqa: BLE001 - this is what the corpus looks for
            where = traceback.extract_tb(e.__traceback__)[-1]
            tracebacks.append(
                f"{tool}: {type(e).__name__}: {' '.join(str(e).split())[:200]} "
                f"({Path(where.filename).name}:{where.lineno})"
            )
            return None

    problems = guard("validate", lambda: validate_episode(path), allowed=())
    guard("info", lambda: info(path))
    for sub in ("cat", "rep"):
        shutil.rmtree(work / sub, ignore_errors=True)
        (work / sub).mkdir(parents=True)
    shutil.copyfile(path, work / "cat" / "ep.h5")
    guard("index", lambda: update(work / "cat", work / "cat" / "catalog.sqlite"), allowed=())
    shutil.copyfile(path, work / "rep" / "ep.h5.partial")
    guard("repair", lambda: repair_partial(work / "rep" / "ep.h5.partial", work / "rep", min_age_s=0), allowed=())

    def load() -> None:
        ds = EpisodeDataset([path], LoaderConfig())
        for i in range(len(ds)):
            ds[i]
        ds.close()

    guard("loader", load)
    if tracebacks:
        return "traceback", "; ".join(tracebacks)
    errors = [p for p in problems or [] if p.severity == "error"]
    if errors:
        return "named", str(errors[0])
    if content_digest(path) == original:
        return "unchanged", ""
    return "silent", "validate reported no error, but the file's readable content changed"


# ---- worker processes with a watchdog ----------------------------------------------------------------------
def _worker(conn: Any) -> None:
    work = Path(tempfile.mkdtemp(prefix="corpus-"))
    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            i, path, original = job
            conn.send((i, *check_file(Path(path), original, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_corpus(
    cases: list[Case], originals: dict[str, str | None], workers: int = 2, timeout_s: float = TIMEOUT_S
) -> list[tuple[Case, str, str]]:
    """Every case through check_file in `workers` processes (`originals`: the content digest of each case's
    base file, by the case file's folder); a case running past `timeout_s` is a hang (its worker is killed and
    replaced)."""
    ctx = mp.get_context("fork")
    results: dict[int, tuple[str, str]] = {}
    todo = list(range(len(cases)))[::-1]
    slots: list[dict[str, Any]] = []

    def spawn() -> dict[str, Any]:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "job": None, "t0": 0.0}

    slots = [spawn() for _ in range(max(1, workers))]
    try:
        while len(results) < len(cases):
            for s in slots:
                if s["job"] is None and todo:
                    s["job"], s["t0"] = todo.pop(), time.monotonic()
                    case = cases[s["job"]]
                    s["conn"].send((s["job"], str(case.path), originals[case.path.parent.name]))
            busy = [s["conn"] for s in slots if s["job"] is not None]
            for conn in mp.connection.wait(busy, timeout=0.5):
                s = next(s for s in slots if s["conn"] is conn)
                try:
                    i, outcome, detail = conn.recv()
                except EOFError:  # the worker died (a crash inside a C library counts as a traceback)
                    i, outcome, detail = s["job"], "traceback", f"worker died (exit {s['proc'].exitcode})"
                    s.update(spawn())
                results[i] = (outcome, detail)
                s["job"] = None
            for k, s in enumerate(slots):
                if s["job"] is not None and time.monotonic() - s["t0"] > timeout_s:
                    results[s["job"]] = ("hang", f"still running after {timeout_s:.0f} s")
                    s["proc"].kill()
                    s["proc"].join()
                    slots[k] = spawn()
    finally:
        for s in slots:
            try:
                s["conn"].send(None)
            except OSError:
                pass
            s["proc"].join(timeout=5)
            if s["proc"].is_alive():
                s["proc"].kill()
    return [(cases[i], *results[i]) for i in range(len(cases))]


def build_corpus(root: Path, seed: int = 0) -> tuple[list[Case], dict[str, str | None]]:
    """The corpus used by the test: damaged copies of two small episodes: 10 steps with one 16x16 JPEG camera
    (every kind of damage), and 8 steps with two PNG cameras and depth (fewer truncations and flips)."""
    a = make_dataset(
        root / "base_a", SyntheticConfig(num_episodes=1, steps=10, size=16, cameras=("wrist",), seed=seed)
    )[0]
    b = make_dataset(
        root / "base_b",
        SyntheticConfig(
            num_episodes=1, steps=8, size=16, cameras=("wrist", "ext"), encoding="png", depth=True, seed=seed + 1
        ),
    )[0]
    cases = make_corpus(a, root / "a", seed=seed)
    cases += make_corpus(b, root / "b", seed=seed + 1, flips_per_region=6, anywhere=6, truncations=10, structural=False)
    return cases, {"a": content_digest(a), "b": content_digest(b)}


def summarise(results: list[tuple[Case, str, str]]) -> str:
    counts = Counter(o for _, o, _ in results)
    by_kind = Counter((c.kind, o) for c, o, _ in results)
    line = f"tried {len(results)}: " + ", ".join(f"{o} {counts.get(o, 0)}" for o in OUTCOMES)
    kinds = "; ".join(
        f"{k}: " + ", ".join(f"{o} {by_kind[(k, o)]}" for o in OUTCOMES if by_kind[(k, o)])
        for k in ("truncate", "flip", "struct")
    )
    return f"{line}\n  by kind: {kinds}"


def test_corruption_corpus_never_tracebacks_hangs_or_passes_changed_data(tmp_path):
    cases, originals = build_corpus(tmp_path)
    assert len(cases) >= 200 and None not in originals.values()
    results = run_corpus(cases, originals)
    bad = [
        f"{c.kind} {c.region} offset={c.offset} {c.path.name}: {o}: {d}"
        for c, o, d in results
        if o in ("traceback", "hang", "silent")
    ]
    assert not bad, f"{len(bad)} of {len(results)} corpus files failed ({summarise(results)}):\n" + "\n".join(bad)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
        cases, originals = build_corpus(Path(d), seed)
        res = run_corpus(cases, originals)
        print(summarise(res) + f"\n  ({time.perf_counter() - t0:.1f} s)")
        for c, o, detail in res:
            if o in ("traceback", "hang", "silent") or "-v" in sys.argv:
                print(f"  {o:9s} {c.path.name}: {detail}")
