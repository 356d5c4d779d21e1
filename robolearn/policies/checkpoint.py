"""Policy checkpoints: a folder with `config.json` (PolicyConfig + what rebuilds the backbone + training
metadata) and `model.safetensors` (every weight and the normalisation buffers). Self-contained: the encoder's
weights are inside, so a policy loads without its encoder checkpoint.

`load_policy(path)` takes a checkpoint folder or a training run folder (its `policy/`). Corrupted or
mismatched files raise `PolicyCheckpointError` (a robolearn.encoders CheckpointError) naming the file and what
is wrong; `encoder=` swaps in another encoder under the trained head, refused when its feature size differs
from the head's. Nothing here unpickles: the weights are safetensors, the config JSON, and an encoder named by
the config is read with `weights_only=True` (encoder overrides cannot switch that off).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from robolearn import __version__
from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.files import CheckpointError, check_field_types, read_json_object, read_safetensors
from robolearn.policies.config import HEAD_CONFIGS, PolicyConfig
from robolearn.policies.policy import Policy
from robolearn.utils import atomic_path, one_line, write_text_atomic

POLICY_FORMAT = "robolearn.policy"
POLICY_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class PolicyCheckpointError(CheckpointError):
    """A policy checkpoint that cannot be used; the message names the file and the problem."""


def save_policy(policy: Policy, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write config.json + model.safetensors into `path` (atomically per file)."""
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()}
    with atomic_path(out / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": POLICY_FORMAT})
    doc = {
        "format": POLICY_FORMAT,
        "version": POLICY_VERSION,
        "robolearn_version": __version__,
        "policy": policy.config.to_dict(),
        "backbone": policy.backbone.extra_config(),
        "head_input_dim": policy.head.embed_dim,
        "meta": meta or {},
    }
    write_text_atomic(out / CONFIG_FILE, json.dumps(doc, indent=2) + "\n")
    return out


def resolve_policy_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.is_file() and p.name in (CONFIG_FILE, WEIGHTS_FILE):
        p = p.parent
    if (p / "policy" / CONFIG_FILE).exists() and not (p / CONFIG_FILE).exists():
        p = p / "policy"  # a training run folder
    if not p.is_dir():
        raise PolicyCheckpointError(f"{p}: no such policy checkpoint folder")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (p / name).is_file():
            raise PolicyCheckpointError(
                f"{p}: missing {name} (a policy checkpoint has {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
    return p


def read_policy_config(path: str | Path) -> dict[str, Any]:
    """config.json of a policy checkpoint, its top-level fields type-checked."""
    p = resolve_policy_dir(path)
    f = p / CONFIG_FILE
    doc = read_json_object(f, f"the policy checkpoint's config ({POLICY_FORMAT})", PolicyCheckpointError)
    if doc.get("format") != POLICY_FORMAT:
        raise PolicyCheckpointError(f"{f}: field 'format' is {doc.get('format')!r}, expected {POLICY_FORMAT!r}")
    if "policy" not in doc:
        raise PolicyCheckpointError(f"{f}: missing field 'policy' (the PolicyConfig)")
    for key, kind, label in (
        ("policy", dict, "object"),
        ("backbone", dict, "object"),
        ("meta", dict, "object"),
        ("head_input_dim", int, "integer"),
    ):
        if key in doc and (not isinstance(doc[key], kind) or isinstance(doc[key], bool)):
            raise PolicyCheckpointError(f"{f}: field {key!r} is {doc[key]!r}, expected a JSON {label}")
    enc = doc.get("backbone", {}).get("encoder_config")
    if enc is not None and not isinstance(enc, dict):
        raise PolicyCheckpointError(f"{f}: field 'backbone.encoder_config' is {enc!r}, expected a JSON object")
    return doc


def _policy_config(doc: dict[str, Any], f: Path) -> PolicyConfig:
    """The PolicyConfig of a checkpoint's config.json, its fields (and the head's) type-checked."""
    d = doc["policy"]
    check_field_types(PolicyConfig, d, f"{f}: field 'policy'", PolicyCheckpointError)
    head = d.get("head")
    if isinstance(head, dict) and head.get("name") in HEAD_CONFIGS:
        check_field_types(HEAD_CONFIGS[head["name"]], head, f"{f}: field 'policy.head'", PolicyCheckpointError)
    try:
        config = PolicyConfig.from_dict(d)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise PolicyCheckpointError(f"{f}: field 'policy': {one_line(e)}") from None
    # encoder overrides are EncoderConfig fields only: load()'s own options (weights_only, cache_dir, ...) stay
    # the loader's, so a config.json cannot turn on pickle loading for the encoder checkpoint it names
    known = {x.name for x in dataclasses.fields(EncoderConfig)}
    bad = sorted(set(config.encoder_overrides) - known)
    if bad:
        raise PolicyCheckpointError(
            f"{f}: field 'policy.encoder_overrides' has unknown encoder config field(s) "
            f"{bad}; expected EncoderConfig fields"
        )
    return config


def load_policy(
    path: str | Path, device: str | torch.device = "cpu", encoder: str | None = None, language_model: str | None = None
) -> Policy:
    """A trained policy in eval mode. `encoder` (an id, folder or id:checkpoint) replaces the saved encoder."""
    p = resolve_policy_dir(path)
    doc = read_policy_config(p)
    config = _policy_config(doc, p / CONFIG_FILE)
    if language_model:
        config.language_model = language_model
    encoder_config = doc.get("backbone", {}).get("encoder_config")
    if encoder:
        config.encoder, config.encoder_checkpoint, encoder_config = encoder, None, None
    try:
        policy = Policy(config, encoder_config)
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as e:
        raise PolicyCheckpointError(f"{p / CONFIG_FILE}: cannot rebuild the policy: {one_line(e)}") from None
    head_dim = int(doc.get("head_input_dim", policy.backbone.embed_dim))
    if policy.backbone.embed_dim != head_dim:
        raise PolicyCheckpointError(
            f"{p}: encoder {config.encoder!r} gives {policy.backbone.embed_dim}-d features but the head in "
            f"{WEIGHTS_FILE} was trained on {head_dim}-d features (encoder/head mismatch)"
        )
    wfile = p / WEIGHTS_FILE
    state = read_safetensors(wfile, "the policy's weights (save_policy)", PolicyCheckpointError)
    if encoder:  # keep the new encoder's own weights
        state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        state.update({k: v for k, v in policy.state_dict().items() if k.startswith("backbone.")})
    _check_state(policy, state, wfile)
    policy.load_state_dict(state)
    return policy.to(device).eval()


def _check_state(policy: Policy, state: dict[str, torch.Tensor], source: Path) -> None:
    """Every key of the policy, none more, each with the model's shape and dtype kind (float precisions may
    differ; float vs integer vs bool may not)."""
    own = policy.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    common = sorted(set(own) & set(state))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in common
        if state[k].shape != own[k].shape
    ]
    dtypes = [
        f"{k}: file {state[k].dtype} vs model {own[k].dtype}"
        for k in common
        if state[k].dtype != own[k].dtype and not (state[k].dtype.is_floating_point and own[k].dtype.is_floating_point)
    ]
    if missing or unexpected or shapes or dtypes:
        parts = []
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("mis-shaped", shapes),
            ("wrong dtype", dtypes),
        ):
            if items:
                parts.append(f"{len(items)} {label}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}")
        raise PolicyCheckpointError(f"{source}: weights do not match the policy config ({'; '.join(parts)})")
