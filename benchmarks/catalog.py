"""Benchmark of the episode catalog (robolearn.data.catalog).

    python benchmarks/catalog.py [--entries 100000] [--new 1000] [--repeats 40] [--workdir DIR] [--keep]

Measures, in one run:
  (a) bulk build of N synthetic catalog entries (synthetic attribute dicts with realistic distributions of
      labs, households, scenes, tasks, outcomes and lengths, turned into rows by `entry_from_attrs` and
      written by `write_entries`, the code path `update()` uses). Each entry gets an empty placeholder file
      at its path, so the later incremental index sees a real tree of N + new files and leaves them as
      unchanged;
  (b) query latency (p50 / p99 over --repeats runs, connection open included) of typical filters;
  (c) incremental index of --new REAL episode files (2 steps, one 16x16 camera) added to that tree, then a
      no-op re-index (stats every file, reads none);
  (d) peers, side by side: the naive approach (open every episode with h5py and read its attributes, then
      filter in Python; timed on the new real files and EXTRAPOLATED to N), and, if pyarrow is importable,
      a LeRobot-v3-style parquet episodes table filtered with pyarrow.compute for the same queries.
Prints a table and ends with ONE JSON line of figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

from robolearn.data import catalog as cat  # noqa: E402
from robolearn.data.synthetic import SyntheticConfig, write_episode  # noqa: E402
from robolearn.data.writer import WriterConfig  # noqa: E402

VERBS = [
    ("put the {o} in the {c}", True),
    ("pick up the {o}", False),
    ("open the {f}", False),
    ("close the {f}", False),
    ("move the {o} to the left of the {c}", True),
    ("wipe the {f}", False),
    ("stack the {o} on the {c}", True),
    ("turn on the {f}", False),
]
OBJECTS = ["marker", "red block", "mug", "spoon", "sponge", "banana", "tape", "cup", "bottle", "toy car"]
CONTAINERS = ["bowl", "drawer", "box", "pot", "basket", "plate"]
FURNITURE = ["drawer", "cabinet door", "microwave", "faucet", "lamp", "laptop", "oven", "fridge"]
CAMERAS = json.dumps([{"name": "wrist"}, {"name": "exterior_1"}, {"name": "exterior_2"}])


def zipf_weights(n: int, s: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def task_strings(rng: np.random.Generator) -> list[str]:
    tasks = set()
    for verb, two in VERBS:
        for o in OBJECTS:
            if "{f}" in verb:
                tasks.update(verb.format(f=f) for f in FURNITURE)
            elif two:
                tasks.update(verb.format(o=o, c=c) for c in CONTAINERS)
            else:
                tasks.add(verb.format(o=o))
    out = sorted(tasks)
    rng.shuffle(out)
    return out


def synthetic_attrs(n: int, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """(relative path, attribute dict as read from an episode file) for n episodes: 13 labs (Zipf), ~30
    households per lab, 1-8 scenes per household (scene ids are per household), ~400 task strings (Zipf),
    75/20/5 % success/failure/unknown, log-normal lengths (median 250 steps), two years of start times."""
    rng = np.random.default_rng(seed)
    labs = [f"lab_{c}" for c in "abcdefghijklm"]
    lab_of = rng.choice(len(labs), n, p=zipf_weights(len(labs), 0.8))
    hh_per_lab, tasks = 30, task_strings(rng)
    hh_local = rng.choice(hh_per_lab, n, p=zipf_weights(hh_per_lab))
    scenes_in = rng.integers(1, 9, (len(labs), hh_per_lab))
    scene = (rng.random(n) * scenes_in[lab_of, hh_local]).astype(int)
    task = rng.choice(len(tasks), n, p=zipf_weights(len(tasks), 0.9))
    op_local = rng.integers(0, 6, n)
    success = rng.choice([1, 0, -1], n, p=[0.75, 0.2, 0.05])
    steps = np.clip(rng.lognormal(np.log(250), 0.5, n), 20, 3000).astype(int)
    device = rng.choice(["vr", "spacemouse", "keyboard", "policy"], n, p=[0.7, 0.15, 0.05, 0.1])
    t0 = np.datetime64("2023-01-01T00:00:00")
    start = t0 + (rng.random(n) * 730 * 86400).astype("timedelta64[s]")
    out = []
    for i in range(n):
        lab, hh = labs[lab_of[i]], f"{labs[lab_of[i]]}_house_{hh_local[i]}"
        t = tasks[task[i]]
        st = str(start[i]) + "Z"
        attrs = {
            "format": "robolearn.episode",
            "schema_version": "1.0",
            "uuid": f"{i:032x}",
            "complete": True,
            "num_steps": np.int64(steps[i]),
            "lab": lab,
            "household": hh,
            "scene_id": f"scene_{scene[i]}",
            "operator": f"{lab}_op{op_local[i]}",
            "robot_type": "franka-fr3",
            "control_hz": 15.0,
            "teleop_device": str(device[i]),
            "task": t,
            "success": np.int64(success[i]),
            "start_time": st,
            "end_time": st,
            "cameras": CAMERAS,
            "language_annotations": json.dumps([{"text": t, "source": "operator"}]),
        }
        out.append((f"{lab}/{hh}/episode_{i:07d}.h5", attrs))
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    r = fn()
    return time.perf_counter() - t, r


def latency(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(p50 ms, p99 ms, last result) after one warm-up run."""
    r = fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), float(np.percentile(ts, 99)), r


def pick_queries(entries: list[tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
    from collections import Counter

    hh = Counter(a["household"] for _, a in entries).most_common()
    mid_household = hh[len(hh) // 4][0]  # a typical (not the largest) household
    held_hh = [h for h, _ in hh[5:8]]
    return {
        "one household": [f"household={mid_household}"],
        "success & task~drawer": ["success=1", "task~drawer"],
        "held-out scenes (3 in a lab)": [f"lab={hh[0][0].rsplit('_house', 1)[0]}", "scene_id=scene_1,scene_3,scene_5"],
        "held-out households (IN 3)": [f"household={','.join(held_hh)}"],
        "vr, >=300 steps, 2024-H2": ["teleop_device=vr", "num_steps>=300", "start_time>=2024-07-01"],
    }


def arrow_filter(pc: Any, pa: Any, t: Any, filters: list[str]) -> Any:
    """The same filter strings, evaluated with pyarrow.compute (LeRobot-v3-style episodes table)."""
    mask = None
    for f in filters:
        col, op, vals = _parse(f)
        c = t[col]
        if op == "~":
            m = pc.match_substring(c, vals[0], ignore_case=True)
        elif op == "=" and len(vals) > 1:
            m = pc.is_in(c, value_set=pa.array(vals, type=c.type))
        elif op == "=":
            m = pc.equal(c, pa.scalar(vals[0], type=c.type))
        elif op == ">=":
            m = pc.greater_equal(c, pa.scalar(vals[0], type=c.type))
        else:
            raise ValueError(op)
        mask = m if mask is None else pc.and_(mask, m)
    return t.filter(mask)


def _parse(f: str) -> tuple[str, str, list[Any]]:
    for op in (">=", "~", "="):
        if op in f:
            col, v = f.split(op, 1)
            vals: list[Any] = v.split(",")
            if col in ("success", "num_steps"):
                vals = [int(x) for x in vals]
            return col, op, vals
    raise ValueError(f)


def naive_h5py(paths: list[Path], filters: list[str]) -> list[Path]:
    """What DROID/robomimic users do without a catalog: open each file, read its attrs, filter in Python."""
    out = []
    for p in paths:
        with h5py.File(p, "r") as f:
            a = dict(f.attrs)
        ok = True
        for flt in filters:
            col, op, vals = _parse(flt)
            v = a[col]
            v = v.decode() if isinstance(v, bytes) else v
            ok &= (vals[0].lower() in v.lower()) if op == "~" else (v >= vals[0]) if op == ">=" else (v in vals)
        if ok:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=1000, help="real episode files for the incremental index")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="catalog_bench_", dir=args.workdir))
    root, catalog = work / "ds", work / "ds" / cat.CATALOG_NAME
    rows_out: list[tuple[str, str]] = []
    fig: dict[str, Any] = {"entries": args.entries, "new_files": args.new}

    def row(label: str, value: str) -> None:
        rows_out.append((label, value))
        print(f"{label:<58} {value}", flush=True)

    try:
        # ---- setup: synthetic attrs and placeholder files ----
        t_gen, entries = timed(lambda: synthetic_attrs(args.entries))
        t_files = time.perf_counter()
        for rel, _ in entries:
            p = root / rel
            if not p.parent.is_dir():
                p.parent.mkdir(parents=True)
            p.touch()
        stats = [os.stat(root / rel) for rel, _ in entries]
        t_files = time.perf_counter() - t_files
        row("setup: synthetic attrs / placeholder files", f"{t_gen:.2f} s / {t_files:.2f} s ({args.entries} files)")

        # ---- (a) bulk build ----
        def build() -> None:
            rows = [cat.entry_from_attrs(rel, a, st.st_size, st.st_mtime_ns) for (rel, a), st in zip(entries, stats)]
            cat.bulk_load(catalog, root, rows)

        t_build, _ = timed(build)
        fig["bulk_build_s"] = round(t_build, 3)
        fig["bulk_rows_per_s"] = round(args.entries / t_build)
        fig["catalog_mb"] = round(catalog.stat().st_size / 2**20, 1)
        row(
            f"(a) bulk build, {args.entries} entries",
            f"{t_build:.2f} s ({fig['bulk_rows_per_s']:,} rows/s, {fig['catalog_mb']} MiB)",
        )

        # ---- (b) query latency ----
        queries = pick_queries(entries)
        fig["query_ms"] = {}
        for label, flt in queries.items():
            p50, p99, res = latency(lambda: cat.query(catalog, flt), args.repeats)
            s50, _, _ = latency(lambda: cat.select_paths(catalog, flt, update_catalog=False), args.repeats // 2)
            fig["query_ms"][label] = {
                "filters": flt,
                "rows": len(res),
                "p50": round(p50, 2),
                "p99": round(p99, 2),
                "select_paths_p50": round(s50, 2),
            }
            row(
                f"(b) query {label} [{len(res)} rows]",
                f"p50 {p50:.1f} ms  p99 {p99:.1f} ms  (paths only p50 {s50:.1f} ms)",
            )
        p50, p99, res = latency(
            lambda: cat.select_paths(catalog, ["success=1"], update_catalog=False), max(args.repeats // 4, 3)
        )
        fig["select_paths_success_ms"] = {"rows": len(res), "p50": round(p50, 2), "p99": round(p99, 2)}
        row(f"(b) select_paths success=1 (bulk result) [{len(res)} rows]", f"p50 {p50:.1f} ms  p99 {p99:.1f} ms")
        worst_p99 = max(q["p99"] for q in fig["query_ms"].values())

        # ---- (c) incremental index of new real files ----
        cfg = SyntheticConfig(
            steps=2, cameras=("wrist",), size=16, households=20, scenes_per_household=3, labs=("lab_new",)
        )
        wcfg = WriterConfig(background_flush=False, min_free_mb=1)
        t_write, new_paths = timed(
            lambda: [write_episode(root / "new" / f"ep_{i:05d}.h5", cfg, i, wcfg) for i in range(args.new)]
        )
        row(f"setup: write {args.new} real episodes (2 steps, 1 cam 16x16)", f"{t_write:.2f} s")
        t_inc, rep = timed(lambda: cat.update(root))
        assert (rep.added, rep.unchanged, rep.removed, len(rep.errors)) == (args.new, args.entries, 0, 0), rep
        t_noop, rep0 = timed(lambda: cat.update(root))
        assert not rep0.changed and rep0.unchanged == args.entries + args.new, rep0
        fig["incremental_new_s"] = round(t_inc, 3)
        fig["noop_reindex_s"] = round(t_noop, 3)
        read_ms = max(t_inc - t_noop, 0.0) / args.new * 1e3  # approx.: the update minus its scan of the tree
        fig["incremental_read_ms_per_new_file"] = round(read_ms, 3)
        row(
            f"(c) incremental index: +{args.new} real files into {args.entries:,}",
            f"{t_inc:.2f} s ({t_inc / args.new * 1e3:.2f} ms/file incl. stat of all {args.entries + args.new:,} files)",
        )
        row(f"(c) no-op re-index ({args.entries + args.new:,} files, none changed)", f"{t_noop:.2f} s")
        row("(c) per new file: update minus no-op scan (approx.)", f"{read_ms:.2f} ms/file")

        # ---- (d) peers ----
        nq = queries["success & task~drawer"]
        t_naive, hits = timed(lambda: naive_h5py(new_paths, nq))
        scale = args.entries / args.new
        fig["naive_h5py_s_per_new_files"] = round(t_naive, 3)
        fig["naive_h5py_extrapolated_s"] = round(t_naive * scale, 1)
        row(
            f"(d) naive h5py attrs scan of {args.new} files (1 query)",
            f"{t_naive:.2f} s ({len(hits)} hits, {t_naive / args.new * 1e3:.2f} ms/file)",
        )
        row(f"(d) naive h5py scan EXTRAPOLATED to {args.entries:,} files", f"{t_naive * scale:.1f} s per query")
        fig["parquet_ms"] = None
        try:
            import pyarrow as pa
            import pyarrow.compute as pc
            import pyarrow.parquet as pq
        except ImportError:
            row("(d) pyarrow parquet episodes table", "skipped (pyarrow not importable)")
        else:
            table_rows = cat.query(catalog, ["lab!=lab_new"])
            cols = {c: [getattr(r, c) for r in table_rows] for c in cat.COLUMNS}
            pq_path = work / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
            pq_path.parent.mkdir(parents=True)
            pq.write_table(pa.table(cols), pq_path)
            fig["parquet_ms"] = {}
            for label, flt in queries.items():
                cold50, cold99, res = latency(
                    lambda: arrow_filter(pc, pa, pq.read_table(pq_path), flt).column("path").to_pylist(), args.repeats
                )
                mem = pq.read_table(pq_path)
                hot50, hot99, res2 = latency(
                    lambda: arrow_filter(pc, pa, mem, flt).column("path").to_pylist(), args.repeats
                )
                assert len(res) == len(res2) == fig["query_ms"][label]["rows"], (label, len(res))
                fig["parquet_ms"][label] = {
                    "read+filter_p50": round(cold50, 2),
                    "read+filter_p99": round(cold99, 2),
                    "in_memory_p50": round(hot50, 2),
                    "in_memory_p99": round(hot99, 2),
                }
                row(
                    f"(d) parquet {label} -> path list",
                    f"read+filter p50 {cold50:.1f} ms; in-memory p50 {hot50:.1f} ms",
                )

        # ---- summary ----
        fig["worst_query_p99_ms"] = worst_p99
        fig["goal_query_under_100ms"] = worst_p99 < 100
        fig["goal_incremental_in_seconds"] = t_inc < 10
        fig["ratio_naive_extrapolated_over_noop_reindex"] = round(t_naive * scale / t_noop, 1)
        fig["ratio_naive_extrapolated_over_query_p50"] = round(
            t_naive * scale * 1e3 / fig["query_ms"]["success & task~drawer"]["p50"]
        )
        fig["ratio_naive_per_file_over_catalog_read_per_file"] = round(t_naive / args.new * 1e3 / max(read_ms, 1e-6), 2)
        print("-" * 90)
        row(
            "goal: every query p99 < 100 ms",
            f"{'MET' if fig['goal_query_under_100ms'] else 'NOT MET'} (worst p99 {worst_p99:.1f} ms)",
        )
        row(
            f"goal: +{args.new} episodes indexed in seconds",
            f"{'MET' if fig['goal_incremental_in_seconds'] else 'NOT MET'} ({t_inc:.2f} s)",
        )
        print(json.dumps(fig, separators=(",", ":")))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
