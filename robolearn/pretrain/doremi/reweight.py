"""`robolearn pretrain reweight`: DoReMi domain weights for a pretraining mixture (Python: `reweight(cfg)`).

1. Split the sources into domains (`--domains-by`, domains.py).
2. Train a reference model on the reference mixture (uniform or size-proportional weights).
3. Train a proxy model of the same size from the same initialisation with group DRO (dro.py): every step
   draws `batch_per_domain` examples of every domain, scores them with both models under one shared mask, and
   updates the domain weights from the clipped per-example excess loss.
4. Write run_dir/domain_weights.json (the average weights over the proxy's steps, plus the reference weights,
   the last weights, per-domain sizes and the history) and run_dir/reweight.config.json; the two models go
   to run_dir/reference and run_dir/proxy (loadable with robolearn.encoders.load).

    robolearn pretrain reweight --model r-mvp --data data/ssv2-prepared --episodes data/demos \
        --domains-by source --steps 2000 --run-dir runs/doremi
    robolearn pretrain --model r-mvp --data data/ssv2-prepared --episodes data/demos \
        --domain-weights runs/doremi/domain_weights.json --run-dir runs/r-mvp
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from robolearn.config import opt, save_config
from robolearn.pretrain.doremi.domains import DomainSource, split_domains, write_weights
from robolearn.pretrain.doremi.dro import excess_by_domain, update_weights, weighted_loss
from robolearn.pretrain.doremi.losses import per_example_losses
from robolearn.pretrain.schedule import lr_at, make_optimizer


@dataclass
class ReweightCommand:
    """`robolearn pretrain reweight`'s config (the data options mean what they mean for `robolearn pretrain`)."""

    model: str = opt("r-mvp", help="encoder id of the reference and proxy (reconstruction-only: r-mvp, v-cond, v-dual)")
    data: list[str] = opt(default_factory=list, help="prepared shard folders (robolearn pretrain prepare)")
    episodes: list[str] = opt(default_factory=list, help="robolearn episode datasets read directly")
    episodes_camera: str = opt("", help="camera of the episode clips (default: every camera)")
    domains_by: str = opt("source", help="source | template | an episode attribute (lab, household, scene_id, task)")
    reference: str = opt("uniform", help="reference mixture: uniform | size (proportional to examples per domain)")
    run_dir: Path = opt(Path("runs/reweight"), help="domain_weights.json, the config and both models go here")
    language_model: str = opt("distilbert-base-uncased", help="frozen LM (models with language)")
    image_size: int = opt(224, help="model input size")
    model_overrides: str = opt("", help="JSON of encoder config overrides")
    steps: int = opt(1000, help="optimizer steps of the reference and of the proxy (each)")
    batch_per_domain: int = opt(16, help="examples of every domain per step")
    lr: float = opt(1e-3, help="peak lr (AdamW 0.9/0.95, warm-up then cosine over the steps)")
    warmup_steps: int = opt(50, help="linear warm-up steps")
    weight_decay: float = opt(0.05, help="AdamW weight decay")
    eta: float = opt(1.0, help="step size of the domain-weight update (the paper's 1)")
    smoothing: float = opt(1e-3, help="mix of the uniform distribution into the weights (the paper's 1e-3)")
    seed: int = opt(21, help="seed (initialisation, sampling, masks)")
    lm_features: bool = opt(True, help="precompute the frozen LM's caption features once (run_dir/lm_features)")
    log_every: int = opt(50, help="steps between history records and progress lines")


class DomainBatches:
    """Per-domain example streams: each domain's data-locked epoch in a seeded order, the next epoch when done."""

    def __init__(self, datasets: list[Any], seed: int):
        self.datasets, self.seed = datasets, seed
        self.order: list[np.ndarray] = [np.zeros(0, np.int64)] * len(datasets)
        self.pos = [0] * len(datasets)
        self.epoch = [-1] * len(datasets)

    def take(self, d: int, n: int) -> list[dict[str, torch.Tensor]]:
        items = []
        for _ in range(n):
            if self.pos[d] >= len(self.order[d]):
                self.epoch[d] += 1
                self.datasets[d].set_epoch(self.epoch[d])
                rng = np.random.default_rng([self.seed, d, self.epoch[d]])
                self.order[d], self.pos[d] = rng.permutation(len(self.datasets[d])), 0
            items.append(self.datasets[d][int(self.order[d][self.pos[d]])])
            self.pos[d] += 1
        return items

    def batch(self, n: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """n examples of every domain, collated, and the domain index of each example."""
        items, dom = [], []
        for d in range(len(self.datasets)):
            items += self.take(d, n)
            dom += [d] * n
        return torch.utils.data.default_collate(items), torch.tensor(dom)


def _build(cfg: ReweightCommand) -> tuple[list[DomainSource], Any, Any]:
    from robolearn.pretrain.datasets import dataset_for
    from robolearn.pretrain.run import PretrainCommand, build_model, build_sources, feature_store

    pcfg = PretrainCommand(
        model=cfg.model,
        data=cfg.data,
        episodes=cfg.episodes,
        episodes_camera=cfg.episodes_camera,
        run_dir=cfg.run_dir,
        language_model=cfg.language_model,
        image_size=cfg.image_size,
        model_overrides=cfg.model_overrides,
    )
    torch.manual_seed(cfg.seed)
    model = build_model(pcfg)
    sources = build_sources(pcfg)
    sources = [s[0] if isinstance(s, tuple) else s for s in sources]  # DoReMi finds the weights itself
    domains = split_domains(sources, cfg.domains_by)
    if len(domains) < 2:
        raise ValueError(f"--domains-by {cfg.domains_by} gives {len(domains)} domain(s); reweighting needs 2 or more")
    kw: dict[str, Any] = {"image_size": cfg.image_size, "seed": cfg.seed}
    if cfg.lm_features and model.uses_language:
        from robolearn.pretrain.distributed import DistInfo

        kw["features"] = feature_store(pcfg, model, sources, DistInfo())
    key = cfg.model.removesuffix("-tiny")
    empty = [d.name for d in domains if len(d.table.indices("train")) == 0]
    if empty:
        raise ValueError(f"domain(s) {empty[:10]} have no training clips (all validation); merge or drop them")
    datasets = [dataset_for(key, d, "train", **kw) for d in domains]
    return domains, model, datasets


def _save_model(model: torch.nn.Module, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(folder / "model.safetensors")
    )
    if hasattr(model, "config_dict"):
        (folder / "config.json").write_text(json.dumps(model.config_dict(), indent=1))


def train_domains(
    model: torch.nn.Module,
    batches: DomainBatches,
    cfg: ReweightCommand,
    weights: torch.Tensor,
    reference: torch.nn.Module | None = None,
    label: str = "",
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Train `model` for cfg.steps on the domain-weighted loss. Without `reference` the weights stay fixed
    (the reference model); with it they follow DoReMi's update. Returns (average weights, history)."""
    k = len(weights)
    opt_ = make_optimizer(model, "adamw", cfg.lr, cfg.weight_decay, (0.9, 0.95))
    g = torch.Generator().manual_seed(cfg.seed + 1)  # the masks: the same stream for the reference and the proxy
    alpha, total, history = weights.double().clone(), torch.zeros(k, dtype=torch.float64), []
    n_patches = model.config.n_patches
    t0 = time.perf_counter()
    model.train()
    for step in range(cfg.steps):
        batch, dom = batches.batch(cfg.batch_per_domain)
        batch["mask_noise"] = torch.rand(len(dom), n_patches, generator=g)
        per = per_example_losses(model, batch)
        excess = None
        if reference is not None:
            with torch.no_grad():
                ref = per_example_losses(reference, batch)
            excess = excess_by_domain(per, ref, dom, k)
            alpha = update_weights(alpha, excess, cfg.eta, cfg.smoothing)
        total += alpha
        loss = weighted_loss(per, dom, alpha)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{label} loss is {float(loss)} at step {step}")
        for group in opt_.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup_steps, cfg.steps)
        opt_.zero_grad(set_to_none=True)
        loss.backward()
        opt_.step()
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            by_dom = [float(per.detach()[dom == d].mean()) for d in range(k)]
            rec = {"step": step + 1, "loss": float(loss.detach()), "domain_loss": by_dom, "weights": alpha.tolist()}
            if excess is not None:
                rec["excess"] = excess.tolist()
            history.append(rec)
            print(
                f"{label} step {step + 1}/{cfg.steps} loss {float(loss):.4f} weights "
                f"[{', '.join(f'{a:.3f}' for a in alpha.tolist())}] ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return total / cfg.steps, history


def reference_weights(domains: list[DomainSource], datasets: list[Any], kind: str) -> torch.Tensor:
    if kind == "uniform":
        w = torch.ones(len(domains), dtype=torch.float64)
    elif kind == "size":
        w = torch.tensor([float(len(ds)) for ds in datasets], dtype=torch.float64)
    else:
        raise ValueError(f"--reference must be 'uniform' or 'size', got {kind!r}")
    return w / w.sum()


def reweight(cfg: ReweightCommand) -> dict[str, Any]:
    """Run DoReMi (reference, then proxy) and write the weights; returns the weights document."""
    for name, v in (("steps", cfg.steps), ("batch_per_domain", cfg.batch_per_domain), ("log_every", cfg.log_every)):
        if v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if cfg.eta < 0:
        raise ValueError(f"--eta must be >= 0, got {cfg.eta}")
    domains, proxy, datasets = _build(cfg)
    ref_w = reference_weights(domains, datasets, cfg.reference)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, cfg.run_dir, "reweight")
    names = [d.name for d in domains]
    reference = _clone(proxy)  # the same initialisation: early excess losses compare like with like
    print(f"{len(domains)} domains ({cfg.domains_by}): {', '.join(names)}")
    t0 = time.perf_counter()
    _, ref_hist = train_domains(reference, DomainBatches(datasets, cfg.seed), cfg, ref_w, label="reference")
    reference.eval()
    _save_model(reference, cfg.run_dir / "reference")
    t1 = time.perf_counter()
    avg, proxy_hist = train_domains(
        proxy, DomainBatches(datasets, cfg.seed), cfg, ref_w * 0 + 1 / len(names), reference, "proxy"
    )
    _save_model(proxy, cfg.run_dir / "proxy")
    t2 = time.perf_counter()
    doc = {
        "final_weights": dict(zip(names, proxy_hist[-1]["weights"])),
        "reference": cfg.reference,
        "reference_weights": dict(zip(names, ref_w.tolist())),
        "train_examples": {n: len(ds) for n, ds in zip(names, datasets)},
        "steps": cfg.steps,
        "excess_loss": "per example, clipped at 0, averaged per domain",
        "seconds": {"reference": round(t1 - t0, 1), "proxy": round(t2 - t1, 1)},
        "history": {"reference": ref_hist, "proxy": proxy_hist},
    }
    weights = dict(zip(names, avg.tolist()))
    path = write_weights(cfg.run_dir / "domain_weights.json", weights, cfg.domains_by, doc)
    width = max(len(n) for n in names)
    print(f"{'domain':<{width}}  examples  reference  doremi")
    for n in names:
        print(f"{n:<{width}}  {doc['train_examples'][n]:>8}  {doc['reference_weights'][n]:>9.3f}  {weights[n]:>6.3f}")
    print(f"wrote {path} (use: robolearn pretrain ... --domain-weights {path})")
    return {"weights": weights, "domains_by": cfg.domains_by, **doc}


def _clone(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)
