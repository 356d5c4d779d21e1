"""Behaviour cloning: `robolearn train --data DIR --policy.encoder NAME[:CKPT] --policy.head map-mlp|chunk ...`.

Reads episodes with robolearn.data's loader (normalised with the training episodes' statistics), trains
the head (and any trainable encoder blocks) with AdamW + warm-up/cosine on an L1 (chunk) or MSE (map-mlp)
loss over the un-padded actions of each chunk, and writes a run folder:

    OUT/train.config.json      this config          OUT/metrics.jsonl   one line per logged step
    OUT/policy/                the final policy     OUT/loss.png        training / validation loss
    OUT/checkpoints/step_N/    policy + train_state.pt (optimizer, schedule, RNG) for --resume

train_state.pt holds tensors, plain values and numpy RNG arrays only, and --resume reads it with
`weights_only=True` (robolearn.encoders.files): a file holding anything else is refused, never unpickled.

Frozen encoders have their tokens computed once (features.py); baselines and fine-tuned encoders stream
frames through the loader with random-shift augmentation. The `robolearn train` command is in commands.py.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from robolearn.config import opt, save_config, to_dict
from robolearn.encoders.files import CheckpointError, CheckpointNotFoundError, read_torch_file
from robolearn.encoders.pretrained_lm import lm_input
from robolearn.lineage import write_card
from robolearn.policies.backbones import _parse_encoder
from robolearn.policies.checkpoint import load_policy, save_policy
from robolearn.policies.config import PolicyConfig
from robolearn.policies.features import cached_features, default_cache_dir
from robolearn.policies.policy import Policy
from robolearn.policies.preference.config import DpoConfig

OBJECTIVES = ("bc", "dpo")


@dataclass
class TrainConfig:
    """One behaviour-cloning run: which episodes, the policy to train (`policy`), the optimisation, the run folder."""

    data: list[Path] = opt(default_factory=list, help="dataset folder(s) of episodes")
    query: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1 task=open-drawer")
    split: str = opt("", help="a split made by `robolearn data split` (train part trains, val part validates)")
    val_fraction: float = opt(0.1, help="without --split: fraction of episodes held out for validation")
    max_episodes: int = opt(
        0,
        help="use only N of the selected episodes, taken round-robin over their folders "
        "(scenes) in path order (0: all)",
    )
    out: Path = opt(Path("runs/bc"), help="run folder")
    policy: PolicyConfig = opt(
        default_factory=lambda: PolicyConfig(cameras=[]),
        help="the policy (cameras default to every camera of the data)",
    )
    steps: int = opt(2000, help="optimizer steps")
    batch_size: int = opt(64, help="batch size")
    lr: float = opt(1e-3, help="peak learning rate")
    weight_decay: float = opt(1e-4, help="AdamW weight decay")
    warmup: float = opt(0.05, help="warm-up fraction of the steps")
    seed: int = opt(0, help="random seed")
    log_every: int = opt(50, help="log every N steps")
    save_every: int = opt(0, help="checkpoint every N steps (0: only at the end)")
    keep: int = opt(2, help="checkpoints kept")
    resume: bool = opt(False, help="continue from OUT's last checkpoint")
    workers: int = opt(0, help="loader worker processes (streaming path)")
    feature_cache: str = opt(
        "",
        help="folder for cached frozen-encoder features ('' = ~/.cache/robolearn/features, "
        "'none' = keep in memory only)",
    )
    device: str = opt("cpu", help="cpu | cuda")
    progress: bool = opt(True, help="show a progress bar")
    objective: str = opt("bc", help="bc (behaviour cloning) | dpo (preference fine-tuning of --reference)")
    reference: str = opt("", help="dpo: the BC policy to fine-tune and keep frozen as the reference")
    dpo: DpoConfig = opt(default_factory=DpoConfig, help="dpo: preference fine-tuning settings")

    @classmethod
    def upgrade_config(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Saved values of an older layout -> the current one (robolearn.config calls this on load)."""
        return upgrade_train_dict(values)


# TrainConfig fields of the layout before the policy was nested, moved into `policy` by upgrade_train_dict
_FLAT_POLICY_FIELDS = (
    "encoder",
    "encoder_image_size",
    "language_model",
    "mode",
    "freeze",
    "unfreeze_last",
    "head",
    "chunk",
    "cameras",
    "image_size",
    "proprio",
    "hidden",
)


def upgrade_train_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A saved TrainConfig dict (train.config.json) in the current layout: the policy fields the older flat
    layout kept on TrainConfig (`encoder`, `encoder_image_size`, `head`, `chunk`, `proprio`, ...) move into
    `policy`, with its conventions (chunk 0 = the head's default, proprio False = no proprio keys, image-size
    override in `encoder_overrides`). Current dicts pass as is."""
    if not set(d) & set(_FLAT_POLICY_FIELDS):
        return d
    d = dict(d)
    old = {k: d.pop(k) for k in _FLAT_POLICY_FIELDS if k in d}
    policy = dict(d.get("policy") or {})
    for k in ("encoder", "mode", "freeze", "unfreeze_last", "cameras", "image_size"):
        if k in old:
            policy[k] = old[k]
    if old.get("language_model"):
        policy["language_model"] = old["language_model"]
    if old.get("encoder_image_size"):
        policy["encoder_overrides"] = {"image_size": old["encoder_image_size"]}
    if "proprio" in old and not old["proprio"]:
        policy["proprio_keys"] = []
    head = {"name": old.get("head", "map-mlp")}
    if old.get("chunk"):
        head["chunk"] = old["chunk"]
    if "hidden" in old:
        head["hidden"] = old["hidden"]
    policy["head"] = head
    d["policy"] = policy
    return d


@dataclass
class TrainResult:
    """What `train` returns: the run and policy folders, losses, episode counts, time and the metrics history."""

    out: Path
    policy_dir: Path
    steps: int
    final_loss: float
    val_loss: float | None
    train_episodes: int
    val_episodes: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def policy_config(cfg: TrainConfig) -> PolicyConfig:
    """A copy of `cfg.policy` for one training run (train() fills its data fields)."""
    return copy.deepcopy(cfg.policy)


def select_episodes(cfg: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(train, val) episode files from --data, --query and --split / --val-fraction."""
    from robolearn.data.catalog import read_split, select_paths, update
    from robolearn.data.reader import list_episodes

    if not cfg.data:
        raise ValueError("--data: give at least one dataset folder")
    train, val = [], []
    for root in cfg.data:
        if not Path(root).exists():
            raise FileNotFoundError(f"--data {root}: no such folder")
        if cfg.split:
            train += read_split(root, cfg.split, "train")
            val += read_split(root, cfg.split, "val")
            continue
        if cfg.query:
            update(root)
            paths = select_paths(root, cfg.query)
        else:
            paths = list_episodes(root)
        train += paths
    if cfg.query and cfg.split:
        keep = {p.resolve() for root in cfg.data for p in select_paths(root, cfg.query)}
        train = [p for p in train if p.resolve() in keep]
        val = [p for p in val if p.resolve() in keep]
    if not train:
        raise ValueError(
            f"no episodes in {[str(d) for d in cfg.data]} match query {cfg.query} "
            f"{'split ' + cfg.split if cfg.split else ''}".strip()
        )
    if cfg.max_episodes:
        train = _round_robin(sorted(train), cfg.max_episodes)
    if not cfg.split and cfg.val_fraction > 0 and len(train) >= 5:
        rng = random.Random(cfg.seed)
        order = sorted(train)
        rng.shuffle(order)
        n_val = max(1, int(round(cfg.val_fraction * len(order))))
        val, train = sorted(order[:n_val]), sorted(order[n_val:])
    return sorted(train), sorted(val)


def _round_robin(paths: list[Path], n: int) -> list[Path]:
    """The first `n` episodes taking one from each folder in turn (a station session records one scene per
    folder), so a small demo budget still covers every scene."""
    groups: dict[Path, list[Path]] = {}
    for p in paths:
        groups.setdefault(p.parent, []).append(p)
    out: list[Path] = []
    queues = list(groups.values())
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return sorted(out)


def _dataset(paths: list[Path], pc: PolicyConfig, stats: dict[str, Any] | None = None):
    from robolearn.data.loader import EpisodeDataset, LoaderConfig
    from robolearn.data.stats import compute_stats

    action_keys = [pc.action_space, "gripper_position"]
    keys = [f"action/{k}" for k in action_keys] + [f"observation/robot_state/{k}" for k in pc.proprio_keys]
    if stats is None:
        stats = compute_stats(paths, keys)
    lc = LoaderConfig(
        cameras=list(pc.cameras),
        history=1 if pc.caches_features else pc.history,  # cached tokens: histories are gathered from them
        chunk=pc.chunk,
        action_keys=action_keys,
        proprio_keys=list(pc.proprio_keys) or None,
        normalize_action="mean_std",
        normalize_proprio="mean_std" if pc.proprio_keys else "none",
        language=True,
    )
    return EpisodeDataset(paths, lc, stats=stats), stats


def _describe_data(paths: list[Path], pc: PolicyConfig) -> None:
    """Fill the policy's training-data fields (scenes, tasks, suite, default cameras and proprio)."""
    from robolearn.data.reader import open_h5, read_attrs
    from robolearn.envs.suites import METAWORLD_PROPRIO, METAWORLD_ROBOT

    scenes, tasks, robots, cameras = set(), set(), set(), None
    for p in paths:
        with open_h5(p) as f:
            a = read_attrs(f, p)
        scenes.add(f"{a.get('household', '')}/{a.get('scene_id', '')}")
        tasks.add(str(a.get("task", "")))
        robots.add(str(a.get("robot_type", "")))
        if cameras is None:
            cams = a.get("cameras", [])
            cameras = [c["name"] if isinstance(c, dict) else getattr(c, "name", str(c)) for c in cams]
    pc.train_scenes, pc.train_tasks = sorted(scenes), sorted(tasks)
    if METAWORLD_ROBOT in robots:
        if len(robots) > 1:
            raise ValueError(f"the episodes mix Meta-World with other robots ({sorted(robots)}): train on one suite")
        pc.train_suite = "metaworld"
        if pc.proprio_keys:
            pc.proprio_keys, pc.proprio_dim = list(METAWORLD_PROPRIO), 4
    if not pc.cameras:
        pc.cameras = list(cameras or [])
    if not pc.cameras:
        raise ValueError(f"{paths[0]}: the episodes have no cameras; a visuomotor policy needs one")


def _loss(pred: torch.Tensor, target: torch.Tensor, pad: torch.Tensor, kind: str) -> torch.Tensor:
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    keep = (~pad).float()[..., None]
    return (err * keep).sum() / (keep.sum() * err.shape[-1]).clamp(min=1.0)


def _random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """DrQ-style augmentation: pad by replication, crop back at a random offset (per batch)."""
    if pad <= 0:
        return x
    h, w = x.shape[-2:]
    xp = F.pad(x.flatten(0, -4).float(), (pad, pad, pad, pad), mode="replicate")  # [..., 3, H, W] -> 4-d
    i, j = np.random.randint(0, 2 * pad + 1, size=2)
    return xp[..., i : i + h, j : j + w].reshape(x.shape).to(x.dtype)


def sample_steps(dataset) -> torch.Tensor:
    """The episode step of every sample of a padded EpisodeDataset, in sample order (0..num_steps-1 per episode)."""
    steps = torch.cat([torch.arange(e.num_steps) for e in dataset.episodes]) if dataset.episodes else torch.zeros(0)
    if len(steps) != len(dataset):
        raise ValueError(f"the dataset has {len(dataset)} samples but its episodes {len(steps)} steps (pad=False?)")
    return steps.long()


def history_index(idx: torch.Tensor, steps: torch.Tensor, k: int) -> torch.Tensor:
    """Sample indices [B] -> the indices of their last k frames [B, k] (oldest first) in the same episode; frames
    before the episode's start repeat its first frame, as the loader pads."""
    back = torch.arange(1 - k, 1)[None].expand(len(idx), k)
    return idx[:, None] + torch.maximum(back, -steps[idx][:, None])


class _Source:
    """Training batches: from cached tokens, or streamed from the loader."""

    def __init__(self, policy: Policy, dataset, paths: list[Path], cfg: TrainConfig, desc: str) -> None:
        self.policy, self.dataset, self.cfg = policy, dataset, cfg
        self.cached = policy.config.caches_features
        self.history = policy.config.history
        if self.cached:
            cache = None if cfg.feature_cache == "none" else Path(cfg.feature_cache or default_cache_dir())
            self.feats = cached_features(
                policy, dataset, paths, policy.config.chunk, cache, desc=desc, progress=cfg.progress
            )
            self.n = len(self.feats["proprio"])
            self.steps = sample_steps(dataset) if self.history > 1 else None
        else:
            self.n = len(dataset)

    def batches(
        self, gen: torch.Generator
    ) -> Iterator[tuple[list[torch.Tensor] | None, dict, torch.Tensor, torch.Tensor, torch.Tensor]]:
        cfg = self.cfg
        if self.cached:
            while True:
                idx = torch.randint(0, self.n, (min(cfg.batch_size, self.n),), generator=gen)
                f = self.feats
                frames = idx if self.steps is None else history_index(idx, self.steps, self.history)
                yield (
                    [t[frames].float() for t in f["tokens"]],
                    {},
                    f["proprio"][frames],
                    f["action"][idx],
                    f["action_pad"][idx],
                )
        while True:
            dl = self.dataset.dataloader(
                batch_size=min(cfg.batch_size, self.n),
                shuffle=True,
                num_workers=cfg.workers,
                drop_last=self.n >= cfg.batch_size,
                generator=gen,
            )
            last = slice(None) if self.history > 1 else -1  # a history head gets all k frames [B, k, ...]
            for b in dl:
                images = {
                    c: _random_shift(b[f"images/{c}"][:, last].contiguous(), 4) for c in self.policy.config.cameras
                }
                yield (
                    None,
                    {"images": images, "language": list(b["language"])},
                    b["proprio"][:, last].float(),
                    b["action"].float(),
                    b["action_pad"].bool(),
                )


def _forward(policy: Policy, tokens, extra, proprio, device) -> torch.Tensor:
    proprio = proprio.to(device)
    if tokens is not None:
        return policy.forward_tokens([t.to(device) for t in tokens], proprio)
    images = {c: x.to(device) for c, x in extra["images"].items()}
    return policy(images, proprio, extra["language"])


@torch.no_grad()
def _validate(policy: Policy, source: _Source | None, kind: str, device, max_batches: int = 20) -> float | None:
    if source is None:
        return None
    policy.eval()
    gen = torch.Generator().manual_seed(1234)
    total, n = 0.0, 0
    for i, (tokens, extra, proprio, action, pad) in enumerate(source.batches(gen)):
        if i >= max_batches or n >= source.n:
            break
        pred = _forward(policy, tokens, extra, proprio, device)
        total += float(_loss(pred, action.to(device), pad.to(device), kind)) * len(action)
        n += len(action)
    policy.train()
    return total / max(n, 1)


def _lr_factor(step: int, total: int, warmup: float) -> float:
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))


def _checkpoints(out: Path) -> list[Path]:
    """out/checkpoints/step_<N> folders, oldest first (other names are not checkpoints)."""
    found = [p for p in (out / "checkpoints").glob("step_*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def _latest_checkpoint(out: Path) -> Path | None:
    ckpts = _checkpoints(out)
    return ckpts[-1] if ckpts else None


TRAIN_STATE = "train_state.pt"
_STATE_KEYS = {
    "step": "an integer",
    "optimizer": "the optimizer's state dict",
    "torch_rng": "a uint8 tensor",
    "gen": "a uint8 tensor",
    "numpy_rng": "numpy's RNG state tuple",
    "python_rng": "random's state tuple",
}


def load_train_state(ck: Path) -> dict[str, Any]:
    """A checkpoint's train_state.pt, read without unpickling objects and checked key by key; CheckpointError
    (CheckpointNotFoundError when missing) names the file and the problem."""
    f = Path(ck) / TRAIN_STATE
    what = "the training state (step, optimizer, RNG states) robolearn train writes"
    st = read_torch_file(
        f, what, hint=f"Delete {ck} to resume from the checkpoint before it, or train again without --resume"
    )
    if not isinstance(st, dict):
        raise CheckpointError(f"{f}: holds a {type(st).__name__}, expected a dict ({what})")
    missing = [k for k in _STATE_KEYS if k not in st]
    if missing:
        raise CheckpointError(f"{f}: missing key(s) {missing}; expected {', '.join(_STATE_KEYS)}")
    ok = {
        "step": isinstance(st["step"], int) and not isinstance(st["step"], bool) and st["step"] >= 0,
        "optimizer": isinstance(st["optimizer"], dict) and {"state", "param_groups"} <= set(st["optimizer"]),
        "torch_rng": isinstance(st["torch_rng"], torch.Tensor) and st["torch_rng"].dtype == torch.uint8,
        "gen": isinstance(st["gen"], torch.Tensor) and st["gen"].dtype == torch.uint8,
        "numpy_rng": isinstance(st["numpy_rng"], (tuple, list)) and len(st["numpy_rng"]) == 5,
        "python_rng": isinstance(st["python_rng"], tuple) and len(st["python_rng"]) == 3,
    }
    bad = [f"{k} (expected {_STATE_KEYS[k]}, got {type(st[k]).__name__})" for k, good in ok.items() if not good]
    if bad:
        raise CheckpointError(f"{f}: wrong value for {'; '.join(bad)}")
    return st


def _restore_train_state(ck: Path, st: dict[str, Any], opt_: torch.optim.Optimizer, gen: torch.Generator) -> int:
    """Put a checked train state back (optimizer, every RNG); -> the step it was taken at."""
    f = Path(ck) / TRAIN_STATE
    steps = [
        ("optimizer", lambda: opt_.load_state_dict(st["optimizer"])),
        ("torch_rng", lambda: torch.set_rng_state(st["torch_rng"])),
        ("gen", lambda: gen.set_state(st["gen"])),
        ("numpy_rng", lambda: np.random.set_state(st["numpy_rng"])),
        ("python_rng", lambda: random.setstate(st["python_rng"])),
    ]
    for key, restore in steps:
        try:
            restore()
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
            raise CheckpointError(
                f"{f}: {key} does not fit this run ({e}); expected {_STATE_KEYS[key]} from the "
                f"same training configuration"
            ) from None
    return int(st["step"])


def _save_checkpoint(
    out: Path,
    policy: Policy,
    opt_: torch.optim.Optimizer,
    step: int,
    gen: torch.Generator,
    meta: dict[str, Any],
    keep: int,
) -> Path:
    d = out / "checkpoints" / f"step_{step}"
    save_policy(policy, d, meta)
    torch.save(
        {
            "step": step,
            "optimizer": opt_.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "gen": gen.get_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
        },
        d / TRAIN_STATE,
    )
    ckpts = _checkpoints(out)
    for old in ckpts[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return d


def plot_loss(history: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    steps = [h["step"] for h in history if "loss" in h]
    ax.plot(steps, [h["loss"] for h in history if "loss" in h], label="train")
    val = [(h["step"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (normalised actions)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


class Interrupted(RuntimeError):
    """Raised by `train(..., interrupt_at=N)` after step N (stands in for a killed run in tests)."""


StepFn = Callable[[], tuple[torch.Tensor, dict[str, float]]]


def fit(
    cfg: TrainConfig,
    out: Path,
    policy: Policy,
    meta: dict[str, Any],
    make_step: Callable[[torch.Generator], StepFn],
    t0: float,
    desc: str = "train",
    on_log: Callable[[int, dict[str, Any]], None] | None = None,
    show: dict[str, str] | None = None,
    interrupt_at: int | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """The optimisation loop every objective shares; -> (metrics history, last logged loss).

    AdamW on the policy's trainable parameters, warm-up + cosine, gradients clipped at 1; --resume puts back
    the latest checkpoint (weights, optimizer, every RNG) and cuts metrics.jsonl to its step. `make_step(gen)`
    is called once the RNGs are in place and returns the step function: (loss, extra figures to average into
    each metrics line). Every log_every steps a line {step, loss, extras, lr, time_s} (plus what `on_log`
    adds) goes to metrics.jsonl; checkpoints every save_every steps; at the end the last checkpoint,
    OUT/policy and loss.png. `show`: progress-bar name -> metrics key (default: the loss)."""
    params = policy.trainable_parameters()
    opt_ = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, history = 0, []
    metrics_file = out / "metrics.jsonl"
    if cfg.resume:
        ck = _latest_checkpoint(out)
        if ck is None:
            raise CheckpointNotFoundError(f"--resume: no checkpoint in {out / 'checkpoints'}")
        st = load_train_state(ck)  # before anything is restored: a refused file changes nothing
        policy.load_state_dict(load_policy(ck).state_dict())
        start = _restore_train_state(ck, st, opt_, gen)
        if metrics_file.exists():
            history = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
            history = [h for h in history if h["step"] <= start]
            metrics_file.write_text("".join(json.dumps(h) + "\n" for h in history))
    elif metrics_file.exists():
        metrics_file.unlink()
    step_fn = make_step(gen)
    show = show or {"loss": "loss"}
    bar = tqdm(total=cfg.steps, initial=start, desc=desc, unit="step", disable=not cfg.progress)
    acc: dict[str, float] = {}
    n_acc, last_loss = 0, float("nan")
    for step in range(start, cfg.steps):
        for g in opt_.param_groups:
            g["lr"] = cfg.lr * _lr_factor(step, cfg.steps, cfg.warmup)
        loss, extra = step_fn()
        opt_.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt_.step()
        for k, v in {"loss": float(loss.detach()), **extra}.items():
            acc[k] = acc.get(k, 0.0) + v
        n_acc += 1
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            rec: dict[str, Any] = {"step": done, **{k: v / n_acc for k, v in acc.items()}}
            rec.update(lr=opt_.param_groups[0]["lr"], time_s=round(time.perf_counter() - t0, 2))
            if on_log is not None:
                on_log(done, rec)
            last_loss = rec["loss"]
            history.append(rec)
            with open(metrics_file, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            bar.set_postfix({name: f"{rec[key]:.4f}" for name, key in show.items()})
            acc, n_acc = {}, 0
        if cfg.save_every and done % cfg.save_every == 0 and done < cfg.steps:
            _save_checkpoint(out, policy, opt_, done, gen, meta, cfg.keep)
        bar.update(1)
        if interrupt_at is not None and done >= interrupt_at:
            bar.close()
            raise Interrupted(f"interrupted after step {done}")
    bar.close()
    _save_checkpoint(out, policy, opt_, cfg.steps, gen, meta, cfg.keep)
    save_policy(policy, out / "policy", meta)
    if history:
        plot_loss(history, out / "loss.png")
    return history, last_loss


def train(cfg: TrainConfig, interrupt_at: int | None = None) -> TrainResult:
    """Train a policy by behaviour cloning (objective "dpo" is `robolearn.policies.preference.train.train_dpo`,
    which `robolearn train` calls); see the module docstring for the run folder."""
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {cfg.objective!r}")
    if cfg.objective == "dpo":
        raise ValueError("objective 'dpo' is trained by robolearn.policies.preference.train.train_dpo")
    if cfg.reference:
        raise ValueError("--reference is for --objective dpo (behaviour cloning has no reference policy)")
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    train_paths, val_paths = select_episodes(cfg)
    pc = policy_config(cfg)
    _describe_data(train_paths, pc)
    dataset, stats = _dataset(train_paths, pc)
    pc.proprio_dim = int(dataset.proprio_norm.shift.size) if pc.proprio_keys else 0
    size = next(iter(dataset.image_sizes.values()))
    pc.train_image_size = [int(size[0]), int(size[1])]
    policy = Policy(pc).to(device)
    policy.set_normalization(
        (dataset.action_norm.shift, dataset.action_norm.scale), (dataset.proprio_norm.shift, dataset.proprio_norm.scale)
    )
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out, "train")
    kind = "l1" if pc.head.name == "chunk" else "mse"
    meta = {
        "train_data": [str(d) for d in cfg.data],
        "query": cfg.query,
        "split": cfg.split,
        "train_episodes": len(train_paths),
        "val_episodes": len(val_paths),
        "loss": kind,
        "train_config": to_dict(cfg),
    }
    source = _Source(policy, dataset, train_paths, cfg, "features (train)")
    val_source = None
    if val_paths:
        val_ds, _ = _dataset(val_paths, pc, stats)
        val_source = _Source(policy, val_ds, val_paths, cfg, "features (val)")

    def make_step(gen: torch.Generator) -> StepFn:
        batches = source.batches(gen)

        def step() -> tuple[torch.Tensor, dict[str, float]]:
            tokens, extra, proprio, action, pad = next(batches)
            pred = _forward(policy, tokens, extra, proprio, device)
            return _loss(pred, action.to(device), pad.to(device), kind), {}

        return step

    def validate(done: int, rec: dict[str, Any]) -> None:
        if done % (cfg.log_every * 5) == 0 or done == cfg.steps:
            rec["val_loss"] = _validate(policy, val_source, kind, device)

    policy.train()
    history, last_loss = fit(cfg, out, policy, meta, make_step, t0, "train", validate, interrupt_at=interrupt_at)
    val_loss = next((h["val_loss"] for h in reversed(history) if h.get("val_loss") is not None), None)
    enc = pc.encoder_checkpoint or _parse_encoder(pc.encoder)[1] or pc.encoder  # a checkpoint, or a registry name
    encoder = [] if pc.is_baseline else [{"path": enc, "kind": "encoder"}]
    encoder += [lm_input(pc.language_model)] if pc.language_model else []
    figures = {"steps": cfg.steps, "final_loss": last_loss, "val_loss": val_loss, "train_episodes": len(train_paths)}
    write_card(out / "policy", "policy", [*cfg.data, *encoder], cfg, figures, ["config.json", "model.safetensors"])
    return TrainResult(
        out,
        out / "policy",
        cfg.steps,
        last_loss,
        val_loss,
        len(train_paths),
        len(val_paths),
        time.perf_counter() - t0,
        history,
    )
