"""Export an episode as an MP4 for looking at it: the camera streams side by side, and underneath a strip
with a text line (step, time, success, task, dropped frames) and a plot of the commanded action dimensions
and the gripper over the whole episode, with a cursor at the current step.

Drawn with OpenCV/numpy, encoded with PyAV (H.264, yuv420p). Camera panels are scaled up by an integer
factor (nearest neighbour) when they are smaller than `min_panel_height`, so tiny test images stay legible;
the panels themselves are never drawn on, except for a red border on a dropped frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from robolearn.data import schema
from robolearn.data.errors import EpisodeError
from robolearn.data.reader import Episode
from robolearn.utils import atomic_path

TEXT_H = 40  # two text lines
PLOT_H = 120
MIN_WIDTH = 320
FONT = cv2.FONT_HERSHEY_SIMPLEX
# distinct colours (RGB) for the plotted dimensions
PALETTE = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (170, 110, 40),
)
DIM_NAMES = {
    "cartesian_velocity": ("vx", "vy", "vz", "wx", "wy", "wz"),
    "cartesian_position": ("x", "y", "z", "qw", "qx", "qy", "qz"),
    "joint_position": tuple(f"q{i + 1}" for i in range(schema.ARM_DOF)),
    "joint_velocity": tuple(f"dq{i + 1}" for i in range(schema.ARM_DOF)),
}


@dataclass
class Series:
    label: str
    values: np.ndarray  # (T,)


def plot_series(ep: Episode, keys: Sequence[str]) -> list[Series]:
    """ "action" = every dimension of the commanded action plus the gripper; any other key is a per-step
    dataset path (e.g. observation/robot_state/gripper_position), flattened to its dimensions."""
    out: list[Series] = []
    for key in keys:
        if key == "action":
            space = ep.attrs["action_space"]
            a = ep.action().reshape(ep.num_steps, -1)
            names = DIM_NAMES.get(space, ())
            out += [Series(names[i] if i < len(names) else f"a{i}", a[:, i]) for i in range(a.shape[1])]
            out.append(Series("grip", ep.action("gripper_position").reshape(-1)))
        else:
            a = ep.array(key).reshape(ep.num_steps, -1).astype(np.float64)
            short = key.rsplit("/", 1)[-1]
            out += [Series(short if a.shape[1] == 1 else f"{short}[{i}]", a[:, i]) for i in range(a.shape[1])]
    return out


class Plot:
    """The static plot (drawn once) and the cursor (drawn per frame)."""

    def __init__(self, series: list[Series], width: int, height: int, margin: int = 6):
        self.series, self.w, self.h, self.m = series, width, height, margin
        vals = np.concatenate([s.values for s in series]) if series else np.zeros(1)
        vals = vals[np.isfinite(vals)] if np.isfinite(vals).any() else np.zeros(1)
        lo, hi = float(vals.min()), float(vals.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 1.0, hi + 1.0
        pad = 0.05 * (hi - lo)
        self.lo, self.hi = lo - pad, hi + pad
        self.n = len(series[0].values) if series else 1
        self.base = self._draw_static()

    def x(self, t: int) -> int:
        return self.m + int(round(t * (self.w - 2 * self.m - 1) / max(self.n - 1, 1)))

    def y(self, v: np.ndarray | float) -> np.ndarray:
        frac = (np.asarray(v, np.float64) - self.lo) / (self.hi - self.lo)
        return np.round(self.m + (1 - frac) * (self.h - 2 * self.m - 1)).astype(np.int32)

    def _draw_static(self) -> np.ndarray:
        img = np.full((self.h, self.w, 3), 24, np.uint8)
        if self.lo < 0 < self.hi:
            y0 = int(self.y(0.0))
            cv2.line(img, (self.m, y0), (self.w - self.m, y0), (80, 80, 80), 1)
        xs = np.array([self.x(t) for t in range(self.n)], np.int32)
        for i, s in enumerate(self.series):
            v = np.nan_to_num(s.values, nan=self.lo, posinf=self.hi, neginf=self.lo)
            pts = np.stack([xs, self.y(v)], 1).reshape(-1, 1, 2)
            cv2.polylines(img, [pts], False, PALETTE[i % len(PALETTE)], 1, cv2.LINE_AA)
        x = self.m + 2
        for i, s in enumerate(self.series):  # legend along the top
            (tw, _), _ = cv2.getTextSize(s.label, FONT, 0.35, 1)
            if x + tw > self.w - self.m:
                break
            cv2.putText(img, s.label, (x, self.m + 10), FONT, 0.35, PALETTE[i % len(PALETTE)], 1, cv2.LINE_AA)
            x += tw + 6
        return img

    def frame(self, t: int) -> np.ndarray:
        img = self.base.copy()
        x = self.x(t)
        cv2.line(img, (x, 0), (x, self.h - 1), (255, 255, 255), 1)
        for i, s in enumerate(self.series):
            if np.isfinite(s.values[t]):
                cv2.circle(img, (x, int(self.y(s.values[t]))), 2, PALETTE[i % len(PALETTE)], -1, cv2.LINE_AA)
        return img


def _fit_text(text: str, width: int, scale: float) -> str:
    while text and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        text = text[:-4] + "..." if len(text) > 4 else ""
    return text


@dataclass
class Layout:
    panel_sizes: list[tuple[int, int]]  # (w, h) per camera after scaling
    width: int
    height: int
    panel_h: int = field(init=False)

    def __post_init__(self) -> None:
        self.panel_h = self.panel_sizes[0][1] if self.panel_sizes else 0


def make_layout(cams: list[schema.CameraSpec], scale: int | None, min_panel_height: int) -> Layout:
    h = max((c.height for c in cams), default=0)
    k = scale or (max(1, math.ceil(min_panel_height / h)) if h else 1)
    ph = h * k
    sizes = [(int(round(c.width * ph / c.height)), ph) for c in cams]
    w = max(sum(s[0] for s in sizes), MIN_WIDTH)
    hh = ph + TEXT_H + PLOT_H
    return Layout(sizes, w + w % 2, hh + hh % 2)


def render_frame(
    ep: Episode,
    t: int,
    cams: list[str],
    layout: Layout,
    plot: Plot,
    status: str,
    task: str,
    drops: dict[str, np.ndarray],
) -> np.ndarray:
    """One video frame: camera panels, the text line(s) and the plot with the cursor at step t."""
    canvas = np.zeros((layout.height, layout.width, 3), np.uint8)
    x, dropped = 0, []
    for name, (pw, ph) in zip(cams, layout.panel_sizes):
        img = ep.frame(name, t)
        if img.shape[:2] != (ph, pw):
            integer = ph % img.shape[0] == 0 and pw % img.shape[1] == 0
            img = cv2.resize(img, (pw, ph), interpolation=cv2.INTER_NEAREST if integer else cv2.INTER_AREA)
        canvas[:ph, x : x + pw] = img
        if drops[name][t]:
            dropped.append(name)
            cv2.rectangle(canvas, (x, 0), (x + pw - 1, ph - 1), (255, 0, 0), 2)
        x += pw
    y = layout.panel_h
    line1 = f"step {t + 1}/{ep.num_steps}  t={t / float(ep.attrs['control_hz']):.2f}s  {status}"
    cv2.putText(
        canvas, _fit_text(line1, layout.width - 8, 0.4), (4, y + 15), FONT, 0.4, (235, 235, 235), 1, cv2.LINE_AA
    )
    if dropped:
        mark = "DROPPED: " + ",".join(dropped)
        (tw, _), _ = cv2.getTextSize(mark, FONT, 0.4, 1)
        cv2.putText(canvas, mark, (layout.width - tw - 4, y + 15), FONT, 0.4, (255, 60, 60), 1, cv2.LINE_AA)
    cv2.putText(canvas, _fit_text(task, layout.width - 8, 0.4), (4, y + 33), FONT, 0.4, (200, 200, 120), 1, cv2.LINE_AA)
    canvas[y + TEXT_H : y + TEXT_H + PLOT_H, : plot.w] = plot.frame(t)
    return canvas


def export_video(
    episode_path: str | Path,
    out_mp4: str | Path | None = None,
    cameras: Sequence[str] | None = None,
    fps: float | None = None,
    plot_keys: Sequence[str] = ("action",),
    scale: int | None = None,
    min_panel_height: int = 160,
    crf: int = 18,
) -> Path:
    """Write the episode as an H.264 MP4 (yuv420p); one video frame per step. `fps` defaults to the episode's
    control rate; `out_mp4` defaults to the episode path with `.mp4`. Written atomically (utils.atomic_path).
    Returns the path."""
    import av  # lazy: only this command needs FFmpeg

    episode_path = Path(episode_path)
    out = Path(out_mp4) if out_mp4 is not None else episode_path.with_suffix(".mp4")
    if out.name.endswith((schema.EPISODE_SUFFIX, schema.TMP_SUFFIX)):  # the rename would replace recorded data
        raise ValueError(f"{out}: refusing to write a video over an episode file name; use a .mp4 path")
    with Episode(episode_path) as ep:
        if ep.num_steps == 0:
            raise EpisodeError(episode_path, "num_steps", "episode has no steps; nothing to export")
        names = list(cameras) if cameras else ep.camera_names
        missing = [c for c in names if c not in ep.camera_names]
        if missing:
            raise EpisodeError(
                episode_path, f"cameras/{missing[0]}", f"no such camera; cameras in file: {ep.camera_names}"
            )
        specs = [next(c for c in ep.cameras if c.name == n) for n in names]
        layout = make_layout(specs, scale, min_panel_height)
        plot = Plot(plot_series(ep, plot_keys), layout.width, PLOT_H)
        rate = Fraction(fps if fps is not None else float(ep.attrs["control_hz"])).limit_denominator(1001)
        if rate <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        success = {1: "success", 0: "failure"}.get(int(ep.attrs.get("success", -1)), "unknown")
        status = f"outcome: {success}"
        task = f"task: {ep.attrs.get('task', '')}"
        drops = {n: ep.camera_field(n, "dropped") for n in names}
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = layout.width, layout.height, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "veryfast"}
            for t in range(ep.num_steps):
                img = render_frame(ep, t, names, layout, plot, status, task, drops)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
    return out
