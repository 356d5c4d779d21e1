"""Training checkpoints: weights in safetensors, training state beside them, written atomically, pruned by a
retention policy, found again for resume.

    <run>/checkpoints/step-00001500/
        model.safetensors      the model's state dict (bare keys, no DDP `module.` prefix)
        config.json            the model's config (when the model provides `config_dict()`), so
                               robolearn.encoders.load(<this folder>) reads it
        state.pt               optimizer, step, epoch, sampler position, metrics, train config
        rng-rank<r>.pt         each rank's RNG states (torch, cuda, numpy, python)
        COMPLETE               written last: a folder without it is ignored (crash mid-save)

Retention (like the reference's (k, m, s)): keep the newest `keep_last` checkpoints, plus every checkpoint
taken at the end of an epoch divisible by `keep_every_epochs`.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from robolearn.pretrain.distributed import DistInfo, barrier

COMPLETE = "COMPLETE"


@dataclass
class Retention:
    keep_last: int = 2
    keep_every_epochs: int = 0  # 0: keep no epoch checkpoints beyond the newest ones


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}"


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def save_checkpoint(
    run_dir: Path, step: int, model: torch.nn.Module, state: dict[str, Any], info: DistInfo, retention: Retention
) -> Path:
    """Collective: every rank must call it (each writes its RNG state). Returns the final folder."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    if info.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(info)
    torch.save(rng_state(), tmp / f"rng-rank{info.rank}.pt")
    barrier(info)
    if info.is_main:
        net = unwrap(model)
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}, str(tmp / "model.safetensors")
        )
        if hasattr(net, "config_dict"):
            (tmp / "config.json").write_text(json.dumps(net.config_dict(), indent=1))
        torch.save(state, tmp / "state.pt")
        (tmp / COMPLETE).write_text("ok\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        prune(run_dir, retention)
    barrier(info)
    return final


def complete_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-????????") if (p / COMPLETE).exists())


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1] if found else None


def prune(run_dir: Path, retention: Retention) -> list[Path]:
    """Delete checkpoints outside the retention policy; returns what was deleted."""
    found = complete_checkpoints(run_dir)
    keep = set(found[-max(1, retention.keep_last) :])
    if retention.keep_every_epochs > 0:
        for p in found:
            meta = torch.load(p / "state.pt", map_location="cpu", weights_only=False)
            if meta.get("epoch_end") and meta["epoch"] % retention.keep_every_epochs == 0:
                keep.add(p)
    removed = [p for p in found if p not in keep]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    for stale in (Path(run_dir) / "checkpoints").glob("step-*.tmp"):  # crashed saves
        shutil.rmtree(stale, ignore_errors=True)
    return removed


def load_checkpoint(path: Path, model: torch.nn.Module, info: DistInfo) -> dict[str, Any]:
    """Load weights into `model` (strict; mismatches named) and this rank's RNG; return the training state."""
    path = Path(path)
    if not (path / COMPLETE).exists():
        raise FileNotFoundError(f"{path}: not a complete checkpoint (no {COMPLETE} marker)")
    weights = load_file(str(path / "model.safetensors"))
    net = unwrap(model)
    missing, unexpected = net.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{path}/model.safetensors does not match the model: missing keys {missing[:10]}, "
            f"unexpected keys {unexpected[:10]}"
        )
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    rng_file = path / f"rng-rank{info.rank}.pt"
    if not rng_file.exists():
        raise FileNotFoundError(
            f"{rng_file}: no RNG state for rank {info.rank}; resume with the same world "
            f"size as the run that saved it ({state.get('world_size')})"
        )
    set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=False))
    return state
