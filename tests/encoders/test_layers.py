"""Shared pieces: position embeddings, patchify, masking, MAE loss, attention masks, MAP."""

from __future__ import annotations

import math

import pytest
import torch

from robolearn.encoders import MAPExtractor, build
from robolearn.encoders.layers import Attention, AttentionMask, Block, RMSNorm
from robolearn.encoders.patches import gather_tokens, mae_loss, patchify, random_masking, unpatchify, unshuffle
from robolearn.encoders.posembed import sincos_2d


def test_sincos_2d_layout():
    d, g = 16, 4
    pe = sincos_2d(d, g)
    assert pe.shape == (g * g, d)
    # patch (row=1, col=2): first half encodes the column, second half the row
    p = 1 * g + 2
    w = 1.0 / 10000 ** (torch.arange(d // 4) / (d / 4))
    assert torch.allclose(pe[p, : d // 4], torch.sin(2 * w), atol=1e-6)
    assert torch.allclose(pe[p, d // 4 : d // 2], torch.cos(2 * w), atol=1e-6)
    assert torch.allclose(pe[p, d // 2 : 3 * d // 4], torch.sin(1 * w), atol=1e-6)
    with_cls = sincos_2d(d, g, cls_token=True)
    assert with_cls.shape == (g * g + 1, d) and torch.all(with_cls[0] == 0)
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(18, 4)


def test_patchify_roundtrip_and_layout():
    x = torch.randn(2, 3, 16, 24)
    p = patchify(x, 8)
    assert p.shape == (2, 6, 8 * 8 * 3)
    # patch 4 = row 1, col 1; its first entry is pixel (8, 8), channels last
    assert torch.equal(p[0, 4, :3], x[0, :, 8, 8])
    sq = torch.randn(2, 2, 3, 16, 16)
    assert torch.equal(unpatchify(patchify(sq, 4), 4), sq)
    with pytest.raises(ValueError, match="not a multiple"):
        patchify(torch.randn(1, 3, 10, 10), 4)


def test_random_masking_convention_and_restore():
    m = random_masking(4, 16, 0.75)
    assert m.mask.shape == (4, 16) and m.keep_idx.shape == (4, 4)
    assert torch.all(m.mask.sum(1) == 12)  # 1 = removed
    assert torch.all(m.mask.gather(1, m.keep_idx) == 0)  # kept ones are 0
    assert not torch.equal(m.keep_idx[0], m.keep_idx[1]) or not torch.equal(m.keep_idx[1], m.keep_idx[2])
    tokens = torch.randn(4, 16, 5)
    visible = gather_tokens(tokens, m.keep_idx)
    full = unshuffle(visible, torch.zeros(5), m.restore_idx)
    keep = m.mask == 0
    assert torch.equal(full[keep], tokens[keep]) and torch.all(full[~keep] == 0)
    # one mask for every frame of a [B, T, N, D] tensor
    frames = torch.randn(4, 2, 16, 5)
    vis = gather_tokens(frames, m.keep_idx)
    assert torch.equal(vis[:, 0], gather_tokens(frames[:, 0], m.keep_idx))
    assert torch.equal(vis[:, 1], gather_tokens(frames[:, 1], m.keep_idx))


def test_mae_loss_only_masked_patches_and_normalised_targets():
    images = torch.randn(2, 3, 16, 16)
    m = random_masking(2, 16, 0.5)
    target = patchify(images, 4)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert float(mae_loss(target, images, m.mask, 4)) < 1e-10
    pred = target.clone()
    pred[m.mask == 0] += 5.0  # errors on visible patches only
    assert float(mae_loss(pred, images, m.mask, 4)) < 1e-10
    pred[m.mask == 1] += 1.0
    assert math.isclose(float(mae_loss(pred, images, m.mask, 4)), 1.0, rel_tol=1e-5)


def test_rmsnorm():
    x = torch.randn(3, 8) * 5
    y = RMSNorm(8)(x)
    assert torch.allclose(y.pow(2).mean(-1), torch.ones(3), atol=1e-5)


def test_attention_key_mask_vs_reference_rows():
    torch.manual_seed(0)
    attn = Attention(8, 2)
    x = torch.randn(2, 5, 8)
    valid = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    keymask = AttentionMask.from_padding(valid, compat=False)
    out = attn(x, keymask)
    x2 = x.clone()
    x2[0, 3:] = torch.randn(2, 8)  # change padded tokens only
    out2 = attn(x2, keymask)
    assert torch.allclose(out[0, :3], out2[0, :3], atol=1e-6)  # real rows do not see padded keys
    assert torch.allclose(out[1], attn(x, None)[1], atol=1e-6)  # an unpadded row: plain attention
    compat = AttentionMask.from_padding(valid, compat=True)
    c1, c2 = attn(x, compat), attn(x2, compat)
    assert not torch.allclose(c1[0, :3], c2[0, :3], atol=1e-4)  # reference: keys are not masked
    v = attn.qkv(x)[..., 16:].reshape(2, 5, 2, 4).transpose(1, 2)  # padded rows = mean of all values
    expect = attn.proj(v.mean(-2, keepdim=True).expand(2, 2, 5, 4).transpose(1, 2).reshape(2, 5, 8))
    assert torch.allclose(c1[0, 3:], expect[0, 3:], atol=1e-6)


def test_block_styles():
    b = Block(16, 4, style="voltron")
    assert b(torch.randn(2, 3, 16)).shape == (2, 3, 16)
    assert float(b.ls1.gamma.detach()[0]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="style"):
        Block(16, 4, style="other")


def test_map_extractor_shapes_and_key_masking():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 32)
    one = MAPExtractor(32, 4)
    assert one(x).shape == (3, 32)
    many = MAPExtractor(32, 4, n_latents=5)
    assert many(x).shape == (3, 5, 32)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[:, 5:] = 0
    x2 = x.clone()
    x2[:, 5:] = torch.randn(3, 2, 32)
    assert torch.allclose(one(x, mask), one(x2, mask), atol=1e-6)  # padded tokens are masked keys
    assert not torch.allclose(one(x), one(x2), atol=1e-4)
    x3 = x.clone()
    x3[:, 0] += 1.0
    assert not torch.allclose(one(x, mask), one(x3, mask), atol=1e-4)
    enc = build("v-cond-tiny")
    m = MAPExtractor.for_encoder(enc, n_latents=2)
    assert (m.embed_dim, m.n_heads) == (64, 8)
    with pytest.raises(ValueError, match="expects"):
        one(torch.randn(3, 7, 16))
    with pytest.raises(ValueError, match="n_latents"):
        MAPExtractor(32, 4, n_latents=0)
