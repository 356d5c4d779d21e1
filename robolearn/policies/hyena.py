"""Long-history temporal mixing: Hyena operators (Poli et al. 2023, arXiv 2302.10866) and the `hyena` head.

A Hyena operator of order N mixes a sequence u [B, L, D] without attention:

    v, x_1..x_N = short causal depthwise conv(Linear(u)).split(N + 1)      (projections, 3-tap conv)
    for n in 1..N:   v = x_n * (h_n (*) v)                                   (data-controlled gating)
    y = Linear(v)

where (*) is a causal long convolution over the whole sequence with an implicit filter h_n [L, D]: an FFN
(sine activations) over a positional encoding of the lag t (t/L and sin/cos bands), times an exponential
decay window exp(-a_d t / L) whose rate a_d is spread over the channels (some channels remember far, some
near), plus a learned per-channel skip. The convolution is computed with an FFT of length 2L, O(L log L)
instead of attention's O(L^2); `causal_conv_direct` is the O(L^2) reference it must equal.

`HistoryHead` ("hyena", `HyenaHeadConfig`) turns a history of T frames into one action chunk: each frame's
camera tokens are MAP-pooled (one latent per camera) and added to a proprio embedding, giving a sequence of
T frame tokens; `layers` pre-norm residual blocks (mixer + MLP) mix them causally and the last frame's output
predicts H x A actions. `mixer` picks the operator: `hyena` (default) or `attention` (causal softmax
self-attention with learned positions, the same width: the baseline the benchmark compares against).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.encoders import MAPExtractor
from robolearn.policies.config import PolicyConfig
from robolearn.policies.pooling import map_heads

MIXERS = ("hyena", "attention")


def causal_conv_fft(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """y[b, t, d] = sum_{s <= t} h[t - s, d] u[b, s, d] for u [B, L, D], h [L, D], by FFT (zero-padded to 2L)."""
    n = u.shape[1]
    size = 2 * n
    work = torch.promote_types(u.dtype, torch.float32)  # half precision FFTs lose too much; float64 stays
    uf = torch.fft.rfft(u.to(work), n=size, dim=1)
    hf = torch.fft.rfft(h.to(work), n=size, dim=0)
    return torch.fft.irfft(uf * hf[None], n=size, dim=1)[:, :n].to(u.dtype)


def causal_conv_direct(u: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The O(L^2) reference of `causal_conv_fft` (a lower-triangular Toeplitz matrix per channel)."""
    n = u.shape[1]
    lag = torch.arange(n)[:, None] - torch.arange(n)[None, :]  # [t, s] = t - s
    toeplitz = h[lag.clamp(min=0)] * (lag >= 0)[..., None]  # [L, L, D]
    return torch.einsum("tsd,bsd->btd", toeplitz, u)


class Sine(nn.Module):
    """sin(w * x) with a learned frequency per feature (the implicit filter's activation)."""

    def __init__(self, dim: int, w: float = 1.0) -> None:
        super().__init__()
        self.freq = nn.Parameter(torch.full((dim,), w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class ImplicitFilter(nn.Module):
    """`order` long filters [order, L, D] for lags 0..L-1: FFN(positional encoding of the lag) x decay window."""

    def __init__(
        self, dim: int, order: int, max_len: int, filter_dim: int, bands: int, decay: tuple[float, float]
    ) -> None:
        super().__init__()
        self.dim, self.order, self.max_len = dim, order, max_len
        self.ffn = nn.Sequential(
            nn.Linear(1 + 2 * bands, filter_dim),
            Sine(filter_dim),
            nn.Linear(filter_dim, filter_dim),
            Sine(filter_dim),
            nn.Linear(filter_dim, order * dim, bias=False),
        )
        t = torch.arange(max_len, dtype=torch.float32)[:, None] / max(1, max_len)  # lag / L in [0, 1)
        f = torch.arange(1, bands + 1, dtype=torch.float32)[None]
        self.register_buffer("pos", torch.cat([t, torch.sin(2 * math.pi * f * t), torch.cos(2 * math.pi * f * t)], 1))
        rates = torch.logspace(math.log10(decay[0]), math.log10(decay[1]), dim)  # per channel: slow .. fast
        self.register_buffer("window", torch.exp(-t * rates[None]))  # [L, D]

    def forward(self, length: int) -> torch.Tensor:
        if length > self.max_len:
            raise ValueError(f"history of {length} frames is longer than the filters' {self.max_len} (history field)")
        h = self.ffn(self.pos[:length]).view(length, self.order, self.dim).transpose(0, 1)
        return h * self.window[:length]


class HyenaOperator(nn.Module):
    """Order-N Hyena mixing of [B, L, D] (causal): see the module docstring."""

    def __init__(self, dim: int, max_len: int, order: int = 2, filter_dim: int = 64, bands: int = 8,
                 decay: tuple[float, float] = (0.3, 30.0), short_kernel: int = 3) -> None:  # fmt: skip
        super().__init__()
        if order < 1:
            raise ValueError(f"Hyena order must be >= 1, got {order}")
        self.dim, self.order, self.short_kernel = dim, order, short_kernel
        self.in_proj = nn.Linear(dim, (order + 1) * dim)
        self.short = nn.Conv1d((order + 1) * dim, (order + 1) * dim, short_kernel, groups=(order + 1) * dim)
        self.filters = ImplicitFilter(dim, order, max_len, filter_dim, bands, decay)
        self.skip = nn.Parameter(torch.zeros(order, dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, u: torch.Tensor, conv=causal_conv_fft) -> torch.Tensor:
        length = u.shape[1]
        z = self.in_proj(u).transpose(1, 2)  # [B, (N+1)D, L]
        z = self.short(F.pad(z, (self.short_kernel - 1, 0))).transpose(1, 2)  # causal short conv
        v, *gates = z.split(self.dim, dim=-1)
        h = self.filters(length)
        for n, x in enumerate(gates):
            v = x * (conv(v, h[n]) + self.skip[n] * v)
        return self.out_proj(v)


class CausalSelfAttention(nn.Module):
    """Softmax self-attention over [B, L, D] with a causal mask and learned positions (the baseline mixer)."""

    def __init__(self, dim: int, max_len: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.qkv, self.out_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        (b, n, d), h = u.shape, self.heads
        if n > self.pos.shape[0]:
            raise ValueError(f"history of {n} frames is longer than the {self.pos.shape[0]} positions (history field)")
        q, k, v = self.qkv(u + self.pos[:n]).view(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(y.transpose(1, 2).reshape(b, n, d))


class MixerBlock(nn.Module):
    """Pre-norm residual block: x + mixer(norm(x)), then x + MLP(norm(x))."""

    def __init__(self, mixer: nn.Module, dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.mixer = nn.LayerNorm(dim), mixer
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def build_mixer(kind: str, dim: int, max_len: int, head) -> nn.Module:
    """One temporal mixer of `kind` ('hyena' | 'attention') for sequences of up to `max_len` frames."""
    if kind == "hyena":
        decay = (float(head.decay_min), float(head.decay_max))
        return HyenaOperator(dim, max_len, head.order, head.filter_dim, head.filter_bands, decay)
    if kind == "attention":
        return CausalSelfAttention(dim, max_len, max(1, dim // 64))
    raise ValueError(f"unknown temporal mixer {kind!r}; expected one of {', '.join(MIXERS)}")


class HistoryHead(nn.Module):
    """T frames of camera tokens [B, T, N, D] (+ proprio [B, T, P]) -> actions [B, H, A], mixed causally in time.

    Single frames ([B, N, D], [B, P]) are a history of one."""

    def __init__(self, config: PolicyConfig, embed_dim: int, n_heads: int) -> None:
        super().__init__()
        h = config.head
        d = h.hidden
        self.history, self.embed_dim, self.chunk, self.action_dim = h.history, embed_dim, h.chunk, config.action_dim
        heads = map_heads(embed_dim, n_heads)
        self.pools = nn.ModuleList([MAPExtractor(embed_dim, heads, 1) for _ in config.cameras])
        self.frame = nn.Linear(len(config.cameras) * embed_dim, d)
        self.proprio = nn.Linear(config.proprio_dim, d) if config.proprio_dim else None
        self.blocks = nn.ModuleList(
            [MixerBlock(build_mixer(h.mixer, d, h.history, h), d, h.dropout) for _ in range(h.layers)]
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, h.chunk * config.action_dim)

    def frame_tokens(self, tokens: list[torch.Tensor], proprio: torch.Tensor | None) -> torch.Tensor:
        """Per-camera [B, T, N, D] tokens (+ [B, T, P] proprio) -> one token per frame [B, T, hidden]."""
        b, t = tokens[0].shape[:2]
        pooled = [pool(x.flatten(0, 1)).view(b, t, -1) for pool, x in zip(self.pools, tokens)]
        x = self.frame(torch.cat(pooled, dim=-1))
        if self.proprio is not None:
            x = x + self.proprio(proprio)
        return x

    def sequence(self, tokens: list[torch.Tensor], proprio: torch.Tensor | None) -> torch.Tensor:
        """The mixed sequence [B, T, hidden]: position t depends on frames <= t only."""
        x = self.frame_tokens(tokens, proprio)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, tokens: list[torch.Tensor], proprio: torch.Tensor | None) -> torch.Tensor:
        if tokens[0].ndim == 3:  # one frame
            tokens = [x[:, None] for x in tokens]
            proprio = None if proprio is None else proprio[:, None]
        if tokens[0].shape[1] > self.history:
            raise ValueError(f"got {tokens[0].shape[1]} frames; this head keeps at most {self.history} (history)")
        return self.out(self.sequence(tokens, proprio)[:, -1]).view(-1, self.chunk, self.action_dim)
