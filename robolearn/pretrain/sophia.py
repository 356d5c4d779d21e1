"""Sophia (Liu et al. 2023, arXiv 2305.14342): a second-order clipped optimiser for pretraining.

Per parameter: m = EMA(beta1) of the gradient; every k steps a diagonal Hessian estimate h_hat refreshes
h = EMA(beta2) of h_hat; the update is

    theta <- theta * (1 - lr * wd)                           (decoupled weight decay)
    theta <- theta - lr * clip(m / max(gamma * h, eps), 1)   (per coordinate, clip to [-1, 1])

The Hessian estimator is Hutchinson's: u ~ Rademacher, h_hat = u * (H u), with H u from a double backward
(`hutchinson_estimate`). Why Hutchinson and not Gauss-Newton-Bartlett: GNB samples labels from the model's
output distribution, so it needs the model's predictions, and robolearn's training contract is
`loss, metrics = model(batch)` (every encoder hides its predictions inside the loss). Hutchinson needs only the
loss. Its estimate can be negative on non-convex parts; max(gamma * h, eps) then makes the denominator eps and
the coordinate moves by lr * sign(m), as in the paper.

The double backward runs eagerly with PyTorch's math attention kernel: the fused CPU/flash SDPA kernels have no
second derivative. Under DDP each rank estimates on its own micro-batch with the plain module (no gradient
hooks fire) and the estimates are averaged with one all-reduce, so every rank keeps the same h.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.distributed as dist


class Sophia(torch.optim.Optimizer):
    """Sophia with an externally supplied Hessian estimate (`update_hessian`), checkpointable via state_dict.

    State per parameter: `exp_avg` (m), `hessian` (h), `step` (float tensor, like torch's Adam)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.965, 0.99),
        rho: float = 0.04,
        weight_decay: float = 0.1,
        eps: float = 1e-12,
    ) -> None:
        if lr < 0 or rho <= 0 or eps <= 0 or weight_decay < 0:
            raise ValueError(f"Sophia needs lr >= 0, rho > 0, eps > 0, weight_decay >= 0; got {lr}, {rho}, {eps}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Sophia betas must be in [0, 1); got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), rho=rho, weight_decay=weight_decay, eps=eps))

    def _state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        st = self.state[p]
        if not st:
            st["step"] = torch.zeros((), dtype=torch.float32)
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["hessian"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return st

    @torch.no_grad()
    def update_hessian(self, estimates: dict[torch.Tensor, torch.Tensor]) -> None:
        """h <- beta2 * h + (1 - beta2) * h_hat for every parameter with an estimate."""
        for group in self.param_groups:
            beta2 = group["betas"][1]
            for p in group["params"]:
                if p in estimates:
                    self._state(p)["hessian"].mul_(beta2).add_(estimates[p], alpha=1 - beta2)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta1, rho, wd, eps = (group[k] for k in ("lr", "betas", "rho", "weight_decay", "eps"))
            beta1 = beta1[0]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Sophia does not support sparse gradients")
                st = self._state(p)
                st["step"] += 1
                m = st["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                if wd:
                    p.mul_(1 - lr * wd)
                ratio = (m.abs() / (rho * st["hessian"]).clamp(min=eps)).clamp_(max=1.0)
                p.addcmul_(m.sign(), ratio, value=-lr)
        return loss


def params_of(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]


def hutchinson_estimate(
    loss_fn: Callable[[], torch.Tensor],
    params: list[torch.Tensor],
    generator: torch.Generator | None = None,
    world_size: int = 1,
) -> dict[torch.Tensor, torch.Tensor]:
    """u * (H u) per parameter for one Rademacher draw u (from `generator`, on the CPU, so its stream does not
    depend on the device), H the Hessian of `loss_fn()`; averaged over ranks when world_size > 1."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    us = [
        (torch.randint(0, 2, p.shape, generator=generator, dtype=torch.int8).to(p.device, p.dtype) * 2 - 1)
        for p in params
    ]
    used = [(i, g) for i, g in enumerate(grads) if g is not None]
    if not used:
        return {}
    dot = sum((g * us[i]).sum() for i, g in used)
    hvs = torch.autograd.grad(dot, [params[i] for i, _ in used], allow_unused=True)
    out: dict[torch.Tensor, torch.Tensor] = {}
    for (i, _), hv in zip(used, hvs):
        est = torch.zeros_like(params[i]) if hv is None else (us[i] * hv).detach()
        out[params[i]] = est
    if world_size > 1:
        flat = torch.cat([v.flatten() for v in out.values()])
        dist.all_reduce(flat)
        flat /= world_size
        offset = 0
        for p, v in out.items():
            out[p] = flat[offset : offset + v.numel()].view_as(v)
            offset += v.numel()
    return out
