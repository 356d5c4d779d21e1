"""Grasp affordance (Voltron's problem 1): per-cell labels graspable part / rest of an object / background,
from MuJoCo segmentation of our household scenes.

Scenes are the envs' households (robolearn.envs.scenes: room, table, lights, the arm at home, distractors) plus
graspable objects this module adds through MjSpec, without changing the envs' own scenes: mugs (handle
graspable, body not), a pan (handle graspable), blocks (side faces graspable, top not: each side is a thin plate
geom flush with the block) and, per image, maybe the envs' drawer unit or cabinet (handle bar and posts
graspable). Each image places a random subset of them on the table (positions, yaws, colours, drawer opening,
door angle), looks at them from a jittered close viewpoint (0.45-0.75 m, from the robot's side of the table,
left or right like one of the scene's two exterior cameras) and varies the lighting. A segmentation render
maps every pixel's geom to a class (the arm, table and room are background); labels are pooled to a coarser
grid (image/2, like Voltron's 80 for 224) by majority, with IGNORE where no class holds `purity` of the cell,
and on the scene's distractors (unlabelled objects whose graspable part is ambiguous).

Splits: train / val / test_seen from households 0-2, test_heldout from households 3-4 (never trained on).

Adapter: MAP with g*g latents (a 4 x 4 grid) + a small upsampling conv head to the label grid; pixel
cross-entropy with the ignore class weighted 0. Language: as Voltron does, encoders that take language (V-*) run
in multimodal mode with the fixed text "picking something up" (TEXT) for every image (their MAP pools the patch
and the text tokens); vision-only encoders (R-MVP, baselines) run visual. The text carries no instance
information, so they lose nothing by not seeing it.

Metrics: per-class PR-AUC over labelled cells (primary: graspable, "grasp_pr_auc"), mean IoU over the 3 classes,
and Voltron's precision at each image's top-1% cells ("grasp_p99"); 95% bootstrap intervals over test images.
"""

from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.envs.robot import HOME_QPOS, ControllerConfig, SimArm
from robolearn.envs.scenes import EXTERIOR_CAMERAS, RenderQuality, build_scene, scene_params
from robolearn.envs.tasks.base import add_box
from robolearn.envs.tasks.cabinet import OpenCabinet
from robolearn.envs.tasks.drawer import build_drawer_unit
from robolearn.suite.adapt import Adapter, Budget, fit, predict
from robolearn.suite.dataset import SuiteDataset, write_dataset
from robolearn.suite.encoders import EncoderSpec, TokenSource, backbone_identity
from robolearn.suite.metrics import average_precision, bootstrap_ci, mean_iou, topk_precision
from robolearn.suite.scenario import SIZES, CellContext, CellResult, Scenario, register

CLASSES = ("background", "object", "graspable")
BACKGROUND, OBJECT, GRASPABLE, IGNORE = 0, 1, 2, 255
TEXT = "picking something up"  # Voltron's fixed grasp-affordance language
LATENT_GRID = 4  # MAP latents = 4 x 4
_SALT = 0xAFF0
_HIDDEN = (0.0, 0.0, -20.0)  # unused objects go far below the floor, out of every view
SMALL = ("mug0", "mug1", "pan", "block0", "block1")
FIXTURES = ("drawer_unit", "cabinet")
# placement footprint of each object: (centre offset in its body frame, radius) [m]
FOOTPRINT = {
    "mug0": ((0.02, 0.0), 0.075),
    "mug1": ((0.02, 0.0), 0.075),
    "pan": ((0.06, 0.0), 0.14),
    "block0": ((0.0, 0.0), 0.045),
    "block1": ((0.0, 0.0), 0.045),
    "drawer_unit": ((0.08, 0.0), 0.19),
    "cabinet": ((0.08, 0.0), 0.19),
}


# ---------------------------------------------------------------------- scene: household + graspable objects
def _capsule(body: mujoco.MjsBody, name: str, a, b, r: float, rgba) -> None:
    body.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[r, 0, 0], fromto=[*a, *b], rgba=list(rgba),
        contype=0, conaffinity=0,
    )  # fmt: skip


def _cylinder(body: mujoco.MjsBody, name: str, r: float, half_h: float, z: float, rgba) -> None:
    body.add_geom(
        name=name, type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[r, half_h, 0], pos=[0, 0, z], rgba=list(rgba),
        contype=0, conaffinity=0,
    )  # fmt: skip


def _add_objects(spec: mujoco.MjSpec, rng: np.random.Generator) -> dict[str, list[str]]:
    """Add mugs, a pan and blocks (static bodies, placed per image); returns {body: graspable geom names}."""
    grey = (0.5, 0.5, 0.5, 1.0)
    world, grasp = spec.worldbody, {}
    for i in range(2):
        name = f"mug{i}"
        r, h = float(rng.uniform(0.032, 0.042)), float(rng.uniform(0.08, 0.105))
        body = world.add_body(name=name, pos=list(_HIDDEN))
        _cylinder(body, f"{name}_body", r, h / 2, h / 2, grey)
        _cylinder(body, f"{name}_inside", r * 0.85, 0.001, h + 0.0005, (0.15, 0.15, 0.15, 1))
        out, lo, hi, t = r + 0.035, h * 0.2, h * 0.8, 0.009
        parts = (((r - 0.004, 0, hi), (out, 0, hi)), ((out, 0, hi), (out, 0, lo)), ((out, 0, lo), (r - 0.004, 0, lo)))
        for k, (a, b) in enumerate(parts):
            _capsule(body, f"{name}_handle{k}", a, b, t, grey)
        grasp[name] = [f"{name}_handle{k}" for k in range(3)]
    body = world.add_body(name="pan", pos=list(_HIDDEN))
    r = float(rng.uniform(0.065, 0.08))
    _cylinder(body, "pan_body", r, 0.018, 0.018, grey)
    _cylinder(body, "pan_inside", r * 0.88, 0.001, 0.0365, (0.12, 0.12, 0.12, 1))
    _capsule(body, "pan_handle", (r - 0.005, 0, 0.026), (r + float(rng.uniform(0.11, 0.14)), 0, 0.03), 0.013, grey)
    grasp["pan"] = ["pan_handle"]
    for i in range(2):
        name = f"block{i}"
        hx, hy, hz = (float(v) for v in rng.uniform(0.018, 0.03, 3))
        body = world.add_body(name=name, pos=list(_HIDDEN))
        add_box(body, f"{name}_core", (hx, hy, hz), (0, 0, hz), grey, contype=0, conaffinity=0)
        t, top = 0.0015, hz - 0.0015  # side plates: 1 mm proud of the core, 1.5 mm below its top (no z-fighting)
        for k, (size, pos) in enumerate(
            (
                ((t, hy, top), (hx + t - 0.001, 0, top)),
                ((t, hy, top), (-hx - t + 0.001, 0, top)),
                ((hx, t, top), (0, hy + t - 0.001, top)),
                ((hx, t, top), (0, -hy - t + 0.001, top)),
            )
        ):
            add_box(body, f"{name}_side{k}", size, pos, grey, contype=0, conaffinity=0)
        grasp[name] = [f"{name}_side{k}" for k in range(4)]
    return grasp


@dataclass
class AffordanceScene:
    """One compiled household scene with the dataset's objects, and the geom -> class table."""

    model: mujoco.MjModel
    data: mujoco.MjData
    classes: np.ndarray  # [ngeom + 1] class per geom id + 1 (index 0: no geom = background)
    object_geoms: dict[str, list[int]]  # body name -> its geoms (recoloured per image)
    base_light: tuple[np.ndarray, np.ndarray]  # light_pos, light_diffuse as compiled
    exterior: dict[str, tuple[float, float]]  # camera -> (azimuth, elevation) of the scene's exterior camera


def build_affordance_scene(household: int, scene: int, max_size: int = 640) -> AffordanceScene:
    """Compile the household scene plus mugs, pan, blocks, drawer unit and cabinet (all out of view)."""
    params = scene_params(household, scene)
    spec = build_scene(params, RenderQuality(max_width=max(640, max_size), max_height=max(480, max_size)))
    grasp = _add_objects(spec, np.random.default_rng([_SALT, household, scene]))
    build_drawer_unit(spec, params)
    grasp["drawer_unit"] = ["drawer_handle", "drawer_post_l", "drawer_post_r"]
    OpenCabinet().build(spec, params)
    grasp["cabinet"] = ["cabinet_handle", "cabinet_handle_post0", "cabinet_handle_post1"]
    model = spec.compile()
    data = mujoco.MjData(model)
    SimArm(model, data, ControllerConfig()).reset(HOME_QPOS)
    classes = np.full(model.ngeom + 1, BACKGROUND, np.uint8)
    object_geoms: dict[str, list[int]] = {}
    graspable = {g for names in grasp.values() for g in names}
    for body in grasp:
        root = model.body(body).id
        ids = [g for g in range(model.ngeom) if _root_is(model, model.geom_bodyid[g], root)]
        object_geoms[body] = ids
        for g in ids:
            classes[g + 1] = GRASPABLE if model.geom(g).name in graspable else OBJECT
    for g in range(model.ngeom):
        if model.geom(g).name.startswith("distractor"):
            classes[g + 1] = IGNORE  # unlabelled objects: whether and where they are graspable is ambiguous
    exterior = {}
    for cam in EXTERIOR_CAMERAS:
        pose = params.cameras[cam]
        d = np.subtract(pose.pos, pose.lookat)
        exterior[cam] = (math.degrees(math.atan2(d[1], d[0])), math.degrees(math.asin(d[2] / np.linalg.norm(d))))
    return AffordanceScene(
        model, data, classes, object_geoms, (model.light_pos.copy(), model.light_diffuse.copy()), exterior
    )


def _root_is(model: mujoco.MjModel, body: int, root: int) -> bool:
    while body > 0:
        if body == root:
            return True
        body = int(model.body_parentid[body])
    return False


# ---------------------------------------------------------------------- one image: layout, camera, lighting
def draw_instance(household: int, scene: int, table_z: float, table_x: tuple[float, float], rng) -> dict[str, Any]:
    """Every random choice of one image (stored in its record, so an image can be re-rendered from it)."""
    fixture = [None, "drawer_unit", "cabinet"][int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    small = [SMALL[i] for i in rng.permutation(len(SMALL))[: int(rng.integers(2, 5))]]
    x_lo, x_hi = table_x[0] + 0.14, min(table_x[1] - 0.12, 0.72)
    placed: list[dict[str, Any]] = []
    for name in ([fixture] if fixture else []) + small:
        (ox, oy), radius = FOOTPRINT[name]
        for _ in range(60):
            if name in FIXTURES:
                yaw = float(rng.uniform(-0.45, 0.45))
                x, y = float(rng.uniform(0.42, 0.55)), float(rng.uniform(-0.22, 0.22))
            else:
                yaw = float(rng.uniform(-np.pi, np.pi))
                x, y = float(rng.uniform(x_lo, x_hi)), float(rng.uniform(-0.34, 0.34))
            c, s = math.cos(yaw), math.sin(yaw)
            cx, cy = x + c * ox - s * oy, y + s * ox + c * oy
            if all(math.hypot(cx - p["cx"], cy - p["cy"]) > radius + p["r"] + 0.01 for p in placed):
                placed.append({"name": name, "x": x, "y": y, "yaw": yaw, "cx": cx, "cy": cy, "r": radius})
                break
    objects = [
        {
            "name": p["name"],
            "pos": [p["x"], p["y"], table_z],
            "yaw": p["yaw"],
            "rgba": [float(v) for v in rng.uniform(0.12, 0.95, 3)] + [1.0],
        }
        for p in placed
    ]
    centre = np.mean([[p["cx"], p["cy"]] for p in placed], axis=0)
    cam = EXTERIOR_CAMERAS[int(rng.integers(2))]
    return {
        "household": household,
        "scene": scene,
        "objects": objects,
        "drawer_opening": float(rng.uniform(0.0, 0.12)),
        "door_angle": float(rng.uniform(0.0, 1.2)),
        "camera": {
            "side": cam,
            "azimuth": float(rng.uniform(100, 150)),
            "elevation": float(rng.uniform(30, 60)),
            "distance": float(rng.uniform(0.45, 0.75)),
            "lookat": [
                float(centre[0] + rng.uniform(-0.04, 0.04)),
                float(centre[1] + rng.uniform(-0.04, 0.04)),
                float(table_z + rng.uniform(0.02, 0.07)),
            ],  # fmt: skip
            "fovy": float(rng.uniform(42, 55)),
        },
        "light": {
            "scale": float(rng.uniform(0.55, 1.45)),
            "offset": [float(v) for v in rng.uniform(-0.4, 0.4, 3)],
            "ambient": float(rng.uniform(0.08, 0.4)),
        },
    }


def _yaw_quat(yaw: float) -> list[float]:
    return [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]


def apply_instance(sc: AffordanceScene, inst: dict[str, Any]) -> mujoco.MjvCamera:
    """Pose the objects, lights and articulations of `inst`; returns the free camera to render it from."""
    m, d = sc.model, sc.data
    for body in sc.object_geoms:
        m.body_pos[m.body(body).id] = _HIDDEN
    for o in inst["objects"]:
        b = m.body(o["name"]).id
        m.body_pos[b], m.body_quat[b] = o["pos"], _yaw_quat(o["yaw"])
        for g in sc.object_geoms[o["name"]]:
            if m.geom(g).name.endswith("_inside"):
                continue
            # handles and posts a shade darker/lighter than the body, so the part is visible, not only its shape
            shade = 0.75 if sc.classes[g + 1] == GRASPABLE else 1.0
            m.geom_rgba[g] = [*(np.clip(np.array(o["rgba"][:3]) * shade, 0, 1)), 1.0]
    d.qpos[m.jnt_qposadr[m.joint("drawer").id]] = inst["drawer_opening"]
    d.qpos[m.jnt_qposadr[m.joint("cabinet_door").id]] = inst["door_angle"]
    pos0, diff0 = sc.base_light
    lt = inst["light"]
    m.light_pos[:] = pos0 + np.asarray(lt["offset"])[None]
    m.light_diffuse[:] = diff0 * lt["scale"]
    m.vis.headlight.ambient[:] = lt["ambient"]
    mujoco.mj_forward(m, d)
    c = inst["camera"]
    side = 1.0 if sc.exterior[c["side"]][0] >= 0 else -1.0
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.lookat[:] = c["lookat"]
    cam.distance = c["distance"]
    # from the robot's side of the table (fixtures face the robot), on the exterior camera's side (left/right);
    # MuJoCo's azimuth is the viewing direction, the opposite of the camera's direction from the target
    cam.azimuth = side * c["azimuth"] + 180.0
    cam.elevation = -c["elevation"]
    m.vis.global_.fovy = c["fovy"]
    return cam


def pool_labels(pixel_classes: np.ndarray, grid: int, purity: float) -> np.ndarray:
    """[H, W] classes (IGNORE allowed) -> [grid, grid]: a cell's majority class when it holds at least `purity`
    of the cell's pixels, else IGNORE (boundaries, ambiguous objects)."""
    h, w = pixel_classes.shape
    cells = pixel_classes.reshape(grid, h // grid, grid, w // grid).transpose(0, 2, 1, 3).reshape(grid, grid, -1)
    out = np.full((grid, grid), IGNORE, np.uint8)
    n = cells.shape[-1]
    best = np.zeros((grid, grid))
    for c in (BACKGROUND, OBJECT, GRASPABLE):
        share = (cells == c).sum(-1) / n
        win = (share >= purity) & (share > best)
        out[win], best = c, np.maximum(best, share)
    return out


class AffordanceRenderer:
    """Renders RGB and per-pixel classes of instances of one scene."""

    def __init__(self, sc: AffordanceScene, size: int) -> None:
        from robolearn.envs.interface import new_renderer

        self.sc, self.size = sc, size
        self.renderer = new_renderer(sc.model, size, size)
        self.option = mujoco.MjvOption()
        self.option.sitegroup[:] = 0  # sites (the tool point) are not part of any object

    def render(self, inst: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        cam = apply_instance(self.sc, inst)
        r = self.renderer
        r.update_scene(self.sc.data, camera=cam, scene_option=self.option)
        rgb = r.render().copy()
        r.enable_segmentation_rendering()
        try:
            r.update_scene(self.sc.data, camera=cam, scene_option=self.option)
            seg = r.render()
        finally:
            r.disable_segmentation_rendering()
        geom = np.where(seg[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, seg[..., 0], -1)
        return rgb, self.sc.classes[geom + 1]

    def close(self) -> None:
        self.renderer.close()


# ---------------------------------------------------------------------- generation
def _plan(config: dict[str, Any]) -> list[tuple[int, str, int, int]]:
    """(index, split, household, scene) of every instance: seen households for train/val/test_seen,
    held-out households for test_heldout, scenes cycled."""
    out, i = [], 0
    for split, n in config["counts"].items():
        pool = config["heldout_households"] if split == "test_heldout" else config["seen_households"]
        scenes = [(h, s) for h in pool for s in range(config["scenes_per_household"])]
        for k in range(n):
            h, s = scenes[(k + i) % len(scenes)]
            out.append((len(out), split, h, s))
        i += n
    return out


def _render_group(args: tuple[dict[str, Any], int, int, list[int]]) -> list[tuple[int, dict, np.ndarray, np.ndarray]]:
    config, h, s, indices = args
    size, grid = config["image_size"], config["label_grid"]
    sc = build_affordance_scene(h, s, size)
    params = scene_params(h, s)
    rend = AffordanceRenderer(sc, size)
    out = []
    try:
        for i in indices:
            rng = np.random.default_rng([_SALT, config["seed"], i])
            inst = draw_instance(h, s, params.table_z, params.table_x, rng)
            rgb, pix = rend.render(inst)
            out.append((i, inst, rgb, pool_labels(pix, grid, config["purity"])))
    finally:
        rend.close()
    return out


def generate_affordance(out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
    plan = _plan(config)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, _, h, s in plan:
        groups.setdefault((h, s), []).append(i)
    jobs = [(config, h, s, idx) for (h, s), idx in sorted(groups.items())]
    results: list = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plan), desc="affordance: rendering", unit="img")
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")  # EGL contexts must not cross a fork
        with ctx.Pool(min(workers, len(jobs))) as pool:
            for part in pool.imap_unordered(_render_group, jobs):
                results += part
                if bar is not None:
                    bar.update(len(part))
    else:
        for job in jobs:
            part = _render_group(job)
            results += part
            if bar is not None:
                bar.update(len(part))
    if bar is not None:
        bar.close()
    results.sort(key=lambda r: r[0])
    images = np.stack([r[2] for r in results]).astype(np.uint8)
    labels = np.stack([r[3] for r in results]).astype(np.uint8)
    records = []
    for (i, split, _h, _s), (_, inst, _, lab) in zip(plan, results):
        counts = {c: int((lab == k).sum()) for k, c in enumerate(CLASSES)}
        records.append({"split": split, "index": i, **inst, "cells": {**counts, "ignore": int((lab == IGNORE).sum())}})
    arrays = {"images": images, "labels": labels}
    return write_dataset(out, AffordanceScenario.name, AffordanceScenario.version, config, arrays, records)


# ---------------------------------------------------------------------- adapter head and metrics
class GridHead(nn.Module):
    """[B, g*g, D] MAP latents -> [B, 3, G, G] logits: the latents as a g x g map, then [conv3x3, BN, ReLU,
    bilinear x2] per doubling (64/32/16 channels), then a conv3x3 to the classes."""

    def __init__(self, dim: int, grid: int, latent_grid: int = LATENT_GRID, n_classes: int = 3) -> None:
        super().__init__()
        ups = int(round(math.log2(grid / latent_grid)))
        if latent_grid * 2**ups != grid:
            raise ValueError(f"label grid {grid} is not {latent_grid} x a power of 2")
        self.g = latent_grid
        layers: list[nn.Module] = []
        c = dim
        for k in range(ups):
            o = max(16, 64 >> k)
            layers += [nn.Conv2d(c, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                       nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)]  # fmt: skip
            c = o
        layers.append(nn.Conv2d(c, n_classes, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, k, d = z.shape
        return self.net(z.transpose(1, 2).reshape(b, d, self.g, self.g))


def _grasp_pr_auc(probs: np.ndarray, labels: np.ndarray) -> float:
    keep = labels != IGNORE
    return average_precision(probs[:, GRASPABLE][keep], labels[keep] == GRASPABLE)


def _miou(probs: np.ndarray, labels: np.ndarray) -> tuple[float, list]:
    keep = labels != IGNORE
    return mean_iou(probs.argmax(1)[keep], labels[keep], len(CLASSES))


def _grasp_p99(probs: np.ndarray, labels: np.ndarray) -> float:
    n = len(labels)
    flat = labels.reshape(n, -1)
    return topk_precision(probs[:, GRASPABLE].reshape(n, -1), flat == GRASPABLE, flat != IGNORE, 0.99)


PRIMARY = {"grasp_pr_auc": _grasp_pr_auc, "miou": lambda p, y: _miou(p, y)[0], "grasp_p99": _grasp_p99}


def affordance_metrics(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """probs [N, 3, G, G] (softmax over classes), labels [N, G, G] (IGNORE cells excluded everywhere)."""
    keep = labels != IGNORE
    y = labels[keep]
    out = {f"{c}_pr_auc": average_precision(probs[:, k][keep], y == k) for k, c in enumerate(CLASSES)}
    out["grasp_pr_auc"] = out.pop("graspable_pr_auc")
    miou, ious = _miou(probs, labels)
    out["miou"] = miou
    out.update({f"{c}_iou": v for c, v in zip(CLASSES, ious)})
    out["grasp_p99"] = _grasp_p99(probs, labels)
    return out


_PALETTE = np.array([[40, 40, 40], [70, 130, 230], [240, 200, 30]], np.uint8)


def example_png(path: Path, image: np.ndarray, labels: np.ndarray, grasp_prob: np.ndarray) -> None:
    """image | true labels (grey background, blue object, yellow graspable, magenta ignore) | the graspable
    probability as a heatmap, scaled to the image's maximum."""
    import cv2

    s = image.shape[0]
    lab = np.where(labels[..., None] == IGNORE, np.array([200, 40, 200], np.uint8), _PALETTE[np.minimum(labels, 2)])
    lab = cv2.resize(lab, (s, s), interpolation=cv2.INTER_NEAREST)
    scaled = np.clip(grasp_prob / max(float(grasp_prob.max()), 1e-6), 0, 1)
    heat = cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    heat = cv2.resize(heat, (s, s), interpolation=cv2.INTER_NEAREST)
    row = np.concatenate([image, lab, heat], axis=1)
    row = cv2.resize(row, (row.shape[1] * 2, s * 2), interpolation=cv2.INTER_NEAREST) if s < 128 else row
    cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))


# ---------------------------------------------------------------------- the scenario
class AffordanceScenario(Scenario):
    name, family, version = "affordance", "affordance", 1
    description = "grasp affordance: per-cell graspable part / object / background in household scenes"
    metrics = {"grasp_pr_auc": True, "grasp_p99": True, "miou": True}
    uses_language = True  # the fixed TEXT, for encoders that take language (as Voltron does)
    default_budget = Budget(steps=300, batch_size=32, lr=1e-3)

    def data_config(self, size: str) -> dict[str, Any]:
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
        counts = {
            "tiny": (256, 32, 64, 64),
            "small": (2048, 256, 384, 384),
            "full": (16384, 1024, 2048, 2048),
        }[size]
        return {
            "size": size,
            "image_size": 64 if size == "tiny" else 128,
            "label_grid": 32 if size == "tiny" else 64,  # image / 2 (Voltron: 80 for 224)
            "purity": 0.6,
            "counts": dict(zip(("train", "val", "test_seen", "test_heldout"), counts)),
            "seen_households": [0, 1, 2],
            "heldout_households": [3, 4],
            "scenes_per_household": 4,
            "seed": 0,
        }

    def budget(self, size: str) -> Budget:
        return {"tiny": self.default_budget, "small": Budget(steps=1500, batch_size=64, lr=1e-3)}.get(
            size, Budget(steps=5000, batch_size=64, lr=1e-3)
        )

    def generate(self, out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
        return generate_affordance(out, config, workers, progress)

    def run_cell(self, dataset: SuiteDataset, encoder: EncoderSpec, ctx: CellContext) -> CellResult:
        grid = int(dataset.meta["config"]["label_grid"])
        images, labels = dataset.arrays["images"], np.asarray(dataset.arrays["labels"])
        # non-V encoders ignore the mode (R-MVP: patch tokens), so "multimodal" adds TEXT only where it is taken
        backbone = encoder.build("visual" if encoder.is_baseline else "multimodal")
        language = bool(getattr(backbone, "uses_language", False))
        text = [TEXT] * len(images) if language else None
        key = {"dataset": dataset.hash, "spec": encoder.spec, "array": "images", "text": TEXT if language else None}
        src = TokenSource(encoder, backbone, images, text, ctx.cache_dir, key)
        adapter = Adapter(src.embed_dim, src.n_heads, LATENT_GRID**2, GridHead(src.embed_dim, grid))
        y = torch.as_tensor(labels.astype(np.int64))

        def loss_fn(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return F.cross_entropy(out, batch["y"], ignore_index=IGNORE)  # ignore: weight 0

        losses = fit(adapter, src, {"y": y}, loss_fn, dataset.split("train"), ctx.budget, ctx.seed)
        test = dataset.split("test_seen", "test_heldout")
        probs = torch.softmax(predict(adapter, src, test), dim=1).numpy()
        true = labels[test]
        metrics = affordance_metrics(probs, true)
        split_of = np.array([dataset.records[i]["split"] for i in test])
        breakdown: dict[str, dict[str, float]] = {}
        for split in ("test_seen", "test_heldout"):
            sel = split_of == split
            for name, v in affordance_metrics(probs[sel], true[sel]).items():
                breakdown.setdefault(f"by_split:{name}", {})[split.removeprefix("test_")] = v
        breakdown["per_class"] = {k: v for k, v in metrics.items() if k not in self.metrics}
        intervals = {
            m: bootstrap_ci(np.arange(len(test)), lambda b, m=m: PRIMARY[m](probs[b], true[b]), n=300)
            for m in self.metrics
        }
        ctx.out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(ctx.out / "predictions.npz", index=test, probs=probs.astype(np.float16), labels=true)
        (ctx.out / "examples").mkdir(exist_ok=True)
        examples = []
        for k, j in enumerate(self._example_picks(split_of)):
            rel = f"examples/{k}-{split_of[j].removeprefix('test_')}-{int(test[j])}.png"
            example_png(ctx.out / rel, np.asarray(images[test[j]]), true[j], probs[j, GRASPABLE])
            examples.append(rel)
        extra = {
            "encoder_identity": backbone_identity(encoder, backbone),
            "language": TEXT if language else None,
            "mode": "multimodal" if language else "visual",
            "label_grid": grid,
        }
        return CellResult(
            {m: metrics[m] for m in self.metrics},
            intervals=intervals,
            breakdown=breakdown,
            instances=len(test),
            curves={"train_loss": losses},
            examples=examples,
            extra=extra,
        )

    @staticmethod
    def _example_picks(split_of: np.ndarray) -> list[int]:
        seen, held = np.flatnonzero(split_of == "test_seen"), np.flatnonzero(split_of == "test_heldout")
        picks = [*seen[:2], *held[:1]]
        return [int(p) for p in picks] or list(range(min(3, len(split_of))))


register(AffordanceScenario())
