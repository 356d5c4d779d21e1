"""The study's configuration (saved as <out>/study.config.json) and its checks, made before any work."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from robolearn.config import opt

# Pretrainable encoder families the study compares; ids get "-tiny" for --arch-size tiny.
ARCHS = ("v-cond", "v-gen", "r-mvp", "v-dual", "r-r3m-vit")
ARCH_SIZES = ("tiny", "small")
DEFAULT_SCENARIOS = ["affordance", "refer", "imitation", "intent"]


class StudyError(ValueError):
    """A study setting that cannot work, named with what was expected."""


@dataclass
class StudyConfig:
    out: Path = opt(Path("runs/study"), help="study folder (rerun the same command to resume)")
    corpus: Path | None = opt(
        None, help="an existing clip folder in the SSv2 layout (videos/, labels/); default: generate one"
    )
    clips: int = opt(1000, help="clips to generate for the corpus (ignored with --corpus)")
    corpus_seed: int = opt(0, help="seed of the generated corpus")
    clip_frames: int = opt(16, help="frames per generated clip")
    val_fraction: float = opt(0.15, help="share of generated clips in the validation split")
    val_clips: int = opt(1000, help="validation clips used (the first N): never pretrained on; the probe's test set")
    encoders: list[str] = opt(default_factory=lambda: ["v-cond", "v-gen", "r-mvp"], help=f"pretrained: {ARCHS}")
    arch_size: str = opt("tiny", help=f"encoder size: {' | '.join(ARCH_SIZES)}")
    image_size: int = opt(64, help="pretraining and suite input side (tiny suite datasets are 64 px)")
    frame_size: int = opt(80, help="generated clip height and prepared frame side (crops are taken from it)")
    steps: int = opt(400, help="pretraining optimizer steps, the same for every encoder")
    batch: int = opt(32, help="pretraining batch, the same for every encoder")
    lr: float = opt(1e-3, help="pretraining learning rate (constant schedule, the same for every encoder)")
    pretrain_seed: int = opt(0, help="pretraining seed (also the random-init controls' weights)")
    robot_demos: int = opt(0, help="expert demos per (task, scene) as a second pretraining domain (0: none)")
    robot_weight: float = opt(0.3, help="mixture weight of the robot demos (clips get 1 - this)")
    random_init: list[str] = opt(
        default_factory=lambda: ["v-cond"], help="archs also run with random weights (the same architecture)"
    )
    scratch: bool = opt(True, help="also run the scratch CNN baseline")
    scenarios: list[str] = opt(default_factory=lambda: list(DEFAULT_SCENARIOS), help="suite scenarios")
    seeds: list[int] = opt(default_factory=lambda: [0, 1, 2], help="suite seeds (>= 3 for intervals)")
    size: str = opt("tiny", help="suite dataset and budget size: tiny | small | full")
    datasets: Path | None = opt(None, help="shared suite dataset folder (default: <out>/suite/datasets)")
    suite_steps: int = opt(
        150, help="adapter steps of every scenario, the same for every encoder (0: each scenario's own budget)"
    )
    probe_steps: int = opt(400, help="steps of the template probe on frozen features")
    language_model: str = opt("", help="frozen LM (default: the packaged all-MiniLM-L6-v2, 384-d)")
    workers: int = opt(2, help="processes for corpus generation, prepare and suite datasets")
    alpha: float = opt(0.05, help="significance level of the paired tests")
    overwrite: bool = opt(False, help="redo stages whose saved settings differ instead of refusing")
    progress: bool = opt(True, help="progress bars")

    def model_id(self, arch: str) -> str:
        return f"{arch}-tiny" if self.arch_size == "tiny" else arch

    def validate(self) -> None:
        def close(name: str, known: tuple[str, ...] | list[str]) -> str:
            near = difflib.get_close_matches(name, known, n=2)
            return f" (did you mean {' or '.join(near)}?)" if near else ""

        if not self.encoders:
            raise StudyError(f"--encoders is empty; expected one or more of {', '.join(ARCHS)}")
        for field, names in (("--encoders", self.encoders), ("--random-init", self.random_init)):
            for e in names:
                if e not in ARCHS:
                    raise StudyError(f"{field}: unknown encoder {e!r}{close(e, ARCHS)}; expected one of {ARCHS}")
        missing = [a for a in self.random_init if a not in self.encoders]
        if missing:
            raise StudyError(f"--random-init {missing}: only pretrained encoders ({self.encoders}) get a control")
        if self.arch_size not in ARCH_SIZES:
            raise StudyError(f"--arch-size {self.arch_size!r}; expected one of {ARCH_SIZES}")
        if not self.scenarios:
            raise StudyError("--scenarios is empty; expected suite scenarios (robolearn suite list)")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise StudyError(f"--seeds {self.seeds}: expected distinct seeds (3 or more for intervals)")
        for name, v in (("--steps", self.steps), ("--batch", self.batch), ("--probe-steps", self.probe_steps)):
            if v < 1:
                raise StudyError(f"{name} {v}: expected >= 1")
        if self.corpus is None and self.clips < 8:
            raise StudyError(f"--clips {self.clips}: expected >= 8 (some are held out for validation)")
        if self.corpus is not None and not (Path(self.corpus) / "videos").is_dir():
            raise StudyError(f"--corpus {self.corpus}: no videos/ folder (expected the SSv2 layout)")
        if not 0 < self.robot_weight < 1:
            raise StudyError(f"--robot-weight {self.robot_weight}: expected a fraction in (0, 1)")
