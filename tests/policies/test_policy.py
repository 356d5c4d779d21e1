"""Policy construction, closed-loop acting, temporal ensembling, checkpoints and their bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robolearn.policies import (
    ChunkHeadConfig,
    MapMlpHeadConfig,
    PolicyCheckpointError,
    PolicyConfig,
    build_policy,
    load_policy,
    save_policy,
)


def _obs(size: int = 32, cams=("exterior_1", "wrist"), seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "images": {c: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for c in cams},
        "proprio": rng.normal(size=15).astype(np.float32),
        "language": "press the button",
    }


@pytest.mark.parametrize(
    "encoder", ["scratch-cnn", "resnet18", "r-mvp-tiny", "v-cond-tiny", "v-dual-tiny", "r-r3m-vit-tiny"]
)
@pytest.mark.parametrize("head", ["map-mlp", "chunk"])
def test_every_backbone_and_head_acts(encoder, head, lm_dir):
    cfg = PolicyConfig(
        encoder=encoder,
        head=ChunkHeadConfig(chunk=4, hidden=32) if head == "chunk" else MapMlpHeadConfig(chunk=1, hidden=32),
        language_model=str(lm_dir),
        image_size=32,
    )
    policy = build_policy(cfg)
    runner = policy.runner()
    a = runner.act(_obs())
    assert a.shape == (7,) and a.dtype == np.float32 and np.isfinite(a).all()
    frozen = [p for n, p in policy.named_parameters() if n.startswith("backbone.")]
    assert all(not p.requires_grad for p in frozen) == (encoder not in ("scratch-cnn", "resnet18"))


def test_unfreeze_last_blocks_trains_only_those(lm_dir):
    policy = build_policy(PolicyConfig(encoder="v-cond-tiny", unfreeze_last=1, language_model=str(lm_dir)))
    trainable = {n for n, p in policy.backbone.named_parameters() if p.requires_grad}
    assert trainable and all("blocks.0." not in n for n in trainable)
    assert any("blocks.1." in n for n in trainable)
    assert not policy.config.caches_features
    with pytest.raises(ValueError, match="only 2 blocks"):
        build_policy(PolicyConfig(encoder="v-cond-tiny", unfreeze_last=3, language_model=str(lm_dir)))


def test_temporal_ensembling_weights_oldest_most():
    policy = build_policy(
        PolicyConfig(encoder="scratch-cnn", head=ChunkHeadConfig(chunk=3, ensemble_decay=0.5), image_size=32)
    )
    runner = policy.runner()
    chunks = [np.full((3, 7), float(v)) for v in (1.0, 2.0, 3.0)]
    outs = [runner._ensemble(0, c) for c in chunks]
    assert outs[0] == pytest.approx(np.full(7, 1.0))
    w = np.exp(-0.5 * np.arange(2))
    assert outs[1] == pytest.approx(np.full(7, (w[0] * 1 + w[1] * 2) / w.sum()))
    w = np.exp(-0.5 * np.arange(3))
    assert outs[2] == pytest.approx(np.full(7, (w @ [1, 2, 3]) / w.sum()))
    runner.reset(0)
    assert runner._ensemble(0, chunks[2]) == pytest.approx(np.full(7, 3.0))


def test_batched_act_matches_per_env_act():
    policy = build_policy(PolicyConfig(encoder="scratch-cnn", image_size=32))
    obs = [_obs(seed=i) for i in range(3)]
    single = [policy.runner().act(o) for o in obs]
    batched = {
        "images": {c: np.stack([o["images"][c] for o in obs]) for c in obs[0]["images"]},
        "proprio": np.stack([o["proprio"] for o in obs]),
        "language": [o["language"] for o in obs],
    }
    out = policy.runner(3).act(batched)
    assert out.shape == (3, 7)
    np.testing.assert_allclose(out, np.stack(single), atol=1e-5)


def test_missing_camera_and_bad_proprio_are_named():
    runner = build_policy(PolicyConfig(encoder="scratch-cnn", image_size=32)).runner()
    with pytest.raises(KeyError, match="wrist"):
        runner.act(_obs(cams=("exterior_1",)))
    bad = _obs()
    bad["proprio"] = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="expects 15"):
        runner.act(bad)


def test_save_load_roundtrip_gives_the_same_actions(tmp_path, lm_dir):
    policy = build_policy(
        PolicyConfig(encoder="v-cond-tiny", head=ChunkHeadConfig(chunk=4, hidden=32), language_model=str(lm_dir))
    )
    policy.set_normalization((np.arange(7.0), np.full(7, 2.0)), (np.zeros(15), np.ones(15)))
    save_policy(policy, tmp_path / "p", {"note": "x"})
    loaded = load_policy(tmp_path / "p")
    o = _obs()
    np.testing.assert_allclose(loaded.runner().act(o), policy.eval().runner().act(o), atol=1e-6)
    assert torch.equal(loaded.action_shift, policy.action_shift)


def test_corrupted_checkpoint_is_refused(tmp_path):
    policy = build_policy(PolicyConfig(encoder="scratch-cnn", image_size=32))
    d = save_policy(policy, tmp_path / "p")
    w = d / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    with pytest.raises(PolicyCheckpointError, match="model.safetensors.*corrupted"):
        load_policy(d)
    d2 = save_policy(policy, tmp_path / "q")
    (d2 / "config.json").write_text("{not json")
    with pytest.raises(PolicyCheckpointError, match="config.json: not valid JSON"):
        load_policy(d2)
    with pytest.raises(PolicyCheckpointError, match="missing model.safetensors"):
        (tmp_path / "r").mkdir()
        (tmp_path / "r" / "config.json").write_text("{}")
        load_policy(tmp_path / "r")


def test_encoder_head_feature_mismatch_is_caught_at_load(tmp_path):
    d = save_policy(build_policy(PolicyConfig(encoder="scratch-cnn", image_size=32)), tmp_path / "p")
    with pytest.raises(PolicyCheckpointError, match="512-d features but the head .* 64-d"):
        load_policy(d, encoder="resnet18")
    # weights whose shapes contradict the config are named key by key
    doc = json.loads((d / "config.json").read_text())
    doc["policy"]["head"]["hidden"] = 128
    (d / "config.json").write_text(json.dumps(doc))
    with pytest.raises(PolicyCheckpointError, match="mis-shaped: head"):
        load_policy(d)
