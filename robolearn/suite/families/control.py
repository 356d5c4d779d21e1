"""Family 3, single-task visuomotor control: the R3M / Voltron behaviour-cloning protocol as a suite scenario.

The same stages as `robolearn eval protocol` (robolearn.workflows.protocol), one (encoder, seed) per cell:
the scripted expert records demos of one household task through the station (sim robot, sim cameras, the
crash-safe writer) in the training scenes; a policy (the frozen encoder + a MAP-MLP head, robolearn.policies;
baselines train end to end) is trained on them for the scenario's fixed step budget; it is evaluated closed
loop (robolearn eval) in seen scenes and in scenes of held-out households. Metrics: success rate overall
(primary), in seen and in held-out scenes, each with a Wilson interval.

The dataset folder holds the successful episodes under `episodes/` and one record per episode (its path, household,
scene, outcome and a digest of its content: every per-step array except timestamps, and the encoded camera
frames), plus one record per evaluation scene (test_seen / test_heldout). Episode files carry wall-clock
times, so their bytes differ between two recordings; the content digests do not, so the dataset's hash is a
function of its config. `run_cell` re-checks every episode's digest before training. The stages are called
directly rather than through `run_protocol`, whose grid and folders are its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.suite.adapt import Budget
from robolearn.suite.dataset import SuiteDataError, SuiteDataset, write_dataset
from robolearn.suite.encoders import EncoderSpec, backbone_identity
from robolearn.suite.scenario import CellContext, CellResult, Scenario, register

EPISODES = "episodes"
_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"demos_per_scene": 2, "train_scenes": [[0, 0], [0, 1], [1, 0]], "episodes": 10, "steps": 300},
    "small": {
        "demos_per_scene": 5,
        "train_scenes": [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]],
        "episodes": 40,
        "steps": 2000,
    },
    "full": {
        "demos_per_scene": 10,
        "train_scenes": [[h, s] for h in range(3) for s in range(4)],
        "episodes": 100,
        "steps": 10000,
    },
}


def episode_digest(path: Path) -> str:
    """sha256 of an episode's content: per-step arrays (not timestamps) and the encoded camera frames."""
    from robolearn.data.reader import Episode

    h = hashlib.sha256()
    with Episode(path) as ep:
        for name in sorted(ep.per_step_paths()):
            if name.startswith("timestamp/") or name.endswith("_ns"):  # wall-clock times
                continue
            a = np.ascontiguousarray(ep.array(name))
            h.update(f"{name}:{a.dtype}:{a.shape}".encode())
            h.update(a.tobytes())
        for cam in ep.camera_names:
            stream = ep.stream(cam)
            for t in range(ep.num_steps):
                h.update(stream.raw(t))
        h.update(repr(ep.instructions()).encode())
    return h.hexdigest()


def _episode_facts(path: Path) -> dict[str, Any]:
    from robolearn.data.reader import Episode

    with Episode(path) as ep:
        return {"steps": int(ep.num_steps), "success": bool(ep.attrs.get("success", False))}


def check_episodes(dataset: SuiteDataset) -> list[Path]:
    """The dataset's episode files, each checked against its record's content digest (SuiteDataError if not)."""
    paths = []
    for r in dataset.records:
        if r["kind"] != "demo":
            continue
        path = dataset.folder / r["path"]
        if not path.is_file():
            raise SuiteDataError(f"{path}: missing (listed in {dataset.folder / 'records.jsonl'})")
        try:
            got = episode_digest(path)
        except (OSError, KeyError, ValueError) as e:
            raise SuiteDataError(f"{path}: unreadable episode ({type(e).__name__}: {e})") from e
        if got != r["digest"]:
            raise SuiteDataError(f"{path}: content digest {got}, expected {r['digest']}: the file was edited")
        paths.append(path)
    return paths


class Control(Scenario):
    name, family, version = "control", "control", 1
    description = "single-task visuomotor BC (the R3M/Voltron protocol): success in seen and held-out scenes"
    metrics = {"success": True, "success_seen": True, "success_heldout": True}
    default_budget = Budget(steps=300, batch_size=32, lr=1e-3, weight_decay=1e-4)

    def data_config(self, size: str) -> dict[str, Any]:
        base = super().data_config(size)
        s = _SIZES[size]
        return {
            **base,
            "task": "press-button",
            "train_scenes": s["train_scenes"],
            "demos_per_scene": s["demos_per_scene"],
            "eval_seen": s["train_scenes"][:2],
            "eval_heldout": [[3, 2], [4, 3]],
            "episodes": s["episodes"],
            "cameras": ["exterior_1", "wrist"],
            "image_size": 64,
            "expert_noise": 0.1,
            "seed": 0,
        }

    def budget(self, size: str) -> Budget:
        return Budget(steps=_SIZES[size]["steps"], batch_size=32 if size == "tiny" else 64, lr=1e-3, weight_decay=1e-4)

    def generate(self, out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
        """Record the demos into a staging folder beside `out`, write the dataset, move the episodes in."""
        from robolearn.collection.expert_demos import record_expert_demos

        out = Path(out)
        staging = out.with_name(f".{out.name}.{os.getpid()}.episodes")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            scenes = [tuple(s) for s in config["train_scenes"]]
            paths = record_expert_demos(
                staging,
                config["task"],
                scenes,
                config["demos_per_scene"],
                tuple(config["cameras"]),
                config["image_size"],
                config["expert_noise"],
                seed=config["seed"],
            )
            records, episodes = [], staging / EPISODES
            for k, p in enumerate(sorted(paths)):  # station names carry the time: renamed to their order
                facts = _episode_facts(p)
                if not facts["success"]:
                    continue  # the protocol trains on successful demos only
                scene_dir = p.relative_to(staging).parts[0]  # household_<h>_scene_<s>
                h, s = (int(v) for v in scene_dir.removeprefix("household_").split("_scene_"))
                rel = f"{scene_dir}/ep_{k:06d}{p.suffix}"
                (episodes / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(p, episodes / rel)
                records.append(
                    {
                        "split": "train",
                        "kind": "demo",
                        "path": f"{EPISODES}/{rel}",
                        "household": h,
                        "scene": s,
                        "digest": episode_digest(episodes / rel),
                        **facts,
                    }
                )
            if not records:
                raise RuntimeError(f"the {config['task']} expert recorded no successful demo")
            for split, key in (("test_seen", "eval_seen"), ("test_heldout", "eval_heldout")):
                records += [{"split": split, "kind": "eval-scene", "household": h, "scene": s} for h, s in config[key]]
            ds = write_dataset(out, self.name, self.version, config, {"index": np.arange(len(records))}, records)
            os.replace(episodes, out / EPISODES)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return ds

    # ------------------------------------------------------------------ cell
    def run_cell(self, dataset: SuiteDataset, encoder: EncoderSpec, ctx: CellContext) -> CellResult:
        from robolearn.eval.commands import EvalCommand, run_eval
        from robolearn.policies import load_policy
        from robolearn.policies.config import MapMlpHeadConfig
        from robolearn.policies.train import TrainConfig, train

        cfg = dataset.meta["config"]
        demos = check_episodes(dataset)
        pc = encoder.policy_config(head=MapMlpHeadConfig(), cameras=list(cfg["cameras"]))
        b = ctx.budget
        tc = TrainConfig(
            data=[dataset.folder / EPISODES],
            max_episodes=len(demos),
            val_fraction=0.0,
            out=ctx.out / "train",
            policy=pc,
            steps=b.steps,
            batch_size=b.batch_size,
            lr=b.lr,
            weight_decay=b.weight_decay,
            seed=ctx.seed,
            log_every=max(1, b.steps // 30),
            feature_cache=str(ctx.cache_dir / "control-features"),
            progress=ctx.progress,
        )
        result = train(tc)
        seen = [tuple(r[k] for k in ("household", "scene")) for r in dataset.records if r["split"] == "test_seen"]
        held = [tuple(r[k] for k in ("household", "scene")) for r in dataset.records if r["split"] == "test_heldout"]
        order = [s for pair in zip(seen, held) for s in pair] + seen[len(held) :] + held[len(seen) :]
        ec = EvalCommand(
            policy=str(ctx.out / "train"),
            tasks=[cfg["task"]],
            episodes=cfg["episodes"],
            seeds=[ctx.seed],
            scenes=[f"{h}/{s}" for h, s in order],
            videos=0,
            out=ctx.out / "eval",
            progress=ctx.progress,
        )
        eps = run_eval(ec)["episodes"]
        held_set = set(held)
        is_held = np.array([(e["household"], e["scene"]) in held_set for e in eps], dtype=bool)
        ok = np.array([bool(e["success"]) for e in eps], dtype=bool)
        metrics, intervals, breakdown = control_metrics(ok, is_held, [f"{e['household']}/{e['scene']}" for e in eps])
        np.savez_compressed(
            ctx.out / "predictions.npz",
            success=ok,
            heldout=is_held,
            household=np.array([e["household"] for e in eps]),
            scene=np.array([e["scene"] for e in eps]),
            steps=np.array([e["steps"] for e in eps]),
        )
        policy = load_policy(str(ctx.out / "train"))
        examples = _examples(ctx.out, cfg, eps, ctx.seed)
        return CellResult(
            metrics=metrics,
            intervals=intervals,
            breakdown=breakdown,
            instances=len(eps),
            curves={"train_loss": [h["loss"] for h in result.history]},
            examples=examples,
            extra={
                "encoder_identity": backbone_identity(encoder, policy.backbone),
                "demos": len(demos),
                "train_seconds": round(result.seconds, 1),
            },
        )


def control_metrics(ok: np.ndarray, heldout: np.ndarray, scenes: list[str]) -> tuple[dict, dict, dict]:
    """(metrics, Wilson intervals, breakdowns) of evaluation episodes (success flags, held-out-scene flags)."""
    from robolearn.eval.metrics import wilson_interval

    ok, heldout = np.asarray(ok, dtype=bool), np.asarray(heldout, dtype=bool)
    metrics, intervals = {}, {}
    for name, mask in (("success", np.ones_like(ok)), ("success_seen", ~heldout), ("success_heldout", heldout)):
        n, k = int(mask.sum()), int(ok[mask].sum())
        metrics[name] = k / n if n else float("nan")
        intervals[name] = wilson_interval(k, n)
    by_scene = {s: float(np.mean([o for o, t in zip(ok, scenes) if t == s])) for s in sorted(set(scenes))}
    return metrics, intervals, {"by_scene": by_scene}


def _examples(out: Path, cfg: dict[str, Any], eps: list[dict], seed: int, n: int = 2) -> list[str]:
    """The start frame of the first evaluation episodes (as `robolearn eval` resets them), captioned with the
    scene and the outcome."""
    from PIL import Image, ImageDraw

    from robolearn.envs import HouseholdEnv

    folder = out / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    env = HouseholdEnv(task=cfg["task"], cameras=("exterior_1",), image_size=(cfg["image_size"],) * 2)
    names = []
    try:
        for e in eps[:n]:
            obs, _ = env.reset(
                seed=10000 * seed + e["episode"], options={"household": e["household"], "scene": e["scene"]}
            )
            side = cfg["image_size"] * 3
            canvas = Image.new("RGB", (side, side + 16), "white")
            canvas.paste(Image.fromarray(obs["images"]["exterior_1"]).resize((side, side), Image.NEAREST), (0, 16))
            outcome = "success" if e["success"] else "fail"
            text = f"h{e['household']}/s{e['scene']}: {outcome} ({e['steps']} steps)"
            ImageDraw.Draw(canvas).text((4, 2), text, fill="black")
            name = f"examples/episode-{e['episode']}.png"
            canvas.save(out / name)
            names.append(name)
    finally:
        env.close()
    return names


register(Control())
