"""Policy checkpoints: a folder with `config.json` (PolicyConfig + what rebuilds the backbone + training
metadata) and `model.safetensors` (every weight and the normalisation buffers). Self-contained: the encoder's
weights are inside, so a policy loads without its encoder checkpoint.

`load_policy(path)` takes a checkpoint folder or a training run folder (its `policy/`). Corrupted or
mismatched files raise `PolicyCheckpointError` naming the file and what is wrong; `encoder=` swaps in
another encoder under the trained head, refused when its feature size differs from the head's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from robolearn import __version__
from robolearn.policies.config import PolicyConfig
from robolearn.policies.policy import Policy
from robolearn.utils import atomic_path, write_text_atomic

POLICY_FORMAT = "robolearn.policy"
POLICY_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class PolicyCheckpointError(ValueError):
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
    p = resolve_policy_dir(path)
    f = p / CONFIG_FILE
    try:
        doc = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PolicyCheckpointError(f"{f}: not valid JSON ({e}); the checkpoint is corrupted") from None
    if not isinstance(doc, dict) or doc.get("format") != POLICY_FORMAT:
        raise PolicyCheckpointError(
            f"{f}: field 'format' is {doc.get('format') if isinstance(doc, dict) else doc!r}, "
            f"expected {POLICY_FORMAT!r}"
        )
    if "policy" not in doc:
        raise PolicyCheckpointError(f"{f}: missing field 'policy' (the PolicyConfig)")
    return doc


def load_policy(
    path: str | Path, device: str | torch.device = "cpu", encoder: str | None = None, language_model: str | None = None
) -> Policy:
    """A trained policy in eval mode. `encoder` (an id, folder or id:checkpoint) replaces the saved encoder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = resolve_policy_dir(path)
    doc = read_policy_config(p)
    try:
        config = PolicyConfig.from_dict(doc["policy"])
    except (TypeError, ValueError) as e:
        raise PolicyCheckpointError(f"{p / CONFIG_FILE}: field 'policy': {e}") from None
    if language_model:
        config.language_model = language_model
    encoder_config = doc.get("backbone", {}).get("encoder_config")
    if encoder:
        config.encoder, config.encoder_checkpoint, encoder_config = encoder, None, None
    try:
        policy = Policy(config, encoder_config)
    except (TypeError, ValueError, KeyError) as e:
        raise PolicyCheckpointError(f"{p / CONFIG_FILE}: cannot rebuild the policy: {e}") from None
    head_dim = int(doc.get("head_input_dim", policy.backbone.embed_dim))
    if policy.backbone.embed_dim != head_dim:
        raise PolicyCheckpointError(
            f"{p}: encoder {config.encoder!r} gives {policy.backbone.embed_dim}-d features but the head in "
            f"{WEIGHTS_FILE} was trained on {head_dim}-d features (encoder/head mismatch)"
        )
    wfile = p / WEIGHTS_FILE
    try:
        state = load_file(str(wfile))
    except (SafetensorError, OSError, ValueError) as e:
        raise PolicyCheckpointError(f"{wfile}: unreadable weights ({e}); the checkpoint is corrupted") from None
    if encoder:  # keep the new encoder's own weights
        state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        state.update({k: v for k, v in policy.state_dict().items() if k.startswith("backbone.")})
    _check_state(policy, state, wfile)
    policy.load_state_dict(state)
    return policy.to(device).eval()


def _check_state(policy: Policy, state: dict[str, torch.Tensor], source: Path) -> None:
    own = policy.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shapes)):
            if items:
                parts.append(f"{len(items)} {label}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}")
        raise PolicyCheckpointError(f"{source}: weights do not match the policy config ({'; '.join(parts)})")
