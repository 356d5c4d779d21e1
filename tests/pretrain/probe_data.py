"""Generated clips and the pretrain-then-probe experiment of test_probe.py ("pretraining helps").

A clip shows ONE object: a 16-pixel shape of one of N_CLASSES classes (the probe's target) in a saturated
colour of random hue, drifting across the 32 x 32 frame over grey per-pixel noise drawn afresh for every frame
(uniform 0..255: far more energy than the object). The norm-pixel MAE loss cannot predict the noise, so what
R-MVP learns is the predictable structure: the object's colour and extent (its tokens learn to tell object
patches from noise patches). A random-init encoder's features are a random projection of mostly noise.

Clips are written as robolearn episodes (one PNG camera: lossless, so the noise survives) and pretrained on
with the real `robolearn pretrain --episodes` command. The probe (MAPExtractor + Linear on frozen patch
features) is trained on the pretraining clips and scored on held-out clips from another generator seed, once on
the last checkpoint (`robolearn.encoders.load`) and once, identically (same seed, same steps), on a random-init
encoder (`robolearn.encoders.build` with the same id and size after the same torch seed: exactly the weights the
pretraining run started from).
"""

from __future__ import annotations

import colorsys
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 32  # frames are SIZE x SIZE = the model's image size (no resize)
OBJ = 16  # side of the object's box in pixels
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
        img[y : y + OBJ, x : x + OBJ][mask] = colour
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def make_clips(n_clips: int, n_frames: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames [n_clips, n_frames, SIZE, SIZE, 3] uint8, labels [n_clips] int64); classes balanced."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_clips) % N_CLASSES).astype(np.int64)
    return np.stack([render_clip(rng, int(c), n_frames) for c in labels]), labels


def write_episodes(
    root: Path, frames: np.ndarray, labels: np.ndarray, clips_per_episode: int = 8, tag: str = ""
) -> Path:
    """The clips as robolearn episodes (camera CAMERA, PNG frames): `clips_per_episode` clips back to back per
    episode, each its own instruction run (instruction k = "move the <shape>" of clip k), so each is one
    pretraining clip. Few files: the episode source keeps at most 32 open and reopening one per frame read would
    dominate the run. Episode uuids come from `tag` and the index, so the uuid-based validation split (10% of
    episodes) is the same on every run."""
    import uuid

    from robolearn.data.synthetic import SyntheticConfig, camera_specs, episode_steps
    from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig

    root.mkdir(parents=True, exist_ok=True)
    cams = camera_specs(SyntheticConfig(cameras=(CAMERA,), size=SIZE, encoding="png"))
    wcfg = WriterConfig(background_flush=False, min_free_mb=0.0)
    rng = np.random.default_rng(0)
    for e, first in enumerate(range(0, len(frames), clips_per_episode)):
        clips, clip_labels = frames[first : first + clips_per_episode], labels[first : first + clips_per_episode]
        tasks = [f"move the {NAMES[int(c)]}" for c in clip_labels]
        meta = EpisodeMeta(
            lab="lab_a",
            scene_id=f"scene_{e}",
            task=tasks[0],
            language=tasks,
            robot_type="robolearn-arm7-sim",
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"robolearn-probe-test/{tag}/{e}")),
        )
        steps = sum(len(c) for c in clips)
        tr = episode_steps(steps, rng)
        with EpisodeWriter(root / f"episode_{e:06d}.h5", meta, cams, wcfg) as w:
            t = 0
            for k, clip in enumerate(clips):
                for img in clip:
                    w.add_step(
                        state={
                            "joint_positions": tr["q"][t],
                            "joint_velocities": tr["qd"][t],
                            "ee_position": tr["pos"][t],
                            "ee_quaternion": tr["quat"][t],
                            "gripper_position": tr["grip"][t],
                        },
                        action={
                            "cartesian_velocity": tr["vel"][t],
                            "cartesian_position": np.concatenate([tr["pos"][t], tr["quat"][t]]),
                            "joint_position": tr["q"][t],
                            "joint_velocity": tr["qd"][t],
                            "gripper_position": tr["grip"][t],
                        },
                        images={CAMERA: img},
                        is_terminal=t == steps - 1,
                        language_index=k,
                    )
                    t += 1
            w.set_outcome(True)
    return root


@dataclass
class ProbeSetup:
    model: str = "r-mvp-tiny"  # at its tiny size: 32 x 32 images, 8 x 8 patches, 2 blocks of width 64
    train_clips: int = 128  # pretraining clips = the probe's training clips
    test_clips: int = 256  # held-out clips (another generator seed) the probe is scored on
    frames: int = 6
    epochs: int = 17  # about 300 optimizer steps of 32 examples
    batch: int = 32
    lr: float = 4e-3
    probe_steps: int = 1000
    probe_batch: int = 64
    probe_lr: float = 3e-3


@dataclass
class ProbeResult:
    pretrained: float  # held-out accuracy of the probe on the pretrained encoder
    random: float  # the same probe on the random-init encoder
    pretrained_train: float  # the probes' accuracy on their training frames
    random_train: float
    losses: list[float]  # pretraining loss at each logged step
    checkpoint: Path
    seconds: dict[str, float]  # wall time per phase


def probe_accuracy(encoder, x_train, y_train, x_test, y_test, setup: ProbeSetup, seed: int) -> tuple[float, float]:
    """Train MAPExtractor + Linear on the encoder's frozen patch features of x_train; (train accuracy, held-out
    accuracy on x_test). Features are standardised with the training frames' per-channel mean and std first
    (the parameter-free BatchNorm that MAE's linear probe puts before its classifier). Seeded: the same
    initialisation and batches for every encoder."""
    import torch

    from robolearn.encoders import MAPExtractor

    encoder.eval()
    with torch.no_grad():
        f_train, f_test = encoder(x_train, mode="patch"), encoder(x_test, mode="patch")
    mean, std = f_train.mean((0, 1)), f_train.std((0, 1)) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
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

        def acc(f: torch.Tensor, y: torch.Tensor) -> float:
            return float((head(pool(f)).argmax(-1) == y).float().mean())

        return acc(f_train, y_train), acc(f_test, y_test)


def pretrain_and_probe(work: Path, seed: int, setup: ProbeSetup | None = None) -> ProbeResult:
    """Generate clips (from `seed`), pretrain on them with `robolearn pretrain`, then probe the last checkpoint
    and a random-init encoder (same id and size, seeded) identically on held-out clips (another seed)."""
    import torch

    from robolearn.cli import main
    from robolearn.encoders import build, load
    from robolearn.encoders.offline import write_language_model
    from robolearn.pretrain.checkpoint import latest_checkpoint

    s = setup or ProbeSetup()
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal t0
        seconds[name], t0 = round(time.perf_counter() - t0, 1), time.perf_counter()

    # The episode source tokenises captions (R-MVP itself ignores them): a tiny offline tokenizer.
    lm = write_language_model(work / "lm", vocab_size=1000, dim=32, layers=1, heads=2)
    frames, labels = make_clips(s.train_clips, s.frames, seed=1000 + seed)
    write_episodes(work / "episodes", frames, labels, tag=str(seed))
    lap("data")
    run = work / "run"
    assert (
        main(
            [
                "pretrain",
                "--model",
                s.model,
                "--episodes",
                str(work / "episodes"),
                "--language-model",
                str(lm),
                "--run-dir",
                str(run),
                "--image-size",
                str(SIZE),
                "--train.seed",
                str(seed),
                "--train.effective-batch",
                str(s.batch),
                "--train.device-batch",
                str(s.batch),
                "--train.max-epochs",
                str(s.epochs),
                "--train.warmup-epochs",
                "1",
                "--train.lr",
                str(s.lr),
                "--train.num-workers",
                "0",
                "--train.checkpoint-every",
                "0",
                "--train.log-every",
                "5",
                "--no-train.progress",
                "--no-validate",
            ]
        )
        == 0
    )
    lap("pretrain")
    ckpt = latest_checkpoint(run)
    losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]

    pretrained, preprocess = load(ckpt, language_model=str(lm))
    torch.manual_seed(seed)
    random_init = build(s.model, language_model=str(lm), image_size=SIZE)

    def inputs(clips: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(clips.reshape(-1, SIZE, SIZE, 3)).permute(0, 3, 1, 2)
        return preprocess(x), torch.from_numpy(np.repeat(labels, clips.shape[1]))

    x_train, y_train = inputs(frames, labels)
    x_test, y_test = inputs(*make_clips(s.test_clips, s.frames, seed=5000 + seed))  # held-out clips
    lap("load")
    p_train, p_test = probe_accuracy(pretrained, x_train, y_train, x_test, y_test, s, seed)
    r_train, r_test = probe_accuracy(random_init, x_train, y_train, x_test, y_test, s, seed)
    lap("probes")
    return ProbeResult(p_test, r_test, p_train, r_train, losses, ckpt, seconds)
