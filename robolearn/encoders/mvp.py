"""R-MVP: a plain MAE (LayerNorm + GELU blocks) with a CLS token, no language. Extraction modes "patch"
([B, N, D]) and "cls" ([B, 1, D]) both work (the reference's extraction raises for any batch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robolearn.encoders.base import Encoder, Language, metrics_of
from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.layers import PatchEmbed, Transformer, init_weights
from robolearn.encoders.patches import gather_tokens, mae_loss, random_masking, unshuffle
from robolearn.encoders.posembed import sincos_2d


class MVP(Encoder):
    uses_language = False
    modes = ("patch", "cls")

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        c = config
        d, dd = c.encoder_dim, c.decoder_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.patch_embed = PatchEmbed(c.patch_size, d, c.in_channels)
        self.register_buffer("encoder_pe", sincos_2d(d, c.grid, cls_token=True)[None], persistent=False)
        self.encoder = Transformer(d, c.encoder_depth, c.encoder_heads, c.mlp_ratio, "mae")
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("decoder_pe", sincos_2d(dd, c.grid, cls_token=True)[None], persistent=False)
        self.decoder = Transformer(dd, c.decoder_depth, c.decoder_heads, c.mlp_ratio, "mae")
        self.pixel_head = nn.Linear(dd, c.patch_size**2 * c.in_channels)
        init_weights(self)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def _cls(self, b: int) -> torch.Tensor:
        return (self.cls_token + self.encoder_pe[:, :1]).expand(b, -1, -1)

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch: images [B, 3, H, W] normalised; optional mask_noise [B, N]."""
        if "images" not in batch:
            raise KeyError(f"MVP batch needs 'images'; got keys {sorted(batch)}")
        images = self.check_images(batch["images"], None)
        b, c = images.shape[0], self.config
        patches = self.patch_embed(images) + self.encoder_pe[:, 1:]
        noise = batch.get("mask_noise")
        m = random_masking(
            b, c.n_patches, c.mask_ratio, images.device, None if noise is None else noise.to(images.device)
        )
        x = self.encoder(torch.cat([self._cls(b), gather_tokens(patches, m.keep_idx)], dim=1))
        x = self.decoder_embed(x)
        x = torch.cat([x[:, :1], unshuffle(x[:, 1:], self.mask_token, m.restore_idx)], dim=1) + self.decoder_pe
        pred = self.pixel_head(self.decoder(x))[:, 1:]
        loss = mae_loss(pred, images, m.mask, c.patch_size)
        return loss, metrics_of(mae_loss=loss)

    def extract(
        self, images: torch.Tensor, language: Language = None, mode: str | None = None, return_mask: bool = False
    ) -> Any:
        """patch -> [B, N, D]; cls -> [B, 1, D]."""
        if language is not None:
            raise ValueError("R-MVP has no language input; call it with images only")
        mode = self.check_mode(mode)
        images = self.check_images(images, None)
        b = images.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.patch_embed(images)], dim=1) + self.encoder_pe
        x = self.encoder(x)
        out = x[:, 1:] if mode == "patch" else x[:, :1]
        return (out, torch.ones(out.shape[:2], dtype=torch.long, device=out.device)) if return_mask else out
