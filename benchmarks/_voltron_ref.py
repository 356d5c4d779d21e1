"""Helper for the Voltron benchmarks; runs inside the REFERENCE venv (voltron-robotics 1.1.0, `make ref-venv`).

It never imports robolearn, so the reference side runs exactly as its users run it. Two jobs:

    .venv-ref/bin/python benchmarks/_voltron_ref.py equiv --dir DIR
        for every variant listed in DIR/meta.json: build the reference model with random weights offline
        (a local language-model folder, as in the anchors' §6 recipe), save it in the released layout
        (DIR/<id>/<id>-config.json = constructor kwargs, DIR/<id>/<id>.pt = [state_dict, optimizer_state]),
        reload it with the reference's own `voltron.load(<id>, cache=DIR)` (files present: no download), run it
        on DIR/inputs.pt and write DIR/<id>/ref_out.pt (features, losses and their parts, gradients, score).

    .venv-ref/bin/python benchmarks/_voltron_ref.py worker --model v-cond --lm DIR --pool captions.json ...
        a training-step worker answering JSON-line requests on stdin (see `serve`); benchmarks/pretrain_step.py
        runs one of these next to a robolearn worker and alternates between them.

`serve`, `matmul_gflops`, `count_flops` and `peak_rss_mib` are plain torch and are shared with the robolearn
worker in benchmarks/pretrain_step.py (which imports this file).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# --- reference constructor kwargs ---------------------------------------------------------------------------
OPTIM_MAE = dict(
    optimizer="adamw",
    schedule="linear-warmup+cosine-decay",
    base_lr=1.5e-4,
    min_lr=0.0,
    effective_bsz=1024,
    betas=[0.9, 0.95],
    weight_decay=0.05,
    warmup_epochs=20,
    max_epochs=400,
)
OPTIM_R3M = dict(lang_reward_weight=1.0, tcn_weight=1.0, l1_weight=1e-5, l2_weight=1e-5, n_negatives=3)
SIZES = {  # image size, patch, encoder depth/dim/heads, decoder depth/dim/heads, R3M reward MLP width
    "tiny": dict(res=32, patch=8, enc=(2, 64, 4), dec=(2, 32, 4), reward=64),
    "small": dict(res=224, patch=16, enc=(12, 384, 6), dec=(6, 192, 6), reward=1024),
}
CLASSES = {
    "v-cond": "VCond",
    "v-dual": "VDual",
    "v-gen": "VGen",
    "r-mvp": "VMVP",
    "r-r3m-vit": "VR3M",
    "r-r3m-rn50": "VRN3M",
}


def reference_kwargs(variant: str, size: str, lm_dir: str, hf_cache: str, lm_dim: int, vocab: int) -> dict:
    """The kwargs the reference's <id>-config.json holds for `variant` at `size` (ViT-S = the released shapes)."""
    s = SIZES[size]
    lang = dict(language_model=lm_dir, hf_cache=hf_cache, language_dim=lm_dim)
    (ed, ew, eh), (dd, dw, dh) = s["enc"], s["dec"]
    mae = dict(
        resolution=s["res"],
        patch_size=s["patch"],
        encoder_depth=ed,
        encoder_embed_dim=ew,
        encoder_n_heads=eh,
        decoder_depth=dd,
        decoder_embed_dim=dw,
        decoder_n_heads=dh,
        **OPTIM_MAE,
    )
    if variant in ("v-cond", "v-dual"):
        return {**mae, **lang}
    if variant == "v-gen":
        return {**mae, **lang, "max_lang_len": 20, "vocab_size": vocab, "mae_weight": 1.0, "lm_weight": 0.5}
    if variant == "r-mvp":
        return mae
    if variant == "r-r3m-vit":
        return dict(
            resolution=s["res"],
            patch_size=s["patch"],
            depth=ed,
            embed_dim=ew,
            n_heads=eh,
            **lang,
            reward_dim=s["reward"],
            **OPTIM_R3M,
            optimizer="adam",
            schedule="linear-warmup+cosine-decay",
            lr=1e-4,
            min_lr=0.0,
            warmup_epochs=0,
            max_epochs=400,
        )
    if variant == "r-r3m-rn50":
        return dict(
            resolution=s["res"], fc_dim=2048, **lang, reward_dim=s["reward"], **OPTIM_R3M, optimizer="adam", lr=1e-4
        )
    raise ValueError(f"unknown variant {variant!r}; expected one of {list(CLASSES)}")


def reference_class(variant: str) -> type:
    import voltron.models as vm

    return getattr(vm, CLASSES[variant])


# --- shared measuring tools (plain torch; also used by the robolearn worker) ------------------------------
def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_gflops(n: int = 2048, iters: int = 8, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """The matmul roof: GFLOP/s of an n x n @ n x n matmul loop (one warm-up product, then `iters` timed)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)
    sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        torch.mm(a, b, out=out)
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t) / 1e9


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of `fn` (matmuls, convolutions, attention; forward and backward) by FlopCounterMode.
    scaled_dot_product_attention runs on its math backend here: FlopCounterMode has no formula for the fused
    CPU kernel (it would count attention as 0), and the math backend decomposes it into counted matmuls."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel([SDPBackend.MATH]):
        fn()
    return int(counter.get_total_flops())


def serve(step: Callable[[dict], None], device: str, out: Any, flop_step: Callable[[dict], None] | None = None) -> None:
    """Answer JSON-line requests on stdin until {"op": "quit"} (replies on `out`, one JSON line each):
    step {"batch": ...} -> {"t": s}; flops {"batch": ...} -> {"flops": n} (one step under FlopCounterMode;
    `flop_step` if given, e.g. the eager twin of a compiled step, which the counter cannot see into);
    roof {"n", "iters", "dtype"} -> {"gflops": x}; rss -> {"peak_rss_mib", "rss_mib"}."""

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    reply({"ready": True, "peak_rss_mib": peak_rss_mib()})
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "step":
                sync(device)
                t = time.perf_counter()
                step(req["batch"])
                sync(device)
                reply({"t": time.perf_counter() - t})
            elif op == "flops":
                reply({"flops": count_flops(lambda: (flop_step or step)(req["batch"]))})
            elif op == "roof":
                dtype = getattr(torch, req.get("dtype", "float32"))
                reply({"gflops": matmul_gflops(req.get("n", 2048), req.get("iters", 8), device, dtype)})
            elif op == "rss":
                reply({"peak_rss_mib": peak_rss_mib(), "rss_mib": current_rss_mib()})
            elif op == "quit":
                reply({"bye": True})
                return
            else:
                reply({"error": f"unknown op {op!r}"})
        except Exception as e:  # report and keep serving: the driver decides
            reply({"error": f"{type(e).__name__}: {e}"})


def quiet(threads: int) -> None:
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def worker_setup(threads: int) -> Any:
    """Protocol replies go to the real stdout; everything else printed (warnings, libraries) goes to stderr."""
    quiet(threads)
    out = sys.stdout
    sys.stdout = sys.stderr
    return out


# --- the reference training-step worker ----------------------------------------------------------------------
def reference_worker(args: argparse.Namespace) -> None:
    out = worker_setup(args.threads)
    device = args.device
    torch.manual_seed(0)
    from transformers import AutoConfig

    lm_cfg = AutoConfig.from_pretrained(args.lm)
    kw = reference_kwargs(args.model, "small", args.lm, args.hf_cache, lm_cfg.dim, lm_cfg.vocab_size)
    model = reference_class(args.model)(**kw).to(device).train()
    optimizer, _ = model.configure_optimizer()  # the reference's own AdamW groups, lr 6e-4
    captions = json.loads(Path(args.pool).read_text())
    if hasattr(model, "tokenizer"):  # pre-tokenised once, as the reference's datasets hand ids to the model
        tok = model.tokenizer(captions, return_tensors="pt", max_length=20, padding="max_length", truncation=True)
        pool_ids, pool_mask = tok["input_ids"].to(device), tok["attention_mask"].to(device)
    frames = 2 if args.model in ("v-dual", "v-gen") else 1
    shape = (args.batch, frames, 3, 224, 224) if frames > 1 else (args.batch, 3, 224, 224)
    images = torch.randn(*shape, generator=torch.Generator().manual_seed(1)).to(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))

    def step(batch: dict) -> None:
        if args.model != "r-mvp":
            idx = torch.tensor(batch["captions"], device=device)
            ids, mask = pool_ids[idx], pool_mask[idx]
        with autocast:
            if args.model == "v-gen":
                # the reference's dataset form: generate examples condition on [CLS] only, the others
                # generate a [CLS]-only dummy target with weight 0
                g = torch.tensor(batch["generate"], device=device)[:, None]
                null, null_mask = torch.zeros_like(ids), torch.zeros_like(mask)
                null[:, 0], null_mask[:, 0] = 101, 1
                loss = model(
                    images,
                    torch.where(g, null, ids),
                    torch.where(g, null_mask, mask),
                    torch.where(g, ids, null),
                    torch.where(g, mask, null_mask),
                    g[:, 0].float(),
                )[0]
            elif args.model == "r-mvp":
                loss = model(images)[0]
            else:
                loss = model(images, ids, mask)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    serve(step, device, out)


# --- equivalence: reference outputs -------------------------------------------------------------------------
def _null(b: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(b, 20, dtype=torch.long, device=device)
    mask = torch.zeros(b, 20, dtype=torch.long, device=device)
    ids[:, 0], mask[:, 0] = 101, 1
    return ids, mask


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def reference_outputs(variant: str, model: Any, inputs: dict, seeds: list[int]) -> dict[str, Any]:
    """Everything the robolearn side is compared against, for one variant."""
    captions = inputs["captions"]
    res: dict[str, Any] = {}
    model.eval()
    if hasattr(model, "tokenizer"):
        tok = model.tokenizer(captions, return_tensors="pt", max_length=20, padding="max_length", truncation=True)
        ids, mask = tok["input_ids"], tok["attention_mask"]
        res["ids"], res["mask"] = ids, mask
    with torch.no_grad():
        if variant in ("v-cond", "v-dual", "v-gen"):
            x = inputs["img1"] if variant == "v-cond" else inputs["img2"]
            for mode in ("multimodal", "visual"):
                for lang_name, lang in (("null", None), ("captions", captions)):
                    res[f"feat/{mode}/{lang_name}"] = model.get_representations(x, lang, mode=mode)
            if variant == "v-gen":
                res["score"] = model.score(x[:1], ids, mask)
        elif variant == "r-mvp":
            x = inputs["img1"]
            try:
                model.get_representations(x, mode="patch")
                res["extraction_error"] = ""
            except Exception as e:  # 1.1.0: torch.cat([cls, patches]) without dim=1
                res["extraction_error"] = f"{type(e).__name__}: {str(e).splitlines()[0]}"
            # the reference encoder computed by hand, as `encode` intends (concatenation on the token axis)
            b = x.shape[0]
            h = torch.cat([model.cls_token.expand(b, -1, -1), model.patch2embed(x)], dim=1) + model.encoder_pe
            for block in model.encoder_blocks:
                h = block(h)
            h = model.encoder_norm(h)
            res["feat/patch(manual)"], res["feat/cls(manual)"] = h[:, 1:], h[:, :1]
        else:
            res["feat"] = model.get_representations(inputs["img5"][:, 0])
    # training losses (train mode: the ResNet's BatchNorm uses batch statistics), with gradients for the first seed
    model.train()
    n_patches = getattr(getattr(model, "patch2embed", None), "num_patches", None)
    for i, seed in enumerate(seeds):
        with torch.set_grad_enabled(i == 0):
            if n_patches is not None and variant != "r-r3m-vit":
                torch.manual_seed(seed)
                res[f"noise/{seed}"] = torch.rand(len(captions), n_patches)  # what the model's mask() draws next
            torch.manual_seed(seed)
            if variant in ("v-cond", "r-mvp"):
                out = model(inputs["img1"], ids, mask) if variant == "v-cond" else model(inputs["img1"])
                parts = {"loss": out[0]}
            elif variant == "v-dual":
                out = model(inputs["img2"], ids, mask)
                parts = {"loss": out[0], "mae_loss_0": out[1][0], "mae_loss_k": out[1][1]}
            elif variant == "v-gen":
                g = torch.tensor(inputs["generate"])[:, None]
                null, null_mask = _null(len(captions))
                out = model(
                    inputs["img2"],
                    torch.where(g, null, ids),
                    torch.where(g, null_mask, mask),
                    torch.where(g, ids, null),
                    torch.where(g, mask, null_mask),
                    g[:, 0].float(),
                )
                parts = {
                    "loss": out[0],
                    "mae_loss": out[1],
                    "lm_loss": out[2],
                    "mae_loss_0": out[3][0],
                    "mae_loss_k": out[3][1],
                }
            else:
                out = model(inputs["img5"], ids, mask)
                parts = dict(
                    zip(("loss", "tcn_loss", "reward_loss", "l1_loss", "l2_loss", "tcn_acc", "reward_acc"), out)
                )
            for k, v in parts.items():
                res[f"{k}/{seed}"] = v.detach()
            if i == 0:
                model.zero_grad(set_to_none=True)
                parts["loss"].backward()
                res["grads"] = _grads(model)
    return res


def equivalence(args: argparse.Namespace) -> None:
    quiet(args.threads)
    import voltron
    from voltron.models import materialize

    root = Path(args.dir)
    meta = json.loads((root / "meta.json").read_text())
    inputs = torch.load(root / "inputs.pt")
    inputs["captions"] = meta["captions"]
    inputs["generate"] = meta["generate"]
    for variant in meta["variants"]:
        t0 = time.perf_counter()
        kw = reference_kwargs(variant, meta["size"], meta["lm"], str(root / "hf-cache"), meta["lm_dim"], meta["vocab"])
        torch.manual_seed(meta["init_seed"])
        model = reference_class(variant)(**kw)
        folder = root / variant
        folder.mkdir(exist_ok=True)
        (folder / f"{variant}-config.json").write_text(json.dumps(kw, indent=2))
        torch.save([model.state_dict(), {}], folder / f"{variant}.pt")  # xm.save layout: [state_dict, optim]
        del model
        # reload through the reference's public loader (it downloads only when a file is missing)
        cls = materialize.MODEL_REGISTRY[variant]["cls"]
        call = cls.__call__
        loaded, _ = voltron.load(variant, device="cpu", freeze=False, cache=str(root))
        cls.__call__ = call  # undo load()'s global __call__ patch
        res = reference_outputs(variant, loaded, inputs, meta["seeds"])
        # trainable = requires_grad (the frozen LM and the fixed sin-cos tables are parameters without grad here)
        res["n_params_trainable"] = sum(p.numel() for p in loaded.parameters() if p.requires_grad)
        torch.save(res, folder / "ref_out.pt")
        print(
            f"[reference] {variant}: built, saved, reloaded with voltron.load, outputs written "
            f"({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="job", required=True)
    e = sub.add_parser("equiv")
    e.add_argument("--dir", required=True)
    e.add_argument("--threads", type=int, default=2)
    w = sub.add_parser("worker")
    w.add_argument("--model", required=True, choices=["v-cond", "v-dual", "v-gen", "r-mvp"])
    w.add_argument("--lm", required=True)
    w.add_argument("--hf-cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "voltron-hf-cache"))
    w.add_argument("--pool", required=True, help="JSON list of captions")
    w.add_argument("--batch", type=int, default=8)
    w.add_argument("--threads", type=int, default=2)
    w.add_argument("--device", default="cpu")
    args = p.parse_args()
    if args.job == "equiv":
        equivalence(args)
    else:
        reference_worker(args)


if __name__ == "__main__":
    main()
