"""load()/save(): our format round trip, the reference's released and DDP layouts, and clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from robolearn.encoders import CheckpointMismatchError, available_models, build, load, save
from robolearn.encoders.reference import our_name, reference_name, to_reference_state_dict

TINY = ["v-cond-tiny", "v-dual-tiny", "v-gen-tiny", "r-mvp-tiny", "r-r3m-vit-tiny", "r-r3m-rn50-tiny"]


def inputs(model):
    s = model.config.image_size
    if model.config.arch in ("v-dual", "v-gen"):
        return torch.randn(2, 2, 3, s, s)
    return torch.randn(2, 3, s, s) * (255 if model.config.arch.startswith("r-r3m") else 1)


def features(model, x):
    with torch.no_grad():
        return model(x, ["pick up the cup", "push"]) if model.config.arch.startswith("v-") else model(x)


def reference_kwargs(model) -> dict:
    """The reference constructor's kwargs for a tiny model, as a released <id>-config.json would hold."""
    c = model.config
    if c.arch == "r-r3m-rn50":
        return dict(
            resolution=c.image_size,
            fc_dim=2048,
            language_model="distilbert-base-uncased",
            hf_cache="x",
            language_dim=c.language_dim,
            reward_dim=c.reward_dim,
            n_negatives=3,
            lang_reward_weight=1.0,
            tcn_weight=1.0,
            l1_weight=1e-5,
            l2_weight=1e-5,
            optimizer="adam",
            lr=1e-4,
        )
    if c.arch == "r-r3m-vit":
        return dict(
            resolution=c.image_size,
            patch_size=c.patch_size,
            depth=c.encoder_depth,
            embed_dim=c.encoder_dim,
            n_heads=c.encoder_heads,
            language_model="distilbert-base-uncased",
            hf_cache="x",
            language_dim=c.language_dim,
            reward_dim=c.reward_dim,
            n_negatives=3,
            lang_reward_weight=1.0,
            tcn_weight=1.0,
            l1_weight=1e-5,
            l2_weight=1e-5,
            optimizer="adam",
            schedule="linear-warmup+cosine-decay",
            lr=1e-4,
            min_lr=0.0,
            warmup_epochs=0,
            max_epochs=400,
        )
    kw = dict(
        resolution=c.image_size,
        patch_size=c.patch_size,
        encoder_depth=c.encoder_depth,
        encoder_embed_dim=c.encoder_dim,
        encoder_n_heads=c.encoder_heads,
        decoder_depth=c.decoder_depth,
        decoder_embed_dim=c.decoder_dim,
        decoder_n_heads=c.decoder_heads,
        optimizer="adamw",
        schedule="linear-warmup+cosine-decay",
        base_lr=1.5e-4,
        min_lr=0.0,
        effective_bsz=1024,
        betas=[0.9, 0.95],
        weight_decay=0.05,
        warmup_epochs=20,
        max_epochs=400,
        mask_ratio=0.75,
    )
    if c.arch != "r-mvp":
        kw.update(language_model="distilbert-base-uncased", hf_cache="x", language_dim=c.language_dim)
    if c.arch == "v-gen":
        kw.update(max_lang_len=20, vocab_size=c.vocab_size, mae_weight=1.0, lm_weight=0.5)
    return kw


def reference_state(model) -> dict:
    """Our weights under the reference's names, plus the extra keys the reference stores."""
    sd = to_reference_state_dict(model.state_dict(), model.config.arch)
    sd["lm.embeddings.word_embeddings.weight"] = torch.zeros(3, 3)  # its frozen DistilBERT: dropped
    if model.config.arch.startswith(("v-", "r-mvp")):
        sd["encoder_pe"] = torch.zeros(1, 16 + (model.config.arch == "r-mvp"), model.config.encoder_dim)
    return sd


@pytest.mark.parametrize("name", TINY)
def test_save_load_roundtrip_identical(tmp_path, lm_dir, name):
    torch.manual_seed(0)
    model = build(name, language_model=str(lm_dir)).eval()
    x = inputs(model)
    path = save(model, tmp_path / name)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded, _ = load(path)
    assert loaded.config == model.config and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert torch.equal(features(model, x), features(loaded, x))
    again, _ = load(path / "model.safetensors", freeze=False)
    assert all(p.requires_grad for p in again.parameters())


def test_name_mapping_table_roundtrip():
    for name in TINY:
        model = build(name)
        for key in model.state_dict():
            ref = reference_name(key, model.config.arch)
            assert our_name(ref) == key, (name, key, ref)
    assert our_name("encoder_blocks.3.mlp.0.project.weight") == "encoder.blocks.3.mlp.fc1.weight"
    assert our_name("decoder_blocks.0.pre_norm_attn.g") == "decoder.blocks.0.norm1.weight"
    assert our_name("img_enc_token") == "image_token" and our_name("ctx_dec_pe") == "decoder_frame_embed"
    assert our_name("resnet.layer1.0.bn1.running_mean") == "trunk.layer1.0.bn1.running_mean"


@pytest.mark.parametrize("name", TINY)
def test_reference_released_layout(tmp_path, lm_dir, name):
    """<id>-config.json + <id>.pt holding [state_dict, optimizer_state] with bare reference keys."""
    torch.manual_seed(0)
    model = build(name, language_model=str(lm_dir)).eval()
    x = inputs(model)
    folder = tmp_path / "release"
    folder.mkdir()
    stem = name.removesuffix("-tiny")
    (folder / f"{stem}-config.json").write_text(json.dumps(reference_kwargs(model)))
    torch.save([reference_state(model), {"state": {}, "param_groups": []}], folder / f"{stem}.pt")
    loaded, _ = load(folder, language_model=str(lm_dir))
    assert loaded.config.arch == model.config.arch and loaded.config.voltron_compat  # reference default
    assert loaded.config.name == stem
    model.config.voltron_compat = True
    assert torch.allclose(features(model, x), features(loaded, x), atol=1e-6)
    off, _ = load(folder / f"{stem}.pt", language_model=str(lm_dir), voltron_compat=False)
    assert not off.config.voltron_compat


def test_reference_ddp_layout_without_config(tmp_path, lm_dir):
    """The reference's DDP checkpoints: {"model_state_dict", "optimizer_state_dict"} with `module.` keys, and
    no config JSON: sizes are inferred from the weights."""
    torch.manual_seed(0)
    model = build("v-gen-tiny", language_model=str(lm_dir), voltron_compat=True).eval()
    sd = {f"module.{k}": v for k, v in reference_state(model).items()}
    sd["module.encoder_pe"] = torch.zeros(1, 16, 64)
    sd["module.prefix_mask"] = torch.zeros(1, 1, 2 * 16 + 20, 2 * 16 + 20)
    path = tmp_path / "local-epoch=3-step=1500-t=100.pt"
    torch.save({"model_state_dict": sd, "optimizer_state_dict": {}}, path)
    with pytest.warns(UserWarning, match="encoder_heads, decoder_heads not in the config; guessed"):
        loaded, _ = load(path, language_model=str(lm_dir))
    c = loaded.config
    assert (
        c.arch,
        c.image_size,
        c.patch_size,
        c.encoder_depth,
        c.encoder_dim,
        c.decoder_dim,
        c.vocab_size,
        c.language_dim,
        c.max_lang_len,
    ) == ("v-gen", 32, 8, 2, 64, 32, 1000, 32, 20)
    x = inputs(model)
    assert torch.allclose(features(model, x), features(loaded, x), atol=1e-6)


def test_mismatched_keys_and_shapes_are_listed(tmp_path, lm_dir):
    model = build("v-cond-tiny", language_model=str(lm_dir))
    sd = reference_state(model)
    del sd["lang2encoder.bias"]
    sd["encoder2decoder.weight"] = torch.zeros(7, 64)
    sd["some_new_head.weight"] = torch.zeros(2)
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "v-cond-config.json").write_text(json.dumps(reference_kwargs(model)))
    torch.save([sd, {}], folder / "v-cond.pt")
    with pytest.raises(CheckpointMismatchError) as err:
        load(folder)
    msg = str(err.value)
    assert "1 missing key(s): lang_proj.bias" in msg
    assert "some_new_head.weight (no mapping)" in msg
    assert "decoder_embed.weight (reference encoder2decoder.weight): checkpoint (7, 64) vs model (32, 64)" in msg
    # our own format: a wrong-size model
    path = save(build("v-cond-tiny"), tmp_path / "ours")
    cfg = json.loads((path / "config.json").read_text())
    cfg["decoder_dim"] = 64
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped.*decoder_embed.weight: checkpoint \(32, 64\)"):
        load(path)
    cfg["color"] = "red"
    (path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="unknown encoder config field.*color"):
        load(path)


def test_reference_config_disagreeing_with_weights(tmp_path):
    model = build("v-cond-tiny")
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "v-cond-config.json").write_text(json.dumps({**reference_kwargs(model), "arch": "v-gen"}))
    torch.save([reference_state(model), {}], folder / "v-cond.pt")
    with pytest.raises(ValueError, match="config says 'v-gen' but the weights are a 'v-cond'"):
        load(folder)


def test_unknown_names_and_missing_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'v-cnod'.*'v-cond'"):
        load("v-cnod")
    with pytest.raises(FileNotFoundError, match=r"no local checkpoint for 'v-cond'.*pretrained=False"):
        load("v-cond", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(str(tmp_path / "nope" / "model.pt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        load(tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        load(tmp_path / "junk.pt")


def test_registry_and_random_weights():
    names = available_models()
    for n in (
        "v-cond",
        "v-dual",
        "v-gen",
        "v-cond-base",
        "v-dual-base",
        "v-gen-base",
        "r-mvp",
        "r-r3m-vit",
        "r-r3m-rn50",
        "v-cond-tiny",
    ):
        assert n in names
    model, _ = load("v-dual-tiny", pretrained=False)
    assert model.config.arch == "v-dual" and not model.training


def test_local_cache_dir_and_preprocess(tmp_path, lm_dir):
    save(build("r-mvp-tiny"), tmp_path / "r-mvp-tiny")
    model, preprocess = load("r-mvp-tiny", cache_dir=tmp_path)
    image = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)
    x = preprocess(image)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and x.min() < 0  # ImageNet-normalised
    assert model(x[None], mode="cls").shape == (1, 1, 64)
    _, r3m_pre = load("r-r3m-vit-tiny", pretrained=False)
    y = r3m_pre(image)
    assert y.shape == (3, 32, 32) and y.min() >= 0 and y.max() > 1.5  # 0-255 range
