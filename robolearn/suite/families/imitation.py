"""Family 4, language-conditioned imitation: one policy for several tasks in one scene, told which by language.

The dataset comes from the multi-task household scene (robolearn.envs.tasks.multi: a button, a drawer unit, a
bin and a block on one table; the instruction picks the sub-task whose success detector counts). The scripted
expert demonstrates every sub-task in the training scenes, each demo under one of the sub-task's *training*
paraphrases; the frames (one camera, proprio, the expert's action, the instruction) are the train/val
instances. Test instances are closed-loop evaluation episodes (scene, seed, sub-task, instruction; the stored
image is the episode's first frame): in seen scenes (test_seen) and in held-out households (test_heldout),
each under training instructions and under held-out paraphrases that no training frame carries.

Adapter: MAP over the frozen tokens (baselines train end to end) -> flattened latents ++ normalised proprio
(++ the instruction's embedding) -> MLP -> the 7-d action (cartesian velocity + gripper), MSE to the expert's
action. Language reaches every encoder once: V-* encoders run in multimodal mode and get the instruction in
their own fusion; encoders without language (R-MVP, scratch-cnn, resnet18) get the frozen LM's mean-pooled
instruction embedding (robolearn.encoders.LanguageModel, the suite's LM) as an extra input of the head. This
is done here rather than as a PolicyConfig option because the suite trains its own adapters on cached tokens
(robolearn.suite.adapt), not robolearn.policies' heads.

Metrics: success under training instructions (primary), success under held-out paraphrases, success in seen
and in held-out scenes, each with a Wilson interval; breakdowns per sub-task, per instruction, per (scenes,
phrasing), and how often another sub-task's detector fired instead.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.eval.metrics import wilson_interval
from robolearn.suite.adapt import Adapter, Budget, fit, predict, seed_everything
from robolearn.suite.dataset import SuiteDataset, write_dataset
from robolearn.suite.encoders import EncoderSpec, TokenSource, backbone_identity, default_lm
from robolearn.suite.scenario import CellContext, CellResult, Scenario, register

ACTION_DIM = 7
_SEEN = [[h, s] for h in range(3) for s in range(4)]  # households 3 and 4 are held out
_FACTS = ("split", "kind", "subtask", "instruction", "phrasing", "household", "scene", "seed")
_SIZES: dict[str, dict[str, Any]] = {
    # demos/val per sub-task; eval: phrases per (sub-task, phrasing) x episodes per phrase, in each scene group
    "tiny": {"demos": 4, "val": 1, "phrases": 1, "episodes": 1, "train_scenes": [[0, 0], [1, 1], [2, 0]]},
    "small": {"demos": 40, "val": 4, "phrases": 2, "episodes": 3, "train_scenes": _SEEN},
    "full": {"demos": 200, "val": 10, "phrases": 3, "episodes": 10, "train_scenes": _SEEN},
}


# ---------------------------------------------------------------------- generation
_ENV: dict[tuple, Any] = {}


def _env(camera: str, size: int, max_steps: int):
    """One multi-task env per process and camera setting (compiled scenes are cached inside it)."""
    from robolearn.envs import HouseholdEnv

    key = (camera, size, max_steps)
    if key not in _ENV:
        _ENV[key] = HouseholdEnv(task="multi-task", cameras=(camera,), image_size=(size, size), max_steps=max_steps)
    return _ENV[key]


def record_episode(job: dict[str, Any]) -> dict[str, Any]:
    """One episode of `job`: an expert demo (every frame kept) or an evaluation episode's first frame only."""
    from robolearn.envs import ScriptedExpert
    from robolearn.envs.experts import ExpertConfig

    env = _env(job["camera"], job["image_size"], job["max_steps"])
    cam = job["camera"]
    for attempt in range(4 if job["kind"] == "demo" else 1):  # a rare failed demo is redone with another seed
        seed = job["seed"] + 7919 * attempt
        options = {"household": job["household"], "scene": job["scene"], "instruction": job["instruction"]}
        obs, _ = env.reset(seed=seed, options=options)
        if job["kind"] != "demo":
            return {
                **job,
                "seed": seed,
                "images": obs["images"][cam][None],
                "proprio": obs["proprio"][None],
                "actions": np.zeros((1, ACTION_DIM), np.float32),
                "success": False,
            }
        expert = ScriptedExpert(env, ExpertConfig(noise=job["noise"], seed=seed))
        images, proprio, actions = [], [], []
        done, info = False, {"success": False}
        while not done:
            a = expert.act(obs)
            images.append(obs["images"][cam])
            proprio.append(obs["proprio"])
            actions.append(a)
            obs, _, terminated, truncated, info = env.step(a)
            done = terminated or truncated
        if info["success"]:
            break
    return {
        **job,
        "seed": seed,
        "images": np.stack(images),
        "proprio": np.stack(proprio).astype(np.float32),
        "actions": np.stack(actions).astype(np.float32),
        "success": bool(info["success"]),
    }


def episode_jobs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every episode the dataset holds, in order: demos (train, val) then evaluation episodes (test splits)."""
    from robolearn.envs.tasks.multi import PARAPHRASES

    common = {
        "camera": config["camera"],
        "image_size": config["image_size"],
        "max_steps": config["max_steps"],
        "noise": config["expert_noise"],
    }
    base = int(config["seed"]) * 1_000_000
    jobs: list[dict[str, Any]] = []
    train_scenes = [tuple(s) for s in config["train_scenes"]]
    for split, n, offset in (("train", config["demos"], 0), ("val", config["val"], 100_000)):
        for si, sub in enumerate(config["subtasks"]):
            phrases = PARAPHRASES[sub]["train"]
            for j in range(n):
                h, s = train_scenes[(j + si) % len(train_scenes)]
                jobs.append(
                    {
                        **common,
                        "kind": "demo",
                        "split": split,
                        "subtask": sub,
                        "instruction": phrases[j % len(phrases)],
                        "phrasing": "train",
                        "household": h,
                        "scene": s,
                        "seed": base + offset + 1000 * si + j,
                    }
                )
    for split, scenes, offset in (
        ("test_seen", train_scenes, 500_000),
        ("test_heldout", config["heldout_scenes"], 700_000),
    ):
        k = 0
        for sub in config["subtasks"]:
            for phrasing in ("train", "heldout"):
                for phrase in PARAPHRASES[sub][phrasing][: config["phrases"]]:
                    for _ in range(config["episodes"]):
                        h, s = scenes[k % len(scenes)]
                        jobs.append(
                            {
                                **common,
                                "kind": "rollout",
                                "split": split,
                                "subtask": sub,
                                "instruction": phrase,
                                "phrasing": phrasing,
                                "household": int(h),
                                "scene": int(s),
                                "seed": base + offset + k,
                            }
                        )
                        k += 1
    return jobs


def _record_all(jobs: list[dict[str, Any]], workers: int, progress: bool) -> list[dict[str, Any]]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="imitation episodes", disable=not progress)
    out: list[dict[str, Any]] = []
    if workers <= 1:
        for job in jobs:
            out.append(record_episode(job))
            bar.update()
    else:  # spawn: MuJoCo's EGL renderer must not be inherited by a fork of a process that rendered
        with mp.get_context("spawn").Pool(workers) as pool:
            for ep in pool.imap(record_episode, jobs):
                out.append(ep)
                bar.update()
    bar.close()
    return out


# ---------------------------------------------------------------------- adapter
class _Inputs:
    """Tokens plus the per-instance extras (normalised proprio, the instruction embedding) for the head."""

    def __init__(self, tokens: TokenSource, extras: torch.Tensor) -> None:
        self.tokens, self.extras = tokens, extras

    def parameters(self) -> list[torch.nn.Parameter]:
        return self.tokens.parameters()

    def train(self, mode: bool = True) -> None:
        self.tokens.train(mode)

    def __call__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokens(idx), self.extras[torch.as_tensor(idx)]


class ConditionedAdapter(Adapter):
    """MAP latents ++ extras -> MLP -> action."""

    def __init__(self, embed_dim: int, n_heads: int, n_latents: int, extra_dim: int, hidden: int = 256) -> None:
        head = nn.Sequential(
            nn.Linear(n_latents * embed_dim + extra_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, ACTION_DIM),
        )
        super().__init__(embed_dim, n_heads, n_latents, head)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        tokens, extras = inputs
        return self.head(torch.cat([self.map(tokens).flatten(1), extras], dim=1))


def instruction_embeddings(language_model: str | None, texts: list[str]) -> dict[str, torch.Tensor]:
    """The frozen LM's mean-pooled embedding of every distinct text."""
    from robolearn.encoders import LanguageModel

    lm = LanguageModel(language_model or default_lm())
    uniq = sorted(set(texts))
    pooled = lm.mean_pooled(uniq)
    return {t: pooled[i] for i, t in enumerate(uniq)}


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(0, 3, 1, 2)


# ---------------------------------------------------------------------- scenario
class Imitation(Scenario):
    name, family, version = "imitation", "imitation", 1
    description = "language-conditioned multi-task imitation in one household scene (button, drawer, bin)"
    metrics = {"success": True, "success_paraphrase": True, "success_seen": True, "success_heldout": True}
    uses_language = True
    default_budget = Budget(steps=300, batch_size=32, lr=1e-3)

    def data_config(self, size: str) -> dict[str, Any]:
        from robolearn.envs.tasks.multi import SUBTASKS

        base = super().data_config(size)
        s = _SIZES[size]
        return {
            **base,
            "subtasks": list(SUBTASKS),
            "train_scenes": s["train_scenes"],
            "heldout_scenes": [[3, 2], [4, 3]],
            "demos": s["demos"],
            "val": s["val"],
            "phrases": s["phrases"],
            "episodes": s["episodes"],
            "camera": "exterior_1",
            "image_size": 64,
            "expert_noise": 0.1,
            "max_steps": 200,
            "eval_max_steps": 100,
            "seed": 0,
        }

    def budget(self, size: str) -> Budget:
        return {
            "tiny": self.default_budget,
            "small": Budget(steps=3000, batch_size=64),
            "full": Budget(steps=20000, batch_size=128),
        }[size]

    def generate(self, out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
        episodes = _record_all(episode_jobs(config), workers, progress)
        images, proprio, actions, records = [], [], [], []
        for e, ep in enumerate(episodes):
            images.append(ep["images"])
            proprio.append(ep["proprio"])
            actions.append(ep["actions"])
            fact = {k: ep[k] for k in _FACTS}
            if ep["kind"] == "demo":
                n = len(ep["images"])
                records += [{**fact, "episode": e, "step": t, "expert_success": ep["success"]} for t in range(n)]
            else:
                records.append({**fact, "episode": e, "step": 0})
        arrays = {"images": np.concatenate(images), "proprio": np.concatenate(proprio)}
        arrays["actions"] = np.concatenate(actions)
        return write_dataset(out, self.name, self.version, config, arrays, records)

    # ------------------------------------------------------------------ cell
    def run_cell(self, dataset: SuiteDataset, encoder: EncoderSpec, ctx: CellContext) -> CellResult:
        recs, cfg = dataset.records, dataset.meta["config"]
        mode = "multimodal" if self.uses_language else "visual"
        backbone = encoder.build(mode)
        fused = bool(getattr(backbone, "uses_language", False))  # the encoder's own fusion gets the text
        texts = [r["instruction"] for r in recs]
        key = {"dataset": dataset.hash, "spec": encoder.spec, "mode": mode, "lm": encoder.language_model}
        src = TokenSource(encoder, backbone, dataset.arrays["images"], texts if fused else None, ctx.cache_dir, key)
        ok_demo = np.array([r.get("expert_success", True) for r in recs], dtype=bool)
        train_idx, val_idx = (i[ok_demo[i]] for i in (dataset.split("train"), dataset.split("val")))  # good demos
        proprio = torch.from_numpy(np.array(dataset.arrays["proprio"], dtype=np.float32))
        mu, sd = proprio[train_idx].mean(0), proprio[train_idx].std(0).clamp(min=1e-3)
        lang = {} if fused else instruction_embeddings(encoder.resolved_language_model(), texts)
        lang_dim = 0 if fused else len(next(iter(lang.values())))

        def extras_of(p: torch.Tensor, instr: list[str]) -> torch.Tensor:
            parts = [(p - mu) / sd] + ([] if fused else [torch.stack([lang[t] for t in instr])])
            return torch.cat(parts, dim=1)

        inputs = _Inputs(src, extras_of(proprio, texts))
        seed_everything(ctx.seed)
        adapter = ConditionedAdapter(src.embed_dim, src.n_heads, 1, proprio.shape[1] + lang_dim)
        y = torch.from_numpy(np.array(dataset.arrays["actions"], dtype=np.float32))
        losses = fit(adapter, inputs, {"a": y}, lambda o, b: F.mse_loss(o, b["a"]), train_idx, ctx.budget, ctx.seed)
        val_loss = float(F.mse_loss(predict(adapter, inputs, val_idx), y[val_idx])) if len(val_idx) else float("nan")

        test = dataset.split("test_seen", "test_heldout")
        rollouts = [self._rollout(recs[i], cfg, backbone, adapter, fused, lambda p, t: extras_of(p, [t])) for i in test]
        return self._result(dataset, test, rollouts, losses, val_loss, ctx, encoder, backbone, fused)

    @torch.no_grad()
    def _rollout(self, rec, cfg, backbone, adapter, fused: bool, extras) -> dict[str, Any]:
        """One closed-loop episode of the policy: reset exactly as the dataset's instance, act until done."""
        from robolearn.envs.tasks.multi import SUBTASKS

        env = _env(cfg["camera"], cfg["image_size"], cfg["eval_max_steps"])
        adapter.eval()
        backbone.eval()
        options = {"household": rec["household"], "scene": rec["scene"], "instruction": rec["instruction"]}
        obs, _ = env.reset(seed=rec["seed"], options=options)
        first = obs["images"][cfg["camera"]]
        done, info, steps = False, {"success": False}, 0
        while not done:
            x = backbone.preprocess(_to_tensor(obs["images"][cfg["camera"]][None]))
            tokens = backbone(x, [rec["instruction"]] if fused else None)
            e = extras(torch.as_tensor(obs["proprio"][None]), rec["instruction"])
            a = adapter((tokens.float(), e))[0].numpy()
            obs, _, terminated, truncated, info = env.step(np.clip(a, env.action_space.low, env.action_space.high))
            steps += 1
            done = terminated or truncated
        task = env.sim.task
        detectors = task.subtask_success(env.sim)
        return {
            "success": bool(info["success"]),
            "steps": steps,
            "active": task.active,
            "done": [detectors[s] for s in SUBTASKS],
            "first": first,
            "last": obs["images"][cfg["camera"]],
        }

    def _result(self, dataset, test, rollouts, losses, val_loss, ctx, encoder, backbone, fused) -> CellResult:
        from robolearn.envs.tasks.multi import SUBTASKS

        recs = [dataset.records[i] for i in test]
        ok = np.array([r["success"] for r in rollouts], dtype=bool)
        done = np.array([r["done"] for r in rollouts], dtype=bool).reshape(len(rollouts), len(SUBTASKS))
        metrics, intervals, breakdown = imitation_metrics(recs, ok, done)
        names = list(SUBTASKS)
        np.savez_compressed(
            ctx.out / "predictions.npz",
            index=np.asarray(test),
            success=ok,
            detectors=done,
            asked=np.array([names.index(r["subtask"]) for r in recs], dtype=np.int64),
            active=np.array([names.index(r["active"]) for r in rollouts], dtype=np.int64),
            steps=np.array([r["steps"] for r in rollouts]),
        )
        return CellResult(
            metrics=metrics,
            intervals=intervals,
            breakdown=breakdown,
            instances=len(test),
            curves={"train_loss": losses},
            examples=_examples(ctx.out, recs, rollouts),
            extra={
                "encoder_identity": backbone_identity(encoder, backbone),
                "val_loss": val_loss,
                "language_input": "encoder (multimodal)" if fused else "head (frozen LM embedding)",
            },
        )


def imitation_metrics(recs: list[dict], ok: np.ndarray, done: np.ndarray) -> tuple[dict, dict, dict]:
    """(metrics, Wilson intervals, breakdowns) of evaluation episodes: `recs` their records, `ok` whether each
    succeeded, `done` [episodes, sub-tasks] whether each sub-task's own detector fired at the end."""
    from robolearn.envs.tasks.multi import SUBTASKS

    ok = np.asarray(ok, dtype=bool)

    def rate(mask) -> tuple[float, tuple[float, float]]:
        mask = np.asarray(mask, dtype=bool)
        n, k = int(mask.sum()), int(ok[mask].sum())
        return (k / n if n else float("nan")), wilson_interval(k, n)

    phr = np.array([r["phrasing"] for r in recs])
    split = np.array([r["split"] for r in recs])
    groups = {
        "success": phr == "train",
        "success_paraphrase": phr == "heldout",
        "success_seen": split == "test_seen",
        "success_heldout": split == "test_heldout",
    }
    metrics, intervals = {}, {}
    for name, mask in groups.items():
        metrics[name], intervals[name] = rate(mask)
    breakdown: dict[str, dict[str, float]] = {"by_subtask": {}, "by_instruction": {}, "by_scenes_phrasing": {}}
    for sub in sorted({r["subtask"] for r in recs}):
        breakdown["by_subtask"][sub] = rate([r["subtask"] == sub for r in recs])[0]
    for text in sorted({r["instruction"] for r in recs}):
        breakdown["by_instruction"][text] = rate([r["instruction"] == text for r in recs])[0]
    for s in ("test_seen", "test_heldout"):
        for p in ("train", "heldout"):
            breakdown["by_scenes_phrasing"][f"{s}/{p}"] = rate((split == s) & (phr == p))[0]
    asked = np.array([list(SUBTASKS).index(r["subtask"]) for r in recs], dtype=np.int64)
    other = np.asarray(done, dtype=bool) & ~np.eye(len(SUBTASKS), dtype=bool)[asked]
    breakdown["other_subtask_done"] = {"rate": float(other.any(1).mean()) if len(other) else float("nan")}
    return metrics, intervals, breakdown


def _examples(out: Path, recs: list[dict], rollouts: list[dict], n: int = 3) -> list[str]:
    """First and last frame of a few evaluation episodes, captioned with the instruction and the outcome."""
    from PIL import Image, ImageDraw

    folder = out / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(min(n, len(rollouts))):
        r, rec = rollouts[i], recs[i]
        h, w = r["first"].shape[:2]
        canvas = Image.new("RGB", (2 * w * 3, h * 3 + 28), "white")
        for j, img in enumerate((r["first"], r["last"])):
            canvas.paste(Image.fromarray(img).resize((w * 3, h * 3), Image.NEAREST), (j * w * 3, 28))
        outcome = "success" if r["success"] else "fail"
        draw = ImageDraw.Draw(canvas)
        draw.text((4, 2), f"'{rec['instruction']}' -> {rec['subtask']}", fill="black")
        where = f"{rec['split']}, {rec['phrasing']} phrasing"
        draw.text((4, 14), f"{outcome} in {r['steps']} steps ({where})", fill="black")
        name = f"examples/rollout-{i}.png"
        canvas.save(out / name)
        names.append(name)
    return names


register(Imitation())
