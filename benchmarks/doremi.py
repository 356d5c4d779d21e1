"""DoReMi domain weights vs uniform vs size-proportional weights, at equal steps (docs/pretraining.md,
"Domain reweighting (DoReMi)").

    .venv/bin/python benchmarks/doremi.py [--model r-mvp-tiny] [--steps 400] [--reweight-steps 300]
                                          [--batch 32] [--seeds 1] [--threads 2]

The mixture: synthetic domains of different difficulty and size (robolearn/pretrain/doremi/synthetic.py,
32x32 clips rendered on the fly): ramp (60 clips, easy), stripes (20, medium), blobs (8, hard), each with
held-out validation clips. 1. `reweight` (robolearn.pretrain.doremi.reweight, the code behind
`robolearn pretrain reweight`) trains a uniform-mixture reference and a group-DRO proxy for --reweight-steps
each and averages the proxy's weights. 2. Three models from the same initialisation train --steps optimizer
steps with robolearn's pretraining Trainer on the data-locked mixture (what `robolearn pretrain
--domain-weights` runs), one per weighting: uniform, size-proportional (examples per domain), DoReMi. The
three runs alternate step blocks (so machine load hits them alike). 3. Validation: every domain's held-out
clips, 4 fixed masks per example, mean per-example reconstruction loss. Reports the mean over domains and the
worst domain; with --seeds N everything repeats per seed and the table shows means.

Prints a table and ends with ONE JSON line of figures and ratios (DoReMi / uniform, DoReMi / size).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DOMAINS = (("ramp", 60, 6), ("stripes", 20, 4), ("blobs", 8, 3))  # kind, clips, of which validation


def sources(seed: int) -> list:
    from robolearn.pretrain.doremi.synthetic import SyntheticSource

    return [SyntheticSource(k, n, val_clips=v, seed=seed * 10 + i) for i, (k, n, v) in enumerate(DOMAINS)]


def validate(model, domains, image_size: int, seed: int) -> list[float]:
    import torch

    from robolearn.pretrain.datasets import dataset_for
    from robolearn.pretrain.doremi.losses import per_example_losses

    model.eval()
    out = []
    g = torch.Generator().manual_seed(seed + 999)
    with torch.no_grad():
        for d in domains:
            ds = dataset_for("r-mvp", d, "val", image_size=image_size, seed=seed)
            batch = torch.utils.data.default_collate([ds[i] for i in range(len(ds))])
            losses = []
            for _ in range(4):
                batch["mask_noise"] = torch.rand(len(ds), model.config.n_patches, generator=g)
                losses.append(per_example_losses(model, batch).mean())
            out.append(float(torch.stack(losses).mean()))
    model.train()
    return out


def run_seed(args, seed: int, tmp: Path) -> dict:
    import torch

    from robolearn.encoders import build
    from robolearn.pretrain.datasets import dataset_for
    from robolearn.pretrain.distributed import DistInfo
    from robolearn.pretrain.doremi.domains import split_domains
    from robolearn.pretrain.doremi.reweight import DomainBatches, ReweightCommand, reference_weights, train_domains
    from robolearn.pretrain.trainer import TrainConfig, Trainer

    domains = split_domains(sources(seed))
    names = [d.name for d in domains]
    train_sets = [dataset_for("r-mvp", d, "train", image_size=32, seed=seed) for d in domains]
    rcfg = ReweightCommand(
        model=args.model,
        steps=args.reweight_steps,
        batch_per_domain=args.batch // len(domains) + 1,
        lr=args.lr,
        warmup_steps=20,
        log_every=max(args.reweight_steps // 3, 1),
        seed=seed,
    )
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    proxy = build(args.model, image_size=32)
    import copy

    reference = copy.deepcopy(proxy)
    ref_w = reference_weights(domains, train_sets, "uniform")
    train_domains(reference, DomainBatches(train_sets, seed), rcfg, ref_w, label="  reference")
    reference.eval()
    uniform = torch.full((len(names),), 1 / len(names), dtype=torch.float64)
    avg, _ = train_domains(proxy, DomainBatches(train_sets, seed), rcfg, uniform, reference, "  proxy")
    reweight_s = time.perf_counter() - t0
    weightings = {
        "uniform": [1.0] * len(names),
        "size": [float(len(s)) for s in train_sets],
        "doremi": avg.tolist(),
    }
    torch.manual_seed(seed + 1)
    init = build(args.model, image_size=32)
    trainers = {}
    for label, w in weightings.items():
        ds = dataset_for(
            "r-mvp", list(zip(domains, w)), "train", image_size=32, seed=seed, epoch_size=args.steps * args.batch
        )
        cfg = TrainConfig(
            max_epochs=1,
            warmup_epochs=0.05,
            lr=args.lr,
            effective_batch=args.batch,
            device_batch=args.batch,
            num_workers=0,
            seed=seed,
            checkpoint_every=0,
            keep_last=1,
            log_every=10**9,
            progress=False,
        )
        trainers[label] = Trainer(copy.deepcopy(init), ds, cfg, tmp / f"s{seed}-{label}", DistInfo())
    # alternate blocks of steps: raise max_steps by one block per round for each run in turn
    block, secs = max(args.steps // 8, 1), dict.fromkeys(trainers, 0.0)
    for upto in range(block, args.steps + block, block):
        for label, tr in trainers.items():
            tr.cfg.max_steps = min(upto, args.steps)
            t = time.perf_counter()
            tr.fit()
            secs[label] += time.perf_counter() - t
    out = {"weights": {k: [x / sum(v) for x in v] for k, v in weightings.items()}, "reweight_s": reweight_s}
    for label, tr in trainers.items():
        assert tr.step == args.steps, (label, tr.step)
        out[label] = {"val": validate(tr.model, domains, 32, seed), "train_s": secs[label]}
    out["names"] = names
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="r-mvp-tiny", help="reconstruction-only encoder id (r-mvp-tiny)")
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps of each main run")
    ap.add_argument("--reweight-steps", type=int, default=300, help="steps of the reference and of the proxy")
    ap.add_argument("--batch", type=int, default=32, help="examples per optimizer step")
    ap.add_argument("--lr", type=float, default=1e-3, help="peak lr (AdamW, warm-up + cosine)")
    ap.add_argument("--seeds", type=int, default=1, help="repeat everything for seeds 0..N-1, report means")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            print(f"seed {seed}: reweighting ({args.reweight_steps} + {args.reweight_steps} steps) ...", flush=True)
            runs.append(run_seed(args, seed, Path(tmp)))
    names = runs[0]["names"]
    labels = ("uniform", "size", "doremi")

    def mean(xs):
        return sum(xs) / len(xs)

    rows = {}
    for lab in labels:
        per = [mean([r[lab]["val"][i] for r in runs]) for i in range(len(names))]
        rows[lab] = {
            "weights": [mean([r["weights"][lab][i] for r in runs]) for i in range(len(names))],
            "val": per,
            "mean": mean([mean(r[lab]["val"]) for r in runs]),
            "worst": mean([max(r[lab]["val"]) for r in runs]),
            "train_s": mean([r[lab]["train_s"] for r in runs]),
        }
    w = max(len(n) for n in names)
    print(
        f"\nvalidation reconstruction loss after {args.steps} steps ({args.model}, batch {args.batch}, "
        f"{args.seeds} seed(s)); weights in the order {', '.join(names)}"
    )
    head = f"{'weighting':<9}  {'weights':<20}  " + "  ".join(f"{n:>{max(w, 7)}}" for n in names)
    print(head + "     mean    worst  train s")
    for lab in labels:
        r = rows[lab]
        ws = "/".join(f"{x:.2f}" for x in r["weights"])
        vals = "  ".join(f"{v:>{max(w, 7)}.4f}" for v in r["val"])
        print(f"{lab:<9}  {ws:<20}  {vals}  {r['mean']:7.4f}  {r['worst']:7.4f}  {r['train_s']:7.1f}")
    figures = {
        "benchmark": "doremi",
        "model": args.model,
        "steps": args.steps,
        "reweight_steps": args.reweight_steps,
        "seeds": args.seeds,
        "domains": names,
        "reweight_s": round(mean([r["reweight_s"] for r in runs]), 1),
        **{f"{lab}_{k}": [round(x, 4) for x in rows[lab][k]] for lab in labels for k in ("weights", "val")},
        **{f"{lab}_{k}": round(rows[lab][k], 4) for lab in labels for k in ("mean", "worst")},
        "worst_doremi_over_uniform": round(rows["doremi"]["worst"] / rows["uniform"]["worst"], 4),
        "worst_doremi_over_size": round(rows["doremi"]["worst"] / rows["size"]["worst"], 4),
        "mean_doremi_over_uniform": round(rows["doremi"]["mean"] / rows["uniform"]["mean"], 4),
        "mean_doremi_over_size": round(rows["doremi"]["mean"] / rows["size"]["mean"], 4),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
