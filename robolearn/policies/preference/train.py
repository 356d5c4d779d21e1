"""`robolearn train --objective dpo --reference POLICY`: preference fine-tuning of a BC policy.

The trained policy starts as a copy of the reference (architecture, weights and action/proprio
normalisation); the reference stays frozen. Pairs are mined from every selected episode (pairs.py; the
validation split is not used: a DPO run reports the reward accuracy on its own pairs). Each step samples
`pairs_per_batch` pairs, runs the policy on the steps of both segments (dropout off, so policy and
reference agree at step 0), and minimises the DPO loss (objective.py) plus `bc_weight` x the BC loss on the
preferred steps. The run folder is the BC one (train.config.json, metrics.jsonl, loss.png, policy/,
checkpoints/ for --resume); the policy's meta records the objective, the reference and the pair counts.
"""

from __future__ import annotations

import copy
import hashlib
import random
import time
from pathlib import Path

import numpy as np
import torch

from robolearn.config import save_config, to_dict
from robolearn.lineage import write_card
from robolearn.policies.checkpoint import load_policy, resolve_policy_dir
from robolearn.policies.policy import Policy
from robolearn.policies.preference.objective import dpo_loss, segment_log_ratio
from robolearn.policies.preference.pairs import Pair, mine_pairs
from robolearn.policies.train import (
    StepFn,
    TrainConfig,
    TrainResult,
    _dataset,
    _describe_data,
    _loss,
    _Source,
    fit,
    select_episodes,
)


def _sample_index(dataset) -> dict[Path, int]:
    """episode path -> index of its step 0 among the dataset's samples (every step is a sample)."""
    if not dataset.config.pad or dataset.config.history != 1:
        raise ValueError("DPO needs a dataset with one sample per step (pad=True, history=1)")
    out, offset = {}, 0
    for e in dataset.episodes:
        out[Path(e.path).resolve()] = offset
        offset += int(e.num_steps)
    if offset != len(dataset):
        raise RuntimeError(f"dataset has {len(dataset)} samples, episodes sum to {offset} steps")
    return out


def pair_indices(pairs: list[Pair], starts: dict[Path, int], length: int) -> tuple[torch.Tensor, ...]:
    """Sample indices [P, L] and masks [P, L] of every pair's preferred and rejected segments."""
    n = len(pairs)
    idx = torch.zeros(2, n, length, dtype=torch.long)
    mask = torch.zeros(2, n, length, dtype=torch.bool)
    for i, p in enumerate(pairs):
        for side, seg in enumerate((p.preferred, p.rejected)):
            k = min(seg.length, length)
            base = starts[Path(seg.path).resolve()] + seg.start
            idx[side, i, :k] = torch.arange(base, base + k)
            mask[side, i, :k] = True
    return idx[0], mask[0], idx[1], mask[1]


def _norm_digest(policy: Policy) -> str:
    h = hashlib.sha256()
    for name in ("action_shift", "action_scale", "proprio_shift", "proprio_scale"):
        h.update(getattr(policy, name).detach().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


class _Steps:
    """Policy and reference actions on a set of samples: from cached tokens (reference means computed
    once) or from frames read through the loader (both models run on the same images)."""

    def __init__(self, policy: Policy, reference: Policy, dataset, paths: list[Path], cfg: TrainConfig, device):
        self.policy, self.reference, self.dataset, self.device = policy, reference, dataset, device
        self.cached = policy.config.caches_features
        if self.cached:
            cache = cfg.feature_cache
            if cache != "none":  # the cached actions are normalised with the reference's statistics
                from robolearn.policies.features import default_cache_dir

                cache = str(Path(cache or default_cache_dir()) / f"dpo-{_norm_digest(reference)}")
            src_cfg = copy.copy(cfg)
            src_cfg.feature_cache = cache
            self.feats = _Source(policy, dataset, paths, src_cfg, "features (dpo)").feats
            with torch.no_grad():
                mus = []
                for lo in range(0, len(self.feats["proprio"]), 256):
                    sl = slice(lo, lo + 256)
                    toks = [t[sl].float().to(device) for t in self.feats["tokens"]]
                    mus.append(reference.forward_tokens(toks, self.feats["proprio"][sl].to(device)).cpu())
                self.ref_mu = torch.cat(mus)

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat sample indices -> (policy mean, reference mean, target action, action pad)."""
        dev = self.device
        if self.cached:
            f = self.feats
            mu = self.policy.forward_tokens([t[idx].float().to(dev) for t in f["tokens"]], f["proprio"][idx].to(dev))
            return mu, self.ref_mu[idx].to(dev), f["action"][idx].to(dev), f["action_pad"][idx].to(dev)
        from robolearn.data.loader import EpisodeDataset

        b = EpisodeDataset.collate(self.dataset.__getitems__(idx.tolist()))
        images = {c: b[f"images/{c}"][:, -1].contiguous().to(dev) for c in self.policy.config.cameras}
        proprio, lang = b["proprio"][:, -1].float().to(dev), list(b["language"])
        mu = self.policy(images, proprio, lang)
        with torch.no_grad():
            ref = self.reference(images, proprio, lang)
        return mu, ref, b["action"].float().to(dev), b["action_pad"].bool().to(dev)


def train_dpo(cfg: TrainConfig, interrupt_at: int | None = None) -> TrainResult:
    """Fine-tune `cfg.reference` with the DPO objective on pairs mined from `cfg.data`."""
    t0 = time.perf_counter()
    d = cfg.dpo
    d.validate()
    if not cfg.reference:
        raise ValueError("--objective dpo needs --reference POLICY (the BC policy: checkpoint or run folder)")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    train_paths, val_paths = select_episodes(cfg)
    paths = sorted(train_paths + val_paths)
    pairs, report = mine_pairs(paths, d.segment, d.stride, d.match, d.max_pairs, seed=cfg.seed)
    reference = load_policy(cfg.reference, device=device)
    for p in reference.parameters():
        p.requires_grad_(False)
    pc = copy.deepcopy(reference.config)
    ref_scenes, ref_tasks = list(pc.train_scenes), list(pc.train_tasks)
    _describe_data(paths, pc)
    pc.train_scenes = sorted(set(pc.train_scenes) | set(ref_scenes))
    pc.train_tasks = sorted(set(pc.train_tasks) | set(ref_tasks))
    dataset, _ = _dataset(paths, pc)
    size = [int(v) for v in next(iter(dataset.image_sizes.values()))]
    if reference.config.train_image_size and size != list(reference.config.train_image_size):
        raise ValueError(
            f"{paths[0]}: camera frames are {size[0]}x{size[1]}, the reference {cfg.reference} was trained "
            f"on {reference.config.train_image_size[0]}x{reference.config.train_image_size[1]}"
        )
    norms = [(dataset.action_norm, "action")] + ([(dataset.proprio_norm, "proprio")] if pc.proprio_keys else [])
    for norm, name in norms:  # the reference's normalisation, so both models predict in the same units
        norm.shift = getattr(reference, f"{name}_shift").cpu().numpy().astype(np.float64)
        norm.scale = getattr(reference, f"{name}_scale").cpu().numpy().astype(np.float64)
    policy = Policy(pc).to(device)
    policy.load_state_dict(reference.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out, "train")
    kind = "l1" if pc.head.name == "chunk" else "mse"
    meta = {
        "objective": "dpo",
        "reference": str(cfg.reference),
        "dpo": to_dict(d),
        "pairs": report.to_dict(),
        "train_data": [str(x) for x in cfg.data],
        "query": cfg.query,
        "split": cfg.split,
        "train_episodes": len(paths),
        "val_episodes": 0,
        "loss": f"{d.dpo_weight} x dpo + {d.bc_weight} x {kind}",
        "train_config": to_dict(cfg),
    }
    steps_of = _Steps(policy, reference, dataset, paths, cfg, device)
    idx_w, mask_w, idx_l, mask_l = pair_indices(pairs, _sample_index(dataset), d.segment)
    n_pairs, L = len(pairs), d.segment

    def make_step(gen: torch.Generator) -> StepFn:
        def step() -> tuple[torch.Tensor, dict[str, float]]:
            pick = torch.randint(0, n_pairs, (min(d.pairs_per_batch, n_pairs),), generator=gen)
            b = len(pick)
            flat = torch.cat([idx_w[pick], idx_l[pick]]).view(-1)
            mu, mu_ref, action, pad = steps_of(flat)
            shape = (2, b, L, *mu.shape[1:])
            mu, mu_ref, action = mu.view(shape), mu_ref.view(shape), action.view(shape)
            seg = torch.stack([mask_w[pick], mask_l[pick]]).to(device)  # [2, b, L]
            keep = (~pad.view(2, b, L, -1)).float() * seg[..., None].float()
            ratio_w = segment_log_ratio(mu[0], mu_ref[0], action[0], keep[0], d.sigma)
            ratio_l = segment_log_ratio(mu[1], mu_ref[1], action[1], keep[1], d.sigma)
            dpo, stats = dpo_loss(ratio_w, ratio_l, d.beta)
            bc = _loss(mu[0], action[0], keep[0] == 0, kind)
            stats["bc_loss"] = float(bc.detach())
            return d.dpo_weight * dpo + d.bc_weight * bc, stats

        return step

    policy.eval()  # dropout off: pi == ref at step 0 (the gradients still flow)
    show = {"loss": "loss", "acc": "reward_accuracy"}
    history, last_loss = fit(cfg, out, policy, meta, make_step, t0, "train dpo", show=show, interrupt_at=interrupt_at)
    figures = {"steps": cfg.steps, "final_loss": last_loss, "pairs": len(pairs), "train_episodes": len(paths)}
    if history:
        figures["reward_accuracy"] = history[-1]["reward_accuracy"]
    inputs = [*cfg.data, {"path": str(resolve_policy_dir(cfg.reference)), "kind": "policy"}]
    write_card(out / "policy", "policy", inputs, cfg, figures, ["config.json", "model.safetensors"])
    seconds = time.perf_counter() - t0
    return TrainResult(out, out / "policy", cfg.steps, last_loss, None, len(paths), 0, seconds, history)
