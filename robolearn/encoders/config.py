"""One dataclass config for every encoder: written as `config.json` next to the weights, so a checkpoint
folder rebuilds its model with no other information."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

FORMAT = "robolearn.encoders/1"
ARCHS = ("v-cond", "v-dual", "v-gen", "r-mvp", "r-r3m-vit", "r-r3m-rn50")


@dataclass
class EncoderConfig:
    arch: str  # one of ARCHS
    name: str = ""  # registry id this config came from (informational)
    # images / ViT
    image_size: int = 224
    patch_size: int = 16
    in_channels: int = 3
    encoder_depth: int = 12
    encoder_dim: int = 384
    encoder_heads: int = 6
    decoder_depth: int = 6
    decoder_dim: int = 192
    decoder_heads: int = 6
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    # language (frozen LM; construction never loads it)
    language_model: str = "distilbert-base-uncased"
    language_dim: int = 768
    vocab_size: int = 30522
    max_lang_len: int = 20
    cls_token_id: int = 101  # the null language is [CLS] alone
    lang_dropout: float = 0.0  # training hook: replace a caption by the null language
    lm_cache_size: int = 4096  # captions whose LM features are kept (0: off, < 0: unbounded)
    # True: reproduce the reference exactly (padding masks query rows, not keys; R3M mean-pools padding)
    voltron_compat: bool = False
    # V-Gen
    gen_ratio: float = 0.5
    mae_weight: float = 1.0
    lm_weight: float = 0.5
    # R3M
    fc_dim: int = 2048  # ResNet-50 pooled feature size
    reward_dim: int = 1024
    n_negatives: int = 3
    tcn_weight: float = 1.0
    lang_reward_weight: float = 1.0
    l1_weight: float = 1e-5
    l2_weight: float = 1e-5
    eps: float = 1e-8

    def __post_init__(self) -> None:
        self.validate()

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def n_patches(self) -> int:
        return self.grid**2

    def validate(self) -> None:
        def bad(field: str, why: str) -> None:
            raise ValueError(f"EncoderConfig.{field}={getattr(self, field)!r}: {why}")

        if self.arch not in ARCHS:
            bad("arch", f"expected one of {', '.join(ARCHS)}")
        if self.patch_size <= 0 or self.image_size % self.patch_size:
            bad("image_size", f"must be a positive multiple of patch_size={self.patch_size}")
        for dim, heads in (("encoder_dim", "encoder_heads"), ("decoder_dim", "decoder_heads")):
            if getattr(self, dim) % getattr(self, heads):
                bad(dim, f"must be divisible by {heads}={getattr(self, heads)}")
            if getattr(self, dim) % 4:
                bad(dim, "must be divisible by 4 (2-D sine-cosine position embeddings)")
        if not 0.0 <= self.mask_ratio < 1.0:
            bad("mask_ratio", "expected 0 <= mask_ratio < 1")
        if int(self.n_patches * (1 - self.mask_ratio)) < 1:
            bad("mask_ratio", f"leaves no visible patch out of {self.n_patches}")
        if not 0.0 <= self.gen_ratio <= 1.0:
            bad("gen_ratio", "expected 0 <= gen_ratio <= 1")
        if not 0.0 <= self.lang_dropout <= 1.0:
            bad("lang_dropout", "expected 0 <= lang_dropout <= 1")
        if self.max_lang_len < 2:
            bad("max_lang_len", "expected at least 2 tokens")

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> EncoderConfig:
        data = {k: v for k, v in data.items() if k not in ("format", "robolearn_version")}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown encoder config field(s) {unknown}; expected a subset of {sorted(known)}"
            )
        if "arch" not in data:
            raise ValueError(f"{source}: missing field 'arch' (one of {', '.join(ARCHS)})")
        return cls(**data)

    def replace(self, **changes: Any) -> EncoderConfig:
        return dataclasses.replace(self, **changes)
