"""PolicyConfig: everything that defines a policy's architecture and I/O (saved as config.json with it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

HEADS = ("map-mlp", "chunk")
BASELINES = ("scratch-cnn", "resnet18")
# The household env's proprio vector, field by field (robolearn.envs.household._observation).
DEFAULT_PROPRIO = ["joint_positions", "ee_position", "ee_quaternion", "gripper_position"]


@dataclass
class PolicyConfig:
    encoder: str = "v-cond-tiny"  # an encoders id (random init), a checkpoint folder, or a baseline (scratch-cnn, resnet18)
    encoder_checkpoint: str | None = None  # load the encoder's weights from here (robolearn.encoders.load)
    encoder_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. {"image_size": 64} for a random-init id
    language_model: str | None = None  # frozen LM (hub id or local folder) for Voltron encoders; None: the encoder's
    mode: str = "visual"  # Voltron extraction mode: visual (null language) | multimodal (instruction tokens too)
    freeze: bool = True  # frozen encoder: features are computed once and cached for head training
    unfreeze_last: int = 0  # with freeze: also train the encoder's last N blocks (disables the feature cache)
    cameras: list[str] = field(default_factory=lambda: ["exterior_1", "wrist"])
    image_size: int = 64  # input side of the backbone (the encoder's own size for Voltron ids)
    proprio_keys: list[str] = field(default_factory=lambda: list(DEFAULT_PROPRIO))
    action_space: str = "cartesian_velocity"  # the action vector is this form followed by the gripper target
    action_dim: int = 7
    proprio_dim: int = 15
    head: str = "map-mlp"  # map-mlp | chunk
    chunk: int = 1  # H: actions predicted per step (chunk head default 8; temporal ensembling at run time)
    hidden: int = 256
    n_latents: int = 1  # map-mlp: MAP latents per camera
    memory_latents: int = 8  # chunk: each camera's tokens are resampled to this many latents (MAP) first
    head_layers: int = 2  # MLP layers (map-mlp) or transformer decoder layers (chunk)
    dropout: float = 0.1
    ensemble_decay: float = 0.1  # temporal ensembling weight exp(-decay * age) (ACT's m; 0 = plain average)
    # Filled at training time (the policy needs them at run time):
    train_scenes: list[str] = field(default_factory=list)  # "household/scene" labels seen in training
    train_tasks: list[str] = field(default_factory=list)
    train_suite: str = "household"  # household | metaworld (sets the action adapter at evaluation)
    train_image_size: list[int] = field(default_factory=list)  # (H, W) of the recorded camera frames

    def validate(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; expected one of {HEADS}")
        if self.mode not in ("visual", "multimodal"):
            raise ValueError(f"mode must be 'visual' or 'multimodal', got {self.mode!r}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")
        if not self.cameras:
            raise ValueError("a policy needs at least one camera")
        if self.unfreeze_last < 0:
            raise ValueError(f"unfreeze_last must be >= 0, got {self.unfreeze_last}")

    @property
    def is_baseline(self) -> bool:
        return self.encoder in BASELINES

    @property
    def caches_features(self) -> bool:
        """Frozen pretrained-style encoders: tokens are computed once per frame and reused every epoch."""
        return not self.is_baseline and self.freeze and self.unfreeze_last == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown policy config field(s) {unknown}; expected {sorted(known)}")
        return cls(**d)
