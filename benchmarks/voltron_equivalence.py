"""Equivalence of robolearn.encoders with the reference Voltron implementation (voltron-robotics 1.1.0).

    .venv/bin/python benchmarks/voltron_equivalence.py [--size tiny|small] [--variants v-cond,v-gen,...]

For every variant (v-cond, v-dual, v-gen, r-mvp, r-r3m-vit, r-r3m-rn50), in one run:
  1. the reference side (a `.venv-ref/bin/python benchmarks/_voltron_ref.py equiv` subprocess; `make ref-venv`)
     builds the reference model with random weights offline (a local random DistilBERT-architecture folder
     written by robolearn.encoders.offline.write_language_model), saves it in the released layout
     (<id>-config.json + <id>.pt = [state_dict, optimizer_state]), reloads it with the reference's own
     `voltron.load(<id>, cache=DIR)`, and records its outputs on fixed inputs;
  2. robolearn loads the same two files with `robolearn.encoders.load(DIR/<id>, voltron_compat=True)` and
     computes the same things on the same inputs:
       - features: multimodal / visual x null language / 3 captions (V-*), patch / cls (R-MVP), the R3M
         embedding (R-R3M);
       - tokens: our tokenizer's ids and masks against the reference's;
       - training losses and every part the reference returns, for 2 seeds, in train mode, with the
         reference's MAE mask noise passed as `mask_noise` (the reference draws torch.rand(B, N) first) and
         the same generate/condition flags for V-Gen; R-R3M's random negatives follow the same seeded
         torch.randperm order on both sides;
       - gradients of every trainable parameter after backward of the first seed's loss;
       - VGen.score (zero-shot caption log-likelihood).
PASS when max|ours - reference| <= 1e-5 * max(1, max|reference|) for every check (absolute for values of
order 1; relative for large ones such as the ResNet-50 features of 0-255 inputs).
R-MVP: the reference's extraction raises (torch.cat without dim=1); it is reported and ours is compared with the
reference encoder computed by hand as intended. Sanity column: with voltron_compat=False (padding masks keys;
R3M mean-pools real tokens only) our outputs must DIFFER from the reference's (V-*: captioned features;
R-R3M: the loss).

Prints a table and ends with ONE JSON line of per-variant max differences and `all_pass`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from robolearn.encoders import load  # noqa: E402
from robolearn.encoders.offline import write_language_model  # noqa: E402
from robolearn.encoders.reference import our_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REF_HELPER = Path(__file__).resolve().parent / "_voltron_ref.py"
VARIANTS = ["v-cond", "v-dual", "v-gen", "r-mvp", "r-r3m-vit", "r-r3m-rn50"]
TOL = 1e-5
CAPTIONS = [
    "pick up the red cup",
    "open the drawer slowly and then close it again and put the cup on the table next to the bowl",
    "push",
]  # short (much padding), long (truncated at 20 tokens), one word
GENERATE = [True, False, True]  # V-Gen: generate / condition / generate
SEEDS = [3, 4]
LM_SIZES = {"tiny": dict(vocab_size=1000, dim=32, layers=1, heads=2), "small": {}}  # small: distilbert-base shape


def ref_python(arg: str | None) -> Path:
    path = Path(arg) if arg else ROOT / ".venv-ref" / "bin" / "python"
    if not path.exists():
        print(f"reference venv not found ({path}): run `make ref-venv` first", file=sys.stderr)
        sys.exit(2)
    return path


def subprocess_env(threads: int) -> dict[str, str]:
    env = dict(
        os.environ,
        OMP_WAIT_POLICY="PASSIVE",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
    )
    env.pop("PYTHONPATH", None)
    return env


class Checks:
    """Rows of (variant, check, max|diff|, max|ref|, pass)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float, float, bool | None]] = []

    def add(self, variant: str, name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
        ours, ref = torch.as_tensor(ours).detach().float(), torch.as_tensor(ref).detach().float()
        if ours.shape != ref.shape:
            self.rows.append(
                (variant, f"{name} SHAPE {tuple(ours.shape)} vs {tuple(ref.shape)}", float("inf"), 0.0, False)
            )
            return
        diff = float((ours - ref).abs().max()) if ours.numel() else 0.0
        scale = float(ref.abs().max()) if ref.numel() else 0.0
        self.rows.append((variant, name, diff, scale, diff <= TOL * max(1.0, scale)))

    def add_group(self, variant: str, name: str, pairs: list[tuple[str, Any, Any]]) -> None:
        """One row for many comparisons: the worst (by scaled difference) is shown; PASS if all pass."""
        worst, ok = ("", 0.0, 0.0), True
        for label, ours, ref in pairs:
            ours, ref = torch.as_tensor(ours).detach().float(), torch.as_tensor(ref).detach().float()
            if ours.shape != ref.shape:
                worst, ok = (f"{label} shape {tuple(ours.shape)} vs {tuple(ref.shape)}", float("inf"), 0.0), False
                break
            d, s = float((ours - ref).abs().max()), float(ref.abs().max())
            ok &= d <= TOL * max(1.0, s)
            if d / max(1.0, s) >= worst[1] / max(1.0, worst[2]):
                worst = (label, d, s)
        self.rows.append((variant, f"{name} x{len(pairs)} (worst: {worst[0]})", worst[1], worst[2], ok))

    def of(self, variant: str) -> list[tuple[str, str, float, float, bool | None]]:
        return [r for r in self.rows if r[0] == variant]


def compare_variant(variant: str, folder: Path, inputs: dict, ref: dict, checks: Checks) -> dict[str, Any]:
    model, _ = load(folder, voltron_compat=True)
    assert model.config.voltron_compat
    captions = CAPTIONS
    info: dict[str, Any] = {"params_trainable": model.num_parameters(trainable_only=False)}  # no frozen params
    with torch.no_grad():
        if model.uses_language:
            ids, mask = model.language.tokenize(captions)
            checks.add(
                variant, "tokens (ids, mask)", torch.cat([ids, mask], 1), torch.cat([ref["ids"], ref["mask"]], 1)
            )
        if variant in ("v-cond", "v-dual", "v-gen"):
            x = inputs["img1"] if variant == "v-cond" else inputs["img2"]
            for mode in ("multimodal", "visual"):
                for lang_name, lang in (("null", None), ("captions", captions)):
                    checks.add(
                        variant,
                        f"features {mode}/{lang_name}",
                        model(x, lang, mode=mode),
                        ref[f"feat/{mode}/{lang_name}"],
                    )
            if variant == "v-gen":
                checks.add(variant, "VGen.score", model.score(x[:1], captions), ref["score"])
        elif variant == "r-mvp":
            x = inputs["img1"]
            info["reference_extraction"] = ref["extraction_error"] or "works"
            checks.add(variant, "features patch (vs ref by hand)", model(x, mode="patch"), ref["feat/patch(manual)"])
            checks.add(variant, "features cls (vs ref by hand)", model(x, mode="cls"), ref["feat/cls(manual)"])
        else:
            checks.add(variant, "features (R3M embedding)", model(inputs["img5"][:, 0]), ref["feat"])

    def batch_for(seed: int) -> dict[str, Any]:
        if variant in ("r-r3m-vit", "r-r3m-rn50"):
            return {"images": inputs["img5"], "lang_ids": ids, "lang_mask": mask}
        b: dict[str, Any] = {
            "images": inputs["img1"] if variant in ("v-cond", "r-mvp") else inputs["img2"],
            "mask_noise": ref[f"noise/{seed}"],
        }
        if variant != "r-mvp":
            b.update(lang_ids=ids, lang_mask=mask)
        if variant == "v-gen":
            b["generate"] = torch.tensor(GENERATE)
        return b

    model.train()
    model.requires_grad_(True)
    for i, seed in enumerate(SEEDS):
        with torch.set_grad_enabled(i == 0):
            torch.manual_seed(seed)
            loss, metrics = model(batch_for(seed))
            checks.add(variant, f"loss (seed {seed})", loss, ref[f"loss/{seed}"])
            parts = [k.split("/")[0] for k in ref if k.endswith(f"/{seed}") and not k.startswith(("loss/", "noise/"))]
            if parts:
                checks.add_group(
                    variant, f"loss parts, seed {seed},", [(k, metrics[k], ref[f"{k}/{seed}"]) for k in parts]
                )
            if i == 0:
                model.zero_grad(set_to_none=True)
                loss.backward()
                ours_grads = {k: p.grad for k, p in model.named_parameters() if p.requires_grad}
                mapped = {our_name(k): g for k, g in ref["grads"].items() if not k.startswith("lm.")}
                unmatched = sorted(k for k, g in ours_grads.items() if g is None or k not in mapped)
                if unmatched:
                    checks.rows.append(
                        (variant, f"grads: none / no reference grad for {unmatched[:3]}", float("inf"), 0.0, False)
                    )
                checks.add_group(
                    variant, "grads", [(k, g, mapped[k]) for k, g in ours_grads.items() if k not in unmatched]
                )

    # sanity: the non-compat behaviour must differ from the reference
    off, _ = load(folder, voltron_compat=False)
    with torch.no_grad():
        if variant in ("v-cond", "v-dual", "v-gen"):
            x = inputs["img1"] if variant == "v-cond" else inputs["img2"]
            info["compat_off_diff"] = float((off(x, captions) - ref["feat/multimodal/captions"]).abs().max())
        elif variant.startswith("r-r3m"):
            off.train()
            torch.manual_seed(SEEDS[0])
            info["compat_off_diff"] = float((off(batch_for(SEEDS[0]))[0] - ref[f"loss/{SEEDS[0]}"]).abs())
        else:
            info["compat_off_diff"] = None  # R-MVP has no language: nothing to mask
    return info


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2e}" if x == x else "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--size",
        choices=["tiny", "small"],
        default="tiny",
        help="tiny: 32x32 images, 2-layer models, a 32-d 1-layer LM (~1 min); small: the released "
        "ViT-S shapes at 224x224 with a full-size random DistilBERT",
    )
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--ref-python", default=None, help="the reference venv's python (default .venv-ref/bin/python)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", default=None, help="keep the checkpoints and outputs here (default: a temp dir)")
    args = p.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; expected some of {VARIANTS}")
    python = ref_python(args.ref_python)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    quiet_transformers()
    t0 = time.perf_counter()

    tmp = tempfile.TemporaryDirectory(prefix="voltron-equiv-") if args.workdir is None else None
    root = Path(args.workdir or tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    lm_kw = LM_SIZES[args.size]
    lm = write_language_model(root / "lm", **lm_kw)
    res = 32 if args.size == "tiny" else 224
    b = len(CAPTIONS)
    g = torch.Generator().manual_seed(0)
    inputs = {
        "img1": torch.randn(b, 3, res, res, generator=g),
        "img2": torch.randn(b, 2, 3, res, res, generator=g),
        "img5": torch.rand(b, 5, 3, res, res, generator=g) * 255,
    }
    torch.save(inputs, root / "inputs.pt")
    meta = {
        "size": args.size,
        "variants": variants,
        "lm": str(lm),
        "lm_dim": lm_kw.get("dim", 768),
        "vocab": lm_kw.get("vocab_size", 30522),
        "captions": CAPTIONS,
        "generate": GENERATE,
        "seeds": SEEDS,
        "init_seed": 1,
    }
    (root / "meta.json").write_text(json.dumps(meta))

    print(f"reference: {python} {REF_HELPER.name} equiv (size {args.size}, {len(variants)} variant(s))", flush=True)
    t_ref = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(REF_HELPER), "equiv", "--dir", str(root), "--threads", str(args.threads)],
        env=subprocess_env(args.threads),
        cwd=str(ROOT),
    )
    if proc.returncode != 0:
        print(f"reference helper failed (exit {proc.returncode})", file=sys.stderr)
        return 1
    t_ref = time.perf_counter() - t_ref

    checks = Checks()
    infos: dict[str, dict[str, Any]] = {}
    for v in variants:
        ref = torch.load(root / v / "ref_out.pt")
        infos[v] = compare_variant(v, root / v, inputs, ref, checks)
        infos[v]["ref_params_trainable"] = int(ref["n_params_trainable"])

    print(
        f"\nrobolearn.encoders.load(<id>-config.json + <id>.pt, voltron_compat=True) vs voltron 1.1.0 "
        f"(size {args.size}, batch {b}); PASS: max|diff| <= {TOL:g} * max(1, max|ref|)\n"
    )
    print(f"{'variant':11s} {'check':62s} {'max|diff|':>10s} {'max|ref|':>10s}  result")
    for v, name, d, s, ok in checks.rows:
        print(f"{v:11s} {name[:62]:62s} {fmt(d):>10s} {fmt(s):>10s}  {'PASS' if ok else 'FAIL'}")

    print(
        f"\n{'variant':11s} {'checks':>6s} {'worst |diff|':>12s} {'worst scaled':>12s} {'equivalent':>10s} "
        f"{'compat=False diff':>18s}  trainable parameters (ours / reference, LM excluded)"
    )
    summary: dict[str, Any] = {}
    for v in variants:
        rows = checks.of(v)
        worst = max(r[2] for r in rows)
        scaled = max(r[2] / max(1.0, r[3]) for r in rows)
        ok = all(r[4] for r in rows)
        info = infos[v]
        by_check: dict[str, float] = {}
        for r in rows:
            key = r[1].split(" (")[0].split(",")[0].split(" x")[0]
            by_check[key] = max(by_check.get(key, 0.0), r[2])
        summary[v] = {
            "checks": len(rows),
            "max_abs_diff": worst,
            "max_scaled_diff": scaled,
            "pass": ok,
            "compat_off_diff": info["compat_off_diff"],
            "by_check": by_check,
        }
        if v == "r-mvp":
            summary[v]["reference_extraction"] = info["reference_extraction"]
        print(
            f"{v:11s} {len(rows):6d} {fmt(worst):>12s} {fmt(scaled):>12s} {'PASS' if ok else 'FAIL':>10s} "
            f"{fmt(info['compat_off_diff']):>18s}  {info['params_trainable']:,} / {info['ref_params_trainable']:,}"
        )
    if "r-mvp" in infos:
        print(
            f"\nR-MVP: the reference's get_representations: {infos['r-mvp']['reference_extraction']}  "
            f"(reference raises; ours compared with its encoder computed by hand)"
        )
    print(
        "compat=False column: max|diff| of our non-compat output vs the reference (V-*: captioned multimodal "
        "features, key masking; R-R3M: loss, real-token mean pool); > 0 expected."
    )
    all_pass = all(s["pass"] for s in summary.values())
    sanity = all(s["compat_off_diff"] is None or s["compat_off_diff"] > TOL for s in summary.values())
    elapsed = time.perf_counter() - t0
    print(
        f"\nALL EQUIVALENT WITHIN {TOL:g}: {all_pass}; compat=False differs where expected: {sanity}; "
        f"{elapsed:.0f} s (reference side {t_ref:.0f} s)\n"
    )
    print(
        json.dumps(
            {
                "benchmark": "voltron_equivalence",
                "size": args.size,
                "tolerance": TOL,
                "batch": b,
                "variants": summary,
                "all_pass": all_pass,
                "compat_off_differs": sanity,
                "seconds": round(elapsed, 1),
            }
        )
    )
    if tmp is not None:
        tmp.cleanup()
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main())
