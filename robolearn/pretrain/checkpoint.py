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

state.pt and rng-rank<r>.pt hold tensors, plain values and numpy RNG arrays only, and are read with
`weights_only=True` (robolearn.encoders.files): a file holding anything else is refused, never unpickled.
Resume checks every file and raises CheckpointError (a ValueError) naming the one that is wrong.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from robolearn.encoders.files import CheckpointError, CheckpointNotFoundError, read_safetensors, read_torch_file
from robolearn.pretrain.distributed import DistInfo, barrier

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
STATE_KEYS = ("step", "epoch", "micro_in_epoch", "epoch_end", "optimizer", "world_size")
_HINT = "Delete this checkpoint folder to resume from the one before it, or start a new --run-dir"


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


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state.pt (tensors and plain values only), its keys checked."""
    f = Path(path) / "state.pt"
    state = read_torch_file(f, f"the training state ({', '.join(STATE_KEYS)})", hint=_HINT)
    if not isinstance(state, dict):
        raise CheckpointError(f"{f}: holds a {type(state).__name__}, expected a dict ({', '.join(STATE_KEYS)})")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{f}: missing key(s) {missing}; expected {', '.join(STATE_KEYS)}")
    ints = [
        k
        for k in ("step", "epoch", "micro_in_epoch", "world_size")
        if not isinstance(state[k], int) or isinstance(state[k], bool) or state[k] < 0
    ]
    if ints or not isinstance(state["epoch_end"], bool) or not isinstance(state["optimizer"], dict):
        raise CheckpointError(
            f"{f}: wrong value types: expected non-negative integers for step, epoch, "
            f"micro_in_epoch, world_size (bad: {ints}), a bool epoch_end and a dict optimizer"
        )
    return state


def read_rng_state(path: Path) -> dict[str, Any]:
    """One rank's rng-rank<r>.pt (tensors, numpy arrays and plain values only), its keys checked."""
    state = read_torch_file(path, "one rank's RNG states (torch, numpy, python[, cuda])", hint=_HINT)
    if not isinstance(state, dict) or not {"torch", "numpy", "python"} <= set(state):
        raise CheckpointError(f"{path}: expected a dict with the 'torch', 'numpy' and 'python' RNG states")
    return state


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
            try:
                meta = read_state(p)
            except CheckpointError as e:  # never delete what cannot be read: keep it and say so
                log.warning("keeping %s: %s", p, e)
                keep.add(p)
                continue
            if meta.get("epoch_end") and meta["epoch"] % retention.keep_every_epochs == 0:
                keep.add(p)
    removed = [p for p in found if p not in keep]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    for stale in (Path(run_dir) / "checkpoints").glob("step-*.tmp"):  # crashed saves
        shutil.rmtree(stale, ignore_errors=True)
    return removed


def load_checkpoint(path: Path, model: torch.nn.Module, info: DistInfo) -> dict[str, Any]:
    """Load weights into `model` (strict; mismatches named) and this rank's RNG; return the training state.
    Every file is read and checked before anything is changed; CheckpointError names the file at fault."""
    path = Path(path)
    if not (path / COMPLETE).exists():
        raise CheckpointNotFoundError(f"{path}: not a complete checkpoint (no {COMPLETE} marker)")
    wfile = path / "model.safetensors"
    weights = read_safetensors(wfile, "the model's state dict (robolearn.pretrain save_checkpoint)")
    state = read_state(path)
    rng_file = path / f"rng-rank{info.rank}.pt"
    if not rng_file.exists():
        raise CheckpointNotFoundError(
            f"{rng_file}: no RNG state for rank {info.rank}; resume with the same world "
            f"size as the run that saved it ({state.get('world_size')})"
        )
    rng = read_rng_state(rng_file)
    net = unwrap(model)
    own = net.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in weights.items()
        if k in own and v.shape != own[k].shape
    ]
    dtypes = [
        f"{k}: file {v.dtype} vs model {own[k].dtype}"
        for k, v in weights.items()
        if k in own and v.dtype != own[k].dtype and not (v.dtype.is_floating_point and own[k].dtype.is_floating_point)
    ]
    if missing or unexpected or shapes or dtypes:
        raise CheckpointError(
            f"{wfile} does not match the model: missing keys {missing[:10]}, unexpected keys "
            f"{unexpected[:10]}, mis-shaped {shapes[:10]}, wrong dtype {dtypes[:10]}"
        )
    net.load_state_dict(weights, strict=True)
    try:
        set_rng_state(rng)
    except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{rng_file}: the RNG states cannot be restored ({e})") from None
    return state
