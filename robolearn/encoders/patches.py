"""Patchify / unpatchify, per-sample random masking and the normalised-pixel MAE loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """[..., C, H, W] -> [..., (H/p)*(W/p), p*p*C]; each patch flattened row-major, channels last."""
    *lead, c, h, w = images.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}")
    gh, gw = h // patch, w // patch
    x = images.reshape(*lead, c, gh, patch, gw, patch)
    x = x.movedim(-5, -1)  # [..., gh, p, gw, p, C]
    x = x.transpose(-4, -3)  # [..., gh, gw, p, p, C]
    return x.reshape(*lead, gh * gw, patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """Inverse of `patchify` for square images: [..., N, p*p*C] -> [..., C, H, W]."""
    *lead, n, _ = patches.shape
    g = round(n**0.5)
    if g * g != n:
        raise ValueError(f"unpatchify expects a square number of patches, got {n}")
    x = patches.reshape(*lead, g, g, patch, patch, channels)
    x = x.transpose(-4, -3)  # [..., g, p, g, p, C]
    x = x.movedim(-1, -5)  # [..., C, g, p, g, p]
    return x.reshape(*lead, channels, g * patch, g * patch)


@dataclass
class Masking:
    keep_idx: torch.Tensor  # [B, n_keep] indices of visible patches (in shuffled order)
    restore_idx: torch.Tensor  # [B, N] argsort of the shuffle: gathers [visible ; masked] back to patch order
    mask: torch.Tensor  # [B, N] float, 0 = keep, 1 = removed (MAE convention)


def random_masking(
    batch: int, n_patches: int, mask_ratio: float, device: torch.device | str = "cpu", noise: torch.Tensor | None = None
) -> Masking:
    """Per-sample random masking by argsort of uniform noise. One mask per sample: multi-frame models apply
    the same `keep_idx` to every frame so no patch can be copied from another frame."""
    n_keep = int(n_patches * (1 - mask_ratio))
    if noise is None:
        noise = torch.rand(batch, n_patches, device=device)
    shuffle = torch.argsort(noise, dim=1)
    restore = torch.argsort(shuffle, dim=1)
    mask = torch.ones(batch, n_patches, device=noise.device)
    mask[:, :n_keep] = 0
    mask = torch.gather(mask, 1, restore)
    return Masking(keep_idx=shuffle[:, :n_keep], restore_idx=restore, mask=mask)


def gather_tokens(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """tokens [B, (T,) N, D], idx [B, K] -> [B, (T,) K, D] (same indices for every frame)."""
    if tokens.ndim == 3:
        return torch.gather(tokens, 1, idx[..., None].expand(-1, -1, tokens.shape[-1]))
    b, t, _, d = tokens.shape
    return torch.gather(tokens, 2, idx[:, None, :, None].expand(b, t, idx.shape[1], d))


def unshuffle(visible: torch.Tensor, mask_token: torch.Tensor, restore_idx: torch.Tensor) -> torch.Tensor:
    """[B, (T,) K, D] visible tokens + mask tokens -> [B, (T,) N, D] in the original patch order."""
    n = restore_idx.shape[1]
    fill = mask_token.reshape(*([1] * (visible.ndim - 1)), -1).expand(
        *visible.shape[:-2], n - visible.shape[-2], visible.shape[-1]
    )
    full = torch.cat([visible, fill.to(visible.dtype)], dim=-2)
    return gather_tokens(full, restore_idx)


def normalized_targets(images: torch.Tensor, patch: int) -> torch.Tensor:
    """Per-patch normalised pixels: (x - mean) / sqrt(unbiased var + 1e-6)."""
    target = patchify(images, patch)
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, unbiased=True, keepdim=True)
    return (target - mean) / (var + 1e-6) ** 0.5


def mae_loss(prediction: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch: int) -> torch.Tensor:
    """Norm-pixel MSE, averaged per patch, then over masked (mask == 1) patches only.
    prediction [B, N, p*p*C], images [B, C, H, W], mask [B, N]."""
    per_patch = ((prediction - normalized_targets(images, patch)) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum()
