"""V-Cond: one frame, conditioned on language (early fusion), MAE reconstruction of the masked patches."""

from __future__ import annotations

from robolearn.encoders.voltron import VoltronMAE


class VCond(VoltronMAE):
    """Training batch: images [B, 3, H, W], lang_ids / lang_mask [B, 20]. Extraction: [B, N+20, D] | [B, N, D]."""

    n_frames = 1
