"""Run scenarios x encoders x seeds; every cell is a folder that can be rerun from itself.

    <out>/
      suite.config.json                 this run's SuiteConfig
      datasets/<scenario>-v<version>-<size>-<hash12>/   generated once, reused by every encoder and seed
      cache/                            frozen encoders' tokens per dataset
      cells/<scenario>/<encoder>/seed-<k>/
        cell.json                       config, seed, budget, dataset hash, encoder identity (weights and LM
                                        hashes), versions; "status": "done" once metrics.json is written
        metrics.json                    CellResult: metrics, intervals, breakdowns, curves, examples
        (predictions.npz, examples/)    what the scenario saves per instance
      leaderboard.{json,md,html}

A killed run resumes where it stopped: finished cells (status "done", same cell config) are skipped; a cell
whose config changed is refused unless --overwrite, so nothing computed is lost silently.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import robolearn.suite.families  # noqa: F401  (registers the built-in scenarios)
from robolearn import __version__
from robolearn.config import opt, save_config
from robolearn.encoders.pretrained_lm import lm_input
from robolearn.lineage import write_card
from robolearn.suite.adapt import Budget
from robolearn.suite.dataset import SuiteDataError, load_dataset
from robolearn.suite.encoders import EncoderSpec, default_lm
from robolearn.suite.scenario import SIZES, CellContext, CellResult, Scenario, get_scenario, scenarios
from robolearn.utils import write_text_atomic

CELL_FILE, METRICS_FILE = "cell.json", "metrics.json"


@dataclass
class SuiteConfig:
    scenarios: list[str] = opt(
        default_factory=lambda: ["all"], help="scenarios (robolearn suite list), or `all` for every one"
    )
    encoders: list[str] = opt(
        default_factory=lambda: ["v-cond-tiny", "scratch-cnn"],
        help="encoders: an id (random weights), id:CKPT or a checkpoint folder (pretrained), scratch-cnn, resnet18",
    )
    seeds: list[int] = opt(default_factory=lambda: [0, 1, 2], help="seeds (adapter init and batches)")
    size: str = opt("tiny", help=f"dataset and budget size: {' | '.join(SIZES)}")
    out: Path = opt(Path("runs/suite"), help="run folder")
    language_model: str = opt("", help="frozen LM for language encoders (default: the offline default LM)")
    image_size: int = opt(64, help="input side for the baselines (encoders use their own)")
    steps: int = opt(0, help="override every scenario's adapter steps (0: the scenario's budget)")
    workers: int = opt(1, help="processes for dataset generation")
    overwrite: bool = opt(False, help="rerun cells whose saved config differs instead of refusing")
    progress: bool = opt(True, help="progress bars")
    datasets: Path | None = opt(None, help="shared dataset folder (default: <out>/datasets)")


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def versions() -> dict[str, str]:
    import mujoco
    import numpy
    import torch

    return {
        "robolearn": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "mujoco": mujoco.__version__,
    }


def expand_scenarios(names: list[str]) -> list[str]:
    """Scenario names with `all` replaced by every registered scenario (sorted), duplicates dropped."""
    out: list[str] = []
    for n in names:
        for m in sorted(scenarios()) if n == "all" else [n]:
            if m not in out:
                out.append(m)
    return out


def dataset_for(scenario: Scenario, size: str, root: Path, workers: int = 1, progress: bool = False):
    """The scenario's dataset at `size`: loaded (hash-checked) if generated before, else generated now."""
    config = scenario.data_config(size)
    folder = root / f"{scenario.name}-v{scenario.version}-{size}-{_digest(config)[:12]}"
    if folder.exists():
        return load_dataset(folder, scenario=scenario.name, version=scenario.version)
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    ds = scenario.generate(folder, config, workers=workers, progress=progress)
    ds.meta["generate_s"] = round(time.perf_counter() - t, 2)
    return ds


def run_cell(scenario: Scenario, dataset, spec: EncoderSpec, seed: int, cfg: SuiteConfig, out: Path) -> dict:
    """Run one cell (or return its saved result when it is done with the same config)."""
    budget = scenario.budget(cfg.size)
    if cfg.steps:
        budget = Budget(**{**asdict(budget), "steps": cfg.steps})
    cell = {
        "scenario": scenario.name,
        "scenario_version": scenario.version,
        "dataset": {"folder": str(dataset.folder), "hash": dataset.hash},
        "encoder": asdict(spec),
        "seed": seed,
        "size": cfg.size,
        "budget": asdict(budget),
    }
    cell_path, metrics_path = out / CELL_FILE, out / METRICS_FILE
    if cell_path.is_file():
        saved = json.loads(cell_path.read_text())
        same = _digest(saved.get("config")) == _digest(cell)
        if same and saved.get("status") == "done" and metrics_path.is_file():
            return json.loads(metrics_path.read_text())
        if not same and not cfg.overwrite:
            raise ValueError(
                f"{cell_path}: this cell was run with another config ({_diff(saved.get('config'), cell)}); pass "
                "--overwrite to rerun it, or use another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"config": cell, "status": "running", "versions": versions(), "command": sys.argv}
    write_text_atomic(cell_path, json.dumps(record, indent=1, default=str))
    ctx = CellContext(out=out, seed=seed, budget=budget, cache_dir=cfg.out / "cache", size=cfg.size,
                      progress=cfg.progress)  # fmt: skip
    t = time.perf_counter()
    # every random draw of the cell (a random-weights encoder's init included) follows from its seed alone, so a
    # cell reruns to the same weights and numbers whatever ran before it in the process
    torch.manual_seed(seed)
    np.random.seed(seed)
    res: CellResult = scenario.run_cell(dataset, spec, ctx)
    missing = [m for m in scenario.metrics if m not in res.metrics]
    if missing:
        raise RuntimeError(f"scenario {scenario.name} returned no value for metric(s) {missing}")
    result = {**asdict(res), "scenario": scenario.name, "encoder": spec.spec, "seed": seed,
              "seconds": round(time.perf_counter() - t, 2)}  # fmt: skip
    write_text_atomic(metrics_path, json.dumps(result, indent=1, default=float))
    ckpt = spec.spec.split(":", 1)[1] if ":" in spec.spec else spec.spec  # a checkpoint, or a name
    encoder = [] if spec.is_baseline else [{"path": ckpt, "kind": "encoder"}]
    lm = lm_input(spec.resolved_language_model())  # the text features of every family
    write_card(out, "suite-cell", [dataset.folder, *encoder, lm], cell, res.metrics, [METRICS_FILE])
    record.update(status="done", identity=res.extra.get("encoder_identity"))
    write_text_atomic(cell_path, json.dumps(record, indent=1, default=str))
    return result


def _diff(a: Any, b: Any) -> str:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return "unreadable saved config"
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:4]) or "same"


@dataclass
class SuiteRun:
    out: Path
    results: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def run_suite(cfg: SuiteConfig) -> SuiteRun:
    """Every (scenario, encoder, seed) cell, then the leaderboard. Unknown names fail before any work."""
    from robolearn.suite.leaderboard import write_leaderboard

    if cfg.size not in SIZES:
        raise ValueError(f"unknown size {cfg.size!r}; expected one of {SIZES}")
    chosen = [get_scenario(n) for n in expand_scenarios(cfg.scenarios)]
    lm = cfg.language_model or default_lm()
    specs = [EncoderSpec(e, language_model=lm, image_size=cfg.image_size) for e in cfg.encoders]
    for s in specs:
        s.build("visual")  # an unknown encoder or a bad checkpoint fails here, before any dataset work
    out = Path(cfg.out)
    save_config(cfg, out, "suite")
    run = SuiteRun(out)
    for scenario in chosen:
        t = time.perf_counter()
        try:
            ds = dataset_for(scenario, cfg.size, cfg.datasets or out / "datasets", cfg.workers, cfg.progress)
        except SuiteDataError as e:
            raise SuiteDataError(f"{scenario.name}: {e} (delete the folder to regenerate)") from e
        for spec in specs:
            for seed in cfg.seeds:
                cell_out = out / "cells" / scenario.name / spec.slug / f"seed-{seed}"
                run.results.append(run_cell(scenario, ds, spec, seed, cfg, cell_out))
        run.seconds[scenario.name] = round(time.perf_counter() - t, 1)
    board = json.loads(write_leaderboard(out)[0].read_text())
    cells = sorted(p.parent for p in (out / "cells").glob(f"*/*/seed-*/{METRICS_FILE}"))  # what the board read
    figures = {r["encoder"]: r["mean_win_rate"] for r in board["rows"]}
    write_card(out, "leaderboard", cells, cfg, figures, ["leaderboard.json"])
    return run
