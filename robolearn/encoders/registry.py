"""Model ids -> configs and classes; `build()` makes a randomly initialised model (offline, LM not loaded)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torch

from robolearn.encoders.base import Encoder
from robolearn.encoders.config import EncoderConfig

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

# encoder depth/dim/heads, decoder depth/dim/heads (+ test-size extras)
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        encoder_depth=2,
        encoder_dim=64,
        encoder_heads=4,
        decoder_depth=1,
        decoder_dim=32,
        decoder_heads=4,
        image_size=32,
        patch_size=8,
        language_dim=32,
        vocab_size=1000,
        reward_dim=64,
    ),
    "small": dict(
        encoder_depth=12, encoder_dim=384, encoder_heads=6, decoder_depth=6, decoder_dim=192, decoder_heads=6
    ),
    "base": dict(
        encoder_depth=12, encoder_dim=768, encoder_heads=12, decoder_depth=8, decoder_dim=512, decoder_heads=16
    ),
}

# id -> (arch, size)
MODELS: dict[str, tuple[str, str]] = {
    "v-cond": ("v-cond", "small"),
    "v-dual": ("v-dual", "small"),
    "v-gen": ("v-gen", "small"),
    "v-cond-base": ("v-cond", "base"),
    "v-dual-base": ("v-dual", "base"),
    "v-gen-base": ("v-gen", "base"),
    "r-mvp": ("r-mvp", "small"),
    "r-r3m-vit": ("r-r3m-vit", "small"),
    "r-r3m-rn50": ("r-r3m-rn50", "small"),
}
MODELS.update({f"{name}-tiny": (arch, "tiny") for name, (arch, size) in list(MODELS.items()) if size == "small"})


def _classes() -> dict[str, type[Encoder]]:
    from robolearn.encoders.mvp import MVP
    from robolearn.encoders.r3m import R3M
    from robolearn.encoders.vcond import VCond
    from robolearn.encoders.vdual import VDual
    from robolearn.encoders.vgen import VGen

    return {"v-cond": VCond, "v-dual": VDual, "v-gen": VGen, "r-mvp": MVP, "r-r3m-vit": R3M, "r-r3m-rn50": R3M}


def available_models() -> list[str]:
    """Every registered id: the reference's seven, v-dual-base / v-gen-base, and "-tiny" test sizes."""
    return list(MODELS)


def unknown_model(name: str) -> ValueError:
    close = difflib.get_close_matches(name, list(MODELS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ValueError(f"unknown encoder {name!r}{hint} Available: {', '.join(MODELS)} (or a checkpoint folder)")


def config_for(name: str, **overrides: Any) -> EncoderConfig:
    if name not in MODELS:
        raise unknown_model(name)
    arch, size = MODELS[name]
    return EncoderConfig(arch=arch, name=name, **{**SIZES[size], **overrides})


def model_from_config(config: EncoderConfig) -> Encoder:
    return _classes()[config.arch](config)


def build(name: str, **overrides: Any) -> Encoder:
    """A randomly initialised model; `overrides` are EncoderConfig fields (e.g. language_model=..., image_size=...)."""
    return model_from_config(config_for(name, **overrides))


def _to_255(x: torch.Tensor) -> torch.Tensor:
    return x * 255.0


def preprocess_for(config: EncoderConfig) -> Callable[[torch.Tensor], torch.Tensor]:
    """Resize(short side) -> CenterCrop -> float in [0, 1] -> ImageNet normalisation; R3M: x255 instead.
    Takes uint8 (or float [0, 1]) tensors [..., 3, H, W]."""
    import torchvision.transforms as T

    steps: list[Any] = [
        T.Resize(config.image_size, antialias=True),
        T.CenterCrop(config.image_size),
        T.ConvertImageDtype(torch.float),
    ]
    if config.arch.startswith("r-r3m"):
        steps.append(T.Lambda(_to_255))
    else:
        steps.append(T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD))
    return T.Compose(steps)
