"""`robolearn demo`: the main job, run by `make demo`.

Through the same CLI commands a user types: (1) the dataset toolkit on a synthetic dataset: synth ->
validate -> index -> query -> split by held-out scene -> stats -> info -> export-video -> load batches with
the torch loader; (2) simulation + collection: the scripted expert records demonstrations at the station
in a MuJoCo household scene (sim robot, sim cameras, crash-safe writer, catalog) -> validate -> query the
successful ones -> load them. Encoders, policies and evaluation join as their stages land.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from robolearn.config import command, opt, save_config


@dataclass
class DemoConfig:
    out: Path = opt(Path("demo_output"), help="output folder (a timestamped run folder is made inside)")
    episodes: int = opt(24, help="synthetic episodes to generate")
    steps: int = opt(60, help="steps per episode")
    size: int = opt(128, help="camera image side in pixels")
    batches: int = opt(20, help="loader batches to time")
    batch_size: int = opt(64, help="loader batch size")
    workers: int = opt(2, help="loader worker processes")
    sim_task: str = opt("open-drawer", help="household task the sim expert demonstrates")
    sim_episodes: int = opt(6, help="expert demonstrations to record in simulation (0: skip)")
    sim_size: int = opt(96, help="sim camera image side in pixels")


def _run(argv: list[str]) -> None:
    from robolearn.cli import main

    print(f"\n$ robolearn {' '.join(argv)}", flush=True)
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"demo step failed (exit {rc}): robolearn {' '.join(argv)}")


@command("demo", "")
def demo(cfg: DemoConfig) -> int:
    """Run the main job end to end at small scale and print a summary."""
    import torch

    from robolearn.data.catalog import read_split
    from robolearn.data.loader import EpisodeDataset, LoaderConfig

    run = Path(cfg.out) / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    data = run / "dataset"
    save_config(cfg, run, "demo")
    t0 = time.perf_counter()
    _run(["data", "synth", str(data), "--episodes", str(cfg.episodes), "--steps", str(cfg.steps),
          "--size", str(cfg.size), "--households", "3", "--scenes-per-household", "2"])
    _run(["data", "validate", str(data)])
    _run(["data", "index", str(data)])
    _run(["data", "query", str(data), "--where", "household=house_1", "--where", "success=1"])
    _run(["data", "split", str(data), "--by", "scene", "--holdout", "scene_5", "--name", "heldout_scene_5"])
    _run(["data", "stats", str(data)])
    _run(["data", "info", str(data)])
    episode = sorted(data.glob("*.h5"))[0]
    _run(["data", "export-video", str(episode), "--out", str(run / "episode_000000.mp4")])

    train = read_split(data, "heldout_scene_5", "train")
    ds = EpisodeDataset(train, LoaderConfig(history=2, chunk=8, normalize_action="mean_std",
                                            stats_path=str(data / "stats.json")))
    dl = ds.dataloader(batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers, drop_last=True)
    print(f"\n$ loader: {len(train)} train episodes, {len(ds)} samples, history 2, chunk 8, "
          f"batch {cfg.batch_size}, {cfg.workers} workers", flush=True)
    n, tl = 0, time.perf_counter()
    batch: dict = {}
    for epoch in range(100):
        for batch in dl:
            n += 1
            if n >= cfg.batches:
                break
        if n >= cfg.batches:
            break
    dt = time.perf_counter() - tl
    shapes = {k: tuple(v.shape) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    summary = {"run": str(run), "episodes": cfg.episodes, "train_episodes": len(train),
               "loader_samples_per_s": round(n * cfg.batch_size / dt, 1), "batch_shapes": shapes}
    if cfg.sim_episodes > 0:
        summary["sim"] = _sim_collection(cfg, run / "sim_demos")
    summary["total_s"] = round(time.perf_counter() - t0, 1)
    print("\nbatch:", json.dumps(shapes))
    print(f"loader: {summary['loader_samples_per_s']} samples/s (includes worker start-up)")
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\ndemo finished in {summary['total_s']} s; outputs in {run}")
    return 0


def _sim_collection(cfg: DemoConfig, out: Path) -> dict:
    """Record expert demos at the station in a MuJoCo household scene, then load the successful ones."""
    from robolearn.data.catalog import select_paths
    from robolearn.data.loader import EpisodeDataset, LoaderConfig

    _run(["collect", "--robot", "sim", "--task", cfg.sim_task, "--device", "expert", "--episodes",
          str(cfg.sim_episodes), "--out", str(out), "--cameras", "exterior_1", "wrist", "--camera-width",
          str(cfg.sim_size), "--camera-height", str(cfg.sim_size), "--household-id", "1", "--scene-id", "2",
          "--no-station.realtime", "--station.lab", "demo_lab", "--station.operator", "expert"])
    _run(["data", "validate", str(out)])
    _run(["data", "query", str(out), "--where", "success=1"])
    paths = select_paths(out, ["success=1"])
    ds = EpisodeDataset(paths, LoaderConfig(history=1, chunk=4))
    batch = next(iter(ds.dataloader(batch_size=8, shuffle=True, num_workers=0)))
    shapes = {k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")}
    print("\nsim demo batch:", json.dumps(shapes))
    return {"task": cfg.sim_task, "episodes": cfg.sim_episodes, "successful": len(paths), "batch_shapes": shapes}
