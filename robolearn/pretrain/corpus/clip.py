"""One clip: draw a plan for (seed, clip index, attempt), build the scene around it, simulate, render, check.

The scene is one of our household scenes with the robot taken out, the plan's objects (and drawer unit), the
floating hand and a camera drawn per clip, with the scene's lighting jittered. Everything is a pure function of
(seed, index, attempt), so a clip is the same whichever process makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import mujoco
import numpy as np

from robolearn.envs.scenes import RenderQuality, SceneParams, build_scene, look_at_quat, scene_params
from robolearn.envs.tasks.drawer import build_drawer_unit
from robolearn.pretrain.corpus.hand import HAND, add_hand, set_grasp, yaw_quat
from robolearn.pretrain.corpus.objects import MOVABLE, Obj, add_object, sample_object
from robolearn.pretrain.corpus.plans import REGION, Context, Plan, Reject, Track, round_dict
from robolearn.pretrain.corpus.render import ClipRenderer
from robolearn.pretrain.corpus.templates import TEMPLATES, USES_DRAWER, fill

SALT = 0xC0C0A
CAMERA = "corpus_cam"
PHYSICS_DT = 0.002
SETTLE_S = 0.3  # objects settle this long before the first frame
ASPECTS = (4 / 3, 16 / 9, 3 / 2)


@dataclass(frozen=True)
class CameraDraw:
    azimuth: float  # [rad] 0: looking along +x (from where the robot would stand)
    elevation: float
    distance: float
    fovy: float

    def dirs(self) -> tuple[np.ndarray, np.ndarray]:
        """(forward, right) on the table plane."""
        f = np.array([np.cos(self.azimuth), -np.sin(self.azimuth), 0.0])
        return f, np.array([-np.sin(self.azimuth), -np.cos(self.azimuth), 0.0])

    def position(self, focus: np.ndarray) -> np.ndarray:
        f, _ = self.dirs()
        ce, se = np.cos(self.elevation), np.sin(self.elevation)
        return focus + self.distance * np.r_[-f[:2] * ce, se]


@dataclass
class ClipResult:
    frames: list[np.ndarray]
    label: str
    template: str
    placeholders: list[str]
    outcome: dict
    info: dict


def strip_robot(spec: mujoco.MjSpec) -> None:
    """Remove the arm (and what refers to it) from a household scene spec."""
    for group in (spec.keys, spec.actuators, spec.equalities, spec.excludes, spec.tendons, spec.sensors):
        for el in list(group):
            spec.delete(el)
    spec.delete(spec.body("arm7_base"))
    spec.delete(spec.geom("pedestal"))


def _scene(rng: np.random.Generator, scene: tuple[int, int]) -> SceneParams:
    p = scene_params(*scene)
    light = np.asarray(p.light_pos) + rng.uniform(-0.4, 0.4, 3) * [1, 1, 0.3]
    return replace(
        p,
        light_pos=tuple(float(v) for v in light),
        light_diffuse=float(p.light_diffuse * rng.uniform(0.7, 1.25)),
        ambient=float(rng.uniform(0.12, 0.4)),
        cameras={},
    )


def draw_clip(
    seed: int, index: int, attempt: int, template: str, scenes: list[tuple[int, int]], size: int
) -> tuple[Plan, SceneParams, CameraDraw, tuple[int, int], np.random.Generator]:
    rng = np.random.default_rng([SALT, seed, index, attempt])
    scene = _scene(rng, scenes[int(rng.integers(len(scenes)))])
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    hw = (size, 2 * round(size * aspect / 2))
    span = 0.8 if template in USES_DRAWER else 1.1
    cam = CameraDraw(
        float(rng.uniform(-span, span)),
        float(rng.uniform(np.deg2rad(25), np.deg2rad(52))),
        float(rng.uniform(0.45, 0.7)),
        float(rng.uniform(45, 58)),
    )
    fwd, right = cam.dirs()
    ctx = Context(scene.table_z, right, fwd)
    for _ in range(200):  # layouts that do not fit are drawn again from the same stream
        try:
            plan = TEMPLATES[template](rng, ctx)
            break
        except Reject:
            continue
    else:
        raise RuntimeError(f"{template!r}: no layout fits after 200 draws")
    plan.extras = _bystanders(rng, plan, int(rng.integers(0, 3)))
    if not plan.focus.any():
        pts = [np.asarray(k.pos) for k in plan.keys[1:]] + [np.r_[o.xy, scene.table_z] for o in plan.objects]
        plan.focus = np.mean(pts, axis=0)
        plan.focus[2] = scene.table_z + 0.05
    plan.focus = plan.focus + rng.uniform(-0.03, 0.03, 3)
    return plan, scene, cam, hw, rng


def _bystanders(rng: np.random.Generator, plan: Plan, n: int) -> list[Obj]:
    """Up to n other objects on the table, clear of the hand's path and of the plan's objects."""
    busy = [np.asarray(k.pos[:2]) for k in plan.keys[1:]] + [np.asarray(o.xy) for o in plan.objects]
    if plan.drawer is not None:
        busy += [np.asarray(plan.drawer.pos) + [dx, dy] for dx in (-0.1, 0.0, 0.1, 0.2) for dy in (-0.1, 0.0, 0.1)]
    out: list[Obj] = []
    for i in range(n):
        obj = sample_object(rng, f"extra{i}", MOVABLE, str(rng.choice(["cube", "box", "book", "can", "mug"])))
        for _ in range(20):
            (x0, x1), (y0, y1) = REGION
            xy = np.array([rng.uniform(x0 - 0.04, x1 + 0.06), rng.uniform(y0 - 0.08, y1 + 0.08)])
            if all(np.linalg.norm(xy - b) > 0.13 for b in busy):
                out.append(replace(obj, xy=(float(xy[0]), float(xy[1])), yaw=float(rng.uniform(-np.pi, np.pi))))
                busy.append(xy)
                break
    return out


def build_model(plan: Plan, scene: SceneParams, cam: CameraDraw, hw: tuple[int, int]) -> mujoco.MjModel:
    spec = build_scene(scene, RenderQuality(max_width=hw[1], max_height=hw[0]))
    strip_robot(spec)
    for o in plan.objects + plan.extras:
        add_object(spec, o)
    if plan.drawer is not None:
        build_drawer_unit(spec, scene)
    add_hand(spec, plan.hand, [o.name for o in plan.objects])
    pos = cam.position(plan.focus)
    spec.worldbody.add_camera(name=CAMERA, pos=list(pos), quat=list(look_at_quat(pos, plan.focus)), fovy=cam.fovy)
    return spec.compile()


def _interp(plan: Plan, t: float) -> tuple[np.ndarray, np.ndarray]:
    keys = plan.keys
    if t >= keys[-1].t:
        k = keys[-1]
        return np.asarray(k.pos), yaw_quat(k.yaw)
    j = max(i for i, k in enumerate(keys) if k.t <= t)
    a, b = keys[j], keys[j + 1]
    s = (t - a.t) / max(b.t - a.t, 1e-9)
    s = s * s * (3 - 2 * s)  # ease in and out
    pos = np.asarray(a.pos) * (1 - s) + np.asarray(b.pos) * s
    dyaw = (b.yaw - a.yaw + np.pi) % (2 * np.pi) - np.pi
    return pos, yaw_quat(a.yaw + s * dyaw)


def _projector(model: mujoco.MjModel, data: mujoco.MjData, hw: tuple[int, int]):
    cid = model.camera(CAMERA).id
    cpos, cmat = data.cam_xpos[cid].copy(), data.cam_xmat[cid].reshape(3, 3).copy()
    f = hw[0] / 2 / np.tan(np.deg2rad(model.cam_fovy[cid]) / 2)

    def project(p: np.ndarray) -> np.ndarray:
        c = cmat.T @ (np.asarray(p, float) - cpos)  # camera frame: x right, y up, -z forward
        return np.array([hw[1] / 2 + f * c[0] / -c[2], hw[0] / 2 - f * c[1] / -c[2]])

    return project


def simulate(
    model: mujoco.MjModel, plan: Plan, scene: SceneParams, hw: tuple[int, int], frames: int, fps: int
) -> tuple[list[np.ndarray], Track]:
    substeps = max(1, round(1.0 / fps / PHYSICS_DT))
    model.opt.timestep = 1.0 / fps / substeps
    data = mujoco.MjData(model)
    for o in plan.objects + plan.extras:
        jnt = model.body(o.name).jntadr[0]
        adr = model.jnt_qposadr[jnt]
        data.qpos[adr : adr + 3] = [o.xy[0], o.xy[1], scene.table_z + o.half_height + 0.001]
        data.qpos[adr + 3 : adr + 7] = yaw_quat(o.yaw)
    drawer_q = None
    if plan.drawer is not None:
        model.body_pos[model.body("drawer_unit").id] = [*plan.drawer.pos, scene.table_z]
        drawer_q = model.jnt_qposadr[model.joint("drawer").id]
        data.qpos[drawer_q] = plan.drawer.opening
        model.dof_damping[model.jnt_dofadr[model.joint("drawer").id]] = 2.0  # a hand's pull, not a robot's
    mocap = model.body_mocapid[model.body(HAND).id]
    is_hand = model.geom_bodyid == model.body(HAND).id
    names = [o.name for o in plan.objects]
    body_of = {model.body(n).id: n for n in names}
    duration = (frames - 1) / fps

    def place_hand(t: float) -> None:
        p, q = _interp(plan, min(t / duration, 1.0) if duration > 0 else 1.0)
        data.mocap_pos[mocap], data.mocap_quat[mocap] = p, q

    place_hand(0.0)
    for _ in range(round(SETTLE_S / model.opt.timestep)):
        mujoco.mj_step(model, data)
    start = {n: data.xpos[model.body(n).id].copy() for n in names}
    drawer_start = float(data.qpos[drawer_q]) if drawer_q is not None else 0.0
    renderer = ClipRenderer(model, *hw, CAMERA)
    touched: set[str] = set()
    held: set[str] = set()
    next_key = 1
    out: list[np.ndarray] = []
    try:
        for i in range(frames):
            out.append(renderer.render(data))
            if i == frames - 1:
                break
            for s in range(substeps):
                t = (i + (s + 1) / substeps) / fps
                place_hand(t)
                while next_key < len(plan.keys) and plan.keys[next_key].t * duration <= t + 1e-9:
                    g = plan.keys[next_key].grasp
                    if g == "-":
                        for b in list(held):
                            set_grasp(model, data, b, False)
                        held.clear()
                    elif g:
                        mujoco.mj_forward(model, data)
                        set_grasp(model, data, g, True)
                        held.add(g)
                    next_key += 1
                mujoco.mj_step(model, data)
                if data.ncon:
                    pairs = data.contact.geom[: data.ncon]
                    hit = is_hand[pairs]
                    for other in pairs[hit[:, ::-1] & ~hit]:  # the non-hand geom of each hand contact
                        b = int(model.geom_bodyid[other])
                        if b in body_of:
                            touched.add(body_of[b])
    finally:
        renderer.close()
    track = Track(
        start=start,
        end={n: data.xpos[model.body(n).id].copy() for n in names},
        end_speed={n: float(np.linalg.norm(data.cvel[model.body(n).id][3:])) for n in names},
        end_quat={n: data.xquat[model.body(n).id].copy() for n in names},
        touched=touched,
        held=held,
        drawer_start=drawer_start,
        drawer_end=float(data.qpos[drawer_q]) if drawer_q is not None else 0.0,
        project=_projector(model, data, hw),
        width=hw[1],
    )
    return out, track


def make_clip(
    seed: int, index: int, attempt: int, template: str, scenes: list[tuple[int, int]], size: int, frames: int, fps: int
) -> ClipResult:
    plan, scene, cam, hw, _ = draw_clip(seed, index, attempt, template, scenes, size)
    model = build_model(plan, scene, cam, hw)
    imgs, track = simulate(model, plan, scene, hw, frames, fps)
    outcome = round_dict(plan.check(track))
    info = {
        "scene": f"h{scene.household:03d}_s{scene.scene:03d}",
        "height": hw[0],
        "width": hw[1],
        "camera": round_dict(
            {
                "azimuth_deg": np.rad2deg(cam.azimuth),
                "elevation_deg": np.rad2deg(cam.elevation),
                "distance_m": cam.distance,
                "fovy_deg": cam.fovy,
            }
        ),
        "objects": [f"{o.name}: {o.phrase()} ({o.shape})" for o in plan.objects] + (["drawer"] if plan.drawer else []),
        "bystanders": [o.phrase() for o in plan.extras],
    }
    return ClipResult(imgs, fill(template, plan.placeholders), template, plan.placeholders, outcome, info)
