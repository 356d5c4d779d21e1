"""What each encoder learned: a MAP + linear probe of the clip's caption template (the action: "pushing
[something] from left to right", "opening [something]", ...) from the frozen features of the clip's first and
last frames, trained on the pretraining clips and scored on the held-out validation clips (never pretrained on).

Every encoder sees the same frames, probe seed, steps and batches. Single-frame encoders (V-Cond, R-MVP) encode
each frame alone and the probe pools the two frames' tokens together; dual-frame ones (V-Gen, V-Dual) encode the
pair. Features are standardised per channel with the training clips' statistics first (MAE's parameter-free
BatchNorm before the linear classifier)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def clip_frames(source: Any, clips: np.ndarray) -> np.ndarray:
    """uint8 [N, 2, H, W, 3]: each clip's first and last frame."""
    out = [np.stack(source.read_frames(int(c), [0, int(source.table.n_frames[c]) - 1])) for c in clips]
    return np.stack(out) if out else np.zeros((0, 2, 1, 1, 3), np.uint8)


def encode_pairs(encoder: torch.nn.Module, frames: np.ndarray, batch: int = 64) -> torch.Tensor:
    """Frozen tokens [N, T, D] of (first, last) frame pairs."""
    from robolearn.encoders import preprocess_for

    arch = encoder.config.arch
    mode = "visual" if arch.startswith("v-") else ("patch" if arch == "r-mvp" else None)
    pre = preprocess_for(encoder.config)
    dual = getattr(encoder, "n_frames", 1) == 2
    encoder.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(frames), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(frames[s : s + batch]))  # [B, 2, H, W, 3]
            b = len(chunk)
            x = pre(chunk.flatten(0, 1).permute(0, 3, 1, 2))
            x = x.reshape(b, 2, *x.shape[1:])
            if dual:
                out.append(encoder(x, None, mode=mode))
            else:
                toks = [encoder(x[:, k], None, mode=mode) for k in range(2)]
                out.append(torch.cat([t if t.ndim == 3 else t[:, None] for t in toks], dim=1))
    return torch.cat(out).float()


def train_probe(f_train, y_train, f_test, n_classes, embed_dim, n_heads, steps, seed, lr=3e-3, batch=64):
    """MAP + Linear on standardised frozen tokens; (train accuracy, test predictions)."""
    from robolearn.encoders import MAPExtractor

    mean, std = f_train.mean((0, 1)), f_train.std((0, 1)) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    torch.manual_seed(seed)
    pool = MAPExtractor(embed_dim, 2 * n_heads, 1)
    head = torch.nn.Linear(embed_dim, n_classes)
    opt = torch.optim.AdamW([*pool.parameters(), *head.parameters()], lr=lr, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        i = torch.randint(0, len(f_train), (min(batch, len(f_train)),), generator=g)
        loss = torch.nn.functional.cross_entropy(head(pool(f_train[i])), y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        train_acc = float((head(pool(f_train)).argmax(-1) == y_train).float().mean())
        return train_acc, head(pool(f_test)).argmax(-1)


def probe_encoders(cfg: Any, prepared: Path, pretrained: dict, controls: dict) -> dict[str, Any]:
    """Template-probe accuracy on held-out clips for every pretrained encoder and random-init control."""
    from robolearn.encoders import load
    from robolearn.eval.metrics import wilson_interval
    from robolearn.pretrain.shards import ShardSource

    src = ShardSource(prepared)
    train_idx, val_idx = src.table.indices("train"), src.table.indices("val")
    templates = sorted({src.templates[i] for i in train_idx})
    cls = {t: k for k, t in enumerate(templates)}
    val_idx = np.array([i for i in val_idx if src.templates[i] in cls], dtype=np.int64)
    if len(val_idx) == 0 or len(templates) < 2:
        return {"skipped": f"needs >= 2 templates and held-out clips of them (got {len(templates)}, {len(val_idx)})"}
    y_train = torch.as_tensor([cls[src.templates[i]] for i in train_idx])
    y_val = torch.as_tensor([cls[src.templates[i]] for i in val_idx])
    f_train_frames, f_val_frames = clip_frames(src, train_idx), clip_frames(src, val_idx)
    counts = np.bincount(y_val.numpy(), minlength=len(templates))
    result: dict[str, Any] = {
        "target": "caption template",
        "templates": len(templates),
        "train_clips": len(train_idx),
        "heldout_clips": len(val_idx),
        "chance_majority": round(float(counts.max() / counts.sum()), 4),
        "chance_uniform": round(1 / len(templates), 4),
        "steps": cfg.probe_steps,
        "encoders": {},
    }
    encoders = {f"{a} pretrained": pretrained[a]["checkpoint"] for a in cfg.encoders}
    encoders.update({f"{a} random-init": controls[a]["checkpoint"] for a in cfg.random_init})
    for name, ckpt in encoders.items():
        model, _ = load(ckpt, weights_only=True)
        f_tr, f_va = encode_pairs(model, f_train_frames), encode_pairs(model, f_val_frames)
        train_acc, pred = train_probe(f_tr, y_train, f_va, len(templates), model.embed_dim, model.n_heads,
                                      cfg.probe_steps, seed=0)  # fmt: skip
        hits = int((pred == y_val).sum())
        lo, hi = wilson_interval(hits, len(val_idx))
        result["encoders"][name] = {"heldout_accuracy": round(hits / len(val_idx), 4), "ci95": [lo, hi],
                                    "train_accuracy": round(train_acc, 4)}  # fmt: skip
    src.close()
    return result
