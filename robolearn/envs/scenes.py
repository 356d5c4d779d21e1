"""Procedural household scenes, grouped like DROID's data: households (buildings) x scenes.

A scene is a pure function of (household, scene, seed): `scene_params()` draws every choice from a generator
seeded by those three integers, and `build_scene()` turns the parameters into an `mujoco.MjSpec` holding the
arm, a table, floor and walls with generated textures, lights, fixed distractor objects and three cameras
(`exterior_1` left of the robot, `exterior_2` right, `wrist` on the hand).

What a household fixes (its "building"): floor and wall materials, light colour. What a scene varies: table
height, size and material, light placement and strength, distractors and the exterior camera poses.

Frames: the world origin is the robot base; x points away from the robot over the table, z up. The table
surface sits at `table_z` (a few cm below/above the base: the arm stands on its own pedestal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from robolearn.envs import textures
from robolearn.envs.robot import arm_spec

# The default grid that ships: 5 households x 4 scenes (any other ids work too).
DEFAULT_HOUSEHOLDS = 5
DEFAULT_SCENES_PER_HOUSEHOLD = 4
_SALT = 0x5CE4E  # separates scene draws from other users of the same integers
EXTERIOR_CAMERAS = ("exterior_1", "exterior_2")
CAMERAS = (*EXTERIOR_CAMERAS, "wrist")
# Region of the table where tasks place fixtures and objects (x, y in the base frame); distractors stay out.
TASK_REGION = ((0.3, 0.62), (-0.3, 0.3))

Colour = tuple[float, float, float]


def default_scenes() -> list[tuple[int, int]]:
    """(household, scene) pairs of the default grid."""
    return [(h, s) for h in range(DEFAULT_HOUSEHOLDS) for s in range(DEFAULT_SCENES_PER_HOUSEHOLD)]


@dataclass(frozen=True)
class Material:
    kind: str  # textures.GENERATORS key
    colour_a: Colour
    colour_b: Colour
    repeat: tuple[float, float]
    tex_seed: int


@dataclass(frozen=True)
class CameraPose:
    pos: tuple[float, float, float]
    lookat: tuple[float, float, float]
    fovy: float


@dataclass(frozen=True)
class Distractor:
    shape: str  # box | cylinder | sphere
    size: tuple[float, float, float]
    pos: tuple[float, float, float]
    rgba: tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneParams:
    """Every choice that makes a scene; `scene_params(h, s, seed)` is the only way they are drawn."""

    household: int
    scene: int
    seed: int
    table_z: float  # table surface height in the base frame [m]
    table_x: tuple[float, float]  # near and far edge [m]
    table_half_y: float
    table_material: Material
    floor_material: Material
    wall_material: Material
    light_pos: tuple[float, float, float]
    light_diffuse: float
    light_colour: Colour
    ambient: float
    cameras: dict[str, CameraPose] = field(default_factory=dict)
    distractors: tuple[Distractor, ...] = ()

    @property
    def name(self) -> str:
        return f"h{self.household:03d}_s{self.scene:03d}" + (f"_v{self.seed}" if self.seed else "")


def _colour(rng: np.random.Generator, lo: float, hi: float, hue_bias: Colour = (1, 1, 1)) -> Colour:
    c = rng.uniform(lo, hi, 3) * np.asarray(hue_bias)
    return tuple(float(v) for v in np.clip(c, 0, 1))  # type: ignore[return-value]


def _household_style(household: int) -> dict:
    rng = np.random.default_rng([_SALT, household])
    warm = rng.uniform(0.0, 0.25)
    floor_kind = str(rng.choice(["tiles", "wood"]))
    return {
        "floor": Material(
            floor_kind, _colour(rng, 0.35, 0.85), _colour(rng, 0.15, 0.45), (6, 6), int(rng.integers(1 << 30))
        ),
        "wall": Material(
            "plaster", _colour(rng, 0.6, 0.95), _colour(rng, 0.4, 0.8), (3, 3), int(rng.integers(1 << 30))
        ),
        "light_colour": (1.0, 1.0 - warm * 0.4, 1.0 - warm),
    }


def scene_params(household: int, scene: int, seed: int = 0) -> SceneParams:
    """Draw a scene's parameters; deterministic in (household, scene, seed)."""
    for name, v in (("household", household), ("scene", scene), ("seed", seed)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"scene {name} must be a non-negative integer, got {v!r}")
    style = _household_style(int(household))
    rng = np.random.default_rng([_SALT, int(household), int(scene), int(seed)])
    table_z = float(rng.uniform(-0.06, 0.02))
    near = float(rng.uniform(0.16, 0.24))
    far = float(near + rng.uniform(0.6, 0.8))
    half_y = float(rng.uniform(0.5, 0.7))
    kind = str(rng.choice(["wood", "fabric", "plaster"]))
    table_mat = Material(kind, _colour(rng, 0.45, 0.95), _colour(rng, 0.2, 0.6), (2, 2), int(rng.integers(1 << 30)))
    centre = np.array([0.45, 0.0, table_z + 0.05])
    cams = {}
    for name, sign in zip(EXTERIOR_CAMERAS, (1.0, -1.0)):
        az = np.deg2rad(rng.uniform(40, 80)) * sign
        el = np.deg2rad(rng.uniform(22, 40))
        r = rng.uniform(1.0, 1.3)
        pos = centre + r * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
        look = centre + rng.uniform(-0.05, 0.05, 3)
        cams[name] = CameraPose(tuple(float(v) for v in pos), tuple(float(v) for v in look), float(rng.uniform(48, 62)))
    distractors = []
    for _ in range(int(rng.integers(1, 4))):
        shape = str(rng.choice(["box", "cylinder", "sphere"]))
        s = rng.uniform(0.025, 0.06, 3)
        size = (float(s[0]), float(s[1]), float(s[2])) if shape == "box" else (float(s[0]), float(s[2]), 0.0)
        height = s[2] if shape != "sphere" else s[0]
        side = rng.choice([-1.0, 1.0])
        # Beside the task region, on the left or right part of the table.
        x = rng.uniform(near + 0.1, far - 0.08)
        y = side * rng.uniform(TASK_REGION[1][1] + 0.12, half_y - 0.06)
        distractors.append(
            Distractor(shape, size, (float(x), float(y), float(table_z + height)), (*_colour(rng, 0.1, 0.95), 1.0))
        )
    return SceneParams(
        household=int(household),
        scene=int(scene),
        seed=int(seed),
        table_z=table_z,
        table_x=(near, far),
        table_half_y=half_y,
        table_material=table_mat,
        floor_material=style["floor"],
        wall_material=style["wall"],
        light_pos=(float(rng.uniform(0.0, 0.8)), float(rng.uniform(-0.8, 0.8)), float(rng.uniform(1.6, 2.4))),
        light_diffuse=float(rng.uniform(0.45, 0.8)),
        light_colour=style["light_colour"],
        ambient=float(rng.uniform(0.15, 0.35)),
        cameras=cams,
        distractors=tuple(distractors),
    )


def look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo camera quaternion (wxyz) looking from `pos` at `target`, image up roughly world z."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    mat = np.column_stack([right, up, -forward])  # camera looks along its -z, y up
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.ravel())
    return quat


def _add_material(spec: mujoco.MjSpec, name: str, mat: Material) -> str:
    rgb = textures.generate(mat.kind, mat.colour_a, mat.colour_b, np.random.default_rng(mat.tex_seed))
    tex = spec.add_texture(
        name=f"{name}_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, width=rgb.shape[1], height=rgb.shape[0], nchannel=3
    )
    tex.data = rgb.tobytes()
    m = spec.add_material(name=name, texrepeat=list(mat.repeat), texuniform=True)
    m.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    return name


@dataclass
class RenderQuality:
    """Offscreen render settings; both off by default (8-30x faster on software EGL)."""

    shadows: bool = False
    multisampling: bool = False
    max_width: int = 640
    max_height: int = 480
    slices: int = 16  # tessellation of capsules/cylinders/spheres (MuJoCo's default is 28)


def build_scene(params: SceneParams, quality: RenderQuality | None = None) -> mujoco.MjSpec:
    """MjSpec of the scene (arm + room + table + distractors + cameras); tasks add their objects to it."""
    q = quality or RenderQuality()
    spec = arm_spec()
    spec.modelname = f"robolearn_household_{params.name}"
    spec.visual.quality.shadowsize = 2048 if q.shadows else 0
    spec.visual.quality.offsamples = 4 if q.multisampling else 0
    # Coarser tessellation of round primitives and one quad per box face: ~2x faster software rendering,
    # no visible difference at training image sizes.
    spec.visual.quality.numslices = q.slices
    spec.visual.quality.numstacks = max(4, q.slices // 2)
    spec.visual.quality.numquads = 1
    spec.visual.global_.offwidth = max(q.max_width, 64)
    spec.visual.global_.offheight = max(q.max_height, 64)
    spec.visual.headlight.ambient = [params.ambient] * 3
    spec.visual.headlight.diffuse = [0.25] * 3
    spec.visual.headlight.specular = [0.0] * 3
    world = spec.worldbody
    _add_material(spec, "table_mat", params.table_material)
    _add_material(spec, "floor_mat", params.floor_material)
    _add_material(spec, "wall_mat", params.wall_material)
    tz = params.table_z
    floor_z = tz - 0.75
    near, far = params.table_x
    world.add_light(
        name="main",
        pos=list(params.light_pos),
        dir=[0.2, 0.0, -1.0],
        castshadow=q.shadows,
        diffuse=[params.light_diffuse * c for c in params.light_colour],
        specular=[0.1] * 3,
    )
    world.add_light(
        name="fill",
        pos=[-0.6, 0.0, 1.5],
        dir=[0.6, 0.0, -1.0],
        castshadow=False,
        diffuse=[0.2 * c for c in params.light_colour],
        specular=[0.0] * 3,
    )
    # A plane's third size is its render grid spacing: a fine grid costs more than the rest of the scene.
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 1.0], pos=[0, 0, floor_z], material="floor_mat"
    )
    for name, pos, size in (
        ("wall_back", [far + 0.8, 0, floor_z + 1.4], [0.02, 3.0, 1.4]),
        ("wall_behind", [-1.2, 0, floor_z + 1.4], [0.02, 3.0, 1.4]),
        ("wall_left", [0.3, 2.2, floor_z + 1.4], [3.0, 0.02, 1.4]),
        ("wall_right", [0.3, -2.2, floor_z + 1.4], [3.0, 0.02, 1.4]),
    ):
        world.add_geom(
            name=name, type=mujoco.mjtGeom.mjGEOM_BOX, size=size, pos=pos, material="wall_mat", contype=0, conaffinity=0
        )
    # Table: top slab + four legs (legs are visual only).
    cx, hx = (near + far) / 2, (far - near) / 2
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[hx, params.table_half_y, 0.02],
        pos=[cx, 0, tz - 0.02],
        material="table_mat",
        friction=[1.0, 0.01, 0.001],
    )
    for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        world.add_geom(
            name=f"table_leg{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.025, 0.025, 0.365],
            pos=[cx + sx * (hx - 0.04), sy * (params.table_half_y - 0.04), tz - 0.405],
            rgba=[0.2, 0.2, 0.2, 1],
            contype=0,
            conaffinity=0,
        )
    # The arm's pedestal from the floor to its base.
    world.add_geom(
        name="pedestal",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.09, (0 - floor_z) / 2],
        pos=[0, 0, floor_z / 2],
        rgba=[0.3, 0.3, 0.33, 1],
        contype=0,
        conaffinity=0,
    )
    for i, d in enumerate(params.distractors):
        gtype = {
            "box": mujoco.mjtGeom.mjGEOM_BOX,
            "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
            "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
        }[d.shape]
        world.add_geom(name=f"distractor{i}", type=gtype, size=list(d.size), pos=list(d.pos), rgba=list(d.rgba))
    for name, cam in params.cameras.items():
        world.add_camera(
            name=name,
            pos=list(cam.pos),
            quat=list(look_at_quat(np.array(cam.pos), np.array(cam.lookat))),
            fovy=cam.fovy,
        )
    return spec
