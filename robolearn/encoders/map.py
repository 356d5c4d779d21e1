"""MAPExtractor: multi-head attention pooling (Set Transformer style) of an encoder's token sequence into
`n_latents` vectors, with the reference's post-norm RMSNorm + SwishGLU block:

    lat = norm(lat + attn(q = lat, kv = projection(x)));   lat = norm(lat + SwishGLU-MLP(lat))

Unlike the reference, padded tokens are masked as KEYS (pass `mask`, 1 = real token, e.g. from
`model.extract(..., return_mask=True)`). The reference uses 2 x the backbone's heads: `for_encoder()` does so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.encoders.layers import RMSNorm, SwishGLU


class MAPAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"MAP embed_dim {dim} is not divisible by n_heads={heads}")
        self.heads = heads
        self.q, self.kv = nn.Linear(dim, dim, bias=False), nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, latents: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        (b, k, d), n, h = latents.shape, x.shape[1], self.heads
        q = self.q(latents).reshape(b, k, h, d // h).transpose(1, 2)
        key, value = self.kv(x).reshape(b, n, 2, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        allow = None if mask is None else mask.bool()[:, None, None, :]
        out = F.scaled_dot_product_attention(q, key, value, attn_mask=allow)
        return self.proj(out.transpose(1, 2).reshape(b, k, d))


class MAPExtractor(nn.Module):
    """[B, N, D] tokens (+ optional [B, N] validity mask) -> [B, D] for one latent, [B, K, D] for K."""

    def __init__(self, embed_dim: int, n_heads: int, n_latents: int = 1, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        if n_latents < 1:
            raise ValueError(f"n_latents must be >= 1, got {n_latents}")
        self.embed_dim, self.n_heads, self.n_latents = embed_dim, n_heads, n_latents
        self.projection = nn.Linear(embed_dim, embed_dim)
        self.latents = nn.Parameter(torch.randn(n_latents, embed_dim) * 0.02)
        self.attn_norm, self.attn = RMSNorm(embed_dim), MAPAttention(embed_dim, n_heads)
        self.mlp_norm, self.mlp = RMSNorm(embed_dim), SwishGLU(embed_dim, int(mlp_ratio * embed_dim))

    @classmethod
    def for_encoder(cls, encoder: nn.Module, n_latents: int = 1, mlp_ratio: float = 4.0) -> MAPExtractor:
        """Sized like the reference's `instantiate_extractor(backbone, n_latents)()`: 2 x the backbone's heads."""
        return cls(encoder.embed_dim, 2 * encoder.n_heads, n_latents, mlp_ratio)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != self.embed_dim:
            raise ValueError(f"MAPExtractor expects [B, N, {self.embed_dim}] tokens; got {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"MAPExtractor mask must be {tuple(x.shape[:2])}; got {tuple(mask.shape)}")
        lat = self.latents[None].expand(x.shape[0], -1, -1).to(x.dtype)
        lat = self.attn_norm(lat + self.attn(lat, self.projection(x), mask))
        lat = self.mlp_norm(lat + self.mlp(lat))
        return lat[:, 0] if self.n_latents == 1 else lat
