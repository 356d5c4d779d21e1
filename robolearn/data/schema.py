"""The robolearn episode schema: one HDF5 file per episode.

This module is the single source of truth for the layout. The writer, reader, validator, repair tool,
catalog and loader all take field names, dtypes and shapes from here. `docs/format.md` documents every
field in prose; `tests/data/test_schema_doc.py` checks that the two agree.

Layout (T = number of steps):

    /                                root attrs: episode metadata (EPISODE_ATTRS)
    /observation/robot_state/<key>   (T, ...) proprioception (STATE_FIELDS)
    /action/<key>                    (T, ...) every commanded action form (ACTION_FIELDS); attr `commanded`
    /cameras/<name>/rgb/{data,index} JPEG/PNG bytes, flat uint8 + (T, 2) int64 [offset, length]
    /cameras/<name>/depth/{data,index}  optional uint16 millimetres as 16-bit PNG bytes
    /cameras/<name>/{capture_ns,receive_ns,dropped}  per-frame timestamps and dropped marker
    /timestamp/control/<phase>_ns    (T,) int64 control-loop timestamps (CONTROL_PHASES)
    /language/instructions           (K,) str; /language/active (T,) int16 index into it
    /is_first /is_last /is_terminal /reward /discount /intervention   (T,) step signals

Checksums (schema 1.1): every numeric dataset carries HDF5's fletcher32 filter (HDF5 verifies it on every
read), each byte stream has `crc32` (T,) uint32 with the CRC32 of each frame's bytes, and the root attribute
`content_crc32` is the CRC32 of every attribute in the file and of /language/instructions (HDF5 does not
checksum variable-length strings); robolearn.data.checksum computes them.

Absent streams (schema 1.2): a state field, an action form or a camera the source did not record is not
stored at all (no dataset, no camera group; never zero-filled) and is listed in the root attribute
`absent_streams`, a JSON object {stream key: reason}; the keys are OPTIONAL_STREAMS paths or
`cameras/<name>`. Readers and the loader refuse to serve an absent key, naming the file and the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT_NAME = "robolearn.episode"
SCHEMA_VERSION = "1.2"
SUPPORTED_VERSIONS = ("1.0", "1.1", "1.2")
CHECKSUM_VERSION = "1.1"  # first version whose files carry checksums (older ones validate with a note)
ABSENT_VERSION = "1.2"  # first version whose files may lack streams (listed in ABSENT_ATTR)
ABSENT_ATTR = "absent_streams"  # root attribute: JSON {stream key: reason the source did not record it}
CONTENT_CRC_ATTR = "content_crc32"  # root attribute: CRC32 of all attributes and string datasets
FRAME_CRC = "crc32"  # per byte stream: (T,) uint32 CRC32 of each frame's bytes (0 for an empty frame)
MAX_ATTR_BYTES = 1 << 20  # any one attribute larger than this is refused (the biggest real ones are a few KiB)
MAX_FRAME_BYTES = 64 << 20  # any one encoded frame larger than this is refused
EPISODE_SUFFIX = ".h5"
TMP_SUFFIX = ".h5.partial"  # name while an episode is being written; renamed atomically on close


@dataclass(frozen=True)
class Field:
    """A per-step dataset: `shape` excludes the leading time axis."""

    path: str
    dtype: str
    shape: tuple[int, ...]
    doc: str
    attrs: tuple[tuple[str, str], ...] = ()
    fill: float | int = 0
    range: tuple[float, float] | None = None  # documented value range (inclusive), checked by validate


RANGE_TOL = 1e-6  # slack on documented ranges (float round-off)


ARM_DOF = 7
STATE_GROUP = "observation/robot_state"
ACTION_GROUP = "action"

STATE_FIELDS: tuple[Field, ...] = (
    Field(f"{STATE_GROUP}/joint_positions", "f8", (ARM_DOF,), "Joint angles [rad].", (("units", "rad"),)),
    Field(f"{STATE_GROUP}/joint_velocities", "f8", (ARM_DOF,), "Joint velocities [rad/s].", (("units", "rad/s"),)),
    Field(
        f"{STATE_GROUP}/ee_position",
        "f8",
        (3,),
        "Tool-frame origin in the robot base frame [m].",
        (("units", "m"), ("frame", "robot_base"), ("child", "tool")),
    ),
    Field(
        f"{STATE_GROUP}/ee_quaternion",
        "f8",
        (4,),
        "Tool-frame orientation in the robot base frame, unit quaternion, scalar first.",
        (("convention", "quat_wxyz"), ("frame", "robot_base"), ("child", "tool")),
    ),
    Field(
        f"{STATE_GROUP}/gripper_position",
        "f8",
        (),
        "Gripper opening: 0 = fully open, 1 = fully closed.",
        (("units", "normalised"), ("convention", "0_open_1_closed")),
        range=(0.0, 1.0),
    ),
)

ACTION_FIELDS: tuple[Field, ...] = (
    Field(
        f"{ACTION_GROUP}/cartesian_velocity",
        "f8",
        (6,),
        "End-effector twist command in the base frame: linear xyz then angular xyz, each in [-1, 1] "
        "(scaled by the controller's max linear/angular speed).",
        (("units", "normalised"), ("frame", "robot_base"), ("convention", "linear_xyz_angular_xyz")),
        range=(-1.0, 1.0),
    ),
    Field(
        f"{ACTION_GROUP}/cartesian_position",
        "f8",
        (7,),
        "Absolute end-effector target in the base frame: xyz [m] then quaternion wxyz.",
        (("units", "m"), ("frame", "robot_base"), ("convention", "xyz_quat_wxyz")),
    ),
    Field(f"{ACTION_GROUP}/joint_position", "f8", (ARM_DOF,), "Joint position target [rad].", (("units", "rad"),)),
    Field(f"{ACTION_GROUP}/joint_velocity", "f8", (ARM_DOF,), "Joint velocity command [rad/s].", (("units", "rad/s"),)),
    Field(
        f"{ACTION_GROUP}/gripper_position",
        "f8",
        (),
        "Gripper target: 0 = open, 1 = closed.",
        (("units", "normalised"), ("convention", "0_open_1_closed")),
        range=(0.0, 1.0),
    ),
)
ACTION_SPACES = tuple(f.path.split("/")[-1] for f in ACTION_FIELDS if "gripper" not in f.path)

CONTROL_PHASES = ("step_start", "observe_end", "policy_end", "action_sent", "step_end")
CONTROL_FIELDS: tuple[Field, ...] = tuple(
    Field(
        f"timestamp/control/{p}_ns",
        "i8",
        (),
        f"Host monotonic clock at control-loop phase `{p}` [ns].",
        (("units", "ns"), ("clock", "host_monotonic")),
    )
    for p in CONTROL_PHASES
)

SIGNAL_FIELDS: tuple[Field, ...] = (
    Field("is_first", "b1", (), "True on the first step only."),
    Field("is_last", "b1", (), "True on the last step only (set when the episode is closed or salvaged)."),
    Field("is_terminal", "b1", (), "True where the episode ended in a terminal state (task success in sim)."),
    Field("reward", "f4", (), "Per-step reward (sparse: 1 on the success step by default)."),
    Field("discount", "f4", (), "Per-step discount, 1 by default.", fill=1.0),
    Field("intervention", "b1", (), "True where a human overrode the policy (rollouts / DAgger)."),
    Field("language/active", "i2", (), "Index into /language/instructions of the instruction active at this step."),
)

# Per-camera, per-step datasets (the image bytes themselves live in the ByteStream layout below).
CAMERA_STEP_FIELDS: tuple[Field, ...] = (
    Field(
        "capture_ns",
        "i8",
        (),
        "Camera (or driver) timestamp of exposure, host wall clock [ns]; 0 if dropped.",
        (("units", "ns"), ("clock", "host_wall")),
    ),
    Field(
        "receive_ns",
        "i8",
        (),
        "Host wall clock when the frame reached the recorder [ns]; 0 if dropped.",
        (("units", "ns"), ("clock", "host_wall")),
    ),
    Field(
        "dropped",
        "b1",
        (),
        "True when no new frame arrived for this step. Its stored frame is empty (length 0); "
        "readers substitute the most recent earlier frame, or black when there is none.",
    ),
)

STEP_FIELDS: tuple[Field, ...] = STATE_FIELDS + ACTION_FIELDS + CONTROL_FIELDS + SIGNAL_FIELDS
# The per-step fields an episode may lack (listed in ABSENT_ATTR); control timestamps and signals never are.
OPTIONAL_STREAMS: tuple[str, ...] = tuple(f.path for f in STATE_FIELDS + ACTION_FIELDS)
# Bytes of per-step data every step stores at least: bounds a plausible num_steps by the file size.
MIN_STEP_BYTES = sum(
    int(np.dtype(f.dtype).itemsize * np.prod(f.shape, dtype=np.int64)) for f in CONTROL_FIELDS + SIGNAL_FIELDS
)

# Image streams: flat byte store + index. `index[t] = (offset, length)` into `data`.
IMAGE_ENCODINGS = ("jpeg", "png")
DEPTH_ENCODINGS = ("png16",)
BYTES_CHUNK = 1 << 16  # 64 KiB: a 128x128 JPEG frame (~4-8 KB) touches one chunk
INDEX_CHUNK = 1024
STEP_CHUNK = 1024

# Episode-level attributes: name -> (python type, required, doc)
EPISODE_ATTRS: dict[str, tuple[type, bool, str]] = {
    "format": (str, True, f'Always "{FORMAT_NAME}".'),
    "schema_version": (str, True, "Schema version of this file (see MIGRATIONS)."),
    "uuid": (str, True, "Stable episode id, shared by every derived/exported copy."),
    "complete": (bool, True, "True only when the writer closed the episode cleanly."),
    "num_steps": (int, True, "T, the number of steps (written on close/salvage)."),
    "lab": (str, True, "Lab / organisation."),
    "household": (str, True, "Building or household id (DROID: building)."),
    "scene_id": (str, True, "Scene id within the household; changes when the scene is rearranged."),
    "operator": (str, True, "Operator (canonical name or id)."),
    "robot_type": (str, True, "Robot model, e.g. robolearn-arm7-sim, franka-fr3."),
    "robot_serial": (str, True, "Robot serial number."),
    "control_hz": (float, True, "Nominal control rate [Hz]."),
    "action_space": (str, True, "Which action form was commanded: one of ACTION_SPACES."),
    "teleop_device": (str, True, "keyboard | spacemouse | gamepad | vr | expert | policy | ..."),
    "teleop_params": (str, True, "JSON: device gains, deadzones, ... ({} if none)."),
    "task": (str, True, "Requested task id or text shown to the operator at collection time."),
    "language_annotations": (str, True, 'JSON list of {"text", "source", "annotator", "time"}.'),
    "success": (int, True, "Outcome label: 1 success, 0 failure, -1 unknown. Relabel-able."),
    "label_source": (str, True, "Who set `success`: operator | detector | relabel:<who> | unknown."),
    "label_history": (str, True, 'JSON list of {"field", "old", "new", "who", "time"} relabel records.'),
    "start_time": (str, True, "Episode start, ISO-8601 UTC."),
    "end_time": (str, True, 'Episode end, ISO-8601 UTC ("" if never closed).'),
    "software_version": (str, True, "robolearn version that wrote the file."),
    "cameras": (str, True, "JSON camera registry (see CameraSpec)."),
    "env": (str, False, "JSON: simulator env id and kwargs (sim episodes only)."),
    "cadence": (str, False, "JSON cadence report of the control loop: achieved Hz, overruns, worst step."),
    "extra": (str, False, "JSON: free-form metadata from the collector."),
    ABSENT_ATTR: (
        str,
        False,
        "JSON object {stream key: reason}: state fields, action forms (OPTIONAL_STREAMS paths) and cameras "
        "(`cameras/<name>`) the source did not record; they are not stored (schema >= 1.2, `{}` if none).",
    ),
    CONTENT_CRC_ATTR: (int, False, "CRC32 of every other attribute and of /language/instructions (schema >= 1.1)."),
}

# Catalog columns are read from these attributes only (never from per-step data).
CATALOG_ATTRS = (
    "uuid",
    "lab",
    "household",
    "scene_id",
    "operator",
    "robot_type",
    "task",
    "success",
    "num_steps",
    "control_hz",
    "teleop_device",
    "start_time",
    "complete",
    "schema_version",
)


@dataclass
class CameraSpec:
    """One camera stream as registered in the episode. Extrinsics: 4x4 T_base_camera (camera pose in the
    robot base frame, maps camera-frame points to base-frame points), camera axes in the OpenCV convention
    (x right, y down, z forward)."""

    name: str
    width: int
    height: int
    role: str = "exterior"  # wrist | exterior | fixed
    encoding: str = "jpeg"  # jpeg | png
    quality: int = 90  # JPEG quality
    depth: bool = False
    intrinsics: list[list[float]] | None = None  # 3x3 K at the stored resolution
    distortion: list[float] | None = None  # OpenCV order k1, k2, p1, p2[, k3...]
    extrinsics: list[list[float]] | None = None  # 4x4 T_base_camera
    extrinsics_convention: str = "T_base_camera;cam_axes=opencv"
    mounted_on: str = "world"  # world | tool (wrist cameras: extrinsics are T_tool_camera)
    serial: str = ""
    calibration: dict[str, Any] | None = None  # {"method", "time", "residual_px", "samples", ...}

    def __post_init__(self) -> None:
        if self.encoding not in IMAGE_ENCODINGS:
            raise ValueError(f"camera {self.name!r}: encoding must be one of {IMAGE_ENCODINGS}, got {self.encoding!r}")
        if not (1 <= self.quality <= 100):
            raise ValueError(f"camera {self.name!r}: JPEG quality must be in 1..100, got {self.quality}")
        for label, val, shape in (("intrinsics", self.intrinsics, (3, 3)), ("extrinsics", self.extrinsics, (4, 4))):
            if val is not None and np.asarray(val).shape != shape:
                raise ValueError(f"camera {self.name!r}: {label} must be {shape}, got {np.asarray(val).shape}")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def cameras_to_json(cams: list[CameraSpec]) -> str:
    return json.dumps([c.to_dict() for c in cams])


def cameras_from_json(text: str) -> list[CameraSpec]:
    return [CameraSpec.from_dict(d) for d in json.loads(text)]


def version_at_least(version: Any, floor: str) -> bool:
    """True when schema `version` is `floor` or newer (False for a malformed version)."""
    try:
        return tuple(int(x) for x in str(version).split(".")) >= tuple(int(x) for x in floor.split("."))
    except ValueError:
        return False


def check_absent_key(key: str, camera_names: list[str] | tuple[str, ...] = ()) -> str | None:
    """None when `key` may be listed in ABSENT_ATTR, else why not (a camera registered in the episode is
    present by definition)."""
    if key in OPTIONAL_STREAMS:
        return None
    if key.startswith("cameras/") and key.count("/") == 1 and len(key) > len("cameras/"):
        if key.split("/", 1)[1] in camera_names:
            return "is a registered camera; a camera is either registered or absent"
        return None
    return f"is not a stream that can be absent; expected one of {list(OPTIONAL_STREAMS)} or cameras/<name>"


def step_fields_by_path() -> dict[str, Field]:
    return {f.path: f for f in STEP_FIELDS}


def camera_group(name: str) -> str:
    return f"cameras/{name}"


# ---- migrations -------------------------------------------------------------------------------------
# A migration upgrades an open h5py.File (mode r+) in place from one version to the next. Readers refuse
# versions they do not know; `robolearn data migrate` applies the chain. Register new versions here.
# The migration functions need h5py and live in robolearn.data.migrate, which registers them here when it is
# imported (this module imports nothing of robolearn): "1.0" -> "1.1" is migrate.add_checksums.
MIGRATIONS: dict[str, tuple[str, Any]] = {}


def migration_path(version: str) -> list[str]:
    """Versions to step through to reach SCHEMA_VERSION from `version` (empty if already current)."""
    path, v = [], version
    while v != SCHEMA_VERSION:
        if v not in MIGRATIONS:
            raise ValueError(f"no migration from schema version {v!r} to {SCHEMA_VERSION!r}")
        v = MIGRATIONS[v][0]
        path.append(v)
    return path
