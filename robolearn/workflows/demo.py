"""`robolearn demo`: the main job, run by `make demo`: record -> curate -> pretrain -> train -> evaluate -> report.

Every stage runs through the same commands a user types, at a scale this 2-core CPU finishes in minutes:

1. record: the scripted expert teleoperates the sim arm at the station (sim robot, sim cameras, the fixed-rate
   loop, the crash-safe writer) in `households x scenes` household scenes;
2. curate: validate, index the catalog, query the successful demos, split by held-out scene, statistics;
3. pretrain: a tiny V-Cond on a generated human-style clip corpus (`robolearn.pretrain.corpus`, prepared with
   `robolearn pretrain prepare --source ssv2` and the real LM's tokenizer) mixed with the demos' own clips and
   instructions (`robolearn pretrain --data ... --episodes ...`);
4. train: a MAP head on the frozen pretrained encoder, the same head on the same encoder with random
   weights, and a from-scratch CNN baseline trained end to end (`robolearn train`);
5. evaluate: each policy in scenes seen in the demos and in held-out ones (`robolearn eval`), and a random-
   action floor;
6. report: one HTML page (tables, plots, rollout videos, scene pictures) whose path is printed last, with the
   pretrained vs random-weights vs from-scratch comparison (Wilson intervals, Fisher's exact test) in plain words.

The default task is the multi-task household scene (robolearn/envs/tasks/multi.py: button, drawer and bin on one
table; the instruction says which), where both language and vision matter; V-Cond reads the instruction
(`--policy.mode multimodal`), the scratch CNN does not.

Knobs (`robolearn demo --help`) scale the same command up: more scenes, demos, steps, a bigger model.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from robolearn.config import opt, save_config
from robolearn.lineage import write_card


@dataclass
class DemoConfig:
    out: Path = opt(Path("demo_output"), help="output folder (a timestamped run folder is made inside)")
    task: str = opt("multi-task", help="household task the expert demonstrates and the policies learn")
    households: int = opt(2, help="households the demos come from (0..N-1)")
    scenes_per_household: int = opt(4, help="scenes per household in the demos (0..N-1)")
    demos_per_scene: int = opt(5, help="expert demonstrations per scene")
    size: int = opt(64, help="camera image side in pixels")
    expert_noise: float = opt(0.1, help="expert action noise (makes the demos cover recoveries)")
    model: str = opt("v-cond-tiny", help="encoder pretrained on the demos (robolearn encoders list)")
    language_model: str = opt(
        "",
        help="frozen LM for pretraining (hub id or local folder); default: a local "
        "distilbert-base-uncased if cached, else the packaged all-MiniLM-L6-v2",
    )
    corpus_clips: int = opt(200, help="generated human-style clips pretrained on with the demos (0: demos only)")
    corpus_weight: float = opt(0.5, help="mixture weight of the clip corpus (the demos get the rest)")
    mode: str = opt("multimodal", help="V-Cond policies: multimodal (reads the instruction) | visual")
    pretrain_steps: int = opt(300, help="pretraining optimizer steps")
    train_steps: int = opt(800, help="head training steps (frozen encoders)")
    baseline_steps: int = opt(400, help="training steps of the from-scratch CNN baseline")
    eval_episodes: int = opt(16, help="evaluation episodes per policy")
    num_envs: int = opt(2, help="parallel evaluation envs")
    seed: int = opt(0, help="seed")


def _run(argv: list[str]) -> None:
    from robolearn.cli import main

    print(f"\n$ robolearn {' '.join(argv)}", flush=True)
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"demo step failed (exit {rc}): robolearn {' '.join(argv)}")


def _stage(name: str) -> None:
    print(f"\n{'=' * 20} {name} {'=' * 20}", flush=True)


def resolve_language_model(cfg: DemoConfig, folder: Path) -> tuple[str, dict[str, Any], str]:
    """(LM path, encoder overrides, a sentence for the report). Never downloads: the default is a local
    distilbert-base-uncased if cached, else the packaged all-MiniLM-L6-v2 (robolearn.encoders.pretrained_lm)."""
    if cfg.language_model:
        return cfg.language_model, {}, f"language model: {cfg.language_model} (given)"
    from robolearn.encoders.language import LanguageModel
    from robolearn.encoders.pretrained_lm import MINILM_HUB_ID, default_language_model

    lm = LanguageModel(default_language_model())
    ident = lm.identity()
    overrides = {"language_dim": ident["dim"], "vocab_size": ident["vocab_size"]}
    if lm.source == lm.name_or_path:
        where = "from the local Hugging Face cache"
    else:  # the packaged MiniLM: its unpacked cache folder travels through the CLI stages (tokenizers load it)
        where = f"({MINILM_HUB_ID}, packaged, unpacked offline to {lm.source})"
    return (
        lm.source,
        overrides,
        f"language model: {lm.name_or_path} {where}, {ident['dim']}-d, weights sha256 {ident['sha256']}",
    )


def run_demo(cfg: DemoConfig) -> int:
    """Run the whole product at small scale (record, curate, pretrain, train, evaluate, report)."""
    from robolearn.collection.expert_demos import record_expert_demos
    from robolearn.data.catalog import select_paths
    from robolearn.pretrain.checkpoint import latest_checkpoint

    run = Path(cfg.out) / datetime.now().strftime("run-%Y%m%d-%H%M%S")
    save_config(cfg, run, "demo")
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    demos = run / "demos"
    train_scenes = [(h, s) for h in range(cfg.households) for s in range(cfg.scenes_per_household)]

    _stage("1. record: the expert teleoperates the sim arm at the station")
    t = time.perf_counter()
    record_expert_demos(
        demos,
        cfg.task,
        train_scenes,
        cfg.demos_per_scene,
        size=cfg.size,
        noise=cfg.expert_noise,
        seed=cfg.seed,
        lab="demo_lab",
    )
    times["record"] = time.perf_counter() - t

    _stage("2. curate: validate, catalog, query, split by held-out scene, statistics")
    t = time.perf_counter()
    _run(["data", "validate", str(demos)])
    _run(["data", "index", str(demos)])
    _run(["data", "query", str(demos), "--where", "success=1", "--limit", "5"])
    holdout = f"scene_{cfg.scenes_per_household - 1}"
    _run(["data", "split", str(demos), "--by", "scene", "--holdout", holdout, "--name", "heldout_scene"])
    _run(["data", "stats", str(demos)])
    successful = select_paths(demos, ["success=1"])
    times["curate"] = time.perf_counter() - t

    _stage("3. pretrain: a tiny V-Cond on a human-style clip corpus and the demos' clips")
    t = time.perf_counter()
    lm, lm_overrides, lm_note = resolve_language_model(cfg, run)
    print(lm_note)
    pre = run / "pretrain"
    overrides = json.dumps(lm_overrides) if lm_overrides else ""
    batch = str(max(2, min(32, 3 * len(successful))))  # an epoch: 5 clips per training episode (>= 1 held out)
    prepared, corpus_note = _corpus(cfg, run, lm)
    print(corpus_note)
    if prepared is not None:
        data = ["--data", f"{prepared}:{cfg.corpus_weight:g}", "--episodes", f"{demos}:{1 - cfg.corpus_weight:g}"]
    else:
        data = ["--episodes", str(demos)]
    _run(
        [
            "pretrain",
            "--model",
            cfg.model,
            *data,
            "--language-model",
            lm,
            "--image-size",
            str(cfg.size),
            *(["--model-overrides", overrides] if overrides else []),
            "--run-dir",
            str(pre),
            "--train.max-steps",
            str(cfg.pretrain_steps),
            "--train.max-epochs",
            "100000",
            "--train.effective-batch",
            batch,
            "--train.device-batch",
            batch,
            "--train.num-workers",
            "0",
            "--train.lr",
            "1e-3",
            "--train.warmup-epochs",
            "2",
            "--train.log-every",
            "10",
            "--train.seed",
            str(cfg.seed),
            "--train.checkpoint-every",
            "0",
        ]
    )
    ckpt = latest_checkpoint(pre)
    times["pretrain"] = time.perf_counter() - t

    _stage("4. train: heads by behaviour cloning")
    t = time.perf_counter()
    common = ["--data", str(demos), "--query", "success=1", "--seed", str(cfg.seed), "--policy.language-model", lm]
    random_encoder = _random_init_encoder(cfg, lm, lm_overrides, run / "random-init-encoder")
    policies = {
        "pretrained": (
            ["--policy.encoder", f"{cfg.model}:{ckpt}", "--policy.mode", cfg.mode, "--steps", str(cfg.train_steps)],
            f"{cfg.model} pretrained on the demos (frozen) + MAP head",
        ),
        "random-init": (
            ["--policy.encoder", str(random_encoder), "--policy.mode", cfg.mode, "--steps", str(cfg.train_steps)],
            f"{cfg.model}, random weights (frozen) + MAP head",
        ),
        "scratch-cnn": (
            [
                "--policy.encoder",
                "scratch-cnn",
                "--policy.image-size",
                str(cfg.size),
                "--steps",
                str(cfg.baseline_steps),
            ],
            "small CNN trained from scratch end to end + MAP head",
        ),
    }
    for name, (args, _) in policies.items():
        _run(["train", *common, *args, "--out", str(run / "train" / name)])
    times["train"] = time.perf_counter() - t

    _stage("5. evaluate in seen and held-out scenes")
    t = time.perf_counter()
    seen = [f"{h}/{s}" for h, s in train_scenes[:: max(1, len(train_scenes) // 3)]][:3]
    heldout = ["3/0", "4/2", "2/1"]
    scenes = [x for pair in zip(seen, heldout) for x in pair]
    evals = []
    for name, (_, label) in policies.items():
        out = run / "eval" / name
        _run(
            [
                "eval",
                "--policy",
                str(run / "train" / name),
                "--episodes",
                str(cfg.eval_episodes),
                "--seeds",
                str(cfg.seed),
                "--scenes",
                *scenes,
                "--num-envs",
                str(cfg.num_envs),
                "--videos",
                "2",
                "--out",
                str(out),
                "--name",
                label,
                "--no-progress",
            ]
        )
        evals.append(out)
    _run(
        [
            "eval",
            "--policy",
            "random",
            "--tasks",
            cfg.task,
            "--episodes",
            str(cfg.eval_episodes),
            "--seeds",
            str(cfg.seed),
            "--scenes",
            *scenes,
            "--num-envs",
            str(cfg.num_envs),
            "--videos",
            "1",
            "--out",
            str(run / "eval" / "random"),
            "--name",
            "random actions",
            "--no-progress",
        ]
    )
    evals.append(run / "eval" / "random")
    times["evaluate"] = time.perf_counter() - t

    _stage("6. report")
    comparison = compare_policies(evals)
    report = _report(cfg, run, evals, pre, lm_note, times, len(successful), comparison, corpus_note)
    summary = _summary(run, evals, times, time.perf_counter() - t0, len(successful), lm_note)
    summary["comparison"], summary["pretraining_data"] = comparison, corpus_note
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figures = {f"{k} success": v["success"] for k, v in summary["results"].items()}
    write_card(run, "demo", [*evals, run / "report"], cfg, figures, ["summary.json"])
    print("\n" + json.dumps(summary, indent=2))
    print(f"\ndemo finished in {summary['total_s']:.0f} s")
    print(f"report: {report}")
    return 0


def _corpus(cfg: DemoConfig, run: Path, lm: str) -> tuple[Path | None, str]:
    """Generate `corpus_clips` human-style clips and prepare them with the LM's tokenizer; (prepared folder or
    None, a sentence for the report)."""
    import importlib.util
    from dataclasses import fields

    if cfg.corpus_clips <= 0:
        return None, "the demos' clips only (--corpus-clips 0)"
    if importlib.util.find_spec("robolearn.pretrain.corpus") is None:
        return None, "the demos' clips only: the clip corpus generator (robolearn.pretrain.corpus) is not installed"
    from robolearn.pretrain.corpus import CorpusConfig, generate_corpus

    corpus = run / "corpus"
    wanted = dict(out=corpus, clips=cfg.corpus_clips, seed=cfg.seed, size=cfg.size, frames=16, workers=cfg.num_envs)
    known = {f.name for f in fields(CorpusConfig)}
    generate_corpus(CorpusConfig(**{k: v for k, v in wanted.items() if k in known}))
    prepared = run / "corpus-prepared"
    labels = corpus / "labels"
    val = ["--validation", str(labels / "validation.json")] if (labels / "validation.json").is_file() else []
    args = ["--videos", str(corpus / "videos"), "--labels", str(labels / "train.json"), *val]
    _run(["pretrain", "prepare", "--source", "ssv2", *args, "--out", str(prepared), "--tokenizer", lm,
          "--size", str(cfg.size)])  # fmt: skip
    return prepared, (
        f"{cfg.corpus_clips} generated human-style clips (weight {cfg.corpus_weight:g}) mixed with the demos' clips"
    )


def fisher_exact_p(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided Fisher's exact test that two success rates k1/n1 and k2/n2 are equal."""
    from math import comb

    total, k = n1 + n2, k1 + k2
    if n1 == 0 or n2 == 0:
        return 1.0

    def prob(a: int) -> float:
        return comb(n1, a) * comb(n2, k - a) / comb(total, k)

    observed = prob(k1)
    lo, hi = max(0, k - n2), min(k, n1)
    return min(1.0, sum(prob(a) for a in range(lo, hi + 1) if prob(a) <= observed * (1 + 1e-9)))


def compare_policies(evals: list[Path]) -> dict[str, Any]:
    """The pretrained policy against random weights and from-scratch: rates with Wilson intervals, Fisher's
    exact test, and the outcome in plain words (pointing to the study when it is not significant)."""
    import html

    overall = {e.name: json.loads((e / "results.json").read_text())["overall"] for e in evals}
    rates = {n: (o["successes"], o["episodes"], o["ci95"]) for n, o in overall.items()}
    rows, tests = [], {}
    for n, (k, m, ci) in rates.items():
        rows.append(f"<tr><td>{html.escape(n)}</td><td>{k}/{m} = {k / max(m, 1):.2f}</td>"
                    f"<td>[{ci[0]:.2f}, {ci[1]:.2f}]</td></tr>")  # fmt: skip
    words = []
    if "pretrained" in rates:
        k1, n1, _ = rates["pretrained"]
        for other in ("random-init", "scratch-cnn"):
            if other not in rates:
                continue
            k2, n2, _ = rates[other]
            p = fisher_exact_p(k1, n1, k2, n2)
            diff = k1 / max(n1, 1) - k2 / max(n2, 1)
            tests[other] = {"diff": round(diff, 3), "p": round(p, 4), "significant": p < 0.05}
            if p < 0.05:
                words.append(f"pretrained is {'better' if diff > 0 else 'worse'} than {other} "
                             f"({diff:+.2f}, Fisher p = {p:.3f})")  # fmt: skip
            else:
                words.append(f"pretrained vs {other}: {diff:+.2f}, not significant (Fisher p = {p:.2f})")
    significant = any(t["significant"] for t in tests.values())
    plain = "; ".join(words) + ". " if words else ""
    if not significant:
        plain += (
            "At this scale the difference is not significant: this many episodes cannot tell these policies "
            "apart. The research study (robolearn suite study, docs/research.md) measures what pretraining buys "
            "over seeds and the suite's five problem families."
        )
    body = (
        "<table><tr><th>policy</th><th>success</th><th>95% Wilson</th></tr>" + "".join(rows) + "</table>"
        f"<p>{html.escape(plain)}</p>"
    )
    return {"tests": tests, "significant": significant, "plain": plain, "html": body}


def _random_init_encoder(cfg: DemoConfig, lm: str, overrides: dict[str, Any], folder: Path) -> Path:
    """The pretrained model's exact architecture with its initial (untrained) weights, saved as a checkpoint:
    the control that isolates what pretraining adds."""
    import torch

    from robolearn.encoders import build, save

    torch.manual_seed(cfg.seed)
    save(build(cfg.model, language_model=lm, image_size=cfg.size, **overrides), folder)
    made = {"model": cfg.model, "seed": cfg.seed, "init": "random"}
    write_card(folder, "encoder", [{"path": lm, "kind": "lm"}], made)
    return folder


def _summary(
    run: Path, evals: list[Path], times: dict[str, float], total: float, demos: int, lm_note: str
) -> dict[str, Any]:
    rows = {}
    for e in evals:
        res = json.loads((e / "results.json").read_text())
        o = res["overall"]
        rows[e.name] = {
            "success": round(o["success_rate"], 3),
            "ci95": [round(v, 3) for v in o["ci95"]],
            "seen": None if not o.get("seen") else round(o["seen"]["success_rate"], 3),
            "heldout": None if not o.get("heldout") else round(o["heldout"]["success_rate"], 3),
            "episodes": o["episodes"],
        }
    return {
        "run": str(run),
        "demos": demos,
        "results": rows,
        "stage_seconds": {k: round(v, 1) for k, v in times.items()},
        "total_s": round(total, 1),
        "language_model": lm_note,
    }


def _report(
    cfg: DemoConfig,
    run: Path,
    evals: list[Path],
    pre: Path,
    lm_note: str,
    times: dict[str, float],
    demos: int,
    comparison: dict[str, Any],
    corpus_note: str,
) -> Path:
    import cv2

    from robolearn.envs.commands import render_scene_grid
    from robolearn.eval.report import compare_report

    images = []
    grid = render_scene_grid(5, 4, cfg.task, "exterior_1", 120, cfg.seed)
    cv2.imwrite(str(run / "scenes.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    images.append(run / "scenes.png")
    loss_png = _pretrain_plot(pre / "metrics.jsonl", run / "pretrain_loss.png")
    if loss_png:
        images.append(loss_png)
    for name in ("pretrained", "random-init", "scratch-cnn"):
        p = run / "train" / name / "loss.png"
        if p.exists():
            images.append(p)
    stage_rows = "".join(f"<tr><td>{k}</td><td>{v:.1f} s</td></tr>" for k, v in times.items())
    sections = [
        (
            "What ran",
            f"<p>{demos} successful expert demonstrations of <b>{cfg.task}</b> recorded at the station in "
            f"{cfg.households} households x {cfg.scenes_per_household} scenes ({cfg.size}x{cfg.size} "
            f"cameras); a {cfg.model} pretrained for {cfg.pretrain_steps} steps ({corpus_note}); heads "
            f"trained for {cfg.train_steps} steps (frozen encoders) and {cfg.baseline_steps} steps (the "
            f"from-scratch CNN); each evaluated for {cfg.eval_episodes} episodes alternating seen and "
            f"held-out scenes (households 3 and 4 never appear in the demos).</p><p>{lm_note}.</p>"
            f"<table><tr><th>stage</th><th>time</th></tr>{stage_rows}</table>",
        ),
    ]
    sections.append(("Does pretraining help here?", comparison["html"]))
    sections.append(("Rollout videos", _video_section(evals, run / "report")))
    return compare_report(evals, run / "report", f"robolearn demo: {cfg.task}", sections=sections, images=images)[1]


def _video_section(evals: list[Path], report_dir: Path) -> str:
    """HTML: each policy's rollout videos (relative links into its eval run) and a link to its full report."""
    import html
    import os

    parts = []
    for e in evals:
        res = json.loads((e / "results.json").read_text())
        rel = os.path.relpath(e, report_dir)
        cells = []
        for ep in res["episodes"]:
            if not ep.get("video"):
                continue
            where = "seen" if ep.get("seen") else ("held-out" if ep.get("seen") is False else "")
            label = (
                f"{'success' if ep['success'] else 'failure'}, household {ep.get('household')} scene "
                f"{ep.get('scene')} {where}, {ep['steps']} steps"
            )
            cells.append(
                f'<figure><video controls width="192" src="{html.escape(rel)}/{html.escape(ep["video"])}">'
                f"</video><figcaption>{html.escape(label)}</figcaption></figure>"
            )
        name = html.escape(res["policy"].get("name", e.name))
        parts.append(
            f'<h3>{name}</h3><p><a href="{html.escape(rel)}/report.html">full evaluation report</a></p>'
            f'<div style="display:flex;flex-wrap:wrap;gap:8px">{"".join(cells)}</div>'
        )
    return "".join(parts)


def _pretrain_plot(metrics: Path, out: Path) -> Path | None:
    if not metrics.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    pts = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(*zip(*pts))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("MAE loss")
    ax.set_title("pretraining on the demos' clips")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
