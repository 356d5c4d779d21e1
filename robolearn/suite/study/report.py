"""The study's report: <out>/report.{md,json,html} and <out>/pretrain_loss.png.

Per scenario (its primary metric): each encoder's mean over seeds with the 95% t-interval (the suite
leaderboard's numbers), paired sign-flip permutation tests over shared seeds (the leaderboard's test), the
pretraining curves, the template probe, and the hypothesis check in plain words."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from robolearn.eval.report import h, image, para, render_html, render_md, table
from robolearn.suite.metrics import paired_permutation_p, seed_mean_ci
from robolearn.utils import write_text_atomic

SUPPORTED, NOT_SUPPORTED, NOT_SIGNIFICANT, NOT_TESTED = "supported", "not supported", "not significant", "not tested"
LANGUAGE_ARCHS = ("v-cond", "v-gen")


def seed_values(suite_out: Path, names: dict[str, str]) -> dict[str, dict[str, dict[int, float]]]:
    """scenario -> study encoder name -> {seed: primary metric (sign-flipped when lower is better)}."""
    from robolearn.suite.leaderboard import collect
    from robolearn.suite.scenario import scenarios

    known = scenarios()
    out: dict[str, dict[str, dict[int, float]]] = {}
    for c in collect(suite_out):
        sc = known.get(c["scenario"])
        if sc is None or c["encoder"] not in names:
            continue
        metric, up = next(iter(sc.metrics.items()))
        v = c["metrics"].get(metric)
        if v is not None and not math.isnan(float(v)):
            per = out.setdefault(c["scenario"], {}).setdefault(names[c["encoder"]], {})
            per[c["seed"]] = float(v) * (1 if up else -1)
    return out


def compare(a: dict[int, float], b: dict[int, float], at_least: bool, alpha: float) -> dict[str, Any]:
    """Claim "a > b" (or "a >= b"): the paired test over shared seeds and a verdict."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return {"verdict": NOT_TESTED, "why": "no shared seeds"}
    diff = sum(a[s] - b[s] for s in seeds) / len(seeds)
    p = paired_permutation_p([a[s] for s in seeds], [b[s] for s in seeds])
    sig = p < alpha
    if at_least:
        verdict = SUPPORTED if diff >= 0 else (NOT_SUPPORTED if sig else NOT_SIGNIFICANT)
    else:
        verdict = (SUPPORTED if sig else NOT_SIGNIFICANT) if diff > 0 else NOT_SUPPORTED
    return {"diff": diff, "p": p, "seeds": seeds, "verdict": verdict}


def hypothesis(values: dict, families: dict[str, str], cfg: Any) -> list[dict[str, Any]]:
    """Every claim of the hypothesis that the run can test (others are listed as not tested)."""
    claims = []
    by_family: dict[str, list[str]] = {}
    for sc, fam in families.items():
        by_family.setdefault(fam, []).append(sc)

    def add(text: str, scenario: str, a: str, b: str, at_least: bool = False) -> None:
        va, vb = values.get(scenario, {}).get(a), values.get(scenario, {}).get(b)
        res = (
            compare(va, vb, at_least, cfg.alpha)
            if va and vb
            else {"verdict": NOT_TESTED, "why": f"{a if not va else b} not run"}
        )
        claims.append({"claim": text, "scenario": scenario, "a": a, "b": b, **res})

    for fam in ("refer", "imitation", "intent"):
        for sc in by_family.get(fam, []):
            for v in LANGUAGE_ARCHS:
                add(f"{v} beats r-mvp on {sc}", sc, f"{v} pretrained", "r-mvp pretrained")
    for sc in by_family.get("affordance", []):
        for v in LANGUAGE_ARCHS:
            add(f"r-mvp is at least as good as {v} on {sc}", sc, "r-mvp pretrained", f"{v} pretrained", True)
    controls = [f"{a} random-init" for a in cfg.random_init]
    for arch in cfg.encoders:
        ctrl = f"{arch} random-init" if arch in cfg.random_init else (controls[0] if controls else None)
        for sc in families:
            if ctrl is None:
                claims.append({"claim": f"{arch} pretrained beats random weights on {sc}", "scenario": sc,
                               "verdict": NOT_TESTED, "why": "no random-init control (--random-init)"})  # fmt: skip
                continue
            add(f"{arch} pretrained beats random weights ({ctrl}) on {sc}", sc, f"{arch} pretrained", ctrl)
    return claims


def loss_curves(pretrained: dict[str, dict], out: Path) -> tuple[Path | None, dict[str, dict]]:
    """pretrain_loss.png (train loss per step, validation loss per epoch) and each run's first/last losses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary: dict[str, dict] = {}
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for arch, info in pretrained.items():
        path = Path(info["metrics"])
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
        train = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
        val = [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r and "step" in r]
        if train:
            ax.plot(*zip(*train), label=f"{arch} train")
        if val:
            ax.plot(*zip(*val), "o--", label=f"{arch} validation")
        summary[arch] = {"first_loss": train[0][1] if train else None, "last_loss": train[-1][1] if train else None,
                         "last_val_loss": val[-1][1] if val else None}  # fmt: skip
    if not summary or not any(s["first_loss"] is not None for s in summary.values()):
        plt.close(fig)
        return None, summary
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("pretraining loss (each model's own objective)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = out / "pretrain_loss.png"
    fig.savefig(png)
    plt.close(fig)
    return png, summary


def _f(x: float | None, d: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def write_report(cfg, names, ident, corpus, prep, pretrained, suite_info, probe, seconds) -> Path:
    from robolearn.suite.scenario import get_scenario

    out = Path(cfg.out)
    values = seed_values(out / "suite", names)
    families = {sc: get_scenario(sc).family for sc in cfg.scenarios}
    claims = hypothesis(values, families, cfg)
    png, losses = loss_curves(pretrained, out)
    order = list(dict.fromkeys(names.values()))

    blocks = [h(1, "Does language-driven pretraining help? (robolearn suite study)")]
    blocks.append(para(
        f"Clips: {prep['clips']} prepared ({prep['train']} train, {prep['val']} held out) from "
        f"{corpus.get('folder', out / 'corpus')}; LM {ident.get('name')} ({ident.get('dim')}-d). Encoders "
        f"{cfg.arch_size} at {cfg.image_size} px, each pretrained for {cfg.steps} steps of batch {cfg.batch} at a "
        f"constant lr {cfg.lr:g}" + (f", with {cfg.robot_demos} robot demos per (task, scene) at weight "
                                     f"{cfg.robot_weight:g}" if cfg.robot_demos else "") +
        f". Suite size {cfg.size}, seeds {cfg.seeds}. Paired tests: sign-flip permutation over shared seeds, "
        f"alpha {cfg.alpha:g}; with n seeds the smallest possible p is 2/2^n ({2 / 2 ** len(cfg.seeds):.3g} here)."
    ))  # fmt: skip
    if prep["failed"]:
        bad = ", ".join(f"{f['id']} ({f['error']})" for f in prep["failed"][:10])
        blocks.append(para(f"Skipped {len(prep['failed'])} clip(s) that could not be decoded: {bad}."))
    if prep.get("empty_captions"):
        blocks.append(para(f"Skipped {prep['empty_captions']} clip(s) whose caption (label) is empty."))

    blocks.append(h(2, "Pretraining at equal compute"))
    rows = []
    for arch, p in pretrained.items():
        ls = losses.get(arch, {})
        rows.append([arch, p["steps"], p["batch"], p["examples_seen"], p["frames_seen"],
                     p["visible_patch_tokens_seen"], f"{p['wall_s']:.0f}", _f(ls.get("first_loss")),
                     _f(ls.get("last_loss")), _f(ls.get("last_val_loss"))])  # fmt: skip
    blocks.append(table(["encoder", "steps", "batch", "examples", "frames", "visible patch tokens", "wall s",
                         "first loss", "last loss", "last val loss"], rows))  # fmt: skip
    if png:
        blocks.append(image(png.name, "pretraining loss curves", "training loss per step; validation per epoch"))

    blocks.append(h(2, "Suite results"))
    for sc in cfg.scenarios:
        metric, up = next(iter(get_scenario(sc).metrics.items()))
        rows = []
        for enc in order:
            vals = values.get(sc, {}).get(enc, {})
            m, lo, hi = seed_mean_ci([v if up else -v for v in vals.values()])
            rows.append([enc, _f(m), f"[{_f(lo)}, {_f(hi)}]", len(vals)])
        blocks.append(h(3, f"{sc}: {metric} ({'higher' if up else 'lower'} is better)"))
        blocks.append(table(["encoder", "mean", "95% interval", "seeds"], rows))

    blocks.append(h(2, "What the encoders learned: template probe on held-out clips"))
    if "encoders" in probe:
        blocks.append(para(
            f"MAP + linear probe of the caption template ({probe['templates']} templates) from frozen features of "
            f"the first and last frames; trained on {probe['train_clips']} pretraining clips, scored on "
            f"{probe['heldout_clips']} held-out clips. Chance: {probe['chance_majority']:.3f} (majority), "
            f"{probe['chance_uniform']:.3f} (uniform)."
        ))  # fmt: skip
        prow = [[n, _f(r["heldout_accuracy"]), f"[{_f(r['ci95'][0])}, {_f(r['ci95'][1])}]", _f(r["train_accuracy"])]
                for n, r in probe["encoders"].items()]  # fmt: skip
        blocks.append(table(["encoder", "held-out accuracy", "95% Wilson", "train accuracy"], prow))
    else:
        blocks.append(para(f"Probe skipped: {probe.get('skipped')}"))

    blocks.append(h(2, "Hypothesis check"))
    crow = []
    for c in claims:
        detail = c.get("why") or f"mean difference {c['diff']:+.3f}, p = {c['p']:.3g} over seeds {c['seeds']}"
        crow.append([c["claim"], c["verdict"], detail])
    blocks.append(table(["claim", "verdict", "evidence"], crow, numeric_from=9))
    verdicts = (SUPPORTED, NOT_SIGNIFICANT, NOT_SUPPORTED, NOT_TESTED)
    counts = {v: sum(c["verdict"] == v for c in claims) for v in verdicts}
    blocks.append(para(
        "In plain words: " + ", ".join(f"{n} claim(s) {v}" for v, n in counts.items() if n) + ". 'Supported' needs "
        f"the right direction and p < {cfg.alpha:g}; 'not significant' is the right direction (or, for an 'at "
        "least as good' claim, a small loss) that the seeds cannot separate from chance; 'not supported' is the "
        "wrong direction."
    ))  # fmt: skip
    stage_rows = [[k, f"{v:.0f}"] for k, v in seconds.items()]
    blocks += [h(2, "Stage wall times"), table(["stage", "seconds"], stage_rows)]

    data = {"config": json.loads(json.dumps(vars(cfg), default=str)), "language_model": ident, "corpus": corpus,
            "prepare": prep, "pretrain": pretrained, "losses": losses, "suite": suite_info,
            "values": {sc: {e: {str(k): v for k, v in d.items()} for e, d in encs.items()}
                       for sc, encs in values.items()},
            "probe": probe, "claims": claims, "verdicts": counts, "stage_seconds": seconds}  # fmt: skip
    write_text_atomic(out / "report.json", json.dumps(data, indent=1, default=str))
    write_text_atomic(out / "report.md", render_md(blocks))
    write_text_atomic(out / "report.html", render_html(blocks, "robolearn suite study"))
    return out / "report.md"
