"""Policy heads: per-camera token sequences + proprio -> H future actions [B, H, A] (normalised units).

- `MAPMLPHead` ("map-mlp", `MapMlpHeadConfig`): one MAP pooling (robolearn.encoders.MAPExtractor) per camera,
  concatenated with an embedding of the proprio vector, then an MLP (the Voltron paper's control adaptation).
  H = `chunk` (default 1).
- `ChunkHead` ("chunk", `ChunkHeadConfig`): action chunking as in ACT: H learned action queries attend, through
  a small transformer decoder, to every camera's tokens (with a camera embedding) and a proprio token; one
  action per query. Each camera's tokens are first resampled by MAP attention to `memory_latents` latents
  (Perceiver-style), which keeps the decoder's cross-attention cheap (15x faster on CPU than attending to all
  64+ tokens).
- `HistoryHead` ("hyena", `HyenaHeadConfig`, robolearn.policies.hyena): a history of frames mixed causally in
  time by Hyena operators (or attention, the baseline); the last frame's output predicts H actions.
"""

from __future__ import annotations

import torch
from torch import nn

from robolearn.encoders import MAPExtractor
from robolearn.policies.config import HEADS, PolicyConfig
from robolearn.policies.hyena import HistoryHead
from robolearn.policies.pooling import map_heads


def _mlp(dims: list[int], dropout: float) -> nn.Sequential:
    """Linear layers through `dims` with GELU + dropout between them (none after the last)."""
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(dims[-2], dims[-1]))
    return nn.Sequential(*layers)


class MAPMLPHead(nn.Module):
    """MAP-pool every camera's tokens, concatenate with a proprio embedding, MLP to H x A actions."""

    def __init__(self, config: PolicyConfig, embed_dim: int, n_heads: int) -> None:
        super().__init__()
        h = config.head
        self.embed_dim, self.chunk, self.action_dim = embed_dim, h.chunk, config.action_dim
        heads = map_heads(embed_dim, n_heads)
        self.pools = nn.ModuleList([MAPExtractor(embed_dim, heads, h.n_latents) for _ in config.cameras])
        self.proprio = nn.Sequential(nn.Linear(config.proprio_dim, h.hidden), nn.GELU()) if config.proprio_dim else None
        width = len(config.cameras) * h.n_latents * embed_dim + (h.hidden if config.proprio_dim else 0)
        self.mlp = _mlp([width] + [h.hidden] * h.layers + [h.chunk * config.action_dim], h.dropout)

    def forward(self, tokens: list[torch.Tensor], proprio: torch.Tensor | None) -> torch.Tensor:
        """One [B, N, D] token tensor per camera (+ normalised proprio [B, P]) -> actions [B, H, A]."""
        parts = [pool(t).flatten(1) for pool, t in zip(self.pools, tokens)]
        if self.proprio is not None:
            parts.append(self.proprio(proprio))
        return self.mlp(torch.cat(parts, dim=-1)).view(-1, self.chunk, self.action_dim)


class ChunkHead(nn.Module):
    """ACT-style chunking: H learned queries decode actions from MAP-resampled camera tokens + a proprio token."""

    def __init__(self, config: PolicyConfig, embed_dim: int, n_heads: int) -> None:
        super().__init__()
        h = config.head
        d = h.hidden
        self.embed_dim, self.chunk, self.action_dim = embed_dim, h.chunk, config.action_dim
        heads = map_heads(embed_dim, n_heads)
        self.pools = nn.ModuleList([MAPExtractor(embed_dim, heads, h.memory_latents) for _ in config.cameras])
        self.project = nn.Linear(embed_dim, d)
        self.camera_embed = nn.Parameter(torch.randn(len(config.cameras), d) * 0.02)
        self.proprio = nn.Linear(config.proprio_dim, d) if config.proprio_dim else None
        self.queries = nn.Parameter(torch.randn(h.chunk, d) * 0.02)
        layer = nn.TransformerDecoderLayer(
            d, nhead=max(1, d // 64), dim_feedforward=4 * d, dropout=h.dropout, batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, h.layers)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, config.action_dim)

    def forward(self, tokens: list[torch.Tensor], proprio: torch.Tensor | None) -> torch.Tensor:
        """One [B, N, D] token tensor per camera (+ normalised proprio [B, P]) -> actions [B, H, A]."""
        memory = [
            self.project(pool(t).reshape(t.shape[0], -1, self.embed_dim)) + self.camera_embed[i]
            for i, (pool, t) in enumerate(zip(self.pools, tokens))
        ]
        if self.proprio is not None:
            memory.append(self.proprio(proprio)[:, None])
        mem = torch.cat(memory, dim=1)
        q = self.queries[None].expand(mem.shape[0], -1, -1)
        return self.out(self.norm(self.decoder(q, mem)))


HEAD_CLASSES: dict[str, type[nn.Module]] = {"map-mlp": MAPMLPHead, "chunk": ChunkHead, "hyena": HistoryHead}


def build_head(config: PolicyConfig, embed_dim: int, n_heads: int) -> nn.Module:
    """The head named by `config.head.name` over `embed_dim`-wide tokens of an `n_heads`-head encoder."""
    name = getattr(config.head, "name", config.head)
    if name not in HEAD_CLASSES:
        raise ValueError(f"unknown head {name!r}; known heads: {', '.join(HEADS)}")
    return HEAD_CLASSES[name](config, embed_dim, n_heads)
