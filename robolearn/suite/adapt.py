"""Adapters on encoder tokens, trained with the same budget for every encoder (Voltron's evaluation recipe:
a MAP extractor over the frozen tokens, then a small task head; AdamW, fixed steps, no schedule).

    adapter = Adapter(MAPExtractor(D, 2 * heads, n_latents), head)      # head: [B, K, D] -> task output
    losses = fit(adapter, source, targets, loss_fn, train_idx, budget, seed)
    out = predict(adapter, source, test_idx)

`source` is a robolearn.suite.encoders.TokenSource: cached frozen tokens, or a baseline backbone that `fit`
trains jointly (its parameters join the optimizer; the step budget is the same).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robolearn.config import opt
from robolearn.encoders.map import MAPExtractor


@dataclass
class Budget:
    """The training budget every encoder gets in a scenario."""

    steps: int = opt(300, help="adapter optimizer steps")
    batch_size: int = opt(32, help="adapter batch size")
    lr: float = opt(1e-3, help="AdamW learning rate")
    weight_decay: float = opt(0.01, help="AdamW weight decay")


class Adapter(nn.Module):
    """MAP pooling of the tokens into K latents, then a task head."""

    def __init__(self, embed_dim: int, n_heads: int, n_latents: int, head: nn.Module) -> None:
        super().__init__()
        self.map = MAPExtractor(embed_dim, 2 * n_heads, n_latents=n_latents)
        self.head = head

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.map(tokens))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(
    adapter: nn.Module,
    source: Any,
    targets: dict[str, torch.Tensor],
    loss_fn: Callable[[torch.Tensor, dict[str, torch.Tensor]], torch.Tensor],
    train_idx: np.ndarray,
    budget: Budget,
    seed: int,
    progress: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `adapter` (and a trainable source) for `budget.steps` on minibatches of `train_idx`; returns the
    loss of every step. `targets` are indexed by instance like the source."""
    if len(train_idx) == 0:
        raise ValueError("no training instances")
    seed_everything(seed)
    params = [p for p in adapter.parameters() if p.requires_grad] + source.parameters()
    opt_ = torch.optim.AdamW(params, lr=budget.lr, weight_decay=budget.weight_decay)
    rng = np.random.default_rng(seed)
    adapter.train()
    source.train(True)
    losses: list[float] = []
    for step in range(budget.steps):
        idx = rng.choice(train_idx, size=min(budget.batch_size, len(train_idx)), replace=False)
        out = adapter(source(idx))
        loss = loss_fn(out, {k: v[torch.as_tensor(idx)] for k, v in targets.items()})
        if not torch.isfinite(loss):
            raise FloatingPointError(f"adapter loss is {loss.item()} at step {step}")
        opt_.zero_grad(set_to_none=True)
        loss.backward()
        opt_.step()
        losses.append(float(loss.detach()))
        if progress is not None:
            progress(step, losses[-1])
    return losses


@torch.no_grad()
def predict(adapter: nn.Module, source: Any, idx: np.ndarray, batch_size: int = 128) -> torch.Tensor:
    """Adapter outputs for `idx`, in order."""
    adapter.eval()
    source.train(False)
    outs = [adapter(source(idx[s : s + batch_size])) for s in range(0, len(idx), batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0)
