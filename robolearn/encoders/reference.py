"""Reading the reference implementation's checkpoints (voltron-robotics 1.1.0).

Layouts:
- released models: `<id>-config.json` (the model constructor's kwargs) + `<id>.pt` holding
  `[state_dict, optimizer_state]` with bare keys (XLA `xm.save` format);
- its DDP pretraining script: a dict {"model_state_dict", "optimizer_state_dict"} whose keys carry `module.`;
- a bare state dict.

Parameter names are mapped with the tables below (reference -> ours). The reference also stores its frozen
DistilBERT (`lm.*`), the fixed sin-cos tables (`encoder_pe`, `decoder_pe`, `pe`) and V-Gen's `prefix_mask`:
those are recomputed or loaded separately here, and dropped. When the config JSON is missing (DDP runs), or
lacks a field, sizes are inferred from the weights' shapes.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from robolearn.encoders.config import EncoderConfig
from robolearn.encoders.files import CheckpointError, check_field_types, read_json_object, read_torch_file
from robolearn.encoders.registry import MODELS

# --- parameter names: reference -> ours ------------------------------------------------------------------
# Block containers; the block-internal names follow in BLOCK_NAMES.
BLOCK_CONTAINERS = {
    "encoder_blocks": "encoder.blocks",
    "decoder_blocks": "decoder.blocks",
    "blocks": "encoder.blocks",
}  # `blocks`: R-R3M ViT
BLOCK_NAMES: list[tuple[str, str]] = [
    (r"pre_norm_attn\.g", "norm1.weight"),  # RMSNorm gain (Voltron blocks)
    (r"pre_norm_attn\.(weight|bias)", r"norm1.\1"),  # LayerNorm (R-MVP, R-R3M)
    (r"pre_norm_mlp\.g", "norm2.weight"),
    (r"pre_norm_mlp\.(weight|bias)", r"norm2.\1"),
    (r"attn\.(qkv|proj)\.(weight|bias)", r"attn.\1.\2"),
    (r"layer_scale_attn\.gamma", "ls1.gamma"),
    (r"layer_scale_mlp\.gamma", "ls2.gamma"),
    (r"mlp\.0\.project\.(weight|bias)", r"mlp.fc1.\1"),  # SwishGLU: Linear(D, 2*4D) = (value, gate)
    (r"mlp\.0\.0\.(weight|bias)", r"mlp.fc1.\1"),  # GELU MLP: Sequential(Linear, GELU)
    (r"mlp\.2\.(weight|bias)", r"mlp.fc2.\1"),
]
TOP_NAMES: list[tuple[str, str]] = [
    (r"patch2embed\.proj\.(weight|bias)", r"patch_embed.proj.\1"),
    (r"encoder_norm\.g", "encoder.norm.weight"),
    (r"encoder_norm\.(weight|bias)", r"encoder.norm.\1"),  # R-MVP LayerNorm
    (r"decoder_norm\.g", "decoder.norm.weight"),
    (r"decoder_norm\.(weight|bias)", r"decoder.norm.\1"),
    (r"norm\.(weight|bias)", r"encoder.norm.\1"),  # R-R3M ViT final LayerNorm
    (r"lang2encoder\.(weight|bias)", r"lang_proj.\1"),
    (r"lang2decoder\.(weight|bias)", r"decoder_lang_proj.\1"),  # V-Gen
    (r"encoder2decoder\.(weight|bias)", r"decoder_embed.\1"),
    (r"decoder_prediction\.(weight|bias)", r"pixel_head.\1"),
    (r"decoder_patch_prediction\.(weight|bias)", r"pixel_head.\1"),  # V-Gen
    (r"decoder_lang_prediction\.(weight|bias)", r"token_head.\1"),  # V-Gen
    (r"mask_token", "mask_token"),
    (r"cls_token", "cls_token"),  # R-MVP
    (r"img_token|img_enc_token", "image_token"),
    (r"lang_token|lang_enc_token", "lang_token"),
    (r"ctx_enc_pe", "frame_embed"),  # V-Dual / V-Gen
    (r"ctx_dec_pe", "decoder_frame_embed"),
    (r"language_reward\.(\d+)\.(weight|bias)", r"reward_head.\1.\2"),  # R-R3M
    (r"resnet\.(.+)", r"trunk.\1"),  # R-R3M ResNet-50 (torchvision names)
]
IGNORED = [r"lm\..+", r"encoder_pe", r"decoder_pe", r"pe", r"prefix_mask"]

# --- config fields: reference constructor kwargs -> EncoderConfig -----------------------------------------
CONFIG_FIELDS = {
    "resolution": "image_size",
    "patch_size": "patch_size",
    "in_channels": "in_channels",
    "encoder_depth": "encoder_depth",
    "encoder_embed_dim": "encoder_dim",
    "encoder_n_heads": "encoder_heads",
    "decoder_depth": "decoder_depth",
    "decoder_embed_dim": "decoder_dim",
    "decoder_n_heads": "decoder_heads",
    "depth": "encoder_depth",
    "embed_dim": "encoder_dim",
    "n_heads": "encoder_heads",  # R-R3M ViT
    "mlp_ratio": "mlp_ratio",
    "mask_ratio": "mask_ratio",
    "language_model": "language_model",
    "language_dim": "language_dim",
    "vocab_size": "vocab_size",
    "max_lang_len": "max_lang_len",
    "mae_weight": "mae_weight",
    "lm_weight": "lm_weight",
    "gen_ratio": "gen_ratio",
    "lang_dropout": "lang_dropout",
    "fc_dim": "fc_dim",
    "reward_dim": "reward_dim",
    "n_negatives": "n_negatives",
    "eps": "eps",
    "lang_reward_weight": "lang_reward_weight",
    "tcn_weight": "tcn_weight",
    "l1_weight": "l1_weight",
    "l2_weight": "l2_weight",
}
# training-only or bookkeeping fields (the optimiser recipe lives in robolearn.pretrain)
CONFIG_IGNORED = {
    "hf_cache",
    "optimizer",
    "schedule",
    "base_lr",
    "min_lr",
    "lr",
    "effective_bsz",
    "betas",
    "weight_decay",
    "warmup_epochs",
    "max_epochs",
    "norm_pixel_loss",
    "arch",
    "identifier",
    "data_modality",
    "device_bsz",
    "native_bsz",
    "use_cls_token",
}
REFERENCE_ARCHS = {
    "v-cond": "v-cond",
    "v-dual": "v-dual",
    "v-gen": "v-gen",
    "v-mvp": "r-mvp",
    "v-r3m": "r-r3m-vit",
    "v-rn3m": "r-r3m-rn50",
}
HEADS_BY_DIM = {32: 4, 64: 4, 192: 6, 384: 6, 512: 16, 768: 12, 1024: 16}


def _first_match(name: str, table: list[tuple[str, str]]) -> str | None:
    for pattern, target in table:
        m = re.fullmatch(pattern, name)
        if m:
            return m.expand(target)
    return None


def our_name(ref: str) -> str | None:
    """Reference parameter name -> ours; None if it has no counterpart (ignored or unknown)."""
    m = re.fullmatch(r"(encoder_blocks|decoder_blocks|blocks)\.(\d+)\.(.+)", ref)
    if m:
        inner = _first_match(m[3], BLOCK_NAMES)
        return None if inner is None else f"{BLOCK_CONTAINERS[m[1]]}.{m[2]}.{inner}"
    return _first_match(ref, TOP_NAMES)


def is_ignored(ref: str) -> bool:
    return any(re.fullmatch(p, ref) for p in IGNORED)


def reference_name(ours: str, arch: str) -> str:
    """Ours -> the reference's name for `arch` (to write reference-layout checkpoints, e.g. in tests)."""
    voltron, vgen = arch.startswith("v-"), arch == "v-gen"
    m = re.fullmatch(r"(encoder|decoder)\.blocks\.(\d+)\.(.+)", ours)
    if m:
        container = "blocks" if arch == "r-r3m-vit" else f"{m[1]}_blocks"
        inner = m[3]
        for ours_p, ref_p in [
            (r"norm1\.weight", "pre_norm_attn.g" if voltron else "pre_norm_attn.weight"),
            (r"norm2\.weight", "pre_norm_mlp.g" if voltron else "pre_norm_mlp.weight"),
            (r"norm1\.bias", "pre_norm_attn.bias"),
            (r"norm2\.bias", "pre_norm_mlp.bias"),
            (r"ls1\.gamma", "layer_scale_attn.gamma"),
            (r"ls2\.gamma", "layer_scale_mlp.gamma"),
            (r"mlp\.fc1\.(weight|bias)", r"mlp.0.project.\1" if voltron else r"mlp.0.0.\1"),
            (r"mlp\.fc2\.(weight|bias)", r"mlp.2.\1"),
            (r"attn\.(.+)", r"attn.\1"),
        ]:
            mm = re.fullmatch(ours_p, inner)
            if mm:
                return f"{container}.{m[2]}.{mm.expand(ref_p)}"
        raise KeyError(f"no reference name for {ours!r}")
    table = [
        (r"patch_embed\.proj\.(.+)", r"patch2embed.proj.\1"),
        (
            r"encoder\.norm\.weight",
            "encoder_norm.g" if voltron else ("norm.weight" if arch == "r-r3m-vit" else "encoder_norm.weight"),
        ),
        (r"encoder\.norm\.bias", "norm.bias" if arch == "r-r3m-vit" else "encoder_norm.bias"),
        (r"decoder\.norm\.weight", "decoder_norm.g" if voltron else "decoder_norm.weight"),
        (r"decoder\.norm\.bias", "decoder_norm.bias"),
        (r"lang_proj\.(.+)", r"lang2encoder.\1"),
        (r"decoder_lang_proj\.(.+)", r"lang2decoder.\1"),
        (r"decoder_embed\.(.+)", r"encoder2decoder.\1"),
        (r"pixel_head\.(.+)", r"decoder_patch_prediction.\1" if vgen else r"decoder_prediction.\1"),
        (r"token_head\.(.+)", r"decoder_lang_prediction.\1"),
        (r"image_token", "img_enc_token" if vgen else "img_token"),
        (r"lang_token", "lang_enc_token" if vgen else "lang_token"),
        (r"frame_embed", "ctx_enc_pe"),
        (r"decoder_frame_embed", "ctx_dec_pe"),
        (r"reward_head\.(.+)", r"language_reward.\1"),
        (r"trunk\.(.+)", r"resnet.\1"),
        (r"(mask_token|cls_token)", r"\1"),
    ]
    name = _first_match(ours, table)
    if name is None:
        raise KeyError(f"no reference name for {ours!r}")
    return name


def to_reference_state_dict(state_dict: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    return {reference_name(k, arch): v for k, v in state_dict.items()}


# --- files ---------------------------------------------------------------------------------------------
def read_weights(path: Path, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """The model state dict from a reference .pt (list/tuple, DDP dict or bare dict), `module.` stripped.
    `weights_only=True` (the default) refuses pickles holding anything but tensors and plain values."""
    obj = read_torch_file(
        path,
        "a reference checkpoint: [state_dict, optimizer_state], a dict with "
        "'model_state_dict' or a state dict of tensors",
        weights_only,
        hint="If you trust this file: robolearn encoders convert --trust-pickle SOURCE OUT "
        "(Python: load(..., weights_only=False)) converts it once to safetensors",
    )
    if isinstance(obj, (list, tuple)) and obj and isinstance(obj[0], dict):
        state = obj[0]  # released [state_dict, optimizer_state]
    elif isinstance(obj, dict) and "model_state_dict" in obj:
        state = obj["model_state_dict"]  # reference DDP checkpoints
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        raise CheckpointError(
            f"{path}: expected [state_dict, optimizer_state], a dict with 'model_state_dict', or "
            f"a state dict; got {type(obj).__name__}"
        )
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise CheckpointError(f"{path}: the state dict must map parameter names to tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def detect_arch(state: dict[str, torch.Tensor], config: dict[str, Any], source: str) -> str:
    if "resnet.conv1.weight" in state:
        arch = "r-r3m-rn50"
    elif "language_reward.0.weight" in state:
        arch = "r-r3m-vit"
    elif "decoder_lang_prediction.weight" in state:
        arch = "v-gen"
    elif "ctx_enc_pe" in state:
        arch = "v-dual"
    elif "lang2encoder.weight" in state:
        arch = "v-cond"
    elif "cls_token" in state and "encoder2decoder.weight" in state:
        arch = "r-mvp"
    else:
        raise CheckpointError(
            f"{source}: cannot tell which model these weights belong to (expected reference keys "
            f"such as 'lang2encoder.weight', 'ctx_enc_pe', 'decoder_lang_prediction.weight', "
            f"'cls_token', 'language_reward.0.weight' or 'resnet.conv1.weight'); found e.g. "
            f"{sorted(state)[:5]}"
        )
    declared = REFERENCE_ARCHS.get(str(config.get("arch", "")))
    if declared is None and config.get("identifier") in MODELS:
        declared = MODELS[config["identifier"]][0]
    if declared is not None and declared != arch:
        raise CheckpointError(f"{source}: the config says {declared!r} but the weights are a {arch!r} model")
    return arch


def infer_sizes(state: dict[str, torch.Tensor], arch: str) -> dict[str, Any]:
    """Sizes read off the weights (used where the config JSON is missing a field)."""
    out: dict[str, Any] = {}
    if arch == "r-r3m-rn50":
        w = state.get("language_reward.0.weight")
        if w is not None:
            out["reward_dim"] = w.shape[0]
            out["language_dim"] = w.shape[1] - 2 * out.setdefault("fc_dim", 2048)
        return out
    proj = state.get("patch2embed.proj.weight")
    if proj is not None:
        out.update(encoder_dim=proj.shape[0], in_channels=proj.shape[1], patch_size=proj.shape[2])
    pe = state.get("encoder_pe", state.get("pe"))
    if pe is not None and "patch_size" in out:
        n = pe.shape[1] - (1 if arch == "r-mvp" else 0)
        out["image_size"] = round(n**0.5) * out["patch_size"]
    encoder_prefix = "blocks" if arch == "r-r3m-vit" else "encoder_blocks"
    for part, prefix in (("encoder", encoder_prefix), ("decoder", "decoder_blocks")):
        idx = {int(m[1]) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
        if idx:
            out[f"{part}_depth"] = max(idx) + 1
            qkv = state.get(f"{prefix}.0.attn.qkv.weight")
            if qkv is not None:
                out[f"{part}_dim"] = qkv.shape[1]
                out[f"{part}_heads"] = HEADS_BY_DIM.get(qkv.shape[1], max(1, qkv.shape[1] // 64))
            fc2 = state.get(f"{prefix}.0.mlp.2.weight")
            if fc2 is not None:
                out["mlp_ratio"] = fc2.shape[1] / fc2.shape[0]
    if "lang2encoder.weight" in state:
        out["language_dim"] = state["lang2encoder.weight"].shape[1]
    if "decoder_lang_prediction.weight" in state:
        out["vocab_size"] = state["decoder_lang_prediction.weight"].shape[0]
    if "prefix_mask" in state and "image_size" in out:
        out["max_lang_len"] = state["prefix_mask"].shape[-1] - 2 * (out["image_size"] // out["patch_size"]) ** 2
    if "language_reward.0.weight" in state:
        w = state["language_reward.0.weight"]
        out["reward_dim"] = w.shape[0]
        if "encoder_dim" in out:
            out["language_dim"] = w.shape[1] - 2 * out["encoder_dim"]
    return out


def reference_config(
    state: dict[str, torch.Tensor], config: dict[str, Any], name: str, source: str, voltron_compat: bool = True
) -> EncoderConfig:
    """Tolerant mapping of the reference's config JSON (+ sizes inferred from the weights) to EncoderConfig."""
    arch = detect_arch(state, config, source)
    if config.get("use_cls_token"):
        raise CheckpointError(
            f"{source}: use_cls_token=True checkpoints are not supported (the released models and "
            f"the reference training never use a CLS token in Voltron models)"
        )
    fields: dict[str, Any] = {}
    inferred = infer_sizes(state, arch)
    missing_heads = [f for f in ("encoder_heads", "decoder_heads") if f in inferred]
    unknown = []
    for key, value in config.items():
        if key in CONFIG_FIELDS:
            fields[CONFIG_FIELDS[key]] = value
        elif key not in CONFIG_IGNORED:
            unknown.append(key)
    if unknown:
        warnings.warn(f"{source}: ignoring unknown reference config field(s) {sorted(unknown)}", stacklevel=3)
    guessed = [f for f in missing_heads if f not in fields]
    if guessed:
        warnings.warn(
            f"{source}: {', '.join(guessed)} not in the config; guessed from the width "
            f"({', '.join(f'{f}={inferred[f]}' for f in guessed)})",
            stacklevel=3,
        )
    for key, value in inferred.items():
        fields.setdefault(key, value)
    fields["name"] = name if name in MODELS else fields.get("name", arch)
    fields["voltron_compat"] = voltron_compat
    check_field_types(EncoderConfig, fields, source)
    try:
        return EncoderConfig(arch=arch, **fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: the reference config does not describe a valid {arch} model: {e}") from e


def map_state_dict(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str]]:
    """-> (our state dict, our name -> reference name, reference keys with no counterpart)."""
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if is_ignored(key):
            continue
        name = our_name(key)
        if name is None:
            unmapped.append(key)
            continue
        mapped[name], origin[name] = value, key
    return mapped, origin, unmapped


def find_reference_files(folder: Path) -> tuple[Path, Path | None] | None:
    """(weights, config) in a folder holding the reference layout, else None."""
    configs = sorted(folder.glob("*-config.json"))
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".pth", ".ckpt"))
    for cfg in configs:
        stem = cfg.name[: -len("-config.json")]
        for w in weights:
            if w.stem == stem:
                return w, cfg
    if len(weights) == 1:
        return weights[0], (configs[0] if len(configs) == 1 else None)
    if len(weights) > 1:
        raise CheckpointError(
            f"{folder}: several checkpoints {[w.name for w in weights]} and no matching "
            f"'<id>-config.json'; pass the .pt file itself"
        )
    return None


def read_config_json(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    return read_json_object(path, "a JSON object of the reference model's constructor arguments")
