"""Sophia vs AdamW as the pretraining optimizer: validation loss against steps and against wall time, on V-Cond
tiny and small, same data, schedule, initialisation and seed (docs/pretraining.md, "Sophia").

    .venv/bin/python benchmarks/sophia.py [--sizes tiny small] [--steps 200] [--batch 32] [--lr 1e-3]
                                          [--sophia-lr 1e-3] [--hessian-every 10] [--points 6] [--threads 2]

Data: synthetic clips (robolearn/pretrain/doremi/synthetic.py: ramp, stripes and blobs, 32x32, captions
"<kind> <clip>"), with held-out validation clips; V-Cond conditions on the captions through the packaged
all-MiniLM-L6-v2 (384-d). Both runs use robolearn's pretraining Trainer (`--train.optimizer adamw|sophia`,
warm-up + cosine over the run) and alternate blocks of steps (so machine load hits them alike). At every block
boundary: the mean per-example reconstruction loss on every validation clip with 4 fixed masks, and the
optimizer's cumulative wall time (the default run: about 13 minutes on 2 CPU cores, nearly all of it the small
model; `--sizes tiny` takes ~30 s). Prints a table per size and ends with ONE JSON line: final validation losses,
Sophia / AdamW ratios at equal steps and at AdamW's wall time, and time per step.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DOMAINS = (("ramp", 60, 6), ("stripes", 40, 4), ("blobs", 30, 4))  # kind, clips, of which validation


def sources(seed: int) -> list:
    from robolearn.pretrain.doremi.synthetic import SyntheticSource

    return [SyntheticSource(k, n, val_clips=v, seed=seed * 10 + i) for i, (k, n, v) in enumerate(DOMAINS)]


def validate(model, srcs, seed: int) -> float:
    """Mean reconstruction loss over every validation clip, 4 fixed masks each."""
    import torch

    from robolearn.pretrain.datasets import dataset_for
    from robolearn.pretrain.doremi.losses import per_example_losses

    model.eval()
    g = torch.Generator().manual_seed(seed + 999)
    out = []
    with torch.no_grad():
        for s in srcs:
            ds = dataset_for("v-cond", s, "val", image_size=32, seed=seed)
            batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
            for _ in range(4):
                batch["mask_noise"] = torch.rand(len(ds), model.config.n_patches, generator=g)
                out.append(per_example_losses(model, batch).mean())
    model.train()
    return float(torch.stack(out).mean())


def run_size(args, size: str, tmp: Path) -> dict:
    import torch

    from robolearn.encoders import build
    from robolearn.pretrain.datasets import dataset_for
    from robolearn.pretrain.distributed import DistInfo
    from robolearn.pretrain.trainer import TrainConfig, Trainer

    srcs = sources(args.seed)
    name = "v-cond-tiny" if size == "tiny" else "v-cond"
    kw = {"image_size": 32, "language_model": args.language_model, "language_dim": 384}
    if size != "tiny":
        kw["patch_size"] = 8  # ViT-S width and depth; 16 patches at 32 px (patch 16 would leave 4)
    torch.manual_seed(args.seed)
    init = build(name, **kw)
    params = sum(p.numel() for p in init.parameters() if p.requires_grad)
    trainers = {}
    for opt_name in ("adamw", "sophia"):
        ds = dataset_for("v-cond", srcs, "train", image_size=32, seed=args.seed, epoch_size=args.steps * args.batch)
        cfg = TrainConfig(
            max_epochs=1,
            warmup_epochs=0.05,
            lr=args.lr if opt_name == "adamw" else args.sophia_lr,
            effective_batch=args.batch,
            device_batch=args.batch,
            num_workers=0,
            seed=args.seed,
            checkpoint_every=0,
            keep_last=1,
            log_every=10**9,
            progress=False,
            optimizer=opt_name,
            hessian_every=args.hessian_every,
        )
        trainers[opt_name] = Trainer(copy.deepcopy(init), ds, cfg, tmp / f"{size}-{opt_name}", DistInfo())
    block = max(args.steps // args.points, 1)
    v0 = validate(init, srcs, args.seed)  # both start from `init`
    curves = {k: {"step": [0], "seconds": [0.0], "val": [v0]} for k in trainers}
    for upto in range(block, args.steps + block, block):
        order = list(trainers.items()) if (upto // block) % 2 else list(reversed(trainers.items()))
        for label, tr in order:
            tr.cfg.max_steps = min(upto, args.steps)
            t = time.perf_counter()
            tr.fit()
            c = curves[label]
            c["seconds"].append(c["seconds"][-1] + time.perf_counter() - t)
            c["step"].append(tr.step)
            c["val"].append(validate(tr.model, srcs, args.seed))
    return {"model": name, "params": params, "curves": curves}


def at_time(curve: dict, seconds: float) -> float:
    """Validation loss of a run at a wall time (linear between measured points; last point beyond it)."""
    xs, ys = curve["seconds"], curve["val"]
    for i in range(1, len(xs)):
        if xs[i] >= seconds:
            f = (seconds - xs[i - 1]) / max(xs[i] - xs[i - 1], 1e-9)
            return ys[i - 1] + f * (ys[i] - ys[i - 1])
    return ys[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"], help="tiny (v-cond-tiny) | small (ViT-S)")
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps of each run")
    ap.add_argument("--batch", type=int, default=32, help="examples per optimizer step")
    ap.add_argument("--lr", type=float, default=1e-3, help="AdamW peak lr (warm-up + cosine)")
    ap.add_argument("--sophia-lr", type=float, default=1e-3, help="Sophia peak lr (same schedule)")
    ap.add_argument("--hessian-every", type=int, default=10, help="Sophia: steps between Hessian estimates")
    ap.add_argument("--points", type=int, default=6, help="validation points along each run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--language-model", default="all-minilm-l6-v2", help="LM for V-Cond's captions")
    args = ap.parse_args()
    import mujoco
    import torch

    torch.set_num_threads(args.threads)
    figures: dict = {"benchmark": "sophia", "steps": args.steps, "batch": args.batch, "lr": args.lr,
                     "sophia_lr": args.sophia_lr, "hessian_every": args.hessian_every, "torch": torch.__version__,
                     "mujoco": mujoco.__version__}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            r = run_size(args, size, Path(tmp))
            a, s = r["curves"]["adamw"], r["curves"]["sophia"]
            print(f"\n{r['model']} ({size}, {r['params'] / 1e6:.2f} M parameters), batch {args.batch}, "
                  f"validation reconstruction loss")  # fmt: skip
            print(f"{'step':>6}  {'AdamW val':>10}  {'AdamW s':>8}  {'Sophia val':>10}  {'Sophia s':>8}")
            for i in range(len(a["step"])):
                print(f"{a['step'][i]:>6}  {a['val'][i]:>10.4f}  {a['seconds'][i]:>8.1f}  {s['val'][i]:>10.4f}  "
                      f"{s['seconds'][i]:>8.1f}")  # fmt: skip
            t_adam = a["seconds"][-1]
            sophia_at_adam_time = at_time(s, t_adam)
            print(f"final: Sophia / AdamW val loss {s['val'][-1] / a['val'][-1]:.3f} at equal steps; at AdamW's "
                  f"wall time ({t_adam:.1f} s) Sophia is at {sophia_at_adam_time:.4f} "
                  f"({sophia_at_adam_time / a['val'][-1]:.3f}x); time per step "
                  f"{t_adam / args.steps * 1000:.0f} vs {s['seconds'][-1] / args.steps * 1000:.0f} ms")  # fmt: skip
            figures[size] = {
                "model": r["model"],
                "params": r["params"],
                "adamw_val": round(a["val"][-1], 4),
                "sophia_val": round(s["val"][-1], 4),
                "sophia_over_adamw_equal_steps": round(s["val"][-1] / a["val"][-1], 4),
                "sophia_over_adamw_equal_time": round(sophia_at_adam_time / a["val"][-1], 4),
                "adamw_ms_per_step": round(t_adam / args.steps * 1000, 1),
                "sophia_ms_per_step": round(s["seconds"][-1] / args.steps * 1000, 1),
                "curves": {k: {"step": c["step"], "val": [round(v, 4) for v in c["val"]],
                               "seconds": [round(x, 2) for x in c["seconds"]]} for k, c in r["curves"].items()},
            }  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
