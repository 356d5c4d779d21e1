"""The DPO objective on action segments (Rafailov et al. 2023, adapted to continuous action chunks).

robolearn's heads are deterministic regressors, so each defines a Gaussian policy: the head's output is the
mean and the std is a fixed `sigma` (in normalised action units, the same for the policy and the
reference). The log-probability of a segment is the sum over its steps of the log density of each step's
action chunk (every un-padded action of the chunk), and the Gaussian's normalising constant cancels in
log pi - log ref:

    log pi(seg) - log ref(seg) = sum_t sum_{h,a} [(a - mu_ref)^2 - (a - mu_pi)^2] / (2 sigma^2)
    loss = -log sigmoid(beta * ((log pi_w - log ref_w) - (log pi_l - log ref_l)))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segment_log_ratio(
    mu: torch.Tensor, mu_ref: torch.Tensor, action: torch.Tensor, keep: torch.Tensor, sigma: float
) -> torch.Tensor:
    """log pi - log ref per segment. mu, mu_ref, action: [B, L, H, A]; keep: [B, L, H] (1 = a real action
    of a real step; padded chunk entries and padded segment steps are 0) -> [B]."""
    d = ((action - mu_ref) ** 2 - (action - mu) ** 2).sum(-1)  # [B, L, H]
    return (d * keep).sum((1, 2)) / (2 * sigma**2)


def dpo_loss(ratio_w: torch.Tensor, ratio_l: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean DPO loss over pairs and its diagnostics (reward accuracy: fraction of pairs whose implicit
    reward margin is positive; margin: the mean beta * (ratio_w - ratio_l))."""
    margin = beta * (ratio_w - ratio_l)
    loss = -F.logsigmoid(margin).mean()
    stats = {
        "dpo_loss": float(loss.detach()),
        "reward_accuracy": float((margin > 0).float().mean()),
        "margin": float(margin.detach().mean()),
    }
    return loss, stats
