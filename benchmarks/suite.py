"""The whole suite at one size for one encoder: wall time per family (generation, cells, resume) against the
issue's target (tiny: 10 minutes for one encoder on a 2-core CPU), in one run.

    OMP_WAIT_POLICY=PASSIVE MUJOCO_GL=egl .venv/bin/python benchmarks/suite.py [--encoder v-cond-tiny]
        [--size tiny] [--seeds 0 1 2] [--workers 2] [--out DIR] [--compare-workers]

Stages, each timed separately in this process:
- generate: every scenario's dataset from scratch (`--workers` processes; with --compare-workers also 1 worker,
  alternating the order per scenario, to show what the parallel generation buys),
- cells: `robolearn suite run` for the encoder over the seeds, datasets already there (features computed once per
  dataset, then every seed reuses them),
- resume: the same run again (every cell is done: it must only read the saved results).
The peer column is the target; the cell column for the first seed includes the frozen encoder's feature pass.
Ends with one JSON line. Records the mujoco version.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

TARGET_S = {"tiny": 600.0}  # issue: the whole suite at tiny size for one encoder in 10 minutes or less


def _generate(names: list[str], size: str, root: Path, workers: int) -> dict[str, float]:
    from robolearn.suite.runner import dataset_for
    from robolearn.suite.scenario import get_scenario

    out = {}
    for n in names:
        t = time.perf_counter()
        dataset_for(get_scenario(n), size, root, workers=workers)
        out[n] = time.perf_counter() - t
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--encoder", default="v-cond-tiny", help="encoder spec (as `robolearn suite run --encoders`)")
    ap.add_argument("--size", default="tiny", help="tiny | small | full")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenarios", nargs="+", default=["all"])
    ap.add_argument("--workers", type=int, default=2, help="generation processes")
    ap.add_argument("--compare-workers", action="store_true", help="also time generation with 1 worker")
    ap.add_argument("--language-model", default="", help="LM (default: robolearn's offline default)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default: a temp dir, removed)")
    args = ap.parse_args()

    import mujoco

    from robolearn.suite.encoders import default_lm
    from robolearn.suite.runner import SuiteConfig, expand_scenarios, run_suite

    names = expand_scenarios(args.scenarios)
    tmp = None if args.out else tempfile.mkdtemp(prefix="suite-bench-")
    out = Path(args.out or tmp)
    lm = args.language_model or default_lm()
    try:
        gen1: dict[str, float] = {}
        if args.compare_workers:
            gen1 = _generate(names, args.size, out / "datasets-1worker", 1)
        gen = _generate(names, args.size, out / "datasets", args.workers)
        cells, resume = {}, {}
        for n in names:
            cfg = SuiteConfig(scenarios=[n], encoders=[args.encoder], seeds=args.seeds, size=args.size, out=out,
                              language_model=lm, workers=args.workers, progress=False)  # fmt: skip
            t = time.perf_counter()
            run_suite(cfg)
            cells[n] = time.perf_counter() - t
            t = time.perf_counter()
            run_suite(cfg)
            resume[n] = time.perf_counter() - t
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    total = sum(gen.values()) + sum(cells.values())
    target = TARGET_S.get(args.size)
    print(f"suite at size {args.size}, encoder {args.encoder}, seeds {args.seeds}, LM {Path(lm).name}, "
          f"mujoco {mujoco.__version__}, {os.cpu_count()} CPUs")  # fmt: skip
    head = f"{'scenario':12s} {'generate s':>11s}" + (f" {'gen 1 worker':>12s}" if gen1 else "")
    print(head + f" {'cells s':>9s} {'per cell s':>10s} {'resume s':>9s}")
    for n in names:
        row = f"{n:12s} {gen[n]:11.1f}" + (f" {gen1[n]:12.1f}" if gen1 else "")
        print(row + f" {cells[n]:9.1f} {cells[n] / len(args.seeds):10.1f} {resume[n]:9.2f}")
    peer = f"{target:.0f} s (the target)" if target else "no target at this size"
    print(f"{'total':12s} {sum(gen.values()):11.1f}" + (f" {sum(gen1.values()):12.1f}" if gen1 else "")
          + f" {sum(cells.values()):9.1f}   whole suite {total:.1f} s vs {peer}")  # fmt: skip
    figures = {
        "benchmark": "suite",
        "size": args.size,
        "encoder": args.encoder,
        "seeds": args.seeds,
        "mujoco": mujoco.__version__,
        "generate_s": {k: round(v, 1) for k, v in gen.items()},
        "cells_s": {k: round(v, 1) for k, v in cells.items()},
        "resume_s": {k: round(v, 2) for k, v in resume.items()},
        "total_s": round(total, 1),
        "target_s": target,
        "total_over_target": round(total / target, 3) if target else None,
    }
    if gen1:
        figures["generate_1worker_s"] = {k: round(v, 1) for k, v in gen1.items()}
        figures["generate_speedup"] = round(sum(gen1.values()) / max(sum(gen.values()), 1e-9), 2)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
