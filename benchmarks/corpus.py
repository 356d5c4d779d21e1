"""Corpus generation speed: clips per minute at a tiny and at the default size, 1 and 2 worker processes, and
the in-process renderer against `mujoco.Renderer` made per clip, side by side in one run.

    python benchmarks/corpus.py [--rounds 2] [--tiny-clips 10] [--default-clips 6]

Each measurement makes a fresh corpus in a temporary folder with `generate_corpus` (seed 0, all templates,
so clips cycle through the templates) and counts the whole call: process start-up, scene building, physics,
rendering, VP8 encoding, checks and redraws of clips whose check failed. Settings alternate within every round
(this CPU is shared and drifts); the figure is the median over rounds.
  ours      robolearn.pretrain.corpus as shipped (one GL context per process, an MjrContext per clip);
  baseline  the same, but a new mujoco.Renderer (a new GL context) per clip, only in process (workers 0).
Ends with ONE JSON line of figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "egl")

SIZES = {"tiny": (96, 16), "default": (240, 36)}  # (frame height, frames per clip)


class _PerClipRenderer:
    """Baseline: what the corpus would do with mujoco.Renderer (a GL context per clip)."""

    def __init__(self, model, height: int, width: int, camera: str) -> None:
        import mujoco

        self._r = mujoco.Renderer(model, height, width)
        self._camera = camera

    def render(self, data):
        self._r.update_scene(data, camera=self._camera)
        return self._r.render()

    def close(self) -> None:
        self._r.close()


def measure(size: str, workers: int, clips: int, baseline: bool) -> tuple[float, dict]:
    from robolearn.pretrain.corpus import CorpusConfig, clip, generate_corpus

    h, frames = SIZES[size]
    original = clip.ClipRenderer
    if baseline:
        clip.ClipRenderer = _PerClipRenderer
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = CorpusConfig(out=Path(tmp) / "c", clips=clips, size=h, frames=frames, workers=workers)
            t0 = time.perf_counter()
            rep = generate_corpus(cfg)
            dt = time.perf_counter() - t0
            attempts = json.loads((cfg.out / "corpus.json").read_text())["attempts_needed"]
    finally:
        clip.ClipRenderer = original
    return rep.generated / dt * 60, attempts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tiny-clips", type=int, default=10)
    ap.add_argument("--default-clips", type=int, default=6)
    args = ap.parse_args()
    settings = [(size, w, base) for size in SIZES for w, base in ((0, False), (0, True), (1, False), (2, False))]
    rates: dict[tuple, list[float]] = {s: [] for s in settings}
    attempts: dict[str, int] = {}
    for r in range(args.rounds):
        order = settings[r % len(settings) :] + settings[: r % len(settings)]
        for s in order:
            n = args.tiny_clips if s[0] == "tiny" else args.default_clips
            rate, att = measure(*s[:2], n, s[2])
            rates[s].append(rate)
            for k, v in att.items():
                attempts[k] = attempts.get(k, 0) + v
            print(
                f"round {r}: {s[0]:7s} workers {s[1]} {'baseline' if s[2] else 'ours':8s} {rate:6.1f} clips/min",
                file=sys.stderr,
                flush=True,
            )
    med = {s: statistics.median(v) for s, v in rates.items()}
    print(f"{'size':26s} | {'ours w0':>8s} | {'baseline w0':>11s} | {'ours w1':>8s} | {'ours w2':>8s}  (clips/min)")
    figures: dict[str, float] = {}
    for size, (h, frames) in SIZES.items():
        row = [med[(size, 0, False)], med[(size, 0, True)], med[(size, 1, False)], med[(size, 2, False)]]
        label = f"{size} ({h} px high, {frames} fr)"
        print(f"{label:26s} | {row[0]:8.1f} | {row[1]:11.1f} | {row[2]:8.1f} | {row[3]:8.1f}")
        figures.update(
            {
                f"{size}_w0": row[0],
                f"{size}_w0_baseline": row[1],
                f"{size}_w1": row[2],
                f"{size}_w2": row[3],
                f"{size}_ours_vs_baseline": row[0] / row[1],
                f"{size}_w2_vs_w1": row[3] / row[2],
            }
        )
    import mujoco

    print(
        json.dumps(
            {
                "benchmark": "corpus",
                **{k: round(v, 2) for k, v in figures.items()},
                "attempts_needed": attempts,
                "rounds": args.rounds,
                "cpus": os.cpu_count(),
                "mujoco": mujoco.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
