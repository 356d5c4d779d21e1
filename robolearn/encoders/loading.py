"""`load()` / `save()`: our checkpoint folders and the reference's released layout, never downloading.

Our format (also what robolearn.pretrain checkpoints contain):
    <dir>/config.json          EncoderConfig fields (+ "format", "robolearn_version")
    <dir>/model.safetensors    the state dict (bare keys)

Every refusal is a CheckpointError (a ValueError; CheckpointNotFoundError for missing files, also a
FileNotFoundError; CheckpointMismatchError for wrong keys, shapes or dtypes) naming the file. Reference `.pt`
files are read with `weights_only=True` unless the caller passes `weights_only=False` (the CLI's
`encoders convert --trust-pickle`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from robolearn.encoders import reference
from robolearn.encoders.base import Encoder
from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.files import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    check_field_types,
    read_json_object,
    read_safetensors,
)
from robolearn.encoders.language import LanguageModel
from robolearn.encoders.registry import MODELS, build, model_from_config, preprocess_for, unknown_model

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"

# Where the reference release hosts its files (Google Drive ids, for gdown or a browser); load() never fetches.
RELEASED = {
    "v-cond": ("1O4oqRIblfS6PdFlZzUcYIX-Rqe6LbvnD", "12g5QckQSMKqrfr4lFY3UPdy7oLw4APpG"),
    "v-dual": ("1zgKiK81SF9-0lg0XbMZwNhUh1Q7YdZZU", "1CCRqrwcvF8xhIbJJmwnCbcWfWTJCK40T"),
    "v-gen": ("18-mUBDsr-2_-KrGoL2E2YzjcUO8JOwUF", "1TzSQpKVKBWKCSvYJf22c45hrKczTQz24"),
    "v-cond-base": ("1CLe7CaIzTEcGCijIgw_S-uqMXHfBFSLI", "1PwczOijL0hfYD8DI4xLOPLf1xL_7Kg9S"),
    "r-mvp": ("1KKNWag6aS1xkUiUjaJ1Khm9D6F3ROhCR", "1-ExshZ6EC8guElOv_s-e8gOJ0R1QEAfj"),
    "r-r3m-vit": ("1JGk32BLXwI79uDLAGcpbw0PiupBknf-7", "1Yby5oB4oPc33IDQqYxwYjQV3-56hjCTW"),
    "r-r3m-rn50": ("1OS3mB4QRm-MFzHoD9chtzSmVhOA-eL_n", "1t1gkQYr6JbRSkG3fGqy_9laFg_54IIJL"),
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("ROBOLEARN_ENCODERS", Path.home() / ".cache" / "robolearn" / "encoders"))


def save(model: Encoder, path: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` to the folder `path` (created); returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(model.config_dict(), indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path / WEIGHTS_FILE), metadata={"format": "pt", "arch": model.config.arch})
    return path


def check_and_load(
    model: Encoder,
    state: dict[str, torch.Tensor],
    source: str,
    origin: dict[str, str] | None = None,
    unmapped: list[str] | None = None,
) -> None:
    """Strict load; on any mismatch raise CheckpointMismatchError naming every missing / unexpected /
    mis-shaped / wrongly typed key (reference names shown next to ours when the checkpoint was mapped). A
    floating-point tensor may load into another float precision; any other dtype change is a mismatch."""
    expected = model.state_dict()
    origin = origin or {}

    def shown(k: str) -> str:
        return f"{k} (reference {origin[k]})" if k in origin else k

    missing = [k for k in expected if k not in state]
    unexpected = [shown(k) for k in state if k not in expected] + [f"{k} (no mapping)" for k in unmapped or []]
    misshaped = [
        f"{shown(k)}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and v.shape != expected[k].shape
    ]
    mistyped = [
        f"{shown(k)}: checkpoint {v.dtype} vs model {expected[k].dtype}"
        for k, v in state.items()
        if k in expected
        and v.dtype != expected[k].dtype
        and not (v.dtype.is_floating_point and expected[k].dtype.is_floating_point)
    ]
    if missing or unexpected or misshaped or mistyped:

        def part(label: str, items: list[str]) -> str:
            more = f" ... (+{len(items) - 20} more)" if len(items) > 20 else ""
            return f"\n  {len(items)} {label}: " + "; ".join(items[:20]) + more if items else ""

        raise CheckpointMismatchError(
            f"{source} does not match {model.config.name or model.config.arch} ({type(model).__name__}):"
            + part("missing key(s)", missing)
            + part("unexpected key(s)", unexpected)
            + part("mis-shaped key(s)", misshaped)
            + part("wrongly typed key(s)", mistyped)
        )
    model.load_state_dict(state, strict=True)


def _load_ours(folder: Path, config_path: Path, weights_path: Path, overrides: dict[str, Any]) -> Encoder:
    data = read_json_object(config_path, "the encoder's EncoderConfig fields (robolearn.encoders.save)")
    check_field_types(EncoderConfig, data, str(config_path))
    try:
        config = EncoderConfig.from_dict(data, source=str(config_path))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{config_path}: {e}" if str(config_path) not in str(e) else str(e)) from None
    model = model_from_config(config.replace(**overrides) if overrides else config)
    check_and_load(model, read_safetensors(weights_path, f"the {config.arch} encoder's weights"), str(weights_path))
    return model


def _load_reference(weights: Path, config_path: Path | None, overrides: dict[str, Any], weights_only: bool) -> Encoder:
    state = reference.read_weights(weights, weights_only)
    raw = reference.read_config_json(config_path)
    name = config_path.name[: -len("-config.json")] if config_path else weights.stem
    config = reference.reference_config(
        state, raw, name, str(config_path or weights), voltron_compat=overrides.pop("voltron_compat", True)
    )
    model = model_from_config(config.replace(**overrides) if overrides else config)
    mapped, origin, unmapped = reference.map_state_dict(state)
    check_and_load(model, mapped, str(weights), origin, unmapped)
    return model


def load_checkpoint(path: str | Path, weights_only: bool = True, **overrides: Any) -> Encoder:
    """Build a model from a checkpoint folder or file, either layout (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        ours = [(path / f).exists() for f in (CONFIG_FILE, WEIGHTS_FILE)]
        if all(ours):
            return _load_ours(path, path / CONFIG_FILE, path / WEIGHTS_FILE, overrides)
        found = reference.find_reference_files(path)
        if found is not None:
            return _load_reference(found[0], found[1], overrides, weights_only)
        if any(ours):
            raise CheckpointNotFoundError(
                f"{path}: missing {WEIGHTS_FILE if ours[0] else CONFIG_FILE} (a robolearn "
                f"encoder checkpoint has {CONFIG_FILE} + {WEIGHTS_FILE})"
            )
        raise CheckpointNotFoundError(
            f"{path}: no checkpoint found; expected {CONFIG_FILE} + {WEIGHTS_FILE} "
            f"(robolearn) or <id>-config.json + <id>.pt (reference release); found "
            f"{sorted(p.name for p in path.iterdir())[:10]}"
        )
    if path.suffix == ".safetensors":
        config = path.parent / CONFIG_FILE
        if not config.exists():
            raise CheckpointNotFoundError(f"{path}: no {CONFIG_FILE} next to it (needed to rebuild the model)")
        return _load_ours(path.parent, config, path, overrides)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        config = path.with_name(f"{path.stem}-config.json")
        return _load_reference(path, config if config.exists() else None, overrides, weights_only)
    raise CheckpointError(f"{path}: expected a checkpoint folder, a .safetensors file or a reference .pt file")


def load(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    freeze: bool = True,
    language_model: str | LanguageModel | None = None,
    pretrained: bool = True,
    voltron_compat: bool | None = None,
    cache_dir: str | Path | None = None,
    weights_only: bool = True,
    **overrides: Any,
) -> tuple[Encoder, Callable[[torch.Tensor], torch.Tensor]]:
    """-> (model, preprocess). `name_or_path`: a registry id (looked up as a local checkpoint in
    `cache_dir/<id>/`, default ~/.cache/robolearn/encoders or $ROBOLEARN_ENCODERS) or a checkpoint folder/file.

    - `pretrained=False` with an id builds random weights (offline).
    - `language_model`: hub id / local folder / LanguageModel replacing the config's LM (loaded lazily).
    - `voltron_compat`: None keeps the checkpoint's setting: True for reference checkpoints (they were trained
      with the reference's padding behaviour, so this gives the published features), the saved value for ours.
    - `freeze`: eval() and requires_grad=False (the model is put in eval() either way).
    - `overrides`: other EncoderConfig fields (e.g. lm_cache_size)."""
    if voltron_compat is not None:
        overrides["voltron_compat"] = voltron_compat
    name = str(name_or_path)
    path = Path(name_or_path)
    if path.exists():
        model = load_checkpoint(path, weights_only, **overrides)
    elif name in MODELS:
        if not pretrained:
            model = build(name, **overrides)
        else:
            folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            folder = folder / name
            if not folder.is_dir():
                ids = RELEASED.get(name)
                where = (
                    f" The reference release hosts {name}-config.json (Google Drive id {ids[0]}) and {name}.pt "
                    f"(id {ids[1]})."
                    if ids
                    else ""
                )
                raise CheckpointNotFoundError(
                    f"no local checkpoint for {name!r}: put its files in {folder}/ ({name}-config.json + {name}.pt, "
                    f"or config.json + model.safetensors), pass a checkpoint folder/file path, or use "
                    f"load({name!r}, pretrained=False) for random weights.{where} load() never downloads."
                )
            model = load_checkpoint(folder, weights_only, **overrides)
    elif any(s in name for s in ("/", "\\")) or Path(name).suffix in (".pt", ".pth", ".safetensors", ".json"):
        raise CheckpointNotFoundError(f"checkpoint path {name!r} does not exist")
    else:
        raise unknown_model(name)
    if language_model is not None and model.uses_language:
        model.set_language_model(language_model)
    model.to(device)
    model.eval()
    if freeze:
        model.requires_grad_(False)
    return model, preprocess_for(model.config)
