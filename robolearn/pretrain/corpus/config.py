"""`CorpusConfig`: what `generate_corpus` makes; checked up front, errors list the valid choices."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from robolearn.config import opt
from robolearn.envs.scenes import default_scenes
from robolearn.pretrain.corpus.templates import TEMPLATES


class CorpusError(ValueError):
    """Bad corpus configuration or output folder (the message names the field or file)."""


def scene_name(household: int, scene: int) -> str:
    return f"h{household:03d}_s{scene:03d}"


SCENES = {scene_name(h, s): (h, s) for h, s in default_scenes()}


@dataclass
class CorpusConfig:
    out: Path | None = opt(None, help="output folder (videos/, labels/, corpus.json); re-runs resume here")
    clips: int = opt(100, help="clips to make (ids 1..N); raise it on a re-run to grow the corpus")
    val_fraction: float = opt(0.1, help="share of clips in labels/validation.json (interleaved by id)")
    size: int = opt(240, help="frame height in pixels (width follows a per-clip aspect: 4:3, 16:9 or 3:2)")
    frames: int = opt(36, help="frames per clip (at --fps)")
    fps: int = opt(12, help="frame rate (Something-Something-v2: 12)")
    seed: int = opt(0, help="corpus seed: clip i is a pure function of (seed, i)")
    workers: int = opt(0, help="generating processes (0: in this process; they use spawn)")
    templates: list[str] = opt(default_factory=list, help="template subset (default: all; a wrong name lists them)")
    scenes: list[str] = opt(default_factory=list, help="household scenes, e.g. h000_s001 (default: all 20)")
    max_attempts: int = opt(5, help="redraws of a clip whose checked outcome does not match its caption")
    quality: int = opt(24, help="VP8 constant quality (crf 4-63, lower is better)")

    def validate(self) -> None:
        if self.out is None:
            raise CorpusError("out: the output folder is required (--out DIR)")
        checks = (
            ("clips", self.clips >= 1, "an integer >= 1"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "a number in [0, 1)"),
            ("size", 16 <= self.size <= 1080, "a height between 16 and 1080 pixels"),
            ("frames", 5 <= self.frames <= 600, "between 5 (what prepare needs) and 600"),
            ("fps", 1 <= self.fps <= 60, "between 1 and 60"),
            ("seed", self.seed >= 0, "a non-negative integer"),
            ("workers", self.workers >= 0, "0 or more"),
            ("max_attempts", self.max_attempts >= 1, "1 or more"),
            ("quality", 4 <= self.quality <= 63, "between 4 and 63"),
        )
        for name, ok, what in checks:
            if not ok:
                raise CorpusError(f"{name}: expected {what}, got {getattr(self, name)!r}")
        if isinstance(self.templates, str) or isinstance(self.scenes, str):
            raise CorpusError("templates / scenes: expected a list of names, got a string")
        bad = [t for t in self.templates if t not in TEMPLATES]
        if bad:
            raise CorpusError(f"templates: unknown {bad}; choose from: " + "; ".join(TEMPLATES))
        bad = [s for s in self.scenes if s not in SCENES]
        if bad:
            raise CorpusError(f"scenes: unknown {bad}; choose from: {', '.join(SCENES)}")
        if len(set(self.templates)) != len(self.templates) or len(set(self.scenes)) != len(self.scenes):
            raise CorpusError("templates / scenes: a name is listed twice")

    def template_list(self) -> list[str]:
        return list(self.templates) or list(TEMPLATES)

    def scene_list(self) -> list[tuple[int, int]]:
        return [SCENES[s] for s in (self.scenes or SCENES)]

    def content(self) -> dict:
        """The fields a clip's pixels depend on (a resume must keep them)."""
        return {
            "seed": self.seed,
            "size": self.size,
            "frames": self.frames,
            "fps": self.fps,
            "templates": self.template_list(),
            "scenes": [scene_name(*s) for s in self.scene_list()],
            "max_attempts": self.max_attempts,
            "quality": self.quality,
        }

    def content_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.content(), sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


@dataclass
class CorpusReport:
    out: Path
    clips: int  # clips in the labels (verified)
    train: int
    val: int
    generated: int  # made by this run
    skipped_done: int  # already there from an earlier run
    failed: list[str] = field(default_factory=list)  # ids whose every attempt failed its check
    seconds: float = 0.0
    clips_per_minute: float = 0.0
    template_counts: dict[str, int] = field(default_factory=dict)
    hash: str = ""
