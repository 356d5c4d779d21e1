"""The eval stage's commands: `robolearn eval` (roll a policy out in simulation and write a run folder with
results and a report), `robolearn eval leaderboard` and `robolearn envs check-experts`.

    robolearn eval --policy runs/bc --tasks press-button --episodes 20 --seeds 0 1 2 --scenes heldout

Run folder: config.json (this config + the policy's), results.json, episodes.jsonl, videos/, report.md,
report.html, plots/. `envs check-experts` sits in the envs group but lives here because its 95% intervals are
eval's (envs may not import eval); `robolearn rollout` is registered by robolearn.eval.real.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robolearn import __version__
from robolearn.config import command, opt, positional, save_config
from robolearn.eval.leaderboard import write_leaderboard
from robolearn.eval.metrics import wilson_interval
from robolearn.eval.real import RolloutConfig, rollout
from robolearn.eval.rollout import EvalSpec, evaluate_policy, scene_label
from robolearn.hardware.devices.base import DeviceError
from robolearn.hardware.robots.base import RobotError
from robolearn.lineage import write_card


@dataclass
class EvalCommand:
    policy: str = opt("", help="policy checkpoint or training run folder; 'random' for the random-action floor")
    suite: str = opt("", help="household | metaworld (default: the suite the policy was trained in)")
    tasks: list[str] = opt(default_factory=list, help="tasks (default: the policy's training tasks)")
    episodes: int = opt(10, help="episodes per task and seed")
    seeds: list[int] = opt(default_factory=lambda: [0], help="evaluation seeds")
    scenes: list[str] = opt(
        default_factory=list, help="household scenes: H/S pairs, 'seen', 'heldout' (default: the 5 x 4 grid)"
    )
    num_envs: int = opt(1, help="parallel env processes")
    max_steps: int = opt(0, help="episode step limit (0: the task's)")
    videos: int = opt(1, help="rollout videos per task and seed")
    save_episodes: bool = opt(
        False, help="household: also write every rollout as an episode file (success from the detector) in OUT/rollouts"
    )
    out: Path = opt(Path("runs/eval"), help="run folder")
    name: str = opt("", help="run name shown in reports (default: encoder + head)")
    device: str = opt("cpu", help="cpu | cuda")
    progress: bool = opt(True, help="progress bars")


def resolve_scenes(spec: list[str], train_scenes: list[str]) -> list[tuple[int, int]] | None:
    """--scenes values -> (household, scene) pairs; None = the default grid."""
    from robolearn.envs.scenes import default_scenes

    if not spec:
        return None
    grid = default_scenes()
    out: list[tuple[int, int]] = []
    for item in spec:
        if item in ("seen", "heldout"):
            if not train_scenes:
                raise ValueError(f"--scenes {item}: the policy records no training scenes")
            seen = set(train_scenes)
            out += [hs for hs in grid if (scene_label(*hs) in seen) == (item == "seen")]
            continue
        try:
            h, s = (int(v) for v in item.split("/"))
        except ValueError:
            raise ValueError(f"--scenes {item!r}: expected H/S (e.g. 1/2), 'seen' or 'heldout'") from None
        out.append((h, s))
    if not out:
        raise ValueError(f"--scenes {spec}: selects no scene (training scenes: {train_scenes})")
    return out


def run_eval(cfg: EvalCommand) -> dict[str, Any]:
    """Evaluate and write the run folder; returns results.json's content."""
    from robolearn.eval.metrics import summarize_run, write_results
    from robolearn.eval.report import write_report
    from robolearn.policies import load_policy, read_policy_config
    from robolearn.policies.checkpoint import resolve_policy_dir

    if not cfg.policy:
        raise ValueError("--policy: give a policy checkpoint or run folder (or 'random')")
    t0 = time.perf_counter()
    out = Path(cfg.out)
    random_policy = cfg.policy == "random"
    policy: Any = "random" if random_policy else load_policy(cfg.policy, device=cfg.device)
    pconf = None if random_policy else policy.config
    if not cfg.suite:
        cfg.suite = pconf.train_suite if pconf else "household"
    doc = None if random_policy else read_policy_config(cfg.policy)
    spec = EvalSpec(
        suite=cfg.suite,
        tasks=list(cfg.tasks),
        episodes=cfg.episodes,
        seeds=list(cfg.seeds),
        scenes=resolve_scenes(cfg.scenes, pconf.train_scenes if pconf else []) if cfg.suite == "household" else None,
        num_envs=cfg.num_envs,
        max_steps=cfg.max_steps,
        videos=cfg.videos,
        save_episodes=cfg.save_episodes,
        policy_label=cfg.policy,
    )
    out.mkdir(parents=True, exist_ok=True)
    encoder = "random" if random_policy else pconf.encoder
    head = "-" if random_policy else pconf.head.name
    meta_policy = {
        "path": cfg.policy,
        "name": cfg.name or (encoder if random_policy else f"{encoder} + {head}"),
        "encoder": encoder,
        "head": head,
        "train_data": None if random_policy else ", ".join(doc["meta"].get("train_data", [])),
        "train_episodes": None if random_policy else doc["meta"].get("train_episodes"),
    }
    config = {"eval": json.loads(json.dumps(asdict(cfg), default=str)), "policy": None if random_policy else doc}
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    records = evaluate_policy(policy, spec, out, cfg.progress)
    import mujoco

    meta = {
        "robolearn_version": __version__,
        "mujoco_version": mujoco.__version__,
        "suite": cfg.suite,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "policy": meta_policy,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    results = summarize_run(records, meta)
    write_results(out, results)
    write_report(out)
    o, tasks = results["overall"], results["tasks"]
    figures = {"success_rate": o["success_rate"], "ci95": o["ci95"], "episodes": o["episodes"]}
    figures.update({f"{t} success_rate": s["success_rate"] for t, s in tasks.items()})
    policy_dir = [] if random_policy else [resolve_policy_dir(cfg.policy)]
    write_card(out, "eval-run", policy_dir, cfg, figures, ["results.json", "episodes.jsonl"])
    return results


@command("eval", "")
def eval_cmd(cfg: EvalCommand) -> int:
    """Evaluate a policy in simulation: success rates with 95% intervals, videos, a report."""
    from robolearn.policies import PolicyCheckpointError

    try:
        results = run_eval(cfg)
    except (ValueError, FileNotFoundError, KeyError, PolicyCheckpointError) as e:
        print(f"robolearn eval: {e}", file=sys.stderr)
        return 2
    for task, s in results["tasks"].items():
        lo, hi = s["ci95"]
        line = f"{task}: success {s['success_rate']:.2f} [{lo:.2f}, {hi:.2f}] over {s['episodes']} episodes"
        if s.get("seen") and s.get("heldout"):
            line += f" (seen scenes {s['seen']['success_rate']:.2f}, held-out {s['heldout']['success_rate']:.2f})"
        print(line)
    print(f"results: {Path(cfg.out) / 'results.json'}\nreport: {Path(cfg.out) / 'report.html'}")
    if cfg.save_episodes:
        print(f"rollout episodes: {Path(cfg.out) / 'rollouts' / 'episodes'}")
    return 0


@dataclass
class LeaderboardCommand:
    runs_dir: Path = positional(help="folder searched recursively for eval runs (their results.json)")
    out: Path | None = opt(None, help="folder for leaderboard.{json,md,html} (default: RUNS_DIR)")
    by: str = opt(
        "encoder", help="rows: encoder (split by demo count when an encoder's runs differ) | name (the policy's --name)"
    )


@command("eval", "leaderboard")
def leaderboard_cmd(cfg: LeaderboardCommand) -> int:
    """Leaderboard (encoders x tasks, Wilson 95% intervals) over every eval run below RUNS_DIR."""
    try:
        paths = write_leaderboard(cfg.runs_dir, cfg.out, cfg.by, config=cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"robolearn eval leaderboard: {e}", file=sys.stderr)
        return 2
    print(f"leaderboard: {paths[2]} ({paths[1].name}, {paths[0].name})")
    return 0


@dataclass
class CheckExpertsCommand:
    tasks: list[str] = opt(default_factory=list, help="tasks (default: all household tasks)")
    episodes: int = opt(50, help="seeded episodes per task, spread over the default scenes")
    noise: float = opt(0.0, help="expert noise")
    seed: int = opt(0, help="first episode seed")
    action_space: str = opt("cartesian_velocity", help="action space the expert acts in")
    out: Path | None = opt(None, help="write results JSON here")


@command("envs", "check-experts")
def check_experts(cfg: CheckExpertsCommand) -> int:
    """Success rate of every scripted expert over seeded episodes on the default scenes (bar: 90%)."""
    import mujoco

    from robolearn.envs.experts import run_expert
    from robolearn.envs.tasks import TASKS

    tasks = cfg.tasks or list(TASKS)
    results = []
    print(f"{'task':14s} {'success':>8s} {'95% CI':>14s} {'mean steps':>10s}")
    for t in tasks:
        r = run_expert(t, cfg.episodes, noise=cfg.noise, seed=cfg.seed, action_space=cfg.action_space)
        head = {k: r[k] for k in ("task", "episodes", "successes", "success_rate")}  # ci95 after these, as before
        r = head | {"ci95": list(wilson_interval(r["successes"], r["episodes"]))} | r
        results.append(r)
        ms = f"{r['mean_steps']:.1f}" if r["mean_steps"] is not None else "-"
        print(f"{t:14s} {r['success_rate']:8.2f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] {ms:>10s}", flush=True)
    summary = {"mujoco_version": mujoco.__version__, "results": results}
    if cfg.out:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        cfg.out.write_text(json.dumps(summary, indent=1))
        save_config(cfg, cfg.out.parent, "check-experts")
    print(json.dumps({r["task"]: r["success_rate"] for r in results} | {"mujoco": mujoco.__version__}))
    return 0 if all(r["success_rate"] >= 0.9 for r in results) else 1


@command("rollout", "")
def rollout_cmd(cfg: RolloutConfig) -> int:
    """Run a policy on a robot (real or sim) with operator takeover; every rollout is recorded as an episode."""
    try:
        report = rollout(cfg)
    except KeyboardInterrupt:
        print("robolearn rollout: interrupted before the robot moved", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, DeviceError) as e:
        print(f"robolearn rollout: {e}", file=sys.stderr)
        return 2
    except RobotError as e:
        print(f"robolearn rollout: {e}", file=sys.stderr)
        return 1
    if cfg.dry_run and not report.aborted:
        print("dry run ok: every check passed; nothing moved")
        return 0
    if report.episodes:
        save_config(cfg, cfg.out, "rollout")
    print(report.summary())
    if report.error:
        return 1
    if report.aborted.split(" ")[0] in ("SIGINT", "SIGTERM", "KeyboardInterrupt"):
        return 130
    return 0
