"""Pretraining an encoder on prepared clips and/or our own episodes: `pretrain(PretrainCommand(...))`, the Python
API behind `robolearn pretrain` (registered in commands.py).

    robolearn pretrain --model v-cond --data data/ssv2-prepared --run-dir runs/v-cond
    robolearn pretrain --model v-gen --data data/ssv2-prepared:0.7 --episodes data/demos:0.3 --run-dir ...
    torchrun --standalone --nproc-per-node 8 -m robolearn.pretrain --model v-cond --data ... --run-dir ...

Every checkpoint folder (run/checkpoints/step-*) is loadable with `robolearn.encoders.load(<folder>)`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.config import opt, save_config
from robolearn.pretrain.distributed import DistInfo, barrier, init_distributed, shutdown
from robolearn.pretrain.trainer import TrainConfig, Trainer


@dataclass
class PretrainCommand:
    """`robolearn pretrain`'s config: the model, its data sources and the training loop (`train`)."""

    model: str = opt("v-cond", help="encoder id (robolearn encoders list), e.g. v-cond, v-gen, r-mvp, r-r3m-vit")
    data: list[str] = opt(
        default_factory=list, help="prepared shard folders (robolearn pretrain prepare), each DIR or DIR:WEIGHT"
    )
    episodes: list[str] = opt(
        default_factory=list, help="robolearn episode datasets read directly, each DIR or DIR:WEIGHT"
    )
    episodes_camera: str = opt("", help="camera of the episode clips (default: every camera)")
    domain_weights: Path | None = opt(
        None,
        help="domain-weights JSON (robolearn pretrain reweight): split the sources into its domains and mix "
        "them with its weights (instead of DIR:WEIGHT)",
    )
    run_dir: Path = opt(Path("runs/pretrain"), help="checkpoints, metrics.jsonl and the saved config go here")
    language_model: str = opt(
        "distilbert-base-uncased", help="frozen LM: HF hub id or local folder (offline machines: a local folder)"
    )
    image_size: int = opt(224, help="model input size")
    model_overrides: str = opt("", help="JSON of encoder config overrides, e.g. '{\"mask_ratio\": 0.9}'")
    lang_dropout: float = opt(0.0, help="per-epoch language dropout (data side)")
    gen_ratio: float = opt(0.5, help="V-Gen: fraction of generation examples")
    validate: bool = opt(True, help="validation loss each epoch (when the sources have a validation split)")
    lm_features: bool = opt(
        True,
        help="run the frozen LM once per distinct caption before training and read "
        "the features from disk (run_dir/lm_features) instead of every step",
    )
    train: TrainConfig = field(default_factory=TrainConfig)


def _weighted(spec: str) -> tuple[str, float | None]:
    path, sep, weight = spec.rpartition(":")
    if sep and path and weight.replace(".", "", 1).isdigit():
        return path, float(weight)
    return spec, None


def build_sources(cfg: PretrainCommand) -> Any:
    from robolearn.pretrain.episodes_source import EpisodeSource
    from robolearn.pretrain.shards import ShardSource

    sources: list[tuple[Any, float | None]] = []
    for spec in cfg.data:
        path, w = _weighted(spec)
        sources.append((ShardSource(path), w))
    for spec in cfg.episodes:
        path, w = _weighted(spec)
        sources.append(
            (EpisodeSource(path, camera=cfg.episodes_camera or None, tokenizer=cfg.language_model, val_fraction=0.1), w)
        )
    if not sources:
        raise ValueError("no training data: give --data (prepared clips) and/or --episodes (episode datasets)")
    weights = [w for _, w in sources]
    if cfg.domain_weights is not None:
        from robolearn.pretrain.doremi.domains import weighted_domains

        if any(w is not None for w in weights):
            raise ValueError("give either --domain-weights or DIR:WEIGHT source weights, not both")
        return weighted_domains([s for s, _ in sources], cfg.domain_weights)
    if all(w is None for w in weights):
        return [s for s, _ in sources]
    if any(w is None for w in weights):
        raise ValueError(f"give a weight to every source or to none (got {cfg.data + cfg.episodes})")
    return [(s, w) for s, w in sources]


def build_model(cfg: PretrainCommand) -> torch.nn.Module:
    from robolearn.encoders import build

    try:
        overrides = json.loads(cfg.model_overrides) if cfg.model_overrides else {}
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-overrides is not valid JSON ({e}): {cfg.model_overrides!r}") from None
    return build(cfg.model, language_model=cfg.language_model, image_size=cfg.image_size, **overrides)


def _with_validation(sources: Any) -> list:
    """The sources (or (source, weight) pairs) that have validation clips; validation uses only those."""
    items = list(sources)
    source_of = (lambda x: x[0]) if items and isinstance(items[0], tuple) else (lambda x: x)
    return [x for x in items if len(source_of(x).table.indices("val")) > 0]


def feature_store(cfg: PretrainCommand, model: torch.nn.Module, sources: Any, info: DistInfo) -> Any:
    """Rank 0 computes the caption features (or finds them computed); every rank then maps the file."""
    from robolearn.pretrain.lm_features import FeatureStore, build_feature_store

    items = list(sources)
    tables = [(x[0] if isinstance(x, tuple) else x).table for x in items]
    folder = cfg.run_dir / "lm_features"
    if info.is_main:
        build_feature_store(tables, model.language, folder, device=info.device)
    barrier(info)
    return FeatureStore(folder)


def _card(cfg: PretrainCommand, checkpoint: Path, result: Any) -> None:
    """The lineage card of the last checkpoint: its data sources, LM, config and final losses."""
    from robolearn.encoders.pretrained_lm import lm_input
    from robolearn.lineage import write_card

    inputs = [_weighted(s)[0] for s in cfg.data + cfg.episodes] + [lm_input(cfg.language_model)]
    figures = {"steps": result.steps, "epochs": result.epochs_done}
    if result.losses:
        figures["train_loss_last"] = float(np.mean(result.losses[-10:]))
    if result.val_losses:
        figures["val_loss_last"] = float(result.val_losses[-1])
    write_card(checkpoint, "encoder", inputs, cfg, figures, files=["model.safetensors", "config.json"])


def pretrain(cfg: PretrainCommand) -> int:
    """Pretrain an encoder (one process, or one process per device under torchrun)."""
    from robolearn.pretrain.datasets import dataset_for

    info = init_distributed()
    try:
        torch.manual_seed(cfg.train.seed)
        np.random.seed(cfg.train.seed)
        random.seed(cfg.train.seed)
        model = build_model(cfg)
        sources = build_sources(cfg)
        kw: dict[str, Any] = {"image_size": cfg.image_size, "seed": cfg.train.seed, "lang_dropout": cfg.lang_dropout}
        if cfg.lm_features and not cfg.model.startswith("r-mvp"):
            kw["features"] = feature_store(cfg, model, sources, info)
        if cfg.model.startswith("v-gen"):
            kw["gen_ratio"] = cfg.gen_ratio
        train_set = dataset_for(cfg.model.removesuffix("-tiny"), sources, "train", **kw)
        val_set = None
        val_sources = _with_validation(sources) if cfg.validate else []
        if val_sources:
            val_set = dataset_for(cfg.model.removesuffix("-tiny"), val_sources, "val", **kw)
        if info.is_main:
            cfg.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, cfg.run_dir, "pretrain")
            print(
                f"pretraining {cfg.model} ({sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.2f} "
                f"M trainable parameters) on {len(train_set)} examples per epoch"
                + (f", {len(val_set)} validation" if val_set is not None else "")
                + f", {info.world_size} process(es), device {info.device}"
            )
        trainer = Trainer(model, train_set, cfg.train, cfg.run_dir, info, val_set=val_set, on_epoch=train_set.set_epoch)
        result = trainer.fit()
        if info.is_main:
            last = result.last_checkpoint
            if last is not None:
                _card(cfg, last, result)
            print(
                f"done: {result.steps} optimizer steps, {result.epochs_done} epochs; last checkpoint {last} "
                f"(robolearn.encoders.load('{last}'))"
            )
    finally:
        shutdown(info)
    return 0
