"""Referring-expression grounding (Voltron's OCID-Ref problem) on our MuJoCo household table.

Data: scenes of 3-8 primitive objects (cube, ball, can, mug, bowl; red, green, blue, yellow, purple; small or
large) on the table of a household scene (robolearn.envs.scenes: its room, table, textures and lights; its
fixed distractors are left out so that every visible object can be referred to). The view is the scene's
exterior_1 or exterior_2 camera pose, re-aimed at the task region with a narrower field of view (jittered per
instance) so the objects are not a few pixels. Objects share shapes and colours on purpose, and each scene yields
several expressions naming different objects, so the image alone never determines the answer. Expressions
come from a small grammar, stored as text and re-parsed for the uniqueness check (`parse_expression`,
`evaluate`): attribute ("the small red cube"), relation ("the cube left of the bowl", "the ball behind the
can", "the object nearest the camera") or both ("the small red mug left of the bowl"). Relations are in the
camera's frame (left/right: image sides; behind/in front of: farther from/nearer to the camera) and must hold by
a margin, with every other candidate clearly failing, so exactly one object matches. The label is the referred
object's tight box from MuJoCo's segmentation render (normalised xyxy). Seen households (0-3) give train, val
and test_seen; household 4 is never trained on and gives test_heldout.

Adapter: MAP with one latent over the encoder's tokens (V-* encoders get the expression in "multimodal" mode),
concatenated with the frozen LM's mean-pooled embedding of the expression (for every encoder, so R-MVP and
scratch-cnn can solve the task and the comparison stays fair), then an MLP 256/128/64 with GELU to a normalised
(cx, cy, w, h) box, Huber loss. Metrics: accuracy at IoU >= 0.5 (primary), at IoU >= 0.25 (Voltron's), mean
IoU; broken down by split, expression type, clutter and touching. The module is longer than ~600 lines because
generation, the grammar and the cell belong together and are read together.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.suite.adapt import Budget, fit, predict
from robolearn.suite.dataset import SuiteDataset, write_dataset
from robolearn.suite.encoders import EncoderSpec, TokenSource, backbone_identity
from robolearn.suite.metrics import bootstrap_ci, box_iou
from robolearn.suite.scenario import CellContext, CellResult, Scenario, register

SHAPES = ("cube", "ball", "can", "mug", "bowl")
COLOURS = {
    "red": (0.85, 0.12, 0.1),
    "green": (0.12, 0.62, 0.18),
    "blue": (0.12, 0.25, 0.9),
    "yellow": (0.95, 0.82, 0.1),
    "purple": (0.55, 0.15, 0.7),
}
SCALES = {"small": 1.0, "large": 1.55}
RELATIONS = ("left of", "right of", "behind", "in front of")
SUPERLATIVES = ("nearest the camera", "farthest from the camera")
EXPRESSION_TYPES = ("attribute", "relation", "both")
LATERAL_MARGIN, DEPTH_MARGIN = 0.03, 0.04  # metres a relation must hold by (camera frame)
TOUCH_DIST = 0.004  # objects closer than this touch
MAX_OBJECTS = 8
REGION = ((0.32, 0.6), (-0.26, 0.26))  # x, y of the table area objects stand in (inside scenes.TASK_REGION)
_PARK = 40.0  # unused pool objects wait far behind the walls
_SALT = 0x2EFE2


def clutter_bin(n: int) -> str:
    return "3-4" if n <= 4 else ("5-6" if n <= 6 else "7-8")


# ---------------------------------------------------------------------------------------------- the grammar
Desc = tuple[str | None, str | None, str | None]  # (size, colour, shape); None = unspecified


def noun_phrase(desc: Desc) -> str:
    size, colour, shape = desc
    return " ".join(w for w in ("the", size, colour, shape or "object") if w)


def phrase(expr: dict[str, Any]) -> str:
    """The text of an expression {"desc": Desc, "rel": None | relation | superlative, "landmark": Desc}."""
    text = noun_phrase(expr["desc"])
    if expr.get("rel") in SUPERLATIVES:
        return f"{text} {expr['rel']}"
    if expr.get("rel"):
        return f"{text} {expr['rel']} {noun_phrase(expr['landmark'])}"
    return text


def _parse_np(words: list[str], text: str) -> Desc:
    if not words or words[0] != "the" or len(words) < 2:
        raise ValueError(f"not a referring expression: {text!r}")
    *mods, noun = words[1:]
    if noun not in (*SHAPES, "object"):
        raise ValueError(f"unknown noun {noun!r} in {text!r}")
    size = colour = None
    for w in mods:
        if w in SCALES and size is None and colour is None:
            size = w
        elif w in COLOURS and colour is None:
            colour = w
        else:
            raise ValueError(f"unexpected word {w!r} in {text!r}")
    return size, colour, None if noun == "object" else noun


def parse_expression(text: str) -> dict[str, Any]:
    """The structure of an expression of this grammar (the inverse of `phrase`); ValueError otherwise."""
    t = " ".join(text.lower().split())
    for sup in SUPERLATIVES:
        if t.endswith(" " + sup):
            return {"desc": _parse_np(t[: -len(sup)].split(), text), "rel": sup, "landmark": None}
    for rel in RELATIONS:
        m = re.fullmatch(rf"(.+?) {rel} (the .+)", t)
        if m:
            return {"desc": _parse_np(m[1].split(), text), "rel": rel, "landmark": _parse_np(m[2].split(), text)}
    return {"desc": _parse_np(t.split(), text), "rel": None, "landmark": None}


def matches(desc: Desc, fact: dict[str, Any]) -> bool:
    return all(v is None or fact[k] == v for k, v in zip(("size", "colour", "shape"), desc))


def relation_value(rel: str, a: dict[str, Any], b: dict[str, Any]) -> float:
    """How far (m) `a` is `rel` `b` in the camera frame; the relation holds when this exceeds its margin."""
    return {
        "left of": b["cx"] - a["cx"],
        "right of": a["cx"] - b["cx"],
        "behind": a["depth"] - b["depth"],
        "in front of": b["depth"] - a["depth"],
    }[rel]


def evaluate(expr: dict[str, Any], facts: list[dict[str, Any]]) -> tuple[list[int], bool]:
    """(objects the expression may pick, whether the pick is clear). It refers to exactly one object when the
    list has one entry and the pick is clear: relations hold by their margin for it and for no other candidate
    even slightly (the value is <= 0 for the others), superlatives win by the margin, landmarks are unique."""
    cands = [i for i, f in enumerate(facts) if matches(expr["desc"], f)]
    rel = expr.get("rel")
    if rel is None:
        return cands, True
    if rel in SUPERLATIVES:
        sign = 1.0 if rel == "nearest the camera" else -1.0
        order = sorted(cands, key=lambda i: sign * facts[i]["depth"])
        if len(order) < 2:
            return order, True
        gap = sign * (facts[order[1]]["depth"] - facts[order[0]]["depth"])
        return order[:1], gap > DEPTH_MARGIN
    land, _ = evaluate({"desc": expr["landmark"]}, facts)
    if len(land) != 1:
        return [], False
    margin = LATERAL_MARGIN if rel in ("left of", "right of") else DEPTH_MARGIN
    values = {i: relation_value(rel, facts[i], facts[land[0]]) for i in cands if i != land[0]}
    picks = [i for i, v in values.items() if v > 0]
    return picks, len(picks) == 1 and values[picks[0]] > margin


def _unique(expr: dict[str, Any], facts: list[dict[str, Any]], target: int) -> bool:
    picks, clear = evaluate(expr, facts)
    return clear and picks == [target]


def unique_desc(i: int, facts: list[dict[str, Any]]) -> Desc | None:
    """The shortest attribute description that matches object `i` only."""
    f = facts[i]
    for desc in (
        (None, None, f["shape"]),
        (None, f["colour"], None),
        (None, f["colour"], f["shape"]),
        (f["size"], None, f["shape"]),
        (f["size"], f["colour"], f["shape"]),
    ):
        if sum(matches(desc, g) for g in facts) == 1:
            return desc
    return None


def candidate_expressions(facts: list[dict[str, Any]]) -> list[tuple[int, str, dict[str, Any]]]:
    """Every (target, type, expression) of the grammar that refers to exactly one object of the scene."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    landmarks = {j: d for j in range(len(facts)) if (d := unique_desc(j, facts)) is not None}
    for t, f in enumerate(facts):
        d = unique_desc(t, facts)
        if d is not None:
            out.append((t, "attribute", {"desc": d, "rel": None, "landmark": None}))
        bases: list[tuple[str, Desc]] = [("relation", (None, None, f["shape"])), ("relation", (None, None, None))]
        bases += [
            ("both", (None, f["colour"], f["shape"])),
            ("both", (f["size"], None, f["shape"])),
            ("both", (f["size"], f["colour"], f["shape"])),
            ("both", (None, f["colour"], None)),
        ]
        for kind, base in bases:
            group = [i for i, g in enumerate(facts) if matches(base, g)]
            if len(group) < 2:
                continue  # the attributes alone already name it: no relation needed
            for sup in SUPERLATIVES:
                e = {"desc": base, "rel": sup, "landmark": None}
                if _unique(e, facts, t):
                    out.append((t, kind, e))
            if base == (None, None, None):
                continue  # "the object left of the bowl" is allowed only as a superlative
            for rel in RELATIONS:
                for j, ld in landmarks.items():
                    if j in group:
                        continue
                    e = {"desc": base, "rel": rel, "landmark": ld}
                    if _unique(e, facts, t):
                        out.append((t, kind, e))
    return out


def choose_expressions(
    cands: list[tuple[int, str, dict[str, Any]]], k: int, rng: np.random.Generator, first_type: int = 0
) -> list[tuple[int, str, dict[str, Any]]]:
    """Up to `k` expressions naming different objects, cycling through the expression types (attribute
    expressions that need a modifier are preferred to a bare shape)."""
    chosen: list[tuple[int, str, dict[str, Any]]] = []
    used: set[int] = set()
    types = [EXPRESSION_TYPES[(first_type + i) % 3] for i in range(3)]
    for slot in range(k):
        for kind in types[slot % 3 :] + types[: slot % 3]:
            pool = [c for c in cands if c[1] == kind and c[0] not in used]
            rich = [c for c in pool if c[1] != "attribute" or c[2]["desc"][:2] != (None, None)]
            pool = rich or pool
            if pool:
                pick = pool[int(rng.integers(len(pool)))]
                chosen.append(pick)
                used.add(pick[0])
                break
    return chosen


# ---------------------------------------------------------------------------------------------- objects
def footprint(shape: str, size: str) -> float:
    """Radius (m) of a circle around the object's footprint (mug handle and tilted bowl rim included)."""
    return {"cube": 0.0312, "ball": 0.024, "can": 0.02, "mug": 0.035, "bowl": 0.043}[shape] * SCALES[size]


def _add_object(body: mujoco.MjsBody, shape: str, s: float) -> None:
    """Geoms of one object in its body frame (origin on the table under its centre), at scale `s`."""
    g = mujoco.mjtGeom
    kw = {"contype": 0, "conaffinity": 0, "rgba": [0.5, 0.5, 0.5, 1]}
    if shape == "cube":
        body.add_geom(type=g.mjGEOM_BOX, size=[0.022 * s] * 3, pos=[0, 0, 0.022 * s], **kw)
    elif shape == "ball":
        body.add_geom(type=g.mjGEOM_SPHERE, size=[0.024 * s, 0, 0], pos=[0, 0, 0.024 * s], **kw)
    elif shape == "can":
        body.add_geom(type=g.mjGEOM_CYLINDER, size=[0.02 * s, 0.038 * s, 0], pos=[0, 0, 0.038 * s], **kw)
    elif shape == "mug":
        body.add_geom(type=g.mjGEOM_CYLINDER, size=[0.024 * s, 0.03 * s, 0], pos=[0, 0, 0.03 * s], **kw)
        body.add_geom(type=g.mjGEOM_BOX, size=[0.005 * s, 0.004 * s, 0.017 * s], pos=[0.029 * s, 0, 0.03 * s], **kw)
    elif shape == "bowl":
        body.add_geom(type=g.mjGEOM_CYLINDER, size=[0.026 * s, 0.004 * s, 0], pos=[0, 0, 0.004 * s], **kw)
        for k in range(12):
            a = 2 * math.pi * k / 12
            quat = np.zeros(4)
            mujoco.mju_euler2Quat(quat, [-0.35, 0.0, a + math.pi / 2], "xyz")  # tangential, rim leaning out
            body.add_geom(
                type=g.mjGEOM_BOX,
                size=[0.0105 * s, 0.0025 * s, 0.016 * s],
                quat=list(quat),
                pos=[0.035 * s * math.cos(a), 0.035 * s * math.sin(a), 0.019 * s],
                **kw,
            )
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _camera_basis(pos: np.ndarray, lookat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image-right, horizontal forward) unit vectors of a camera at `pos` looking at `lookat`."""
    fwd = np.asarray(lookat, float) - np.asarray(pos, float)
    fwd_h = np.array([fwd[0], fwd[1], 0.0]) / np.linalg.norm(fwd[:2])
    right = np.cross(fwd_h, [0.0, 0.0, 1.0])
    return right / np.linalg.norm(right), fwd_h


class SceneModel:
    """One household scene compiled once with a pool of every (shape, size) object, 8 of each, parked out of
    sight; a layout moves pool objects onto the table and recolours them (cheap: no recompile, one renderer)."""

    def __init__(self, household: int, scene: int, image_size: int) -> None:
        import dataclasses

        from robolearn.envs.interface import new_renderer
        from robolearn.envs.robot import HOME_QPOS
        from robolearn.envs.scenes import RenderQuality, build_scene, look_at_quat, scene_params

        self.params = dataclasses.replace(scene_params(household, scene), distractors=())
        spec = build_scene(self.params, RenderQuality(max_width=image_size, max_height=image_size))
        spec.worldbody.add_camera(name="refer", pos=[0, 0, 1], quat=[1, 0, 0, 0], fovy=40)
        names: dict[tuple[str, str], list[str]] = {}
        for shape in SHAPES:
            for size, s in SCALES.items():
                names[(shape, size)] = [f"refer_{shape}_{size}_{k}" for k in range(MAX_OBJECTS)]
                for k, name in enumerate(names[(shape, size)]):
                    _add_object(spec.worldbody.add_body(name=name, pos=[_PARK, k, 0]), shape, s)
        self.model = spec.compile()
        self.slots = {key: [self.model.body(n).id for n in ns] for key, ns in names.items()}
        self.pool = [b for ids in self.slots.values() for b in ids]
        self._pool_geoms = np.isin(self.model.geom_bodyid, self.pool)
        self.data = mujoco.MjData(self.model)
        self.data.qpos[:7] = HOME_QPOS
        self.cam = self.model.camera("refer").id
        self.renderer = new_renderer(self.model, image_size, image_size)
        self.size, self._look_at = image_size, look_at_quat

    def place(self, objects: list[dict[str, Any]], cam_pos: np.ndarray, lookat: np.ndarray, fovy: float) -> list[int]:
        """Put `objects` ({shape, size, colour, x, y, yaw}) on the table; returns their body ids."""
        m = self.model
        m.body_pos[self.pool] = [[_PARK, k, 0] for k in range(len(self.pool))]
        m.geom_rgba[self._pool_geoms] = 0.0  # alpha 0: not drawn at all (3x faster renders)
        taken: dict[tuple[str, str], int] = {}
        bodies = []
        for o in objects:
            key = (o["shape"], o["size"])
            b = self.slots[key][taken.get(key, 0)]
            taken[key] = taken.get(key, 0) + 1
            m.body_pos[b] = [o["x"], o["y"], self.params.table_z]
            m.body_quat[b] = [math.cos(o["yaw"] / 2), 0, 0, math.sin(o["yaw"] / 2)]
            m.geom_rgba[m.geom_bodyid == b] = [*COLOURS[o["colour"]], 1.0]
            bodies.append(b)
        m.cam_pos[self.cam] = cam_pos
        m.cam_quat[self.cam] = self._look_at(cam_pos, lookat)
        m.cam_fovy[self.cam] = fovy
        mujoco.mj_kinematics(m, self.data)
        mujoco.mj_camlight(m, self.data)
        return bodies

    def distance(self, a: int, b: int) -> float:
        """Smallest distance between the geoms of bodies `a` and `b` (negative: they interpenetrate)."""
        m, d = self.model, self.data
        ga, gb = np.flatnonzero(m.geom_bodyid == a), np.flatnonzero(m.geom_bodyid == b)
        return min(mujoco.mj_geomDistance(m, d, int(i), int(j), 0.05, None) for i in ga for j in gb)

    def render(self, segmentation: bool = False) -> np.ndarray:
        r = self.renderer
        if segmentation:
            r.enable_segmentation_rendering()
        r.update_scene(self.data, camera=self.cam)
        out = r.render().copy()
        if segmentation:
            r.disable_segmentation_rendering()
        return out

    def body_masks(self, bodies: list[int]) -> np.ndarray:
        """[len(bodies), H, W] bool: each body's visible pixels."""
        seg = self.render(segmentation=True)
        geom = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        body_of = np.append(self.model.geom_bodyid, -1)[geom]  # geom -1 -> body -1
        return np.stack([body_of == b for b in bodies])

    def close(self) -> None:
        self.renderer.close()


def _box(mask: np.ndarray) -> list[float]:
    """Tight normalised xyxy box of a pixel mask (pixel edges: a one-pixel mask is 1/W wide)."""
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return [float(xs.min() / w), float(ys.min() / h), float((xs.max() + 1) / w), float((ys.max() + 1) / h)]


def sample_objects(rng: np.random.Generator, n: int, touching: bool) -> list[dict[str, Any]] | None:
    """Attributes and footprint positions of `n` objects drawn from a few shapes and colours (so they share
    attributes); with `touching`, some are put right beside another. None when the table is too full."""
    shapes = list(rng.choice(SHAPES, size=int(rng.integers(2, 4)), replace=False))
    colours = list(rng.choice(list(COLOURS), size=int(rng.integers(2, 4)), replace=False))
    objs: list[dict[str, Any]] = []
    (x0, x1), (y0, y1) = REGION
    for _ in range(n):
        o = {
            "shape": str(rng.choice(shapes)),
            "colour": str(rng.choice(colours)),
            "size": str(rng.choice(list(SCALES))),
            "yaw": float(rng.uniform(-math.pi, math.pi)),
            "near": None,
        }
        r = footprint(o["shape"], o["size"])
        for _ in range(200):
            if touching and objs and rng.random() < 0.6:
                j = int(rng.integers(len(objs)))
                a, dist = rng.uniform(0, 2 * math.pi), r + objs[j]["r"]
                x, y = objs[j]["x"] + dist * math.cos(a), objs[j]["y"] + dist * math.sin(a)
                near = j
            else:
                x, y, near = rng.uniform(x0 + r, x1 - r), rng.uniform(y0 + r, y1 - r), None
            inside = x0 <= x <= x1 and y0 <= y <= y1
            gap = [math.hypot(x - p["x"], y - p["y"]) - r - p["r"] for k, p in enumerate(objs)]
            if inside and all(g >= (-1e-9 if k == near else 0.012) for k, g in enumerate(gap)):
                o.update(x=float(x), y=float(y), r=r, near=near)
                objs.append(o)
                break
        else:
            return None
    return objs


def render_scene(model: SceneModel, rng: np.random.Generator, n: int, touching: bool) -> dict[str, Any] | None:
    """One layout rendered: image, per-object facts (attributes, camera-frame position, tight box, visible
    fraction, touching). None when it fails a check (crowded table, an object hidden by more than half)."""
    objs = sample_objects(rng, n, touching)
    if objs is None:
        return None
    p = model.params
    camera = str(rng.choice(["exterior_1", "exterior_2"]))
    pose = p.cameras[camera]
    lookat = np.array([np.mean(REGION[0]), 0.0, p.table_z + 0.02]) + rng.uniform(-0.03, 0.03, 3)
    cam_pos = lookat + (np.asarray(pose.pos) - lookat) * rng.uniform(0.92, 1.08)
    dist = float(np.linalg.norm(cam_pos - lookat))
    fovy = float(np.clip(np.degrees(2 * math.atan(0.3 / dist)), 22, 60))
    bodies = model.place(objs, cam_pos, lookat, fovy)
    m = model.model
    for i, o in enumerate(objs):  # slide objects placed beside a neighbour until they touch it
        j = o["near"]
        if j is None:
            continue
        u = np.array([objs[j]["x"] - o["x"], objs[j]["y"] - o["y"]])
        u /= max(np.linalg.norm(u), 1e-9)
        for _ in range(4):
            d = model.distance(bodies[i], bodies[j])
            if d <= 0.001:
                break
            m.body_pos[bodies[i], :2] += u * (d - 0.0005)
            mujoco.mj_kinematics(m, model.data)
        o["x"], o["y"] = (float(v) for v in m.body_pos[bodies[i], :2])
    dists = {(i, j): model.distance(bodies[i], bodies[j]) for i in range(n) for j in range(i + 1, n)}
    if min(dists.values(), default=1.0) < -0.002:
        return None
    full = model.body_masks(bodies)
    right, fwd = _camera_basis(cam_pos, lookat)
    facts = []
    for i, o in enumerate(objs):
        others = np.isin(m.geom_bodyid, [b for k, b in enumerate(bodies) if k != i])
        saved = m.geom_rgba[others, 3].copy()
        m.geom_rgba[others, 3] = 0.0  # hide the other objects: how much of this one is there to see
        alone = int(model.body_masks([bodies[i]])[0].sum())
        m.geom_rgba[others, 3] = saved
        seen = int(full[i].sum())
        if alone == 0 or seen < max(6, alone // 2):
            return None
        centre = model.data.xpos[bodies[i]] + [0, 0, 0.02 * SCALES[o["size"]]]
        touch = [k for k in range(n) if k != i and dists[(min(i, k), max(i, k))] < TOUCH_DIST]
        facts.append(
            {
                "shape": o["shape"],
                "colour": o["colour"],
                "size": o["size"],
                "x": o["x"],
                "y": o["y"],
                "yaw": o["yaw"],
                "cx": float((centre - cam_pos) @ right),
                "depth": float((centre - cam_pos) @ fwd),
                "box": _box(full[i]),
                "pixels": seen,
                "visible": round(seen / alone, 4),
                "touching": touch,
            }
        )
    image = model.render()
    view = {"pos": [float(v) for v in cam_pos], "lookat": [float(v) for v in lookat], "fovy": fovy}
    return {
        "image": image,
        "facts": facts,
        "camera": camera,
        "view": view,
        "touching": any(f["touching"] for f in facts),
    }


# ---------------------------------------------------------------------------------------------- generation
def _scene_rng(config: dict[str, Any], split: str, index: int, attempt: int) -> np.random.Generator:
    tag = int(hashlib.sha256(split.encode()).hexdigest()[:8], 16)
    return np.random.default_rng([_SALT, int(config["seed"]), tag, index, attempt])


def _scene_choice(config: dict[str, Any], split: str, index: int) -> tuple[int, int]:
    held = config["heldout_households"]
    pool = [h for h in range(config["households"]) if (h in held) == (split == "test_heldout")]
    rng = _scene_rng(config, split, index, 1000)
    return int(rng.choice(pool)), int(rng.integers(config["scenes_per_household"]))


_MODELS: dict[tuple[int, int, int], SceneModel] = {}  # per process: compiled scenes with their renderer


def generate_scene(config: dict[str, Any], split: str, index: int) -> list[dict[str, Any]]:
    """The instances (image, expression, box, record) of scene `index` of `split`; deterministic."""
    h, s = _scene_choice(config, split, index)
    key = (h, s, config["image_size"])
    if key not in _MODELS:
        _MODELS[key] = SceneModel(h, s, config["image_size"])
    lo, hi = config["objects"]
    for attempt in range(100):  # attempt 1000 draws the scene (_scene_choice)
        rng = _scene_rng(config, split, index, attempt)
        n = int(rng.integers(lo, hi + 1))
        out = render_scene(_MODELS[key], rng, n, touching=bool(rng.random() < config["touching_fraction"]))
        if out is None:
            continue
        chosen = choose_expressions(
            candidate_expressions(out["facts"]), config["expressions_per_scene"], rng, first_type=index % 3
        )
        if len(chosen) < min(2, config["expressions_per_scene"]):
            continue
        instances = []
        for target, kind, expr in chosen:
            text = phrase(expr)
            picks, clear = evaluate(parse_expression(text), out["facts"])
            if not clear or picks != [target]:
                raise RuntimeError(f"generated expression {text!r} does not name object {target} alone: {picks}")
            record = {
                "split": split,
                "household": h,
                "scene": s,
                "scene_name": f"h{h:03d}_s{s:03d}",
                "scene_id": f"{split}-{index}",
                "camera": out["camera"],
                "view": out["view"],
                "expression": text,
                "expression_type": kind,
                "relation": expr["rel"],
                "target": target,
                "objects": out["facts"],
                "n_objects": len(out["facts"]),
                "clutter": clutter_bin(len(out["facts"])),
                "touching": out["touching"],
                "target_touching": bool(out["facts"][target]["touching"]),
                "box": out["facts"][target]["box"],
            }
            instances.append({"image": out["image"], "record": record})
        return instances
    raise RuntimeError(f"refer: no valid layout for scene {split}-{index} in 100 attempts")


def _generate_chunk(args: tuple[dict[str, Any], list[tuple[str, int]]]) -> dict[tuple[str, int], list[dict]]:
    config, jobs = args
    return {(split, i): generate_scene(config, split, i) for split, i in jobs}


def close_models() -> None:
    """Release this process's compiled scenes and their renderers."""
    for model in _MODELS.values():
        model.close()
    _MODELS.clear()


# ---------------------------------------------------------------------------------------------- the adapter
def text_embeddings(language_model: str, texts: list[str], cache_dir: Path | None = None) -> torch.Tensor:
    """[N, L] float32: the frozen LM's mask-weighted mean of its last hidden states for each text (cached per
    LM and text list)."""
    from robolearn.encoders import LanguageModel

    lm = LanguageModel(language_model, max_len=24)
    ident = lm.identity()
    key = json.dumps({"lm": ident.get("sha256") or language_model, "texts": texts}, sort_keys=True)
    path = cache_dir / f"refer-text-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy" if cache_dir else None
    if path is not None and path.is_file():
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError):
            path.unlink(missing_ok=True)
    uniq = sorted(set(texts))
    rows = dict(zip(uniq, lm.mean_pooled(uniq)))
    out = torch.stack([rows[t] for t in texts]).float() if texts else torch.zeros(0, 1)
    if path is not None:
        from robolearn.utils import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, out.numpy(), allow_pickle=False)
    return out


class TextTokens:
    """A TokenSource that also hands out each instance's expression embedding: (tokens, text) per batch."""

    def __init__(self, source: TokenSource, text: torch.Tensor) -> None:
        self.source, self.text = source, text

    def parameters(self) -> list[nn.Parameter]:
        return self.source.parameters()

    def train(self, mode: bool = True) -> None:
        self.source.train(mode)

    def __call__(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.source(idx), self.text[torch.as_tensor(idx)]


class BoxAdapter(nn.Module):
    """MAP (one latent) over the tokens, concatenated with the expression embedding, then an MLP to a box:
    sigmoid (cx, cy, w, h) in image fractions, returned as xyxy."""

    def __init__(self, embed_dim: int, n_heads: int, text_dim: int) -> None:
        super().__init__()
        from robolearn.encoders.map import MAPExtractor

        self.map = MAPExtractor(embed_dim, 2 * n_heads, n_latents=1)
        dims = [embed_dim + text_dim, 256, 128, 64]
        layers: list[nn.Module] = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.GELU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(dims[-1], 4))

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        tokens, text = inputs
        c = torch.sigmoid(self.mlp(torch.cat([self.map(tokens), text.to(tokens.dtype)], -1)))
        half = c[:, 2:] / 2
        return torch.cat([c[:, :2] - half, c[:, :2] + half], -1)


def box_loss(pred: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Huber loss on the normalised box corners (delta: 10% of the image side)."""
    return F.huber_loss(pred, batch["box"], delta=0.1)


def grounding_metrics(pred: np.ndarray, true: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """({acc_iou50, acc_iou25, mean_iou}, per-instance IoU) of paired xyxy boxes; a hit is IoU >= threshold."""
    iou = box_iou(pred, true) if len(true) else np.zeros(0)
    nan = float("nan")
    return {
        "acc_iou50": float(np.mean(iou >= 0.5)) if len(iou) else nan,
        "acc_iou25": float(np.mean(iou >= 0.25)) if len(iou) else nan,
        "mean_iou": float(iou.mean()) if len(iou) else nan,
    }, iou


def _draw_example(path: Path, image: np.ndarray, text: str, true: np.ndarray, pred: np.ndarray, iou: float) -> None:
    from PIL import Image, ImageDraw

    scale = max(1, 256 // image.shape[0])
    img = Image.fromarray(np.asarray(image)).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    w, h = img.size
    canvas = Image.new("RGB", (w, h + 30), (255, 255, 255))
    canvas.paste(img, (0, 30))
    draw = ImageDraw.Draw(canvas)
    for box, colour in ((true, (0, 200, 0)), (pred, (230, 0, 0))):
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1 * w, y1 * h + 30, x2 * w - 1, y2 * h + 29], outline=colour, width=2)
    draw.text((3, 2), text, fill=(0, 0, 0))
    draw.text((3, 15), f"green: true, red: predicted (IoU {iou:.2f})", fill=(90, 90, 90))
    canvas.save(path)


# ---------------------------------------------------------------------------------------------- the scenario
class ReferScenario(Scenario):
    name, family, version = "refer", "refer", 1
    description = "referring-expression grounding: the box of the object an expression names on a household table"
    metrics = {"acc_iou50": True, "acc_iou25": True, "mean_iou": True}
    uses_language = True
    default_budget = Budget(steps=300, batch_size=32, lr=1e-3)

    def data_config(self, size: str) -> dict[str, Any]:
        super().data_config(size)
        scenes = {"tiny": (120, 16, 32, 32), "small": (1200, 160, 320, 320), "full": (12000, 1600, 3200, 3200)}
        return {
            "size": size,
            "seed": 0,
            "scenes": dict(zip(("train", "val", "test_seen", "test_heldout"), scenes[size])),
            "expressions_per_scene": 3,
            "image_size": {"tiny": 64, "small": 128, "full": 224}[size],
            "objects": [3, 8],
            "touching_fraction": 0.4,
            "households": 5,
            "scenes_per_household": 4,
            "heldout_households": [4],
        }

    def budget(self, size: str) -> Budget:
        steps, batch = {"tiny": (300, 32), "small": (3000, 64), "full": (10000, 128)}.get(size, (300, 32))
        return Budget(steps=steps, batch_size=batch, lr=1e-3)

    def generate(self, out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
        jobs = [(split, i) for split, n in config["scenes"].items() for i in range(n)]
        groups: dict[tuple[int, int], list[tuple[str, int]]] = {}
        for job in jobs:  # one chunk per household scene (a worker compiles and renders each scene once)
            groups.setdefault(_scene_choice(config, *job), []).append(job)
        chunks = [(config, g[s : s + 16]) for g in groups.values() for s in range(0, len(g), 16)]
        done: dict[tuple[str, int], list[dict[str, Any]]] = {}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="refer scenes", unit="scene")
        try:
            if workers > 1:
                import multiprocessing as mp

                with mp.get_context("forkserver").Pool(workers) as pool:
                    for part in pool.imap_unordered(_generate_chunk, chunks):
                        done.update(part)
                        if bar is not None:
                            bar.update(len(part))
            else:
                for c in chunks:
                    part = _generate_chunk(c)
                    done.update(part)
                    if bar is not None:
                        bar.update(len(part))
        finally:
            close_models()
            if bar is not None:
                bar.close()
        insts = [x for job in jobs for x in done[job]]
        images = np.stack([x["image"] for x in insts]).astype(np.uint8)
        boxes = np.array([x["record"]["box"] for x in insts], dtype=np.float32)
        return write_dataset(
            out, self.name, self.version, config, {"images": images, "boxes": boxes}, [x["record"] for x in insts]
        )

    def run_cell(self, dataset: SuiteDataset, encoder: EncoderSpec, ctx: CellContext) -> CellResult:
        texts = [r["expression"] for r in dataset.records]
        backbone = encoder.build("multimodal")
        lang = texts if getattr(backbone, "uses_language", False) else None
        key = {
            "dataset": dataset.hash,
            "spec": encoder.spec,
            "mode": "multimodal",
            "lm": encoder.language_model,
            "image_size": encoder.image_size,
        }
        src = TokenSource(encoder, backbone, dataset.arrays["images"], lang, ctx.cache_dir, key)
        lm = encoder.resolved_language_model()
        source = TextTokens(src, text_embeddings(lm, texts, ctx.cache_dir))
        adapter = BoxAdapter(src.embed_dim, src.n_heads, source.text.shape[1])
        boxes = torch.tensor(np.array(dataset.arrays["boxes"]), dtype=torch.float32)
        losses = fit(adapter, source, {"box": boxes}, box_loss, dataset.split("train"), ctx.budget, ctx.seed)
        test = dataset.split("test_seen", "test_heldout")
        pred = predict(adapter, source, test).numpy().clip(0, 1)
        true = boxes[test].numpy()
        metrics, iou = grounding_metrics(pred, true)
        hits50 = int((iou >= 0.5).sum())
        from robolearn.eval.metrics import wilson_interval

        intervals = {
            "acc_iou50": wilson_interval(hits50, len(iou)),
            "acc_iou25": wilson_interval(int((iou >= 0.25).sum()), len(iou)),
            "mean_iou": bootstrap_ci(iou, seed=ctx.seed),
        }
        recs = [dataset.records[i] for i in test]
        breakdown: dict[str, dict[str, float]] = {}
        for name, field in (
            ("by_split", "split"),
            ("by_type", "expression_type"),
            ("by_clutter", "clutter"),
            ("by_touching", "touching"),
        ):
            groups: dict[str, list[float]] = {}
            for r, v in zip(recs, iou):
                groups.setdefault(str(r[field]), []).append(float(v))
            breakdown[f"acc_iou50_{name}"] = {k: float(np.mean(np.array(v) >= 0.5)) for k, v in sorted(groups.items())}
            breakdown[f"acc_iou25_{name}"] = {k: float(np.mean(np.array(v) >= 0.25)) for k, v in sorted(groups.items())}
        mean_box = boxes[dataset.split("train")].mean(0, keepdim=True).numpy()
        baseline, _ = grounding_metrics(np.repeat(mean_box, len(test), 0), true)
        np.savez_compressed(
            ctx.out / "predictions.npz",
            index=test,
            pred=pred,
            true=true,
            iou=iou,
            expression=np.array([r["expression"] for r in recs]),
        )
        examples = []
        (ctx.out / "examples").mkdir(parents=True, exist_ok=True)
        for k, j in enumerate(np.linspace(0, len(test) - 1, min(3, len(test))).astype(int)):
            rel = f"examples/example-{k}.png"
            _draw_example(
                ctx.out / rel, dataset.arrays["images"][test[j]], recs[j]["expression"], true[j], pred[j], float(iou[j])
            )
            examples.append(rel)
        return CellResult(
            metrics=metrics,
            intervals=intervals,
            breakdown=breakdown,
            instances=len(test),
            curves={"train_loss": losses},
            examples=examples,
            extra={
                "encoder_identity": backbone_identity(encoder, backbone),
                "mean_box_baseline": baseline,
                "language_in_backbone": lang is not None,
            },
        )


register(ReferScenario())
