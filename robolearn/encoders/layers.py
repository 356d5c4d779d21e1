"""Transformer building blocks shared by every encoder.

Two block styles:
- "voltron": pre-norm RMSNorm, SwishGLU MLP, LayerScale (0.1) on both residual branches;
- "mae" (R-MVP, R-R3M baselines): pre-norm LayerNorm (eps 1e-6), GELU MLP, no LayerScale.

Attention uses `scaled_dot_product_attention`. Padding is handled by an `AttentionMask`:
- `allow` (bool, True = may attend, broadcastable to [B, H, N, N]) masks KEYS: the correct behaviour;
- `null_rows` ([B, N] bool) reproduces the reference (voltron_compat): it reshapes a padding mask to
  [B, 1, N, 1], so a padded *query row* has every score set to the dtype minimum, its softmax is uniform
  and its output is the mean of all values; keys are never masked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / max(||x|| * dim^-0.5, eps) * weight."""

    def __init__(self, dim: int, eps: float = 1e-8) -> None:
        super().__init__()
        self.scale, self.eps = dim**-0.5, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / rms.clamp(min=self.eps) * self.weight


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 0.1) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class SwishGLU(nn.Module):
    """fc1: dim -> 2*hidden split into (value, gate); value * SiLU(gate); fc2: hidden -> dim."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, 2 * hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(value * F.silu(gate))


class GeluMLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


@dataclass
class AttentionMask:
    allow: torch.Tensor | None = None  # bool, True = query may attend to key; broadcast to [B, H, N, N]
    null_rows: torch.Tensor | None = None  # [B, N] bool: reference-compat rows that average all values

    @staticmethod
    def from_padding(valid: torch.Tensor | None, compat: bool, allow: torch.Tensor | None = None) -> AttentionMask:
        """`valid` [B, N] (1 = real token). Correct mode masks padded keys (combined with `allow`, e.g. a
        prefix-LM pattern); compat mode keeps `allow` for real rows and nulls padded query rows."""
        if valid is None:
            return AttentionMask(allow=allow)
        valid = valid.bool()
        # Skipping an all-valid mask needs a host sync; a compiled graph always masks (same result, no break).
        all_valid = not torch.compiler.is_compiling() and bool(valid.all())
        if compat:
            return AttentionMask(allow=allow, null_rows=None if all_valid else ~valid)
        if all_valid:
            return AttentionMask(allow=allow)
        keys = valid[:, None, None, :]
        return AttentionMask(allow=keys if allow is None else (allow & keys))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim, bias=qkv_bias), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: AttentionMask | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        allow = None if mask is None else mask.allow
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allow)  # [B, H, N, d_h]
        if mask is not None and mask.null_rows is not None:
            uniform = v.mean(dim=-2, keepdim=True).expand_as(out)
            out = torch.where(mask.null_rows[:, None, :, None], uniform, out)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, style: str = "voltron") -> None:
        super().__init__()
        if style not in ("voltron", "mae"):
            raise ValueError(f"block style must be 'voltron' or 'mae', got {style!r}")
        hidden = int(mlp_ratio * dim)
        voltron = style == "voltron"
        self.norm1 = RMSNorm(dim) if voltron else nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = RMSNorm(dim) if voltron else nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SwishGLU(dim, hidden) if voltron else GeluMLP(dim, hidden)
        self.ls1 = LayerScale(dim) if voltron else nn.Identity()
        self.ls2 = LayerScale(dim) if voltron else nn.Identity()

    def forward(self, x: torch.Tensor, mask: AttentionMask | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), mask))
        return x + self.ls2(self.mlp(self.norm2(x)))


class Transformer(nn.Module):
    """`depth` blocks followed by a final norm."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_ratio: float = 4.0, style: str = "voltron") -> None:
        super().__init__()
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio, style) for _ in range(depth)])
        self.norm = RMSNorm(dim) if style == "voltron" else nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, mask: AttentionMask | None = None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mask)
        return self.norm(x)


class PatchEmbed(nn.Module):
    """Conv2d(C, D, p, stride p): [B, C, H, W] -> [B, N, D]."""

    def __init__(self, patch: int, dim: int, in_channels: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def init_weights(module: nn.Module) -> None:
    """The reference initialisation: xavier-uniform Linear weights with zero bias, LayerNorm (1, 0), and
    every PatchEmbed conv initialised as if it were a Linear layer. Tokens are initialised by each model."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, PatchEmbed):
            nn.init.xavier_uniform_(m.proj.weight.view(m.proj.weight.shape[0], -1))
