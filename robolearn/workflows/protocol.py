"""The R3M / Voltron single-task visuomotor protocol as one command:

    robolearn eval protocol --encoders v-cond-tiny:CKPT scratch-cnn --tasks press-button --demos 10 25 \\
        --episodes 20 --seeds 0 1 2 --steps 2000 --out runs/protocol

For each task the scripted expert records max(demos) demonstrations through the station (spread over the
training scenes); for each encoder, demo count N and seed, a head is trained for a fixed number of steps on
the first N demos (frozen encoder; baselines train end to end) and evaluated for E episodes on the seen and
held-out scenes. Every (task, encoder, N, seed) is a run folder with its configs, logs, results and
videos; a leaderboard over them is written at the end.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from robolearn.config import opt, save_config


@dataclass
class ProtocolConfig:
    encoders: list[str] = opt(
        default_factory=lambda: ["v-cond-tiny"], help="encoders (id, folder, id:CKPT or a baseline)"
    )
    tasks: list[str] = opt(default_factory=lambda: ["press-button"], help="household tasks")
    demos: list[int] = opt(default_factory=lambda: [10, 25], help="demonstration counts")
    episodes: int = opt(20, help="evaluation episodes per run")
    seeds: list[int] = opt(default_factory=lambda: [0, 1, 2], help="seeds (training and evaluation)")
    steps: int = opt(2000, help="head training steps (the fixed budget)")
    head: str = opt("map-mlp", help="map-mlp | chunk")
    train_scenes: list[str] = opt(
        default_factory=lambda: ["0/0", "0/1", "1/0", "1/1", "2/0"], help="H/S scenes the demos come from"
    )
    eval_scenes: list[str] = opt(
        default_factory=lambda: ["0/0", "1/1", "3/2", "4/3"], help="H/S scenes evaluated (seen and held-out)"
    )
    cameras: list[str] = opt(default_factory=lambda: ["exterior_1", "wrist"], help="cameras")
    size: int = opt(64, help="camera image side")
    expert_noise: float = opt(0.1, help="expert action noise (robust demos)")
    language_model: str = opt("", help="frozen LM for Voltron encoders")
    encoder_image_size: int = opt(0, help="image size for random-init encoder ids")
    num_envs: int = opt(1, help="parallel eval envs")
    videos: int = opt(1, help="videos per run")
    out: Path = opt(Path("runs/protocol"), help="output folder")
    progress: bool = opt(True, help="progress bars")


def _pairs(items: list[str]) -> list[tuple[int, int]]:
    out = []
    for it in items:
        try:
            h, s = (int(v) for v in it.split("/"))
        except ValueError:
            raise ValueError(f"scene {it!r}: expected H/S, e.g. 1/2") from None
        out.append((h, s))
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text.replace(":", "@"))[-60:]


def run_protocol(cfg: ProtocolConfig) -> list[Path]:
    """Run the whole grid; returns the eval run folders."""
    from robolearn.collection.expert_demos import record_expert_demos
    from robolearn.data.reader import list_episodes
    from robolearn.eval.commands import EvalCommand, run_eval
    from robolearn.eval.leaderboard import write_leaderboard
    from robolearn.policies.config import HEAD_CONFIGS, PolicyConfig
    from robolearn.policies.train import TrainConfig, train

    out = Path(cfg.out)
    save_config(cfg, out, "protocol")
    train_scenes = _pairs(cfg.train_scenes)
    eval_scenes = [f"{h}/{s}" for h, s in _pairs(cfg.eval_scenes)]
    runs: list[Path] = []
    for task in cfg.tasks:
        demos_dir = out / "demos" / task
        need = max(cfg.demos)
        have = len(list_episodes(demos_dir)) if demos_dir.exists() else 0
        if have < need:  # (re)record the whole set: demos are cheap, a partial set would mix sessions
            if demos_dir.exists():
                shutil.rmtree(demos_dir)
            per_scene = -(-need // len(train_scenes))
            record_expert_demos(
                demos_dir, task, train_scenes, per_scene, tuple(cfg.cameras), cfg.size, cfg.expert_noise
            )
        for enc in cfg.encoders:
            for n in cfg.demos:
                for seed in cfg.seeds:
                    run = out / "runs" / task / _slug(enc) / f"demos{n}" / f"seed{seed}"
                    if cfg.head not in HEAD_CONFIGS:
                        raise ValueError(f"unknown head {cfg.head!r}; expected one of {', '.join(HEAD_CONFIGS)}")
                    pc = PolicyConfig(
                        encoder=enc,
                        head=HEAD_CONFIGS[cfg.head](),
                        cameras=list(cfg.cameras),
                        language_model=cfg.language_model or None,
                        encoder_overrides={"image_size": cfg.encoder_image_size} if cfg.encoder_image_size else {},
                    )
                    tc = TrainConfig(
                        data=[demos_dir],
                        query=["success=1"],
                        max_episodes=n,
                        val_fraction=0.0,
                        out=run / "train",
                        policy=pc,
                        steps=cfg.steps,
                        seed=seed,
                        progress=cfg.progress,
                    )
                    train(tc)
                    ec = EvalCommand(
                        policy=str(run / "train"),
                        tasks=[task],
                        episodes=cfg.episodes,
                        seeds=[seed],
                        scenes=eval_scenes,
                        num_envs=cfg.num_envs,
                        videos=cfg.videos,
                        out=run / "eval",
                        name=f"{enc} ({n} demos)",
                        progress=cfg.progress,
                    )
                    res = run_eval(ec)
                    s = res["tasks"][task]
                    print(f"{task} | {enc} | {n} demos | seed {seed}: success {s['success_rate']:.2f}", flush=True)
                    runs.append(run / "eval")
    write_leaderboard(out / "runs", out, config=cfg)
    return runs
