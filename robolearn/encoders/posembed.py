"""Fixed 2-D sine-cosine position embeddings (the MAE convention).

For a `grid x grid` patch layout, patch p = row * grid + col gets `[sincos(col) ; sincos(row)]`, each half
of width dim/2 laid out as `[sin(pos * w_i) ; cos(pos * w_i)]` with `w_i = 10000^(-i / (dim/4))`.
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[len(positions), dim] sine-cosine embedding of scalar positions (dim even)."""
    if dim % 2:
        raise ValueError(f"sine-cosine embedding needs an even dim, got {dim}")
    freqs = torch.arange(dim // 2, dtype=torch.float32) / (dim / 2.0)
    freqs = 1.0 / (10000.0**freqs)
    angles = positions.reshape(-1, 1).float() * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_2d(dim: int, grid: int, cls_token: bool = False) -> torch.Tensor:
    """[grid*grid (+1), dim] fixed 2-D embedding; with `cls_token` a zero row is prepended."""
    if dim % 4:
        raise ValueError(f"2-D sine-cosine embedding needs dim divisible by 4, got {dim}")
    coords = torch.arange(grid, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    emb = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim), emb], dim=0)
    return emb
