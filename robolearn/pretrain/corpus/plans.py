"""What a clip shows: the objects, the hand's keyframed path and the check that the outcome matches the caption.

A `Plan` is drawn by a template's planner from a generator and a `Context` (table height, camera direction).
After the clip is simulated, `Plan.check(track)` measures the outcome from the simulator's state and says
whether it matches the caption (`ok`), with the figures it measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robolearn.pretrain.corpus.hand import HandShape
from robolearn.pretrain.corpus.objects import Obj

# Table area where clips happen (x, y in the scene frame; the scene's fixed distractors stay outside it).
REGION = ((0.28, 0.7), (-0.3, 0.3))


@dataclass(frozen=True)
class Key:
    t: float  # fraction of the clip's duration at which the hand arrives here
    pos: tuple[float, float, float]
    yaw: float
    grasp: str | None = None  # body to weld on arrival; "-" releases


@dataclass(frozen=True)
class Drawer:
    pos: tuple[float, float]  # drawer unit origin (x, y); it opens towards -x
    opening: float  # initial joint position [m]


@dataclass
class Context:
    table_z: float
    right: np.ndarray  # camera's image-right direction on the table (unit, horizontal)
    forward: np.ndarray  # camera's viewing direction on the table (unit, horizontal)


@dataclass
class Track:
    """Measured from the simulation: poses before the hand moves (after settling) and at the last frame."""

    start: dict[str, np.ndarray]  # body -> position
    end: dict[str, np.ndarray]
    end_speed: dict[str, float]
    end_quat: dict[str, np.ndarray]
    touched: set[str]  # bodies the hand touched at any time
    held: set[str]  # bodies welded to the hand at the end
    drawer_start: float = 0.0
    drawer_end: float = 0.0
    project: Callable[[np.ndarray], np.ndarray] | None = None  # world point -> (u, v) pixels
    width: int = 0


@dataclass
class Plan:
    objects: list[Obj]
    hand: HandShape
    keys: list[Key]
    placeholders: list[str]
    check: Callable[[Track], dict]
    drawer: Drawer | None = None
    extras: list[Obj] = field(default_factory=list)  # bystander objects the caption does not mention
    focus: np.ndarray = field(default_factory=lambda: np.zeros(3))


class Reject(Exception):
    """A draw that cannot be laid out (objects would not fit); the clip is drawn again."""


def in_region(p: np.ndarray, margin: float = 0.0) -> bool:
    (x0, x1), (y0, y1) = REGION
    return bool(x0 + margin <= p[0] <= x1 - margin and y0 + margin <= p[1] <= y1 - margin)


def unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def round_dict(d: dict) -> dict:
    return {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in d.items()}
