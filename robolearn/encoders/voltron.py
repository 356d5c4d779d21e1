"""The shared core of V-Cond, V-Dual and V-Gen: a language-conditioned MAE over T frames (T = 1 or 2).

Encoder (early fusion): patch embeddings + fixed 2-D sin-cos position embeddings (+ a learned per-frame
embedding when T = 2) + an image modality token; the same random mask is applied to every frame; the visible
patches of all frames are concatenated with the 20 projected LM tokens (+ a language modality token) and run
through one transformer. The MAE decoder sees only the image tokens (language conditions reconstruction
through the encoder alone). Parameter shapes follow the reference so its checkpoints map one to one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robolearn.encoders.base import Encoder, Language, metrics_of
from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.layers import AttentionMask, PatchEmbed, Transformer, init_weights
from robolearn.encoders.patches import Masking, gather_tokens, mae_loss, random_masking, unshuffle
from robolearn.encoders.posembed import sincos_2d


class VoltronMAE(Encoder):
    n_frames = 1

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__(config)
        c, t = config, self.n_frames
        d, dd = c.encoder_dim, c.decoder_dim
        lead = (1, 1, 1) if t > 1 else (1, 1)  # token shapes broadcast over [B, (T,) N, D]
        self.patch_embed = PatchEmbed(c.patch_size, d, c.in_channels)
        self.register_buffer("encoder_pe", sincos_2d(d, c.grid)[None], persistent=False)
        self.encoder = Transformer(d, c.encoder_depth, c.encoder_heads, c.mlp_ratio, "voltron")
        self.lang_proj = nn.Linear(c.language_dim, d)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(*lead, dd))
        self.register_buffer("decoder_pe", sincos_2d(dd, c.grid)[None], persistent=False)
        self.decoder = Transformer(dd, c.decoder_depth, c.decoder_heads, c.mlp_ratio, "voltron")
        self.pixel_head = nn.Linear(dd, c.patch_size**2 * c.in_channels)
        self.image_token = nn.Parameter(torch.zeros(*lead, d))
        self.lang_token = nn.Parameter(torch.zeros(1, 1, d))
        if t > 1:
            self.frame_embed = nn.Parameter(torch.randn(1, t, 1, d))
            self.decoder_frame_embed = nn.Parameter(torch.randn(1, t, 1, dd))
        self.build_extra()
        init_weights(self)
        for token in (self.mask_token, self.image_token, self.lang_token):
            nn.init.normal_(token, std=0.02)

    def build_extra(self) -> None:
        """Hook for V-Gen's decoder language head (called before initialisation)."""

    # --- pieces -------------------------------------------------------------------------------------------
    def frames(self, images: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] (T = 1) or [B, T, C, H, W] -> [B, T, C, H, W], validated."""
        if self.n_frames == 1:
            return self.check_images(images, None)[:, None]
        return self.check_images(images, self.n_frames)

    def embed_patches(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T, C, H, W] -> [B, T, N, D]: patches + position (+ per-frame) embeddings."""
        b, t = frames.shape[:2]
        x = self.patch_embed(frames.flatten(0, 1)) + self.encoder_pe
        x = x.reshape(b, t, *x.shape[1:])
        return x + self.frame_embed[:, :t] if t > 1 else x

    def encode(self, patches: torch.Tensor, lang_feats: torch.Tensor, lang_mask: torch.Tensor) -> torch.Tensor:
        """Joint encoder over [patches of every frame ; language]. patches [B, T, K, D] -> [B, T*K + L, D]."""
        b = patches.shape[0]
        img = (patches + self.image_token).flatten(1, 2)
        lang = self.lang_proj(lang_feats.to(img.dtype)) + self.lang_token
        valid = torch.cat([torch.ones(b, img.shape[1], dtype=torch.bool, device=img.device), lang_mask.bool()], 1)
        mask = AttentionMask.from_padding(valid, self.config.voltron_compat)
        return self.encoder(torch.cat([img, lang], dim=1), mask)

    def decoder_tokens(self, encoded: torch.Tensor, restore_idx: torch.Tensor | None) -> torch.Tensor:
        """[B, T, K, D] encoder outputs -> [B, T*N, Dd] decoder inputs (mask tokens, positions, frames)."""
        x = self.decoder_embed(encoded)
        if restore_idx is not None:
            x = unshuffle(x, self.mask_token, restore_idx)
        x = x + self.decoder_pe[:, None]
        if self.n_frames > 1:
            x = x + self.decoder_frame_embed[:, : x.shape[1]]
        return x.flatten(1, 2)

    def reconstruct(self, encoded: torch.Tensor, restore_idx: torch.Tensor) -> torch.Tensor:
        """[B, T, K, D] -> pixel predictions [B, T, N, p*p*C]."""
        b, t = encoded.shape[:2]
        x = self.decoder(self.decoder_tokens(encoded, restore_idx))
        return self.pixel_head(x).reshape(b, t, self.config.n_patches, -1)

    def mask_patches(self, patches: torch.Tensor, batch: Mapping[str, Any]) -> tuple[torch.Tensor, Masking]:
        """One random mask per example, shared by all its frames. `batch["mask_noise"]` [B, N] may fix it."""
        b = patches.shape[0]
        noise = batch.get("mask_noise")
        m = random_masking(
            b,
            self.config.n_patches,
            self.config.mask_ratio,
            patches.device,
            None if noise is None else noise.to(patches.device),
        )
        return gather_tokens(patches, m.keep_idx), m

    def frame_losses(self, pred: torch.Tensor, frames: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        return [mae_loss(pred[:, i], frames[:, i], mask, self.config.patch_size) for i in range(frames.shape[1])]

    # --- training -----------------------------------------------------------------------------------------
    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        """batch: images [B, (T,) C, H, W] normalised; lang_ids / lang_mask [B, L] (or captions); optional
        lang_features [B, L, D_lm] (skips the LM) and mask_noise [B, N]."""
        if "images" not in batch:
            raise KeyError(f"{type(self).__name__} batch needs 'images'; got keys {sorted(batch)}")
        frames = self.frames(batch["images"])
        b, t = frames.shape[:2]
        patches = self.embed_patches(frames)
        visible, m = self.mask_patches(patches, batch)
        ids, lang_mask, feats = self.batch_language(batch, b, frames.device)
        encoded = self.encode(visible, self.encode_language(ids, lang_mask, feats), lang_mask)
        k = visible.shape[2]
        pred = self.reconstruct(encoded[:, : t * k].reshape(b, t, k, -1), m.restore_idx)
        losses = self.frame_losses(pred, frames, m.mask)
        loss = sum(losses) / len(losses)
        if t == 1:
            return loss, metrics_of(mae_loss=loss)
        return loss, metrics_of(mae_loss=loss, mae_loss_0=losses[0], mae_loss_k=losses[1])

    # --- extraction ---------------------------------------------------------------------------------------
    def extract(
        self, images: torch.Tensor, language: Language = None, mode: str | None = None, return_mask: bool = False
    ) -> Any:
        """V-Cond: [B, 3, H, W]; dual models: [B, 2, 3, H, W] (initial frame, frame k).
        multimodal -> [B, N + L, D] (frame-k patches then language); visual -> [B, N, D] (the same patch
        tokens, which attended to the language or to the [CLS]-only null language). With `return_mask`, also
        the [B, tokens] validity mask (1 = real token) for key-masked pooling (MAPExtractor)."""
        mode = self.check_mode(mode)
        frames = self.frames(images)
        b, t = frames.shape[:2]
        n = self.config.n_patches
        ids, lang_mask = self.language_inputs(language, b, frames.device)
        encoded = self.encode(self.embed_patches(frames), self.language.encode(ids, lang_mask), lang_mask)
        out = encoded[:, (t - 1) * n :]
        valid = torch.cat([torch.ones(b, n, dtype=lang_mask.dtype, device=out.device), lang_mask], dim=1)
        if mode == "visual":
            out, valid = out[:, :n], valid[:, :n]
        return (out, valid) if return_mask else out
