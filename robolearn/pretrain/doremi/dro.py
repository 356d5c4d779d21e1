"""DoReMi's group-DRO domain-weight update (Xie et al. 2023, arXiv 2305.10429, Algorithm 1).

    lambda_t[d] = mean over domain d's examples of max(loss_proxy - loss_ref, 0)   (excess loss)
    alpha'_t    = normalise(alpha_{t-1} * exp(eta * lambda_t))                      (exponentiated gradient)
    alpha_t     = (1 - c) * alpha'_t + c / k                                         (smoothing towards uniform)

The proxy is trained on sum_d alpha_t[d] * mean loss of domain d; the output is the average of alpha_t over
all steps.
"""

from __future__ import annotations

import torch


def excess_by_domain(proxy: torch.Tensor, reference: torch.Tensor, domain: torch.Tensor, k: int) -> torch.Tensor:
    """[k] mean clipped excess loss per domain (0 for a domain with no example in the batch)."""
    excess = (proxy.detach() - reference.detach()).clamp(min=0).double()
    total = torch.zeros(k, dtype=torch.float64).index_add_(0, domain, excess)
    count = torch.zeros(k, dtype=torch.float64).index_add_(0, domain, torch.ones_like(excess))
    return total / count.clamp(min=1)


def update_weights(alpha: torch.Tensor, excess: torch.Tensor, eta: float, smoothing: float) -> torch.Tensor:
    """One exponentiated-gradient step of the domain weights, smoothed towards uniform."""
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1], got {smoothing}")
    logits = torch.log(alpha.double()) + eta * excess.double()
    new = torch.softmax(logits, 0)
    return (1 - smoothing) * new + smoothing / len(alpha)


def weighted_loss(per_example: torch.Tensor, domain: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """sum_d alpha[d] * (mean loss of domain d's examples in the batch)."""
    k = len(alpha)
    total = torch.zeros(k, dtype=per_example.dtype, device=per_example.device).index_add(0, domain, per_example)
    count = torch.bincount(domain, minlength=k).clamp(min=1).to(per_example.dtype)
    return (alpha.to(per_example) * total / count).sum()
