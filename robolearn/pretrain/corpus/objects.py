"""Household objects for the clip corpus: kinds (shape, size range, mass), named colours, and their phrases.

Every object is a free rigid body; its placeholder names it by size, colour and kind ("a small red mug").
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.15, 0.62, 0.2),
    "blue": (0.12, 0.3, 0.85),
    "yellow": (0.95, 0.83, 0.12),
    "orange": (0.95, 0.5, 0.08),
    "purple": (0.52, 0.2, 0.68),
    "white": (0.93, 0.93, 0.9),
    "black": (0.07, 0.07, 0.08),
    "pink": (0.95, 0.5, 0.7),
    "brown": (0.45, 0.27, 0.12),
    "grey": (0.5, 0.5, 0.53),
}


@dataclass(frozen=True)
class Kind:
    shape: str  # box | cylinder | sphere
    lo: tuple[float, ...]  # half sizes: box (x, y, z), cylinder (radius, half height), sphere (radius,)
    hi: tuple[float, ...]
    mass: float


# Things a hand moves; things it puts others onto (wide, flat, heavy).
MOVABLE: dict[str, Kind] = {
    "cube": Kind("box", (0.02, 0.02, 0.02), (0.03, 0.03, 0.03), 0.08),
    "box": Kind("box", (0.03, 0.022, 0.02), (0.045, 0.032, 0.032), 0.1),
    "book": Kind("box", (0.05, 0.033, 0.01), (0.065, 0.042, 0.016), 0.15),
    "can": Kind("cylinder", (0.022, 0.03), (0.03, 0.045), 0.12),
    "mug": Kind("cylinder", (0.026, 0.03), (0.032, 0.04), 0.12),
    "ball": Kind("sphere", (0.024,), (0.034,), 0.06),
    "bottle": Kind("cylinder", (0.02, 0.055), (0.025, 0.075), 0.15),
}
SUPPORTS: dict[str, Kind] = {
    "plate": Kind("cylinder", (0.07, 0.006), (0.085, 0.008), 0.6),
    "tray": Kind("box", (0.08, 0.065, 0.008), (0.1, 0.08, 0.01), 0.7),
    "cutting board": Kind("box", (0.09, 0.06, 0.01), (0.11, 0.07, 0.012), 0.8),
    "placemat": Kind("box", (0.09, 0.07, 0.004), (0.11, 0.08, 0.005), 0.5),
}


@dataclass(frozen=True)
class Obj:
    """One object of a clip: body `name` in the model, what it is, its size and where it starts."""

    name: str
    kind: str
    shape: str
    size: tuple[float, ...]
    colour: str
    rgba: tuple[float, float, float, float]
    mass: float
    adjective: str  # "", "small", "large"
    xy: tuple[float, float] = (0.0, 0.0)
    yaw: float = 0.0

    @property
    def half_height(self) -> float:
        return self.size[0] if self.shape == "sphere" else self.size[-1]

    def extent(self, direction: np.ndarray) -> float:
        """Half-extent of the footprint along a horizontal unit direction."""
        if self.shape != "box":
            return self.size[0]
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        along_x = abs(direction[0] * c + direction[1] * s)
        along_y = abs(-direction[0] * s + direction[1] * c)
        return float(along_x * self.size[0] + along_y * self.size[1])

    def grasp_axis(self) -> float:
        """Yaw of the footprint's narrow axis (the hand's fingers close along it)."""
        if self.shape == "box" and self.size[0] > self.size[1]:
            return self.yaw + np.pi / 2
        return self.yaw

    def narrow_width(self) -> float:
        return 2 * (min(self.size[0], self.size[1]) if self.shape == "box" else self.size[0])

    def contains_xy(self, p: np.ndarray, centre: np.ndarray, yaw: float, margin: float = 0.0) -> bool:
        """Whether point p (x, y) lies on this support's top face placed at centre/yaw (shrunk by margin)."""
        d = np.asarray(p[:2], float) - np.asarray(centre[:2], float)
        if self.shape != "box":
            return bool(np.hypot(*d) <= self.size[0] - margin)
        c, s = np.cos(yaw), np.sin(yaw)
        lx, ly = d[0] * c + d[1] * s, -d[0] * s + d[1] * c
        return bool(abs(lx) <= self.size[0] - margin and abs(ly) <= self.size[1] - margin)

    def phrase(self, definite: bool = False) -> str:
        words = [w for w in (self.adjective, self.colour, self.kind) if w]
        article = "the" if definite else ("an" if words[0][0] in "aeiou" else "a")
        return f"{article} {' '.join(words)}"


def sample_object(rng: np.random.Generator, name: str, kinds: dict[str, Kind], kind: str | None = None) -> Obj:
    """A random object of one of `kinds` (size uniform in its range; named 'small'/'large' at the extremes)."""
    kind = kind or str(rng.choice(sorted(kinds)))
    k = kinds[kind]
    u = float(rng.random())
    size = tuple(float(lo + u * (hi - lo)) for lo, hi in zip(k.lo, k.hi))
    adjective = ("small" if u < 0.2 else "large" if u > 0.8 else "") if rng.random() < 0.6 else ""
    colour = str(rng.choice(sorted(COLOURS)))
    rgb = np.clip(np.asarray(COLOURS[colour]) + rng.uniform(-0.05, 0.05, 3), 0, 1)
    return Obj(name, kind, k.shape, size, colour, (*(float(v) for v in rgb), 1.0), k.mass * (0.8 + 0.4 * u), adjective)


_GEOM = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
}


def add_object(spec: mujoco.MjSpec, obj: Obj) -> None:
    """The object as a free body (a mug gets a handle); contact with rolling friction for balls."""
    body = spec.worldbody.add_body(name=obj.name, pos=[0.0, 0.0, 1.0])
    body.add_freejoint(name=f"{obj.name}_free")
    size = list(obj.size) + [0.0] * (3 - len(obj.size))
    body.add_geom(
        name=obj.name,
        type=_GEOM[obj.shape],
        size=size,
        rgba=list(obj.rgba),
        mass=obj.mass,
        condim=6 if obj.shape == "sphere" else 4,
        friction=[1.0, 0.02, 0.004],
        solref=[0.01, 1.0],
    )
    if obj.kind == "mug":
        r, hh = obj.size
        body.add_geom(
            name=f"{obj.name}_handle",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.008, 0.004, hh * 0.6],
            pos=[r + 0.007, 0, 0],
            rgba=list(obj.rgba),
            mass=0.005,
            contype=0,
            conaffinity=0,
        )
