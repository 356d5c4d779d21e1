"""`robolearn encoders ...`: list the registry, convert a checkpoint (e.g. a reference release) to ours, and
describe a checkpoint."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from robolearn.config import command, opt, positional
from robolearn.encoders.files import CheckpointError
from robolearn.encoders.loading import load, save
from robolearn.encoders.registry import MODELS, SIZES
from robolearn.utils import one_line


@dataclass
class ListCommand:
    tiny: bool = opt(False, help="also list the -tiny test sizes")


@command("encoders", "list")
def list_models(cfg: ListCommand) -> int:
    """List the encoder ids with their architecture and size."""
    for name, (arch, size) in MODELS.items():
        if size == "tiny" and not cfg.tiny:
            continue
        s = SIZES[size]
        enc = f"ViT {s['encoder_depth']}x{s['encoder_dim']}x{s['encoder_heads']}"
        dec = f"decoder {s['decoder_depth']}x{s['decoder_dim']}x{s['decoder_heads']}"
        trunk = {"r-r3m-rn50": "ResNet-50", "r-r3m-vit": enc}.get(arch, f"{enc}  {dec}")
        print(f"{name:18s} {arch:11s} {size:5s} {trunk}")
    return 0


@dataclass
class ConvertCommand:
    source: Path = positional(help="checkpoint folder or file (reference <id>-config.json + <id>.pt, DDP .pt, ours)")
    out: Path = positional(help="output folder (config.json + model.safetensors)")
    voltron_compat: bool | None = opt(None, help="override the padding behaviour (default: keep the checkpoint's)")
    trust_pickle: bool = opt(
        False,
        help="allow arbitrary pickles in .pt files (they can run code: only for files "
        "you trust); the one way past the tensors-only reading of .pt files",
    )


@command("encoders", "convert")
def convert(cfg: ConvertCommand) -> int:
    """Convert a checkpoint (e.g. a reference release) to robolearn's format."""
    try:
        model, _ = load(cfg.source, voltron_compat=cfg.voltron_compat, weights_only=not cfg.trust_pickle)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"robolearn encoders convert: {one_line(e)}", file=sys.stderr)
        return 2
    save(model, cfg.out)
    print(
        f"wrote {model.config.arch} ({model.num_parameters(trainable_only=False) / 1e6:.2f} M parameters, "
        f"voltron_compat={model.config.voltron_compat}) to {cfg.out}"
    )
    return 0


@dataclass
class InfoCommand:
    source: str = positional(help="checkpoint folder/file or a registry id")


@command("encoders", "info")
def info(cfg: InfoCommand) -> int:
    """Print a checkpoint's config and parameter count (no language model is loaded)."""
    try:
        if cfg.source in MODELS and not Path(cfg.source).exists():
            model, _ = load(cfg.source, pretrained=False)
        else:
            model, _ = load(cfg.source)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"robolearn encoders info: {one_line(e)}", file=sys.stderr)
        return 2
    print(json.dumps({**model.config.to_dict(), "parameters": model.num_parameters(trainable_only=False)}, indent=2))
    return 0
