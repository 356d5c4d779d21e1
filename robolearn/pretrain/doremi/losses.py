"""Per-example reconstruction losses of the MAE encoders, which return only the batch mean.

DoReMi clips the excess loss per example, so it needs each example's loss. For the reconstruction-only
models (R-MVP, V-Cond, V-Dual) the pixel head's output is captured with a forward hook while the model computes
its own loss; with the batch's `mask_noise` the mask is recomputed, and each example's loss is the masked
per-patch MSE against the normalised targets (averaged over frames), exactly the terms of the model's mean.
Every call checks that the per-example losses average to the model's loss, so a model whose loss is something
else (V-Gen's language term, R3M) is refused with a clear error instead of producing wrong weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from robolearn.encoders.patches import normalized_targets, random_masking


def per_example_losses(model: torch.nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """[B] reconstruction losses (differentiable when grad is enabled); `batch` must carry mask_noise [B, N]."""
    from robolearn.encoders.mvp import MVP
    from robolearn.encoders.voltron import VoltronMAE

    if not isinstance(model, (MVP, VoltronMAE)) or type(model).__name__ == "VGen":
        raise ValueError(
            f"DoReMi reweighting needs a reconstruction-only MAE encoder (r-mvp, v-cond, v-dual); got "
            f"{type(model).__name__}"
        )
    if "mask_noise" not in batch:
        raise KeyError("per_example_losses needs batch['mask_noise'] [B, N] (the mask is recomputed from it)")
    captured: dict[str, torch.Tensor] = {}
    hook = model.pixel_head.register_forward_hook(lambda _m, _i, out: captured.__setitem__("pred", out))
    try:
        loss, _ = model(batch)
    finally:
        hook.remove()
    c = model.config
    if isinstance(model, MVP):
        frames = batch["images"][:, None]
        pred = captured["pred"][:, 1:][:, None]  # drop the CLS token
    else:
        frames = model.frames(batch["images"])
        pred = captured["pred"].reshape(frames.shape[0], frames.shape[1], c.n_patches, -1)
    frames = frames.to(pred.device)
    b, t = frames.shape[:2]
    mask = random_masking(b, c.n_patches, c.mask_ratio, pred.device, batch["mask_noise"].to(pred.device)).mask
    per_frame = [
        (((pred[:, i] - normalized_targets(frames[:, i], c.patch_size)) ** 2).mean(-1) * mask).sum(1) / mask.sum(1)
        for i in range(t)
    ]
    per = torch.stack(per_frame, 1).mean(1)
    if not torch.allclose(per.mean().detach().float(), loss.detach().float(), rtol=1e-3, atol=1e-5):
        raise ValueError(
            f"{type(model).__name__}: per-example reconstruction losses average to {float(per.mean()):.6f} but "
            f"the model's loss is {float(loss):.6f}; its loss is not a mean of per-example reconstruction terms"
        )
    return per
