"""Backbones: camera images -> a token sequence [B, N, D] that the heads pool.

- `EncoderBackbone`: any robolearn.encoders model (Voltron V-Cond/V-Dual/V-Gen, R-MVP, R-R3M), random init
  or from a checkpoint, frozen (optionally with its last N blocks trainable). Dual-frame models see the
  current frame twice (no initial-frame context at control time).
- Baselines trained from scratch with the head: `scratch-cnn` (a small 4-layer CNN) and `resnet18`
  (torchvision, random init). Their feature maps are flattened into tokens.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.policies.config import PolicyConfig

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    embed_dim: int
    n_heads: int

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, H, W] (any H, W) -> the float input of `forward`."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, language: list[str] | None = None) -> torch.Tensor:
        raise NotImplementedError

    def set_trainable(self, config: PolicyConfig) -> None:
        for p in self.parameters():
            p.requires_grad_(True)

    def extra_config(self) -> dict[str, Any]:
        """What is needed besides PolicyConfig to rebuild this backbone (saved with the policy)."""
        return {}


def _resize_normalise(images: torch.Tensor, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    x = images.float() / 255.0 if not images.is_floating_point() else images
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[:, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[:, None, None]
    return (x - m) / s


class ScratchCNN(Backbone):
    """A small CNN (4 conv layers, stride 2 three times) trained from scratch: [B, 3, S, S] -> [B, (S/8)^2, D]
    tokens, as many as a patch-8 ViT gives (64 at 64 x 64)."""

    def __init__(self, image_size: int, dim: int = 64) -> None:
        super().__init__()
        self.image_size, self.embed_dim, self.n_heads = image_size, dim, 4
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 5, stride=2, padding=2),
            nn.GroupNorm(8, 32),
            nn.GELU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.GroupNorm(8, 64),
            nn.GELU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),
            nn.GroupNorm(8, 64),
            nn.GELU(),
            nn.Conv2d(64, dim, 1),
        )
        n = (-(-image_size // 8)) ** 2
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return _resize_normalise(images, self.image_size)

    def forward(self, x: torch.Tensor, language: list[str] | None = None) -> torch.Tensor:
        return self.net(x).flatten(2).transpose(1, 2) + self.pos


class ResNet18(Backbone):
    """torchvision ResNet-18, random init, trained with the head: [B, 3, S, S] -> [B, (S/32)^2, 512]."""

    def __init__(self, image_size: int) -> None:
        super().__init__()
        import torchvision

        r = torchvision.models.resnet18(weights=None)
        self.trunk = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1, r.layer2, r.layer3, r.layer4)
        self.image_size, self.embed_dim, self.n_heads = image_size, 512, 8

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return _resize_normalise(images, self.image_size)

    def forward(self, x: torch.Tensor, language: list[str] | None = None) -> torch.Tensor:
        return self.trunk(x).flatten(2).transpose(1, 2)


class EncoderBackbone(Backbone):
    """A robolearn.encoders model as a policy backbone."""

    def __init__(self, encoder: nn.Module, mode: str) -> None:
        super().__init__()
        from robolearn.encoders import preprocess_for

        self.encoder = encoder
        self.embed_dim, self.n_heads = encoder.embed_dim, encoder.n_heads
        arch = encoder.config.arch
        self.mode = mode if arch.startswith("v-") else ("patch" if arch == "r-mvp" else None)
        self.uses_language = arch.startswith("v-") and mode == "multimodal"
        self.dual = getattr(encoder, "n_frames", 1) == 2
        self._preprocess = preprocess_for(encoder.config)

    @property
    def image_size(self) -> int:
        return self.encoder.config.image_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return self._preprocess(images)

    def forward(self, x: torch.Tensor, language: list[str] | None = None) -> torch.Tensor:
        if self.dual:
            x = torch.stack([x, x], dim=1)
        lang = language if self.uses_language else None
        return self.encoder(x, lang, mode=self.mode)

    def set_trainable(self, config: PolicyConfig) -> None:
        for p in self.encoder.parameters():
            p.requires_grad_(not config.freeze)
        if config.freeze and config.unfreeze_last:
            blocks = getattr(getattr(self.encoder, "encoder", None), "blocks", None)
            if blocks is None:
                raise ValueError(f"--unfreeze-last needs a transformer encoder; {config.encoder!r} has no blocks")
            if config.unfreeze_last > len(blocks):
                raise ValueError(
                    f"unfreeze_last={config.unfreeze_last} but {config.encoder!r} has only {len(blocks)} blocks"
                )
            for block in list(blocks)[-config.unfreeze_last :]:
                for p in block.parameters():
                    p.requires_grad_(True)
            for name in ("encoder_norm", "norm"):
                mod = getattr(self.encoder, name, None)
                if isinstance(mod, nn.Module):
                    for p in mod.parameters():
                        p.requires_grad_(True)

    def extra_config(self) -> dict[str, Any]:
        return {"encoder_config": self.encoder.config_dict()}


def _parse_encoder(spec: str) -> tuple[str, str | None]:
    """ "v-cond-tiny" -> (id, None); "v-cond-tiny:/ckpt" or a folder -> (id or path, checkpoint)."""
    if ":" in spec and not spec.startswith("/"):
        name, ckpt = spec.split(":", 1)
        return name, ckpt or None
    return spec, None


def build_backbone(config: PolicyConfig, encoder_config: dict[str, Any] | None = None) -> Backbone:
    """The backbone `config` describes. `encoder_config` (from a saved policy) rebuilds the exact encoder
    architecture without reading its original checkpoint (the weights come from the policy file)."""
    if config.encoder == "scratch-cnn":
        return ScratchCNN(config.image_size)
    if config.encoder == "resnet18":
        return ResNet18(config.image_size)
    from robolearn.encoders import build, load
    from robolearn.encoders.config import EncoderConfig
    from robolearn.encoders.registry import model_from_config

    overrides = dict(config.encoder_overrides)
    if config.language_model:
        overrides["language_model"] = config.language_model
    if encoder_config is not None:
        ec = dict(encoder_config)
        ec.update(overrides)
        encoder = model_from_config(EncoderConfig.from_dict(ec, source="policy config encoder_config"))
    else:
        name, ckpt = _parse_encoder(config.encoder)
        ckpt = config.encoder_checkpoint or ckpt
        if ckpt:
            encoder, _ = load(ckpt, freeze=False, weights_only=True, **overrides)
        else:
            from robolearn.encoders import available_models

            if name not in available_models():
                encoder, _ = load(name, freeze=False, weights_only=True, **overrides)  # a checkpoint folder as encoder
            else:
                encoder = build(name, **overrides)
    return EncoderBackbone(encoder, config.mode)
