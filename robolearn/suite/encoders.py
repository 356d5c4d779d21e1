"""Encoders in the suite: a spec string -> a token backbone, its identity (for reproducibility), and its tokens.

Specs are the ones `robolearn train --policy.encoder` takes:
    v-cond-tiny            the architecture with random weights (the "same ViT, random init" control)
    v-cond-tiny:CKPT, DIR  a pretrained checkpoint (robolearn.encoders.load)
    scratch-cnn, resnet18  baselines with no pretraining; they train end to end with the adapter

A frozen encoder's tokens are computed once per (encoder, dataset, array, mode) and cached as safetensors, so
every seed and every adapter of a scenario reuses them. Baselines are not frozen: `TokenSource` runs them with
gradients and hands their parameters to the adapter's optimizer, under the same step budget.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.encoders.language import LanguageModelError
from robolearn.policies.backbones import Backbone, build_backbone
from robolearn.policies.config import BASELINES, PolicyConfig
from robolearn.utils import atomic_path


def default_lm() -> str:
    """robolearn's offline default LM (a cached DistilBERT, else the packaged all-MiniLM-L6-v2)."""
    from robolearn.encoders.pretrained_lm import default_language_model

    return str(default_language_model())


class SuiteEncoderError(ValueError):
    """An encoder spec that names nothing loadable, or whose input does not fit a scenario."""


@dataclass
class EncoderSpec:
    spec: str
    language_model: str | None = None
    image_size: int = 64  # input side for baselines (encoders use their own)

    @property
    def is_baseline(self) -> bool:
        return self.spec in BASELINES

    @property
    def slug(self) -> str:
        """A folder-safe name: `v-cond-tiny:/runs/x/checkpoint` -> `v-cond-tiny@checkpoint-<hash8>`."""
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", self.spec.split(":", 1)[0].rstrip("/").split("/")[-1])
        if ":" in self.spec or "/" in self.spec:
            return f"{base}@{hashlib.sha256(self.spec.encode()).hexdigest()[:8]}"
        return base

    def resolved_language_model(self) -> str:
        """The LM this encoder's text goes through (and every encoder's text embeddings): the spec's, else
        robolearn's offline default."""
        return self.language_model or default_lm()

    def language_overrides(self) -> tuple[str | None, dict[str, Any]]:
        """(LM, encoder overrides) that size a random-init V-* id to the suite's LM, as `robolearn demo` does:
        the id's default language_dim need not match the LM's hidden size, and V-* encoders run the LM in
        visual mode too (the null-language input). Baselines and checkpoints: (the spec's LM, no overrides)."""
        from robolearn.encoders import LanguageModel, available_models

        if self.is_baseline or self.spec not in available_models():
            return self.language_model, {}
        lm = self.resolved_language_model()
        ident = LanguageModel(lm).identity()
        return lm, {k: ident[v] for k, v in (("language_dim", "dim"), ("vocab_size", "vocab_size")) if ident.get(v)}

    def policy_config(self, mode: str = "visual", **kw: Any) -> PolicyConfig:
        """The PolicyConfig of this encoder (LM-sized), for families that train through robolearn.policies."""
        lm, overrides = self.language_overrides()
        return PolicyConfig(encoder=self.spec, mode=mode, image_size=self.image_size, language_model=lm,
                            encoder_overrides=overrides, **kw)  # fmt: skip

    def build(self, mode: str = "visual") -> Backbone:
        try:
            return build_backbone(self.policy_config(mode))
        except (FileNotFoundError, KeyError, ValueError, OSError, LanguageModelError) as e:
            raise SuiteEncoderError(f"encoder {self.spec!r}: {e}") from e


def backbone_identity(spec: EncoderSpec, backbone: Backbone) -> dict[str, Any]:
    """What the backbone is, reproducibly: the spec, the weights' hash (a digest of the state dict) and the LM."""
    h = hashlib.sha256()
    for name, t in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    ident: dict[str, Any] = {"spec": spec.spec, "weights_sha256": h.hexdigest(), "baseline": spec.is_baseline}
    encoder = getattr(backbone, "encoder", None)
    if encoder is not None:
        ident["arch"] = encoder.config.arch
        lm = getattr(encoder, "_language", None)  # None for encoders without language (R-MVP)
        if lm is not None:
            try:
                ident["language_model"] = lm.identity()
            except Exception as e:  # noqa: BLE001  (the identity is informative; the run must not fail on it)
                ident["language_model"] = {"name": str(getattr(lm, "name_or_path", "")), "error": str(e)}
    return ident


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> uint8 [B, 3, H, W]."""
    return torch.from_numpy(np.array(images)).permute(0, 3, 1, 2)  # a copy: dataset arrays are read-only maps


class TokenSource:
    """Tokens [B, T, D] for instances of one dataset array: from the frozen cache, or computed with gradients
    for a baseline that trains with the adapter."""

    def __init__(
        self,
        spec: EncoderSpec,
        backbone: Backbone,
        images: np.ndarray,
        language: list[str] | None,
        cache_dir: Path | None,
        key: dict[str, Any],
        batch_size: int = 64,
    ) -> None:
        self.spec, self.backbone, self.images, self.language = spec, backbone, images, language
        self.trainable = spec.is_baseline
        self.embed_dim, self.n_heads = backbone.embed_dim, backbone.n_heads
        self._cache: torch.Tensor | None = None
        if not self.trainable:
            self.backbone.eval()
            for p in self.backbone.parameters():
                p.requires_grad_(False)
            self._cache = self._frozen_tokens(cache_dir, key, batch_size)

    def _frozen_tokens(self, cache_dir: Path | None, key: dict[str, Any], batch_size: int) -> torch.Tensor:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
        path = cache_dir / f"tokens-{digest}.safetensors" if cache_dir else None
        if path is not None and path.is_file():
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                return load_file(str(path))["tokens"]
            except (SafetensorError, KeyError, OSError):
                path.unlink(missing_ok=True)  # a damaged cache entry is recomputed, never trusted
        out = []
        with torch.no_grad():
            for s in range(0, len(self.images), batch_size):
                x = self.backbone.preprocess(_to_tensor(self.images[s : s + batch_size]))
                lang = self.language[s : s + batch_size] if self.language is not None else None
                out.append(self.backbone(x, lang).to(torch.float16))
        tokens = torch.cat(out) if out else torch.zeros(0, 1, self.embed_dim, dtype=torch.float16)
        if path is not None:
            from safetensors.torch import save_file

            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                save_file({"tokens": tokens.contiguous()}, str(tmp))
        return tokens

    def parameters(self) -> list[torch.nn.Parameter]:
        """The backbone parameters the adapter's optimizer trains (none for a frozen encoder)."""
        return list(self.backbone.parameters()) if self.trainable else []

    def train(self, mode: bool = True) -> None:
        if self.trainable:
            self.backbone.train(mode)

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        if self._cache is not None:
            return self._cache[torch.as_tensor(idx)].float()
        x = self.backbone.preprocess(_to_tensor(self.images[idx]))
        lang = [self.language[i] for i in idx] if self.language is not None else None
        return self.backbone(x, lang)
