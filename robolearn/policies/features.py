"""Frozen-encoder feature cache: each training frame goes through the encoder once.

With a frozen encoder the tokens of a frame never change, so behaviour cloning trains the head on stored
tokens (float16) instead of re-encoding images every step. The cache file is keyed by the encoder's
weights, the policy's input settings and the episode files (path, size, mtime), so later runs on the same
data and encoder (other seeds, other heads) reuse it; any change gives a new key.

A cache file is read with `weights_only=True` (robolearn.encoders.files: tensors and plain values only) and
its layout checked against the dataset; a file that is unreadable, holds anything else (a pickle that would
run code is never unpickled) or does not fit is logged and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from robolearn.encoders.files import CheckpointError, read_torch_file
from robolearn.utils import atomic_path

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ROBOLEARN_CACHE", Path.home() / ".cache" / "robolearn")) / "features"


def cache_key(policy: Any, paths: list[Path], chunk: int) -> str:
    h = hashlib.sha256()
    cfg = policy.config
    h.update(
        json.dumps(
            [
                cfg.encoder,
                cfg.encoder_checkpoint,
                cfg.encoder_overrides,
                cfg.mode,
                cfg.cameras,
                cfg.proprio_keys,
                cfg.action_space,
                chunk,
            ],
            sort_keys=True,
            default=str,
        ).encode()
    )
    for k, v in sorted(policy.backbone.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def compute_features(
    policy: Any, dataset: Any, batch_size: int = 64, desc: str = "features", progress: bool = True
) -> dict[str, Any]:
    """Every sample of `dataset` (an EpisodeDataset) -> {"tokens": [per camera [N, T, D] fp16], "proprio",
    "action", "action_pad"} in sample order."""
    policy.eval()
    tokens: list[list[torch.Tensor]] = [[] for _ in policy.config.cameras]
    proprio, action, pad = [], [], []
    dl = dataset.dataloader(batch_size=batch_size, shuffle=False, num_workers=0)
    for batch in tqdm(dl, desc=desc, unit="batch", leave=False, disable=not progress):
        images = {c: batch[f"images/{c}"][:, -1].contiguous() for c in policy.config.cameras}
        lang = list(batch["language"]) if "language" in batch else None
        for i, t in enumerate(policy.encode(images, lang)):
            tokens[i].append(t.to(torch.float16))
        proprio.append(batch["proprio"][:, -1].float())
        action.append(batch["action"].float())
        pad.append(batch["action_pad"].bool())
    return {
        "tokens": [torch.cat(t) for t in tokens],
        "proprio": torch.cat(proprio),
        "action": torch.cat(action),
        "action_pad": torch.cat(pad),
    }


def cache_problem(feats: Any, n: int, cameras: int) -> str | None:
    """Why `feats` is not the cache of `n` samples from `cameras` cameras (None: it is)."""
    if not isinstance(feats, dict):
        return f"holds a {type(feats).__name__}, expected a dict"
    missing = [k for k in ("tokens", "proprio", "action", "action_pad") if k not in feats]
    if missing:
        return f"missing {missing}"
    tokens = feats["tokens"]
    if not isinstance(tokens, list) or len(tokens) != cameras:
        return f"'tokens' should be a list of {cameras} tensors"
    for name, t in [
        *((f"tokens[{i}]", t) for i, t in enumerate(tokens)),
        *((k, feats[k]) for k in ("proprio", "action", "action_pad")),
    ]:
        if not isinstance(t, torch.Tensor) or t.ndim == 0 or len(t) != n:
            return f"{name} should be a tensor of {n} samples"
    return None


def cached_features(
    policy: Any,
    dataset: Any,
    paths: list[Path],
    chunk: int,
    cache_dir: Path | None,
    desc: str = "features",
    progress: bool = True,
) -> dict[str, Any]:
    """compute_features, read from / written to `cache_dir` (None: no disk cache)."""
    if cache_dir is None:
        return compute_features(policy, dataset, desc=desc, progress=progress)
    key = cache_key(policy, paths, chunk)
    f = Path(cache_dir) / f"{key}.pt"
    if f.exists():
        try:
            feats = read_torch_file(f, "a feature cache (tokens, proprio, action, action_pad tensors)")
            problem = cache_problem(feats, len(dataset), len(policy.config.cameras))
            if problem is None:
                log.info("feature cache hit: %s", f)
                return feats
            log.warning("ignoring feature cache %s (%s); recomputing", f, problem)
        except CheckpointError as e:  # a damaged or foreign cache file is recomputed, never trusted
            log.warning("ignoring unreadable feature cache (%s); recomputing", e)
    feats = compute_features(policy, dataset, desc=desc, progress=progress)
    f.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(f) as tmp:
        torch.save(feats, tmp)
    return feats
