"""Generated clips and the pretrain-then-probe experiment of test_probe.py ("pretraining helps").

A clip shows ONE object, a shape of one of N_CLASSES classes (the probe's target) in one saturated colour of a
random hue, drifting across the frame over a background of fresh grey per-pixel noise in every frame (uniform
0..255, far more energy than the object). The norm-pixel MAE loss cannot predict the noise, so what R-MVP
learns is the predictable structure: the object's colour and extent. The features of a random-init encoder
are dominated by the noise (its random patch projection keeps the noise and a random part of the object).

Clips are written as robolearn episodes (one PNG camera: lossless, so the noise survives) and pretrained on
with the real `robolearn pretrain --episodes` command. The probe (MAPExtractor + Linear, trained on frozen
features) is trained on the pretraining clips and scored on held-out clips made with another generator seed,
once on the pretrained checkpoint (`robolearn.encoders.load`) and once, identically, on a random-init encoder
(`robolearn.encoders.build` with the same id and overrides).
"""

from __future__ import annotations

import colorsys
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 32          # frames are SIZE x SIZE = the model's image size (no resize)
OBJ = 16           # side of the object's box in pixels
CAMERA = "exterior_1"
NAMES = ("box", "frame", "plus", "cross")


def _shapes() -> np.ndarray:
    """[4, OBJ, OBJ] bool masks: filled square, hollow square, plus, X."""
    k = np.zeros((4, OBJ, OBJ), bool)
    b = OBJ // 4
    k[0, 1:-1, 1:-1] = True
    k[1] = True
    k[1, b:-b, b:-b] = False
    c = slice(OBJ // 2 - b // 2 - 1, OBJ // 2 + b // 2 + 1)
    k[2, c, :] = True
    k[2, :, c] = True
    i = np.arange(OBJ)
    for d in range(-(b // 2), b // 2 + 1):
        j = np.clip(i + d, 0, OBJ - 1)
        k[3, i, j] = True
        k[3, i, OBJ - 1 - j] = True
    return k


SHAPES = _shapes()
N_CLASSES = len(SHAPES)


def render_clip(rng: np.random.Generator, label: int, n_frames: int) -> np.ndarray:
    """(n_frames, SIZE, SIZE, 3) uint8: shape `label` in a saturated colour (random hue) moving in a straight
    line over grey noise drawn afresh for every frame."""
    colour = np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), 1.0, 1.0)) * 255
    p0, p1 = rng.uniform(0, SIZE - OBJ, 2), rng.uniform(0, SIZE - OBJ, 2)
    mask = SHAPES[label]
    out = np.empty((n_frames, SIZE, SIZE, 3), np.uint8)
    for t in range(n_frames):
        img = np.repeat(rng.uniform(0, 255, (SIZE, SIZE, 1)), 3, axis=2)
        y, x = np.rint(p0 + (p1 - p0) * t / max(n_frames - 1, 1)).astype(int)
        img[y: y + OBJ, x: x + OBJ][mask] = colour
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def make_clips(n_clips: int, n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames [n_clips, n_frames, SIZE, SIZE, 3] uint8, labels [n_clips] int64); classes balanced."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_clips) % N_CLASSES).astype(np.int64)
    return np.stack([render_clip(rng, int(c), n_frames) for c in labels]), labels


def write_episodes(root: Path, frames: np.ndarray, labels: np.ndarray) -> Path:
    """One robolearn episode per clip (camera CAMERA, PNG frames); the caption names the shape."""
    from robolearn.data.synthetic import SyntheticConfig, camera_specs, episode_steps
    from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig

    root.mkdir(parents=True, exist_ok=True)
    cams = camera_specs(SyntheticConfig(cameras=(CAMERA,), size=SIZE, encoding="png"))
    wcfg = WriterConfig(background_flush=False, min_free_mb=0.0)
    rng = np.random.default_rng(0)
    for i, (clip, label) in enumerate(zip(frames, labels)):
        task = f"move the {NAMES[int(label)]}"
        meta = EpisodeMeta(lab="lab_a", scene_id=f"scene_{i}", task=task, language=[task],
                           robot_type="robolearn-arm7-sim")
        tr = episode_steps(len(clip), rng)
        with EpisodeWriter(root / f"episode_{i:06d}.h5", meta, cams, wcfg) as w:
            for t, img in enumerate(clip):
                w.add_step(state={"joint_positions": tr["q"][t], "joint_velocities": tr["qd"][t],
                                  "ee_position": tr["pos"][t], "ee_quaternion": tr["quat"][t],
                                  "gripper_position": tr["grip"][t]},
                           action={"cartesian_velocity": tr["vel"][t],
                                   "cartesian_position": np.concatenate([tr["pos"][t], tr["quat"][t]]),
                                   "joint_position": tr["q"][t], "joint_velocity": tr["qd"][t],
                                   "gripper_position": tr["grip"][t]},
                           images={CAMERA: img}, is_terminal=t == len(clip) - 1)
            w.set_outcome(True)
    return root


@dataclass
class ProbeSetup:
    model: str = "r-mvp-tiny"
    overrides: str = ""            # --model-overrides JSON (also given to build() for the random encoder)
    train_clips: int = 128
    test_clips: int = 128
    frames: int = 6
    epochs: int = 17
    batch: int = 32
    lr: float = 4e-3
    probe_steps: int = 600
    probe_batch: int = 64
    probe_lr: float = 1e-3


@dataclass
class ProbeResult:
    pretrained: float              # held-out accuracy of the probe on the pretrained encoder
    random: float                  # the same probe on a random-init encoder
    pretrained_train: float
    random_train: float
    losses: list[float]            # pretraining loss per logged step
    checkpoint: Path


def _probe(encoder, x_train, y_train, x_test, y_test, setup: ProbeSetup, seed: int) -> tuple[float, float]:
    """Train MAPExtractor + Linear on frozen patch features; (train accuracy, held-out accuracy)."""
    import torch

    from robolearn.encoders import MAPExtractor

    encoder.eval()
    with torch.no_grad():
        f_train, f_test = encoder(x_train, mode="patch"), encoder(x_test, mode="patch")
    torch.manual_seed(seed)
    pool = MAPExtractor.for_encoder(encoder)
    head = torch.nn.Linear(encoder.embed_dim, N_CLASSES)
    opt = torch.optim.AdamW([*pool.parameters(), *head.parameters()], lr=setup.probe_lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(setup.probe_steps):
        i = torch.randint(0, len(f_train), (setup.probe_batch,), generator=g)
        loss = torch.nn.functional.cross_entropy(head(pool(f_train[i])), y_train[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        def acc(f, y):
            return float((head(pool(f)).argmax(-1) == y).float().mean())
        return acc(f_train, y_train), acc(f_test, y_test)


def pretrain_and_probe(work: Path, seed: int, setup: ProbeSetup | None = None) -> ProbeResult:
    """Generate clips (seed), pretrain with `robolearn pretrain`, probe the checkpoint and a random-init encoder
    on held-out clips (another seed)."""
    import torch

    from robolearn.cli import main
    from robolearn.encoders import build, load
    from robolearn.encoders.offline import write_language_model
    from robolearn.pretrain.checkpoint import latest_checkpoint

    s = setup or ProbeSetup()
    lm = write_language_model(work / "lm", vocab_size=1000, dim=32, layers=1, heads=2)  # tokenises captions
    frames, labels = make_clips(s.train_clips, s.frames, seed=1000 + seed)
    write_episodes(work / "episodes", frames, labels)
    run = work / "run"
    args = ["pretrain", "--model", s.model, "--episodes", str(work / "episodes"), "--language-model", str(lm),
            "--run-dir", str(run), "--image-size", str(SIZE), "--train.seed", str(seed),
            "--train.effective-batch", str(s.batch), "--train.device-batch", str(s.batch),
            "--train.max-epochs", str(s.epochs), "--train.warmup-epochs", "1", "--train.lr", str(s.lr),
            "--train.num-workers", "0", "--train.checkpoint-every", "0", "--train.log-every", "5",
            "--no-train.progress", "--no-validate"]
    if s.overrides:
        args += ["--model-overrides", s.overrides]
    assert main(args) == 0
    ckpt = latest_checkpoint(run)
    losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]

    pretrained, preprocess = load(ckpt, language_model=str(lm))
    torch.manual_seed(seed)
    random_init = build(s.model, language_model=str(lm), image_size=SIZE,
                        **(json.loads(s.overrides) if s.overrides else {}))

    def inputs(clips: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(clips.reshape(-1, SIZE, SIZE, 3)).permute(0, 3, 1, 2)
        return preprocess(x), torch.from_numpy(np.repeat(labels, clips.shape[1]))

    x_train, y_train = inputs(frames, labels)
    x_test, y_test = inputs(*make_clips(s.test_clips, s.frames, seed=5000 + seed))  # held-out clips
    p_train, p_test = _probe(pretrained, x_train, y_train, x_test, y_test, s, seed)
    r_train, r_test = _probe(random_init, x_train, y_train, x_test, y_test, s, seed)
    return ProbeResult(p_test, r_test, p_train, r_train, losses, ckpt)
