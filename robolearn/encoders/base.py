"""The base class of every encoder: config, lazy frozen LM, and the training/extraction dispatch.

Calling convention (no global `__call__` patching):
- `model(batch)` with a dict (Mapping) batch -> `compute_loss(batch)` -> `(loss, metrics)`: training, used
  by the trainer and by DDP.
- `model(images, language=None, mode=...)` with a tensor -> `extract(images, language, mode)`: features.
  `language` is None (the [CLS]-only null language), one string (tiled over the batch), a list of B strings,
  or pre-tokenised `(ids, mask)` tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.language import LanguageModel, null_language

Language = str | Sequence[str] | tuple[torch.Tensor, torch.Tensor] | None


class Encoder(nn.Module):
    uses_language: bool = True
    modes: tuple[str, ...] = ("multimodal", "visual")
    n_frames: int = 1  # frames per example for extraction (dual models: 2)

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim, self.n_heads = config.encoder_dim, config.encoder_heads
        self._language: LanguageModel | None = None
        if self.uses_language:
            self.set_language_model(config.language_model)

    # --- language -----------------------------------------------------------------------------------------
    @property
    def language(self) -> LanguageModel:
        if self._language is None:
            raise RuntimeError(f"{type(self).__name__} uses no language model")
        return self._language

    def set_language_model(self, lm: str | LanguageModel) -> None:
        """Use another frozen LM (hub id, local folder or a shared LanguageModel); nothing is loaded here."""
        if not isinstance(lm, LanguageModel):
            lm = LanguageModel(str(lm), max_len=self.config.max_lang_len, cache_size=self.config.lm_cache_size)
        lm.expected_dim = self.config.language_dim
        lm.expected_vocab = self.config.vocab_size if self.config.arch == "v-gen" else None  # V-Gen's token head
        self._language = lm
        self.config.language_model = lm.name_or_path

    def language_inputs(
        self, language: Language, batch: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Resolve an extraction `language` argument to (ids, mask) [batch, L] on `device`."""
        if language is None:
            return null_language(batch, self.config.max_lang_len, self.config.cls_token_id, device)
        if isinstance(language, tuple) and len(language) == 2 and all(isinstance(t, torch.Tensor) for t in language):
            ids, mask = language
        else:
            captions = [language] if isinstance(language, str) else list(language)
            if not captions or not all(isinstance(c, str) for c in captions):
                raise TypeError("language must be None, a string, a list of strings or (ids, mask) tensors")
            ids, mask = self.language.tokenize(captions)
        if ids.ndim == 1:
            ids, mask = ids[None], mask[None]
        if ids.shape[0] == 1 and batch > 1:
            ids, mask = ids.expand(batch, -1), mask.expand(batch, -1)
        if ids.shape[0] != batch:
            raise ValueError(f"got {ids.shape[0]} captions for {batch} images (give 1 or {batch})")
        return ids.to(device), mask.to(device)

    def batch_language(
        self, batch: Mapping[str, Any], size: int, device: torch.device, allow_dropout: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(ids, mask, precomputed features or None) from a training batch, with optional language dropout."""
        if "lang_ids" in batch:
            if "lang_mask" not in batch:
                raise KeyError("batch has 'lang_ids' but no 'lang_mask' ([B, L], 1 = real token)")
            ids, mask = batch["lang_ids"], batch["lang_mask"]
        elif "captions" in batch:
            ids, mask = self.language.tokenize(batch["captions"])
        else:
            raise KeyError(
                f"{type(self).__name__} batch needs 'lang_ids' and 'lang_mask' [B, L] (or 'captions'); "
                f"got keys {sorted(batch)}"
            )
        ids, mask = ids.to(device), mask.to(device)
        if ids.ndim != 2 or ids.shape != mask.shape or ids.shape[0] != size:
            raise ValueError(
                f"'lang_ids' and 'lang_mask' must both be [{size}, L]; got {tuple(ids.shape)} and {tuple(mask.shape)}"
            )
        feats = batch.get("lang_features")
        if feats is not None:
            feats = feats.to(device)
            if feats.shape[:2] != ids.shape or feats.shape[-1] != self.config.language_dim:
                raise ValueError(
                    f"'lang_features' must be [{size}, {ids.shape[1]}, {self.config.language_dim}]; "
                    f"got {tuple(feats.shape)}"
                )
        p = self.config.lang_dropout
        if allow_dropout and self.training and p > 0:
            drop = torch.rand(size, device=device) < p
            if bool(drop.any()):
                null_ids, null_mask = null_language(size, ids.shape[1], self.config.cls_token_id, device)
                ids = torch.where(drop[:, None], null_ids, ids)
                mask = torch.where(drop[:, None], null_mask, mask)
                if feats is not None:
                    null_feats = self.language.encode(null_ids[:1], null_mask[:1]).to(feats.dtype)
                    feats = torch.where(drop[:, None, None], null_feats, feats)
        return ids, mask, feats

    def encode_language(self, ids: torch.Tensor, mask: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        return feats if feats is not None else self.language.encode(ids, mask)

    # --- images -------------------------------------------------------------------------------------------
    def check_images(self, images: torch.Tensor, frames: int | None, what: str = "images") -> torch.Tensor:
        """Validate [B, (T,) C, H, W]; a missing batch axis is added."""
        c, s = self.config.in_channels, self.config.image_size
        want = 4 if frames is None else 5
        if images.ndim == want - 1:
            images = images[None]
        shape = f"[B, {c}, {s}, {s}]" if frames is None else f"[B, {frames}, {c}, {s}, {s}]"
        if images.ndim != want or tuple(images.shape[-3:]) != (c, s, s) or (frames and images.shape[1] != frames):
            raise ValueError(f"{type(self).__name__} expects {what} of shape {shape}; got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(
                f"{type(self).__name__} expects float {what} (normalised, or 0-255 floats for R3M); got "
                f"{images.dtype}: apply the preprocess transform returned by load()"
            )
        return images

    # --- dispatch -----------------------------------------------------------------------------------------
    def forward(self, batch: Any, language: Language = None, mode: str | None = None, **kw: Any) -> Any:
        if isinstance(batch, Mapping):
            return self.compute_loss(batch)
        if isinstance(batch, torch.Tensor):
            return self.extract(batch, language, mode, **kw)
        raise TypeError(
            f"{type(self).__name__}(...) takes a dict batch (training: returns (loss, metrics)) or an "
            f"image tensor (feature extraction); got {type(batch).__name__}"
        )

    def check_mode(self, mode: str | None) -> str:
        mode = mode or self.modes[0]
        if mode not in self.modes:
            raise ValueError(f"{type(self).__name__} extraction mode must be one of {self.modes}; got {mode!r}")
        return mode

    def compute_loss(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def extract(
        self, images: torch.Tensor, language: Language = None, mode: str | None = None, **kw: Any
    ) -> torch.Tensor:
        raise NotImplementedError

    # --- bookkeeping --------------------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """What `save()` and the pretraining checkpoints write as config.json."""
        from robolearn import __version__

        return {**self.config.to_dict(), "robolearn_version": __version__}

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def freeze(self) -> Encoder:
        self.eval()
        self.requires_grad_(False)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


def metrics_of(**values: torch.Tensor | float) -> dict[str, torch.Tensor | float]:
    """Detached metrics (tensors stay on device: no sync here; the trainer converts when it logs)."""
    return {k: v.detach() if isinstance(v, torch.Tensor) else float(v) for k, v in values.items()}
