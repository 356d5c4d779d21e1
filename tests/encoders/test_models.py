"""Every variant (tiny): extraction shapes, training losses, shared masks, language handling, V-Gen scoring."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from robolearn.encoders import EncoderConfig, LanguageModel, LanguageModelError, build, config_for
from robolearn.encoders.patches import random_masking

sys.path.insert(0, str(Path(__file__).parent))
from encoder_testutils import batch_for  # noqa: E402

TINY = ["v-cond-tiny", "v-dual-tiny", "v-gen-tiny", "r-mvp-tiny", "r-r3m-vit-tiny", "r-r3m-rn50-tiny"]


@pytest.fixture(scope="module")
def models(lm_dir):
    torch.manual_seed(0)
    return {name: build(name, language_model=str(lm_dir)).eval() for name in TINY}


def test_construction_is_offline_and_lazy():
    model = build("v-cond", language_model="/nonexistent/lm")  # full ViT-S, no LM load
    assert not model.language.loaded and model.config.language_dim == 768
    assert not any(k.startswith("lm") for k in model.state_dict())
    with pytest.raises(LanguageModelError, match="/nonexistent/lm"):
        model(torch.zeros(1, 3, 224, 224), "hello")


@pytest.mark.parametrize("name", ["v-cond-tiny", "v-dual-tiny", "v-gen-tiny"])
def test_voltron_extraction_shapes(models, name):
    model = models[name]
    n, d = model.config.n_patches, model.config.encoder_dim
    x = torch.randn(2, 3, 32, 32) if name == "v-cond-tiny" else torch.randn(2, 2, 3, 32, 32)
    assert model(x).shape == (2, n + 20, d)  # null language, multimodal
    assert model(x, "peel the carrot", mode="multimodal").shape == (2, n + 20, d)  # one string tiled
    assert model(x, ["a", "b"], mode="visual").shape == (2, n, d)
    feats, valid = model.extract(x, ["a cup", "push the red block left"], return_mask=True)
    assert feats.shape[:2] == valid.shape and valid[:, :n].all() and valid[0, n:].sum() < valid[1, n:].sum()
    # a missing batch axis is added; null language == [CLS]-only
    assert model(x[0]).shape == (1, n + 20, d)
    assert torch.allclose(
        model(x, None), model(x, (torch.tensor([[101] + [0] * 19]), torch.tensor([[1] + [0] * 19]))), atol=1e-6
    )
    with pytest.raises(ValueError, match="captions for 2 images"):
        model(x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="mode must be one of"):
        model(x, mode="cls")
    with pytest.raises(ValueError, match="expects images of shape"):
        model(torch.randn(2, 3, 64, 64) if name == "v-cond-tiny" else torch.randn(2, 3, 3, 32, 32))


def test_dual_extraction_returns_frame_k(models):
    model = models["v-dual-tiny"]
    x = torch.randn(1, 2, 3, 32, 32)
    null_ids, null_mask = model.language.null(1)
    full_frames = model.encode(model.embed_patches(x), model.language.encode(null_ids, null_mask), null_mask)
    n = model.config.n_patches
    assert torch.allclose(model(x), full_frames[:, n:], atol=1e-6)


def test_baseline_extraction_shapes(models):
    x = torch.randn(2, 3, 32, 32)
    mvp = models["r-mvp-tiny"]
    assert mvp(x, mode="patch").shape == (2, 16, 64)
    assert mvp(x, mode="cls").shape == (2, 1, 64)
    assert mvp(x).shape == (2, 16, 64)
    with pytest.raises(ValueError, match="no language"):
        mvp(x, "hello")
    assert models["r-r3m-vit-tiny"](x * 255).shape == (2, 1, 64)
    assert models["r-r3m-rn50-tiny"](x * 255).shape == (2, 1, 2048)


@pytest.mark.parametrize("name", TINY)
def test_training_loss_finite_with_metrics(models, name):
    model = models[name]
    loss, metrics = model(batch_for(model))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert all(torch.isfinite(torch.as_tensor(v)) for v in metrics.values())
    expected = {
        "v-cond-tiny": {"mae_loss"},
        "v-dual-tiny": {"mae_loss_0", "mae_loss_k"},
        "v-gen-tiny": {"mae_loss", "lm_loss"},
        "r-mvp-tiny": {"mae_loss"},
        "r-r3m-vit-tiny": {"tcn_loss", "reward_loss", "l1_loss", "l2_loss"},
    }.get(name, {"tcn_loss"})
    assert expected <= set(metrics)


@pytest.mark.parametrize("name", TINY)
def test_loss_decreases_on_a_fixed_batch(lm_dir, name):
    torch.manual_seed(0)
    model = build(name, language_model=str(lm_dir)).train()
    batch = batch_for(model, b=4)
    if model.config.arch in ("v-cond", "v-dual", "v-gen", "r-mvp"):
        batch["mask_noise"] = torch.rand(4, model.config.n_patches)
    if model.config.arch == "v-gen":
        batch["generate"] = torch.tensor([True, False, True, False])
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for step in range(8):
        torch.manual_seed(step)  # R3M's random negatives
        loss, _ = model(batch)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.manual_seed(0)
    final = float(model(batch)[0].detach())
    assert final < losses[0], losses + [final]


def test_dual_models_share_one_mask_across_frames(models):
    """A patch index masked in frame 0 is masked in frame k too: perturbing it in both frames changes no
    prediction, while perturbing a visible patch of frame k does."""
    model = models["v-dual-tiny"]
    batch = batch_for(model, b=1)
    noise = torch.rand(1, 16)
    m = random_masking(1, 16, model.config.mask_ratio, noise=noise)
    masked, visible = int(torch.nonzero(m.mask[0])[0]), int(m.keep_idx[0, 0])

    def predictions(images):
        frames = model.frames(images)
        patches = model.embed_patches(frames)
        vis, mm = model.mask_patches(patches, {"mask_noise": noise})
        enc = model.encode(vis, model.language.encode(batch["lang_ids"], batch["lang_mask"]), batch["lang_mask"])
        return model.reconstruct(enc[:, : 2 * vis.shape[2]].reshape(1, 2, vis.shape[2], -1), mm.restore_idx)

    def perturb(images, patch, frames):
        out = images.clone()
        r, c = divmod(patch, 4)
        for f in frames:
            out[0, f, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] += 3.0
        return out

    base = predictions(batch["images"])
    assert torch.allclose(base, predictions(perturb(batch["images"], masked, [0, 1])), atol=1e-6)
    assert not torch.allclose(base, predictions(perturb(batch["images"], visible, [1])), atol=1e-4)


@pytest.mark.parametrize("name", ["v-cond-tiny", "v-gen-tiny"])
def test_padding_key_masking_vs_voltron_compat(lm_dir, name):
    """Changing only the ids at padded positions changes the features with voltron_compat (the reference
    masks query rows, not keys), and does not without it."""
    torch.manual_seed(0)
    model = build(name, language_model=str(lm_dir)).eval()
    x = torch.randn(2, 3, 32, 32) if name == "v-cond-tiny" else torch.randn(2, 2, 3, 32, 32)
    ids, mask = model.language.tokenize(["pick up the cup", "push"])
    noisy = torch.where(mask.bool(), ids, torch.randint(200, 900, ids.shape))
    with torch.no_grad():
        a, b = model(x, (ids, mask), mode="visual"), model(x, (noisy, mask), mode="visual")
        assert torch.allclose(a, b, atol=1e-6)
        model.config.voltron_compat = True
        a, b = model(x, (ids, mask), mode="visual"), model(x, (noisy, mask), mode="visual")
        assert (a - b).abs().max() > 1e-4


def test_lm_cache_runs_each_caption_once(lm_dir):
    model = build("v-cond-tiny", language_model=str(lm_dir)).train()
    lm = model.language
    ids, mask = lm.tokenize(["open the door", "close the door", "open the door", "close the door"])
    feats = lm.encode(ids, mask)
    assert lm.stats["misses"] == 2 and lm.stats["lm_calls"] == 1
    assert torch.allclose(feats[0], feats[2]) and not torch.allclose(feats[0], feats[1])
    batch = {"images": torch.randn(4, 3, 32, 32), "lang_ids": ids, "lang_mask": mask}
    for _ in range(3):
        model(batch)
    assert lm.stats["misses"] == 2 and lm.stats["lm_calls"] == 1 and lm.stats["hits"] == 6
    # features straight from the LM, row by row, equal the cached ones
    direct = lm.model(input_ids=ids[1:2], attention_mask=mask[1:2]).last_hidden_state
    assert torch.allclose(direct[0], feats[1], atol=1e-6)
    # precomputed features skip the LM and give the same loss
    torch.manual_seed(1)
    l1 = model(batch)[0]
    torch.manual_seed(1)
    l2 = model({**batch, "lang_features": feats})[0]
    assert torch.allclose(l1, l2)
    small = LanguageModel(str(lm_dir), cache_size=1)
    small.encode(ids[:2], mask[:2])
    small.encode(ids[:1], mask[:1])
    assert small.stats["misses"] == 3  # LRU of one entry evicted "open"
    off = LanguageModel(str(lm_dir), cache_size=0)
    off.encode(ids, mask)
    off.encode(ids, mask)
    assert off.stats["lm_calls"] == 2 and off.stats["misses"] == 4  # no cache: duplicates in a batch still once


def test_tokenize_truncates_and_counts(lm_dir):
    lm = LanguageModel(str(lm_dir))
    ids, mask = lm.tokenize(["push " * 40, "push"])
    assert ids.shape == (2, 20) and mask[0].all() and mask[1].sum() == 3
    assert lm.n_truncated == 1 and int(ids[0, 0]) == 101


def test_language_dim_mismatch_is_explained(lm_dir):
    model = build("v-cond-tiny", language_model=str(lm_dir), language_dim=48)
    with pytest.raises(LanguageModelError, match="hidden size 32.*language_dim=48"):
        model(torch.randn(1, 3, 32, 32))


def test_language_dropout_hook(lm_dir):
    model = build("v-cond-tiny", language_model=str(lm_dir), lang_dropout=1.0).train()
    batch = batch_for(model, b=2)
    ids, mask, _ = model.batch_language(batch, 2, torch.device("cpu"))
    assert torch.all(ids[:, 0] == 101) and torch.all(mask.sum(1) == 1)
    model.eval()
    ids, mask, _ = model.batch_language(batch, 2, torch.device("cpu"))
    assert torch.equal(ids, batch["lang_ids"])


def test_vgen_generate_flags_route_language(models):
    model = models["v-gen-tiny"]
    batch = batch_for(model, b=2)
    batch["generate"] = torch.tensor([True, False])
    con_ids, con_mask, _, gen_ids, gen_mask, w = model.split_language(batch, 2, torch.device("cpu"))
    assert con_mask[0].sum() == 1 and torch.equal(gen_ids[0], batch["lang_ids"][0])  # generate
    assert torch.equal(con_ids[1], batch["lang_ids"][1]) and gen_mask[1].sum() == 1  # condition
    assert w.tolist() == [1.0, 0.0]
    _, metrics = model({**batch, "generate": torch.tensor([False, False])})
    assert float(metrics["lm_loss"]) == 0.0


def test_vgen_selective_vocab_head_matches_full_logits(models):
    """The loss applies the vocabulary head only to counted positions: same value and gradients as full logits."""
    model = models["v-gen-tiny"]
    torch.manual_seed(1)
    b, length, d = 4, 7, model.config.decoder_dim
    text = torch.randn(b, length, d, requires_grad=True)
    ids = torch.randint(0, model.config.vocab_size, (b, length))
    mask = torch.tensor([[1] * 7, [1, 1, 1, 0, 0, 0, 0], [1] + [0] * 6, [1] * 5 + [0, 0]])
    weight = torch.tensor([1.0, 0.0, 1.0, 0.5])
    full = (model.token_nll(model.token_head(text), ids, mask) * weight).sum()
    g_full = torch.autograd.grad(full, [text, model.token_head.weight])
    nll = model.weighted_token_nll(text, ids, mask, weight)
    assert nll[1] == 0.0  # weight 0: never reaches the head
    fast = (nll * weight).sum()
    g_fast = torch.autograd.grad(fast, [text, model.token_head.weight])
    assert torch.allclose(fast, full, atol=1e-5)
    for a, c in zip(g_fast, g_full, strict=True):
        assert torch.allclose(a, c, atol=1e-6)
    none = model.weighted_token_nll(text, ids, mask, torch.zeros(b)).sum()  # no generating example in a batch
    assert float(none) == 0.0
    assert torch.autograd.grad(none, model.token_head.weight)[0].abs().sum() == 0


def test_vgen_score_prefers_the_trained_caption(lm_dir):
    torch.manual_seed(0)
    model = build("v-gen-tiny", language_model=str(lm_dir)).train()
    frames = torch.randn(1, 2, 3, 32, 32)
    captions = ["open the red drawer", "push the blue cube left", "close the cabinet door"]
    before = model.eval().score(frames, captions)
    assert before.shape == (3,) and torch.isfinite(before).all() and (before < 0).all()
    ids, mask = model.language.tokenize(captions[:1])
    batch = {"images": frames, "lang_ids": ids, "lang_mask": mask, "generate": torch.tensor([True])}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(25):
        loss, _ = model(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.eval().score(frames[0], captions)
    assert int(after.argmax()) == 0 and after[0] > before[0]
    with pytest.raises(ValueError, match="one frame pair"):
        model.score(torch.randn(2, 2, 3, 32, 32), captions)


def test_bad_batches_name_the_problem(models):
    with pytest.raises(KeyError, match="images"):
        models["v-cond-tiny"]({"lang_ids": torch.zeros(1, 20)})
    with pytest.raises(KeyError, match="lang_ids"):
        models["v-cond-tiny"]({"images": torch.randn(1, 3, 32, 32)})
    with pytest.raises(ValueError, match=r"quintets"):
        models["r-r3m-vit-tiny"]({"images": torch.randn(1, 4, 3, 32, 32)})
    with pytest.raises(TypeError, match="preprocess"):
        models["v-cond-tiny"](torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="dict batch"):
        models["r-mvp-tiny"]([torch.randn(1, 3, 32, 32)])


def test_config_validation_and_sizes():
    with pytest.raises(ValueError, match="image_size"):
        EncoderConfig(arch="v-cond", image_size=100, patch_size=16)
    with pytest.raises(ValueError, match="arch"):
        EncoderConfig(arch="v-nope")
    with pytest.raises(ValueError, match="encoder_dim"):
        EncoderConfig(arch="v-cond", encoder_dim=100, encoder_heads=3)
    small, base = config_for("v-cond"), config_for("v-gen-base")
    assert (small.encoder_depth, small.encoder_dim, small.encoder_heads, small.decoder_dim) == (12, 384, 6, 192)
    assert (base.encoder_dim, base.encoder_heads, base.decoder_depth, base.decoder_dim, base.decoder_heads) == (
        768,
        12,
        8,
        512,
        16,
    )
    assert config_for("v-cond", image_size=112).n_patches == 49
