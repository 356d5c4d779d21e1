"""Intent scoring (Voltron's fifth problem family): given the first frame of an episode and the frame at a
fraction of its length, which of K candidate instructions is being performed?

Data. A household scene normally holds only its own task's objects, so its first frame names the task. Here
every episode runs in a *shared scene*: the objects of all seven household tasks at once (button, drawer unit,
cabinet, bin + cube, red and green blocks, can + shelf; the drawer starts half open, so open-drawer and
close-drawer look alike at the start), laid out so the scripted experts reach theirs. The five small objects
are shuffled over five slots per round of episodes, and the 7 episodes of a round (one per task) start from
the same state, so the initial frame carries no information on the task. The scripted expert of the drawn
task acts; the frame at each progress fraction is rendered afterwards from the saved states (exterior_1).
An instance = (initial frame, frame at fraction f, true task); the K = 7 candidates are the tasks, each given
by its instruction paraphrases (in the dataset config). Seen households give train / val / test_seen (whole
rounds go to one split, never single frames), a held-out household test_heldout.

Scoring. Encoders run in "visual" mode: the instance's instruction is the answer, so no encoder sees it.
- Every encoder: a trained probe. Dual-frame encoders (V-Dual, V-Gen) see the (initial, current) pair; every
  other encoder sees each frame alone and the probe concatenates the two frames' MAP vectors. The pooled vector
  is projected into the frozen LM's space; each candidate's score is the dot product with its embedding (the
  normalised mean of its paraphrases' mean-pooled frozen-LM embeddings; the same LM for every encoder, also
  for vision-only ones); softmax cross-entropy over the K candidates, trained on "train" under the budget.
- V-Gen additionally: zero-shot, with its own `score()` (each paraphrase's mean token log-likelihood under its
  decoder, averaged per candidate), no trained head; reported in `extra["zero_shot"]` and the "zero_shot"
  breakdowns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.encoders.map import MAPExtractor
from robolearn.envs.household import HouseholdEnv, HouseholdSim
from robolearn.envs.scenes import SceneParams, scene_params
from robolearn.envs.tasks import TASKS, Task
from robolearn.envs.tasks.base import set_free_pose
from robolearn.eval.metrics import wilson_interval
from robolearn.policies.backbones import Backbone
from robolearn.suite.adapt import Budget, fit, predict
from robolearn.suite.dataset import SuiteDataset, write_dataset
from robolearn.suite.encoders import EncoderSpec, TokenSource, backbone_identity
from robolearn.suite.scenario import CellContext, CellResult, Scenario, register
from robolearn.utils import atomic_path

TASK_NAMES = tuple(TASKS)  # candidate order: press-button, open-drawer, ..., put-on-shelf
FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
CAMERA = "exterior_1"
# Tasks whose build() adds the shared scene's objects (close-drawer uses open-drawer's drawer unit).
_BUILDERS = ("press-button", "open-drawer", "open-cabinet", "put-in-bin", "stack-blocks", "put-on-shelf")
# Slots (x, y) on the table for the small objects, shuffled per episode; fixtures stand behind them.
_SLOTS = ((0.34, -0.15), (0.34, 0.0), (0.34, 0.15), (0.45, -0.08), (0.45, 0.08))
_SMALL = ("button", "cube", "block_red", "block_green", "can")


# ---------------------------------------------------------------------- the shared scene
class SharedSceneTask(Task):
    """Every household task's objects in one scene; success, progress and the expert's plan are the active
    task's. `reset` lays the whole scene out (the tasks' own resets would place their objects on each other)."""

    name = "shared-scene"
    instructions = ()
    max_steps = 200

    def __init__(self, active: str) -> None:
        self.tasks: dict[str, Task] = {n: cls() for n, cls in TASKS.items()}
        self.active = active

    @property
    def current(self) -> Task:
        return self.tasks[self.active]

    def build(self, spec: mujoco.MjSpec, scene: SceneParams) -> None:
        for n in _BUILDERS:
            self.tasks[n].build(spec, scene)

    def bind(self, model: mujoco.MjModel) -> None:
        for t in self.tasks.values():
            t.bind(model)
        self._ids = {n: model.body(n).id for n in ("button_base", "drawer_unit", "cabinet", "bin", "shelf")}
        self._drawer_q = model.jnt_qposadr[model.joint("drawer").id]
        self._door_q = model.jnt_qposadr[model.joint("cabinet_door").id]
        self._door_side = -float(model.jnt_axis[model.joint("cabinet_door").id][2])

    def reset(self, sim, rng: np.random.Generator) -> None:
        z, m, d = sim.table_z, sim.model, sim.data

        def jit(s: float = 0.015) -> float:
            return float(rng.uniform(-s, s))

        m.body_pos[self._ids["drawer_unit"]] = [0.52 + jit(), 0.34 + jit(), z]
        m.body_pos[self._ids["cabinet"]] = [0.52 + jit(), -0.34 + jit() + self._door_side * 0.08, z]
        m.body_pos[self._ids["shelf"]] = [0.64 + jit(0.01), 0.09 + jit(0.01), z]
        m.body_pos[self._ids["bin"]] = [0.63 + jit(0.01), -0.125 + jit(0.01), z]
        d.qpos[self._drawer_q] = rng.uniform(0.05, 0.09)  # half open: open-drawer and close-drawer both possible
        d.qpos[self._door_q] = rng.uniform(0.0, 0.05)
        slots = rng.permutation(len(_SLOTS))
        for obj, k in zip(_SMALL, slots):
            x, y = _SLOTS[k][0] + jit(0.012), _SLOTS[k][1] + jit(0.012)
            if obj == "button":
                m.body_pos[self._ids["button_base"]] = [x, y, z]
                continue
            half = {"cube": TASKS["put-in-bin"].HALF, "block_red": TASKS["stack-blocks"].TOP,
                    "block_green": TASKS["stack-blocks"].BOTTOM, "can": TASKS["put-on-shelf"].HALF_H}[obj]  # fmt: skip
            set_free_pose(m, d, obj, [x, y, z + half], 0.0 if obj == "can" else float(rng.uniform(-np.pi, np.pi)))

    def success(self, sim) -> bool:
        return self.current.success(sim)

    def progress(self, sim) -> float:
        return self.current.progress(sim)

    def object_state(self, sim) -> np.ndarray:
        return self.current.object_state(sim)

    def plan(self, sim):
        return self.current.plan(sim)


class SharedSceneEnv(HouseholdEnv):
    """A HouseholdEnv whose scenes are shared scenes (no distractors); `set_task` switches the active task
    without recompiling."""

    def __init__(self, task: str, **kw: Any) -> None:
        self._active = task
        super().__init__(task=task, **kw)

    def _get_sim(self, household: int, scene: int) -> HouseholdSim:
        key = (int(household), int(scene), self.config.scene_seed)
        if key not in self._sims:
            params = dataclasses.replace(scene_params(*key), distractors=())
            self._sims[key] = HouseholdSim(SharedSceneTask(self._active), params, self.config)
        return self._sims[key]

    def set_task(self, task: str) -> None:
        self._active = self.config.task = task
        self.task_cls = TASKS[task]
        self.max_steps = self.task_cls.max_steps
        for sim in self._sims.values():
            sim.task.active = task  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- generation
def _episodes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every episode the config asks for, in a fixed order: per (household, scene), `episodes` rounds of one
    episode of each task (held-out households: `heldout_episodes` rounds). The episodes of a round share their
    reset seed, so they start from the same layout and arm posture: the initial frame says nothing about the
    task, in training too (a probe cannot learn the label of an initial frame); the expert's noise differs."""
    out: list[dict[str, Any]] = []
    groups = [(h, False) for h in config["households"]] + [(h, True) for h in config["heldout_households"]]
    for h, held in groups:
        for s in config["heldout_scenes" if held else "scenes"]:
            for k in range(config["heldout_episodes" if held else "episodes"]):
                for t in TASK_NAMES:
                    eid = len(out)
                    base = int(config["seed"]) * 100_003
                    # one layout seed per round: the round's 7 episodes start from the same state (and frame)
                    out.append({"episode": eid, "household": h, "scene": s, "task": t, "round": k, "heldout": held,
                                "seed": base + eid, "layout_seed": base + eid // len(TASK_NAMES)})  # fmt: skip
    return out


def _assign_splits(episodes: list[dict[str, Any]], seed: int) -> None:
    """Whole rounds (one episode of every task) go to one split, drawn per seen scene: max(1, 20%) of the
    rounds test_seen, 10% (at least one from 4 rounds on) val, the rest train. So every task has as many training
    episodes in each seen scene and the scene says nothing about the task. Held-out households: test_heldout."""
    rng = np.random.default_rng([seed, 13])
    scenes = sorted({(e["household"], e["scene"]) for e in episodes if not e["heldout"]})
    for key in scenes:
        eps = [e for e in episodes if (e["household"], e["scene"]) == key]
        rounds = sorted({e["round"] for e in eps})
        if len(rounds) < 2:
            raise ValueError("intent: seen scenes need at least 2 episodes per task (train and test_seen rounds)")
        n_test = max(1, round(0.2 * len(rounds)))
        n_val = max(1, round(0.1 * len(rounds))) if len(rounds) >= 4 else 0
        order = {r: rank for rank, r in enumerate(rng.permutation(rounds))}
        for e in eps:
            rank = order[e["round"]]
            e["split"] = "test_seen" if rank < n_test else "val" if rank < n_test + n_val else "train"
    for e in episodes:
        if e["heldout"]:
            e["split"] = "test_heldout"


def _rollout_group(job: tuple[dict[str, Any], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run one scene's episodes (one compiled shared scene); frames at the fractions are rendered from the
    saved states after each episode. Module level so forkserver/spawn workers can run it."""
    from robolearn.envs.experts import ExpertConfig, ScriptedExpert

    config, eps = job
    size = int(config["image_size"])
    h, s = eps[0]["household"], eps[0]["scene"]
    env = SharedSceneEnv(eps[0]["task"], cameras=(), image_size=(size, size), scenes=[(h, s)])
    out = []
    try:
        for e in eps:
            env.set_task(e["task"])
            obs, info = env.reset(seed=e["layout_seed"], options={"household": h, "scene": s})
            expert = ScriptedExpert(env, ExpertConfig(noise=float(config["noise"]), seed=e["seed"]))
            sim = env.sim
            states = [sim.data.qpos.copy()]
            start = [round(float(v), 5) for v in sim.task.object_state(sim)]
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(expert.act(obs))
                states.append(sim.data.qpos.copy())
                done = terminated or truncated
            frames, steps = [], []
            for f in config["fractions"]:
                k = int(round(f * (len(states) - 1)))
                sim.data.qpos[:] = states[k]
                mujoco.mj_forward(sim.model, sim.data)
                frames.append(sim.render(CAMERA).copy())
                steps.append(k)
            out.append({**e, "frames": np.stack(frames), "frame_steps": steps, "steps": info["steps"],
                        "success": bool(info["success"]), "instruction": env.instruction, "state_start": start,
                        "state_end": [round(float(v), 5) for v in sim.task.object_state(sim)]})  # fmt: skip
    finally:
        env.close()
    return out


def generate_episodes(config: dict[str, Any], workers: int = 1, progress: bool = False) -> list[dict[str, Any]]:
    """Roll out every episode of `config` (parallel over scenes with forkserver workers), in episode order."""
    episodes = _episodes(config)
    _assign_splits(episodes, int(config["seed"]))
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in episodes:
        groups.setdefault((e["household"], e["scene"]), []).append(e)
    jobs = [(config, g) for g in groups.values()]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(episodes), desc="intent: episodes", unit="ep")
    results: list[dict[str, Any]] = []
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            results += _rollout_group(job)
            if bar is not None:
                bar.update(len(job[1]))
    else:
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with ctx.Pool(min(workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_rollout_group, jobs):
                results += res
                if bar is not None:
                    bar.update(len(res))
    if bar is not None:
        bar.close()
    return sorted(results, key=lambda e: e["episode"])


def instances(episodes: list[dict[str, Any]], fractions: list[float]) -> tuple[dict[str, np.ndarray], list[dict]]:
    """Episodes -> (arrays, records): one instance per (episode, fraction)."""
    initial, current, label, frac, records = [], [], [], [], []
    for e in episodes:
        for j, f in enumerate(fractions):
            initial.append(e["frames"][0])
            current.append(e["frames"][j])
            label.append(TASK_NAMES.index(e["task"]))
            frac.append(f)
            records.append({
                "split": e["split"], "episode": e["episode"], "household": e["household"], "scene": e["scene"],
                "round": e["round"], "task": e["task"], "instruction": e["instruction"],
                "label": TASK_NAMES.index(e["task"]), "fraction": f, "step": e["frame_steps"][j],
                "episode_steps": e["steps"], "success": e["success"],
                "state_start": e["state_start"], "state_end": e["state_end"],
            })  # fmt: skip
    arrays = {
        "initial": np.stack(initial).astype(np.uint8),
        "current": np.stack(current).astype(np.uint8),
        "label": np.asarray(label, dtype=np.int64),
        "fraction": np.asarray(frac, dtype=np.float32),
    }
    return arrays, records


# ---------------------------------------------------------------------- scoring
class PairBackbone(nn.Module):
    """A backbone over (initial, current) pairs stored side by side (uint8 [B, H, 2W, 3]): dual-frame encoders
    see the pair -> [B, N, D]; any other backbone sees each frame alone -> [B, 2N, D] (initial's tokens, then
    current's), which `IntentProbe` pools frame by frame."""

    def __init__(self, inner: Backbone) -> None:
        super().__init__()
        self.inner = inner
        self.embed_dim, self.n_heads = inner.embed_dim, inner.n_heads
        self.dual = bool(getattr(inner, "dual", False))

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        w = images.shape[-1] // 2
        return torch.stack([self.inner.preprocess(images[..., :w]), self.inner.preprocess(images[..., w:])], 1)

    def forward(self, x: torch.Tensor, language: list[str] | None = None) -> torch.Tensor:
        if self.dual:
            return self.inner.encoder(x, None, mode=self.inner.mode)  # type: ignore[attr-defined]
        b = x.shape[0]
        tokens = self.inner(x.flatten(0, 1), None)  # [2B, N, D]
        return tokens.reshape(b, 2 * tokens.shape[1], tokens.shape[2])


class IntentProbe(nn.Module):
    """Tokens -> MAP vector (dual: one over the pair's tokens; single-frame: one per frame, concatenated) ->
    a linear projection into the frozen LM's space [B, lm_dim]; a candidate's score is its dot product with the
    candidate's (L2-normalised, mean-pooled) LM embedding."""

    def __init__(self, embed_dim: int, n_heads: int, dual: bool, lm_dim: int) -> None:
        super().__init__()
        self.dual = dual
        self.map = MAPExtractor(embed_dim, 2 * n_heads, n_latents=1)
        self.proj = nn.Linear(embed_dim if dual else 2 * embed_dim, lm_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.dual:
            return self.proj(self.map(tokens))
        first, second = tokens.chunk(2, dim=1)
        return self.proj(torch.cat([self.map(first), self.map(second)], dim=-1))


def candidate_texts(dataset: SuiteDataset) -> list[list[str]]:
    """The K candidates of every instance, in label order: each task's instruction paraphrases."""
    table = dataset.meta["config"]["candidates"]
    return [list(table[t]) for t in TASK_NAMES]


@torch.no_grad()
def lm_embeddings(texts: list[str], language_model: str) -> torch.Tensor:
    """Mean-pooled (over real tokens), L2-normalised frozen-LM embeddings [len(texts), D]."""
    from robolearn.encoders.language import LanguageModel

    return F.normalize(LanguageModel(language_model).mean_pooled(texts), dim=-1)


def task_embeddings(candidates: list[list[str]], language_model: str) -> torch.Tensor:
    """A candidate's embedding: the normalised mean of its paraphrases' LM embeddings -> [K, D]."""
    flat = [p for c in candidates for p in c]
    emb = lm_embeddings(flat, language_model)
    out, start = [], 0
    for c in candidates:
        out.append(emb[start : start + len(c)].mean(0))
        start += len(c)
    return F.normalize(torch.stack(out), dim=-1)


@torch.no_grad()
def vgen_zero_shot(
    backbone: Backbone, dataset: SuiteDataset, idx: np.ndarray, candidates: list[list[str]]
) -> np.ndarray:
    """V-Gen's own `score()` for each instance in `idx` -> [len(idx), K]: a candidate's score is the mean over
    its paraphrases of their mean token log-likelihood (no trained head)."""
    encoder = backbone.encoder  # type: ignore[attr-defined]
    encoder.eval()
    flat = [p for c in candidates for p in c]
    ids, mask = encoder.language.tokenize(flat)
    owner = torch.as_tensor([k for k, c in enumerate(candidates) for _ in c])
    out = []
    for i in idx:
        pair = torch.from_numpy(np.stack([dataset.arrays["initial"][i], dataset.arrays["current"][i]]))
        frames = backbone.preprocess(pair.permute(0, 3, 1, 2))  # [2, 3, H, W]
        ll = encoder.score(frames, (ids, mask)).float().cpu()
        out.append(torch.zeros(len(candidates)).index_add_(0, owner, ll).div_(torch.bincount(owner)).numpy())
    return np.stack(out) if out else np.zeros((0, len(TASK_NAMES)), dtype=np.float32)


def cached_zero_shot(
    backbone: Backbone,
    dataset: SuiteDataset,
    idx: np.ndarray,
    candidates: list[list[str]],
    identity: dict,
    cache_dir: Path | None,
) -> np.ndarray:
    """`vgen_zero_shot`, computed once per (encoder weights, LM, dataset, instances, candidates) and kept in the
    suite's cache: it has no trained part, so every seed of a cell shares it. A damaged entry is recomputed."""
    key = {"identity": identity, "dataset": dataset.hash, "idx": np.asarray(idx).tolist(), "candidates": candidates}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    path = cache_dir / f"zero-shot-{digest}.npy" if cache_dir else None
    if path is not None and path.is_file():
        try:
            scores = np.load(path)
            if scores.shape == (len(idx), len(candidates)):
                return scores
        except (OSError, ValueError):
            pass
        path.unlink(missing_ok=True)
    scores = vgen_zero_shot(backbone, dataset, idx, candidates)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, scores)
    return scores


def _rate(correct: np.ndarray) -> tuple[float, tuple[float, float]]:
    k, n = int(np.sum(correct)), len(correct)
    return (k / n if n else float("nan")), wilson_interval(k, n)


def intent_metrics(scores: np.ndarray, labels: np.ndarray, fractions: np.ndarray, heldout: np.ndarray) -> dict:
    """top-1 accuracy overall / seen / held-out (with Wilson intervals) and per progress fraction."""
    correct = np.asarray(scores).argmax(-1) == np.asarray(labels)
    fractions, heldout = np.asarray(fractions, dtype=float), np.asarray(heldout, dtype=bool)
    metrics, intervals, breakdown, curves = {}, {}, {}, {}
    for name, sel in (("top1", np.ones_like(heldout)), ("top1_seen", ~heldout), ("top1_heldout", heldout)):
        metrics[name], intervals[name] = _rate(correct[sel])
        per = {f"{f:g}": _rate(correct[sel & np.isclose(fractions, f)])[0] for f in np.unique(fractions)}
        key = name.replace("top1", "by_fraction")
        breakdown[key] = per
        curves[name.replace("top1", "top1_vs_progress")] = list(per.values())
    return {"metrics": metrics, "intervals": intervals, "breakdown": breakdown, "curves": curves,
            "correct": correct}  # fmt: skip


# ---------------------------------------------------------------------- pictures
def _example_png(
    path: Path, initial: np.ndarray, current: np.ndarray, record: dict, scores: np.ndarray, candidates: list[list[str]]
) -> None:
    from PIL import Image, ImageDraw

    scale = 3
    pair = np.concatenate([initial, np.full((initial.shape[0], 2, 3), 255, np.uint8), current], axis=1)
    img = Image.fromarray(pair).resize((pair.shape[1] * scale, pair.shape[0] * scale), Image.NEAREST)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    lines = [f"initial | progress {record['fraction']:g} (step {record['step']}/{record['episode_steps']})",
             f"{record['split']}  h{record['household']} s{record['scene']}", ""]  # fmt: skip
    pred = int(np.argmax(scores))
    for k, texts in enumerate(candidates):
        mark = ("* " if k == record["label"] else "  ") + ("> " if k == pred else "  ")
        lines.append(f"{mark}{probs[k]:.2f}  {texts[0]}")
    lines += ["", "* true   > predicted   (softmax of the scores;", f"episode said: {record['instruction']!r})"]
    canvas = Image.new("RGB", (img.width + 340, max(img.height, 14 * len(lines) + 10)), "white")
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for j, line in enumerate(lines):
        colour = (0, 120, 0) if line.startswith("* ") else (180, 0, 0) if line.startswith("  > ") else (0, 0, 0)
        draw.text((img.width + 8, 5 + 14 * j), line, fill=colour)
    canvas.save(path)


def _curve_png(path: Path, fractions: list[float], curves: dict[str, list[float]], chance: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, style in (("top1_vs_progress_seen", "o-"), ("top1_vs_progress_heldout", "s-"),
                        ("zero_shot_vs_progress", "^--")):  # fmt: skip
        if name in curves:
            ax.plot(fractions, curves[name], style, label=name.replace("_vs_progress", "").replace("_", " "))
    ax.axhline(chance, color="grey", ls=":", label=f"chance 1/{round(1 / chance)}")
    ax.set(xlabel="clip progress (fraction of the episode)", ylabel="top-1 accuracy", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------- the scenario
class IntentScenario(Scenario):
    name, family, version = "intent", "intent", 1
    description = "which of 7 task instructions is being performed, from (initial, current) frames of an episode"
    metrics = {"top1": True, "top1_seen": True, "top1_heldout": True}
    uses_language = False  # the instance's instruction is the answer: no encoder sees it
    default_budget = Budget(steps=300, batch_size=32, lr=1e-3)

    def data_config(self, size: str) -> dict[str, Any]:
        super().data_config(size)
        base = {"size": size, "seed": 0, "image_size": 64, "camera": CAMERA, "fractions": list(FRACTIONS),
                "noise": 0.3, "heldout_households": [4], "heldout_scenes": [0, 1],
                "candidates": {t: list(TASKS[t].instructions) for t in TASK_NAMES}}  # fmt: skip
        return {
            "tiny": {**base, "households": [0, 1, 2, 3], "scenes": [0], "episodes": 2, "heldout_episodes": 1},
            "small": {**base, "households": [0, 1, 2, 3], "scenes": [0, 1, 2, 3], "episodes": 5, "heldout_episodes": 2},
            "full": {**base, "households": [0, 1, 2, 3], "scenes": [0, 1, 2, 3], "episodes": 20, "heldout_episodes": 5},
        }[size]

    def budget(self, size: str) -> Budget:
        return {"tiny": self.default_budget, "small": Budget(steps=1000), "full": Budget(steps=3000)}.get(
            size, self.default_budget
        )

    def generate(self, out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
        arrays, records = instances(generate_episodes(config, workers, progress), list(config["fractions"]))
        return write_dataset(out, self.name, self.version, config, arrays, records)

    def run_cell(self, dataset: SuiteDataset, encoder: EncoderSpec, ctx: CellContext) -> CellResult:
        inner = encoder.build("visual")
        backbone = PairBackbone(inner)
        pairs = np.concatenate([dataset.arrays["initial"], dataset.arrays["current"]], axis=2)
        key = {"dataset": dataset.hash, "spec": encoder.spec, "array": "initial|current", "mode": "visual",
               "dual": backbone.dual, "lm": encoder.language_model}  # fmt: skip
        source = TokenSource(encoder, backbone, pairs, None, ctx.cache_dir, key)
        lm_name = encoder.resolved_language_model()
        candidates = candidate_texts(dataset)
        proto = task_embeddings(candidates, lm_name)  # [K, D]
        labels = torch.as_tensor(np.array(dataset.arrays["label"]))
        torch.manual_seed(ctx.seed)
        probe = IntentProbe(source.embed_dim, source.n_heads, backbone.dual, proto.shape[1])

        def loss_fn(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(out @ proto.T, batch["label"])

        losses = fit(probe, source, {"label": labels}, loss_fn, dataset.split("train"), ctx.budget, ctx.seed)
        test = dataset.split("test_seen", "test_heldout")
        val = dataset.split("val")
        scores = (predict(probe, source, test) @ proto.T).numpy()
        fractions = np.asarray(dataset.arrays["fraction"])[test]
        heldout = np.array([dataset.records[i]["split"] == "test_heldout" for i in test])
        m = intent_metrics(scores, labels.numpy()[test], fractions, heldout)
        k = len(TASK_NAMES)
        extra: dict[str, Any] = {
            "encoder_identity": backbone_identity(encoder, inner),
            "chance": 1.0 / k,
            "candidates": k,
            "fractions": [float(f) for f in np.unique(fractions)],
            "probe": "dual-frame MAP" if backbone.dual else "per-frame MAP, concatenated",
            "language_model": lm_name,
        }
        if len(val):
            vs = (predict(probe, source, val) @ proto.T).numpy()
            extra["val_top1"] = float(np.mean(vs.argmax(-1) == labels.numpy()[val]))
        breakdown = dict(m["breakdown"])
        task_correct = {t: [] for t in TASK_NAMES}
        for i, c in zip(test, m["correct"]):
            task_correct[dataset.records[i]["task"]].append(bool(c))
        breakdown["by_task"] = {t: float(np.mean(v)) for t, v in task_correct.items() if v}
        curves = {**m["curves"], "train_loss": losses}
        save: dict[str, np.ndarray] = {"index": test, "scores": scores, "label": labels.numpy()[test],
                                       "pred": scores.argmax(-1), "fraction": fractions,
                                       "heldout": heldout}  # fmt: skip
        if extra["encoder_identity"].get("arch") == "v-gen":  # V-Gen also scores zero-shot with its decoder
            zs = cached_zero_shot(inner, dataset, test, candidates, extra["encoder_identity"], ctx.cache_dir)
            z = intent_metrics(zs, labels.numpy()[test], fractions, heldout)
            extra["zero_shot"] = {"method": "V-Gen score(): mean caption token log-likelihood, no trained head",
                                  **z["metrics"], "intervals": z["intervals"]}  # fmt: skip
            breakdown["zero_shot"] = z["metrics"]
            breakdown["zero_shot_by_fraction"] = z["breakdown"]["by_fraction"]
            curves["zero_shot_vs_progress"] = z["curves"]["top1_vs_progress"]
            save["zero_shot_scores"] = zs
        np.savez_compressed(ctx.out / "predictions.npz", **save)
        examples = self._examples(dataset, test, scores, m["correct"], curves, extra, encoder, ctx.out)
        return CellResult(metrics=m["metrics"], intervals=m["intervals"], breakdown=breakdown, instances=len(test),
                          curves=curves, examples=examples, extra=extra)  # fmt: skip

    @staticmethod
    def _examples(dataset, test, scores, correct, curves, extra, encoder, out: Path) -> list[str]:
        folder = out / "examples"
        folder.mkdir(parents=True, exist_ok=True)
        files = []
        # late in the clip: one scored right, one wrong (when there is one), one held-out
        late = [j for j in range(len(test)) if 0.4 < dataset.records[test[j]]["fraction"] < 1.0]
        chosen: list[int] = []
        for want in (True, False):
            chosen += [j for j in late if correct[j] == want and j not in chosen][:1]
        chosen += [j for j in late if dataset.records[test[j]]["split"] == "test_heldout" and j not in chosen][:1]
        for n, j in enumerate(chosen[:3]):
            i = int(test[j])
            name = f"examples/pair-{n}-{dataset.records[i]['task']}.png"
            _example_png(out / name, dataset.arrays["initial"][i], dataset.arrays["current"][i], dataset.records[i],
                         scores[j], candidate_texts(dataset))  # fmt: skip
            files.append(name)
        _curve_png(folder / "top1_vs_progress.png", extra["fractions"], curves, extra["chance"],
                   f"intent: {encoder.spec} (probe)")  # fmt: skip
        files.append("examples/top1_vs_progress.png")
        return files


register(IntentScenario())
