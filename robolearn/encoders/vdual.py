"""V-Dual: two frames (initial frame, frame k) with one shared mask, learned per-frame embeddings, language
conditioning; the loss is the mean of the two frames' reconstruction losses."""

from __future__ import annotations

from robolearn.encoders.voltron import VoltronMAE


class VDual(VoltronMAE):
    """Training batch: images [B, 2, 3, H, W], lang_ids / lang_mask [B, 20]. Extraction returns the
    frame-k tokens only: [B, N+20, D] | [B, N, D]."""

    n_frames = 2
