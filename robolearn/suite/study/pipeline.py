"""`run_study(StudyConfig)`: corpus -> prepare -> (robot demos) -> pretrain at equal compute -> random-init
controls -> suite -> probe -> report, every stage behind a done mark (stages.py), so a killed run resumes.

    <out>/study.config.json      the settings
    <out>/corpus/                generated clips in the SSv2 layout (videos/, labels/)   [unless --corpus]
    <out>/prepared/              `robolearn pretrain prepare --source ssv2` output, tokenised with the study's LM
    <out>/demos/                 expert demos (the optional second domain)
    <out>/pretrain/<arch>/       `robolearn pretrain` runs: checkpoints/, metrics.jsonl
    <out>/random-init/<arch>/    the same architecture with the weights pretraining started from
    <out>/suite/                 `robolearn suite run` folder (cells, leaderboard)
    <out>/probe.json             the template probe
    <out>/report.{md,json,html}, <out>/pretrain_loss.png
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from robolearn.config import save_config
from robolearn.suite.study.config import StudyConfig, StudyError
from robolearn.suite.study.stages import Stages

ROBOT_TASKS = ("open-drawer", "press-button", "put-in-bin")


def _lm(cfg: StudyConfig) -> tuple[str, dict[str, Any]]:
    """(LM folder or id, its identity): the study's frozen LM (default: the packaged all-MiniLM-L6-v2)."""
    from robolearn.encoders.language import LanguageModel
    from robolearn.encoders.pretrained_lm import default_language_model

    lm = LanguageModel(cfg.language_model or default_language_model())
    return str(lm.source), lm.identity()


def corpus_labels(root: Path) -> tuple[Path, Path | None]:
    """(train labels, validation labels) of an SSv2-layout folder: labels/{train,validation}.json (SSv2's own
    layout) or the same names at the top."""
    for folder in (root / "labels", root):
        if (folder / "train.json").is_file():
            val = folder / "validation.json"
            return folder / "train.json", val if val.is_file() else None
    raise StudyError(f"{root}: no labels/train.json (expected the SSv2 layout: videos/<id>.webm, labels/*.json)")


def _generate_corpus(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    try:
        from robolearn.pretrain.corpus import CorpusConfig, generate_corpus
    except ImportError as e:
        raise StudyError(
            f"the clip corpus generator (robolearn.pretrain.corpus) is not available ({e}); pass --corpus DIR "
            "with clips in the SSv2 layout"
        ) from e
    wanted = dict(out=out, clips=cfg.clips, workers=cfg.workers, seed=cfg.corpus_seed, size=cfg.frame_size,
                  frames=cfg.clip_frames, val_fraction=cfg.val_fraction)  # fmt: skip
    known = {f.name for f in fields(CorpusConfig)}
    report = generate_corpus(CorpusConfig(**{k: v for k, v in wanted.items() if k in known}))
    return json.loads(json.dumps(report if isinstance(report, dict) else asdict(report), default=str))


def _prepare(cfg: StudyConfig, corpus: Path, out: Path, lm: str) -> dict[str, Any]:
    from robolearn.pretrain.ssv2 import prepare_ssv2

    train, val = corpus_labels(corpus)
    report = prepare_ssv2(corpus / "videos", train, val, out, tokenizer=lm, max_lang_len=20, size=cfg.frame_size,
                          workers=cfg.workers, val_clips=cfg.val_clips, frames_per_shard=4096)  # fmt: skip
    if report["clips_in_index"] == 0:
        raise StudyError(f"{out}: no usable clips after prepare (see {out / 'report.json'})")
    return {
        "clips": report["clips_in_index"],
        "train": report["train"],
        "val": report["val"],
        "failed": report["failed"],
        "truncated_captions": report["truncated_captions"],
        "empty_captions": report.get("empty_captions", 0),
    }


def _record_demos(cfg: StudyConfig, out: Path) -> dict[str, Any]:
    from robolearn.collection.expert_demos import record_expert_demos

    files = []
    for k, task in enumerate(ROBOT_TASKS):  # training households of the suite only (3 and 4 are held out)
        scenes = [(h, s) for h in range(3) for s in (0, 1)]
        files += record_expert_demos(out / task, task, scenes, cfg.robot_demos, cameras=("exterior_1",),
                                     size=cfg.image_size, noise=0.1, seed=cfg.pretrain_seed + k)  # fmt: skip
    return {"episodes": len(files), "tasks": list(ROBOT_TASKS)}


def _overrides(ident: dict[str, Any]) -> dict[str, Any]:
    return {k: ident[v] for k, v in (("language_dim", "dim"), ("vocab_size", "vocab_size")) if ident.get(v)}


def _pretrain(cfg: StudyConfig, arch: str, prepared: Path, demos: Path | None, lm: str, ident: dict) -> dict:
    from robolearn.encoders import load
    from robolearn.pretrain.checkpoint import latest_checkpoint
    from robolearn.pretrain.run import PretrainCommand, pretrain
    from robolearn.pretrain.trainer import TrainConfig

    run_dir = cfg.out / "pretrain" / arch
    data, episodes = [str(prepared)], []
    if demos is not None:
        data = [f"{prepared}:{1 - cfg.robot_weight:g}"]
        episodes = [f"{demos / t}:{cfg.robot_weight / len(ROBOT_TASKS):g}" for t in ROBOT_TASKS]
    train = TrainConfig(max_steps=cfg.steps, max_epochs=100000, effective_batch=cfg.batch, device_batch=cfg.batch,
                        num_workers=0, lr=cfg.lr, schedule="constant", warmup_epochs=0.0, log_every=5,
                        seed=cfg.pretrain_seed, checkpoint_every=max(25, cfg.steps // 4),
                        progress=cfg.progress)  # fmt: skip
    command = PretrainCommand(model=cfg.model_id(arch), data=data, episodes=episodes, run_dir=run_dir,
                              language_model=lm, image_size=cfg.image_size,
                              model_overrides=json.dumps(_overrides(ident)), train=train)  # fmt: skip
    t = time.perf_counter()
    pretrain(command)
    seconds = time.perf_counter() - t
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise StudyError(f"{run_dir}: pretraining left no checkpoint")
    model, _ = load(ckpt, weights_only=True)
    c = model.config
    frames = getattr(model, "n_frames", 1)
    examples = cfg.steps * cfg.batch
    visible = max(1, int(c.n_patches * (1 - c.mask_ratio))) if arch != "r-r3m-vit" else c.n_patches
    return {
        "model": cfg.model_id(arch),
        "checkpoint": str(ckpt),
        "steps": cfg.steps,
        "batch": cfg.batch,
        "lr": cfg.lr,
        "schedule": "constant",
        "examples_seen": examples,
        "frames_seen": examples * frames,
        "visible_patch_tokens_seen": examples * frames * visible,
        "wall_s_this_run": round(seconds, 1),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "metrics": str(run_dir / "metrics.jsonl"),
    }


def _random_init(cfg: StudyConfig, arch: str, lm: str, ident: dict) -> dict[str, Any]:
    """The pretrained architecture with the exact weights its pretraining started from (same seed)."""
    import torch

    from robolearn.encoders import build, save

    torch.manual_seed(cfg.pretrain_seed)
    model = build(cfg.model_id(arch), language_model=lm, image_size=cfg.image_size, **_overrides(ident))
    return {"checkpoint": str(save(model, cfg.out / "random-init" / arch))}


def suite_encoders(cfg: StudyConfig, pretrained: dict, controls: dict) -> dict[str, str]:
    """Suite spec -> the study's name for it (`v-cond pretrained`, `v-cond random-init`, `scratch-cnn`)."""
    names = {f"{cfg.model_id(a)}:{pretrained[a]['checkpoint']}": f"{a} pretrained" for a in cfg.encoders}
    names.update({controls[a]["checkpoint"]: f"{a} random-init" for a in cfg.random_init})
    if cfg.scratch:
        names["scratch-cnn"] = "scratch-cnn"
    return names


def run_study(cfg: StudyConfig, log=print) -> Path:
    """Run (or resume) the study; returns the report's markdown path."""
    from robolearn.suite.runner import SuiteConfig, run_suite
    from robolearn.suite.scenario import get_scenario
    from robolearn.suite.study.probe import probe_encoders
    from robolearn.suite.study.report import write_report

    cfg.out = Path(cfg.out)
    cfg.validate()
    for name in cfg.scenarios:
        get_scenario(name)  # an unknown scenario fails here, before any work
    lm, ident = _lm(cfg)
    save_config(cfg, cfg.out, "study")
    st = Stages(cfg.out, cfg.overwrite, log)

    if cfg.corpus is not None:
        corpus = Path(cfg.corpus)
        corpus_info = st.run("corpus", {"given": str(corpus)}, lambda: {"folder": str(corpus), "given": True})
    else:
        corpus = cfg.out / "corpus"
        key = {"clips": cfg.clips, "seed": cfg.corpus_seed, "size": cfg.frame_size, "frames": cfg.clip_frames,
               "val_fraction": cfg.val_fraction}  # fmt: skip
        corpus_info = st.run("corpus", key, lambda: _generate_corpus(cfg, corpus))
    prepared = cfg.out / "prepared"
    prep_key = {"corpus": str(corpus), "lm": ident.get("sha256"), "size": cfg.frame_size, "val": cfg.val_clips}
    prep = st.run("prepare", prep_key, lambda: _prepare(cfg, corpus, prepared, lm))
    demos = None
    if cfg.robot_demos:
        demos = cfg.out / "demos"
        st.run("demos", {"per_scene": cfg.robot_demos, "size": cfg.image_size}, lambda: _record_demos(cfg, demos))

    pre_key = {"prep": prep_key, "steps": cfg.steps, "batch": cfg.batch, "lr": cfg.lr, "seed": cfg.pretrain_seed,
               "size": cfg.arch_size, "image": cfg.image_size, "demos": cfg.robot_demos,
               "robot_weight": cfg.robot_weight if cfg.robot_demos else None}  # fmt: skip
    pretrained = {}
    for arch in cfg.encoders:
        job = lambda a=arch: _pretrain(cfg, a, prepared, demos, lm, ident)  # noqa: E731
        pretrained[arch] = st.run(f"pretrain-{arch}", pre_key, job)
        pretrained[arch]["wall_s"] = st.seconds[f"pretrain-{arch}"]
    controls = {}
    for arch in cfg.random_init:
        controls[arch] = st.run(f"random-init-{arch}", pre_key, lambda a=arch: _random_init(cfg, a, lm, ident))

    # the probe first: cheap, and its answer is there even if the suite is stopped
    probe_key = {"pre": pre_key, "steps": cfg.probe_steps, "random_init": cfg.random_init}
    probe = st.run("probe", probe_key, lambda: probe_encoders(cfg, prepared, pretrained, controls))
    names = suite_encoders(cfg, pretrained, controls)
    suite_cfg = SuiteConfig(scenarios=list(cfg.scenarios), encoders=list(names), seeds=list(cfg.seeds),
                            size=cfg.size, out=cfg.out / "suite", language_model=lm, image_size=cfg.image_size,
                            steps=cfg.suite_steps, workers=cfg.workers, progress=cfg.progress,
                            datasets=cfg.datasets)  # fmt: skip

    def suite() -> dict[str, Any]:
        run = run_suite(suite_cfg)
        return {"cells": len(run.results), "seconds": run.seconds}

    suite_key = {k: v for k, v in asdict(suite_cfg).items() if k not in ("progress", "workers", "datasets")}
    suite_info = st.run("suite", {"pre": pre_key, **suite_key}, suite)
    return write_report(cfg, names, ident, corpus_info, prep, pretrained, suite_info, probe, st.seconds)
