"""PolicyConfig: everything that defines a policy's architecture and I/O (saved as config.json with it).

The head is a sub-config chosen by its name (`MapMlpHeadConfig` "map-mlp", `ChunkHeadConfig` "chunk",
`HyenaHeadConfig` "hyena"): on the
command line `--policy.head chunk --policy.head.memory-latents 4`, in a saved config `"head": {"name": "chunk",
...}`. Configs saved before the head was nested (flat `head`, `chunk`, `hidden`, `n_latents`, ... fields) are
rewritten by `upgrade_policy_dict` when they load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from robolearn.config import opt

# The household env's proprio vector, field by field (robolearn.envs.household._observation).
DEFAULT_PROPRIO = ["joint_positions", "ee_position", "ee_quaternion", "gripper_position"]
BASELINES = ("scratch-cnn", "resnet18")


@dataclass
class HeadConfig:
    """What every head has: the chunk length H, its width, depth, dropout and the run-time ensembling decay."""

    name: str = field(default="", init=False)
    chunk: int = opt(1, help="H: actions predicted per step (temporal ensembling at run time)")
    hidden: int = opt(256, help="head width")
    layers: int = opt(2, help="MLP layers (map-mlp) or transformer decoder layers (chunk)")
    dropout: float = opt(0.1, help="dropout in the head")
    ensemble_decay: float = opt(0.1, help="temporal ensembling weight exp(-decay * age) (ACT's m; 0 = plain average)")


@dataclass
class MapMlpHeadConfig(HeadConfig):
    """map-mlp: MAP pooling per camera + proprio embedding -> MLP (the Voltron paper's control adaptation)."""

    name: str = field(default="map-mlp", init=False)
    n_latents: int = opt(1, help="MAP latents per camera")


@dataclass
class ChunkHeadConfig(HeadConfig):
    """chunk: ACT-style action chunking; H queries attend to MAP-resampled camera tokens through a decoder."""

    name: str = field(default="chunk", init=False)
    chunk: int = opt(8, help="H: actions predicted per step (temporal ensembling at run time)")
    memory_latents: int = opt(8, help="each camera's tokens are resampled to this many latents (MAP) first")


@dataclass
class HyenaHeadConfig(HeadConfig):
    """hyena: a history of `history` frames (MAP-pooled per camera + proprio) mixed causally in time by Hyena
    operators (implicit long convolutions by FFT, data-controlled gating) or, as a baseline, attention."""

    name: str = field(default="hyena", init=False)
    hidden: int = opt(128, help="head width")
    history: int = opt(32, help="frames of history the head sees (the current one and history-1 before it)")
    mixer: str = opt("hyena", help="temporal mixer: hyena | attention (causal self-attention, the baseline)")
    order: int = opt(2, help="Hyena order N: long convolutions + gates per operator")
    filter_dim: int = opt(64, help="width of the implicit filter's FFN")
    filter_bands: int = opt(8, help="sin/cos frequency bands of the filter's positional encoding")
    decay_min: float = opt(0.3, help="slowest exponential-decay rate of the filter window (per history length)")
    decay_max: float = opt(30.0, help="fastest exponential-decay rate of the filter window (per history length)")

    def validate(self) -> None:
        if self.history < 1 or self.order < 1 or self.filter_dim < 1 or self.filter_bands < 0:
            raise ValueError(
                f"hyena head: history, order, filter_dim must be >= 1 and filter_bands >= 0; got history="
                f"{self.history}, order={self.order}, filter_dim={self.filter_dim}, filter_bands={self.filter_bands}"
            )
        if self.mixer not in ("hyena", "attention"):
            raise ValueError(f"hyena head: mixer must be 'hyena' or 'attention', got {self.mixer!r}")
        if not 0 < self.decay_min <= self.decay_max:
            raise ValueError(f"hyena head: need 0 < decay_min <= decay_max, got {self.decay_min}, {self.decay_max}")


HEAD_CONFIGS: dict[str, type[HeadConfig]] = {
    "map-mlp": MapMlpHeadConfig,
    "chunk": ChunkHeadConfig,
    "hyena": HyenaHeadConfig,
}
HEADS = tuple(HEAD_CONFIGS)
# flat PolicyConfig fields of the layout before the head was nested -> their HeadConfig field
_FLAT_HEAD_FIELDS = {
    "chunk": "chunk",
    "hidden": "hidden",
    "n_latents": "n_latents",
    "memory_latents": "memory_latents",
    "head_layers": "layers",
    "dropout": "dropout",
    "ensemble_decay": "ensemble_decay",
}


def head_config_from_dict(d: dict[str, Any]) -> HeadConfig:
    """A head config from its saved dict (`name` picks the class); unknown names or fields are a ValueError."""
    d = dict(d)
    name = d.pop("name", "map-mlp")
    if name not in HEAD_CONFIGS:
        raise ValueError(f"unknown head {name!r}; expected one of {', '.join(HEADS)}")
    cls = HEAD_CONFIGS[name]
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {unknown} for head {name!r}; expected {sorted(known)}")
    return cls(**d)


def upgrade_policy_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A saved PolicyConfig dict in the current layout: a flat `head` name with `chunk`, `hidden`, `n_latents`,
    `memory_latents`, `head_layers`, `dropout`, `ensemble_decay` beside it (configs written before the head
    was nested) becomes `head: {"name": ..., ...}` keeping the fields that head has. Current dicts pass as is."""
    if isinstance(d.get("head"), dict) or not (set(d) & (set(_FLAT_HEAD_FIELDS) | {"head"})):
        return d
    d = dict(d)
    name = d.pop("head", "map-mlp")
    head: dict[str, Any] = {"name": name}
    own = {f.name for f in fields(HEAD_CONFIGS[name])} if name in HEAD_CONFIGS else set(_FLAT_HEAD_FIELDS.values())
    for old, new in _FLAT_HEAD_FIELDS.items():
        if old in d:
            value = d.pop(old)
            if new in own:
                head[new] = value
    d["head"] = head
    return d


@dataclass
class PolicyConfig:
    """A policy's architecture and I/O; the fields after `head` are filled at training time."""

    encoder: str = opt(
        "v-cond-tiny",
        help="encoder id (random init), checkpoint folder, id:CKPT, or a baseline (scratch-cnn, resnet18)",
    )
    encoder_checkpoint: str | None = opt(None, help="load the encoder's weights from here (robolearn.encoders.load)")
    encoder_overrides: dict[str, Any] = opt(
        default_factory=dict, help='random-init encoder id overrides, e.g. {"image_size": 64}'
    )
    language_model: str | None = opt(
        None, help="frozen LM for Voltron encoders (hub id or local folder; default: the encoder's)"
    )
    mode: str = opt("visual", help="Voltron features: visual (null language) | multimodal (uses the instruction)")
    freeze: bool = opt(True, help="freeze the encoder: features are computed once and cached (baselines always train)")
    unfreeze_last: int = opt(0, help="with freeze: also train the encoder's last N blocks (disables the cache)")
    cameras: list[str] = opt(default_factory=lambda: ["exterior_1", "wrist"], help="cameras the policy sees")
    image_size: int = opt(64, help="backbone input side for baselines (Voltron ids use the encoder's own size)")
    proprio_keys: list[str] = opt(
        default_factory=lambda: list(DEFAULT_PROPRIO), help="proprio fields fed to the head (none given: no proprio)"
    )
    action_space: str = opt("cartesian_velocity", help="the action vector is this form followed by the gripper target")
    action_dim: int = opt(7, help="action vector size")
    proprio_dim: int = opt(15, help="proprio vector size (training sets it from the data)", cli=False)
    head: MapMlpHeadConfig | ChunkHeadConfig | HyenaHeadConfig = opt(
        default_factory=MapMlpHeadConfig, help="policy head"
    )
    # Filled at training time (the policy needs them at run time):
    train_scenes: list[str] = opt(default_factory=list, help="'household/scene' labels seen in training", cli=False)
    train_tasks: list[str] = opt(default_factory=list, cli=False)
    train_suite: str = opt("household", help="household | metaworld (sets the action adapter at evaluation)", cli=False)
    train_image_size: list[int] = opt(default_factory=list, help="(H, W) of the recorded camera frames", cli=False)

    def validate(self) -> None:
        """Raise ValueError for a config no policy can be built from."""
        if not isinstance(self.head, HeadConfig) or self.head.name not in HEADS:
            raise ValueError(
                f"unknown head {getattr(self.head, 'name', self.head)!r}; expected one of {', '.join(HEADS)}"
            )
        if self.mode not in ("visual", "multimodal"):
            raise ValueError(f"mode must be 'visual' or 'multimodal', got {self.mode!r}")
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {self.chunk}")
        if isinstance(self.head, HyenaHeadConfig):
            self.head.validate()
        if not self.cameras:
            raise ValueError("a policy needs at least one camera")
        if self.unfreeze_last < 0:
            raise ValueError(f"unfreeze_last must be >= 0, got {self.unfreeze_last}")

    @property
    def chunk(self) -> int:
        """H, the actions the head predicts per step (the head config's `chunk`)."""
        return self.head.chunk

    @property
    def history(self) -> int:
        """Frames the head sees per step (1 unless the head keeps a history)."""
        return int(getattr(self.head, "history", 1))

    @property
    def is_baseline(self) -> bool:
        return self.encoder in BASELINES

    @property
    def caches_features(self) -> bool:
        """Frozen pretrained-style encoders: tokens are computed once per frame and reused every epoch."""
        return not self.is_baseline and self.freeze and self.unfreeze_last == 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values; the head as {"name": ..., its fields}."""
        return asdict(self)

    @classmethod
    def upgrade_config(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Saved values of an older layout -> the current one (robolearn.config calls this on load)."""
        return upgrade_policy_dict(values)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """The config from `to_dict()` output (or the older flat layout); unknown fields are a ValueError."""
        d = upgrade_policy_dict(dict(d))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown policy config field(s) {unknown}; expected {sorted(known)}")
        if "head" in d:
            d["head"] = head_config_from_dict(d["head"])
        return cls(**d)
