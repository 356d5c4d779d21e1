"""Import DROID's raw layout (one folder per episode) as robolearn episodes.

Facts followed (files of github.com/droid-dataset/droid; docs/interop.md cites each):
- Episodes live in `<lab>/success/<date>/<time>/` and `<lab>/failure/<date>/<time>/` (postprocessing/stages.py
  walks `success/` and `failure/` -> day -> trajectory folders); each holds `trajectory.h5`,
  `recordings/MP4/<serial>.mp4` (left image), `<serial>-stereo.mp4` (left|right side by side; MP4Reader
  splits a frame at half its width), `recordings/SVO/<serial>.svo` (may be missing) and the postprocessing
  record `metadata_<uuid>.json` (postprocessing/schema.py: uuid, lab, user, user_id, building, scene_id,
  success, robot_serial, current_task, trajectory_length, wrist/ext1/ext2 serials and extrinsics).
- The wrist camera is the serial whose `observation/camera_type/<serial>` is 0 (camera_utils/info.py: 0
  hand, 1 varied, 2 fixed); ext1/ext2 are the others in serial order (postprocessing/parse.py).
- Frame i of each MP4 belongs to row i of trajectory.h5: trajectory_utils/misc.py `load_trajectory` reads
  frames by index and stops at the first frame it cannot read; the MP4's declared frame rate is not used
  (the control rate is 15 Hz). Per-frame times: `observation/timestamp/cameras/<serial>_estimated_capture`
  and `_frame_received` (ms).
- Control-loop times: `observation/timestamp/control/{step_start, policy_start, sleep_start, control_start,
  step_end}` in ms (misc.py collect_trajectory, `time_ms()`).
- Idle steps: `observation/controller_info/movement_enabled` False (or `observation/timestamp/skip_action`
  True): the action was not executed (an all-zero action dict was recorded).
- Poses are 6-vectors xyz + Euler "xyz" (misc/transformations.py `euler_to_rmat`); angles wrap at +-pi.
  Camera extrinsics (`observation/camera_extrinsics/<serial>_left`) are the same 6-vector, camera in the
  robot base frame (postprocessing/schema.py comment).
- Gripper position: 0 open, 1 closed (normalised).
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from robolearn.data import schema
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.interop.runner import IMPORT_WRITER, ImportReport, Job, check_finite, run_jobs
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter

DROID_HZ = 15.0
TRAJECTORY = "trajectory.h5"
# DROID control phase -> ours (their timestamps are wall-clock ms; ours are ns)
CONTROL_MAP = {
    "step_start": "step_start",
    "policy_start": "observe_end",
    "sleep_start": "policy_end",
    "control_start": "action_sent",
    "step_end": "step_end",
}
STATE_KEYS = ("joint_positions", "joint_velocities", "gripper_position")
ACTION_KEYS = ("cartesian_velocity", "joint_position", "joint_velocity", "gripper_position")
CAMERA_NAMES = ("wrist", "exterior_1", "exterior_2")


def find_episodes(src: Path) -> list[Path]:
    """Episode folders (holding trajectory.h5) under `src`, or `src` itself; sorted."""
    src = Path(src)
    if (src / TRAJECTORY).is_file():
        return [src]
    return sorted(p.parent for p in src.rglob(TRAJECTORY) if p.is_file())


def _out_name(src: Path, ep: Path) -> Path:
    rel = ep.relative_to(src) if ep != src else Path(ep.name)
    parts = [re.sub(r"[^A-Za-z0-9._+-]", "_", p) for p in rel.parts]
    return Path(*parts[:-1], parts[-1] + schema.EPISODE_SUFFIX)


def import_droid(
    src: str | Path,
    out: str | Path,
    workers: int = 1,
    strict: bool = False,
    encoding: str = "jpeg",
    quality: int = 90,
    image_size: tuple[int, int] | None = None,
    drop_idle: bool = False,
    allow_missing_cameras: bool = False,
) -> ImportReport:
    """Import every DROID episode folder under `src` into `out` (same relative layout). Resumable."""
    src, out = Path(src), Path(out)
    opts = {
        "encoding": encoding,
        "quality": quality,
        "image_size": list(image_size) if image_size else None,
        "drop_idle": drop_idle,
        "allow_missing_cameras": allow_missing_cameras,
    }
    report = ImportReport(str(src), "droid", str(out), config={"workers": workers, "strict": strict, **opts})
    eps = find_episodes(src)
    if not eps:
        raise EpisodeError(src, TRAJECTORY, "no DROID episode folder (one holding trajectory.h5) found")
    jobs = [
        Job(str(ep.relative_to(src) if ep != src else ep.name), out / _out_name(src, ep), {"dir": str(ep), **opts})
        for ep in eps
    ]
    return run_jobs(jobs, import_episode, report, workers=workers, strict=strict)


# ---- pose helpers --------------------------------------------------------------------------------------
def euler_to_quat_wxyz(euler: np.ndarray) -> np.ndarray:
    """(T, 3) Euler "xyz" -> (T, 4) unit quaternions w, x, y, z, signs kept continuous along T (an angle
    wrapping from +pi to -pi is the same rotation: its quaternion does not jump)."""
    q = Rotation.from_euler("xyz", euler).as_quat()[:, [3, 0, 1, 2]]
    if len(q) and q[0, 0] < 0:
        q[0] = -q[0]
    for t in range(1, len(q)):
        if np.dot(q[t], q[t - 1]) < 0:
            q[t] = -q[t]
    return q


def pose_matrix(pose6: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", pose6[3:6]).as_matrix()
    m[:3, 3] = pose6[:3]
    return m


# ---- reading the source --------------------------------------------------------------------------------
def _array(f: h5py.File, key: str, src: Path, n: int | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    fld = key
    obj = f.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise EpisodeError(src, fld, "missing from trajectory.h5")
    try:
        a = obj[()]
    except H5_ERRORS as e:
        raise EpisodeError(src, fld, f"cannot read: {type(e).__name__}: {e}") from None
    if n is not None and a.shape[:1] != (n,):
        raise EpisodeError(
            src, fld, f"has {a.shape[0] if a.ndim else 0} rows, expected {n} (rows of action/joint_position)"
        )
    if shape is not None and a.shape[1:] != shape:
        raise EpisodeError(src, fld, f"expected per-step shape {shape}, got {a.shape[1:]}")
    return a


def _metadata(ep: Path) -> tuple[dict[str, Any], str]:
    files = sorted(ep.glob("metadata*.json"))
    if not files:
        return {}, ""
    try:
        d = json.loads(files[0].read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EpisodeError(files[0], "file", f"expected a JSON object: {e}") from None
    if not isinstance(d, dict):
        raise EpisodeError(files[0], "file", f"expected a JSON object, got {type(d).__name__}")
    return d, files[0].name


def _attr(f: h5py.File, name: str, default: Any = None) -> Any:
    v = f.attrs.get(name, default)
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    if isinstance(v, np.generic):
        v = v.item()
    return v


def _frames(path: Path, half: bool, size: tuple[int, int] | None) -> Iterator[np.ndarray]:
    """Decoded RGB frames in decode order (the MP4's time stamps and declared rate are ignored); `half`:
    the left half of a side-by-side stereo frame."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise EpisodeError(path, "video", f"cannot open as a video (truncated or not MP4?): {e}") from None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            if half:
                img = frame.to_ndarray(format="rgb24")
                img = img[:, : img.shape[1] // 2]
                if size is not None:
                    img = np.asarray(
                        av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24").to_ndarray(
                            format="rgb24", width=size[1], height=size[0]
                        )
                    )
            elif size is not None:
                img = frame.to_ndarray(format="rgb24", width=size[1], height=size[0])
            else:
                img = frame.to_ndarray(format="rgb24")
            yield img
    except (av.error.FFmpegError, IndexError) as e:
        raise EpisodeError(path, "video", f"decoding failed (truncated or damaged MP4?): {e}") from None
    finally:
        container.close()


def _probe(path: Path, half: bool) -> tuple[int, int]:
    """(height, width) of the stored image of a video (left half for stereo)."""
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            h, w = int(s.codec_context.height), int(s.codec_context.width)
    except (av.error.FFmpegError, OSError, IndexError) as e:
        raise EpisodeError(path, "video", f"cannot open as a video (truncated or not MP4?): {e}") from None
    if h <= 0 or w <= 0:
        raise EpisodeError(path, "video", f"no frame size in the stream ({w}x{h}): truncated?")
    return h, (w // 2 if half else w)


def import_episode(job: Job) -> dict[str, Any]:
    """Write one DROID episode folder as one episode (runs in a worker process)."""
    a = job.args
    ep = Path(a["dir"])
    h5 = ep / TRAJECTORY
    warnings: list[str] = []
    meta_json, meta_name = _metadata(ep)
    try:
        f = h5py.File(h5, "r")
    except (OSError, *H5_ERRORS) as e:
        raise EpisodeError(h5, "file", f"cannot open as HDF5 (truncated?): {e}") from None
    with f:
        n = int(_array(f, "action/joint_position", h5).shape[0])
        rs = "observation/robot_state"
        cart = _array(f, f"{rs}/cartesian_position", h5, n, (6,)).astype(np.float64)
        state = {k: _array(f, f"{rs}/{k}", h5, n).astype(np.float64) for k in STATE_KEYS}
        actions = {k: _array(f, f"action/{k}", h5, n).astype(np.float64) for k in ACTION_KEYS}
        act_cart = _array(f, "action/cartesian_position", h5, n, (6,)).astype(np.float64)
        for k, v in [
            *(("observation/robot_state/" + k, v) for k, v in state.items()),
            (f"{rs}/cartesian_position", cart),
        ]:
            check_finite(h5, k, v)
        for k, v in [*(("action/" + k, v) for k, v in actions.items()), ("action/cartesian_position", act_cart)]:
            check_finite(h5, k, v)
        ctl = {}
        for theirs, ours in CONTROL_MAP.items():
            key = f"observation/timestamp/control/{theirs}"
            if key in f:
                ctl[ours] = np.round(_array(f, key, h5, n).astype(np.float64) * 1e6).astype(np.int64)
        if len(ctl) < len(CONTROL_MAP):
            warnings.append("observation/timestamp/control incomplete: missing phases synthesised from 15 Hz")
        enabled = (
            _array(f, "observation/controller_info/movement_enabled", h5, n).astype(bool)
            if "observation/controller_info/movement_enabled" in f
            else np.ones(n, bool)
        )
        if "observation/timestamp/skip_action" in f:
            enabled &= ~_array(f, "observation/timestamp/skip_action", h5, n).astype(bool)
        types = f.get("observation/camera_type")
        serials = sorted(types.keys()) if isinstance(types, h5py.Group) else []
        ctype = {s: int(np.atleast_1d(types[s][()])[0]) for s in serials}
        extr = {}
        for s in serials:
            key = f"observation/camera_extrinsics/{s}_left"
            if key in f:
                extr[s] = _array(f, key, h5, n, (6,))[0].astype(np.float64)
        intr = {}
        for s in serials:
            key = f"observation/camera_intrinsics/{s}_left"
            if key in f:
                intr[s] = _array(f, key, h5, n, (3, 3))[0].astype(np.float64)
        cam_t = {}
        for s in serials:
            cap, rec = (
                f"observation/timestamp/cameras/{s}_estimated_capture",
                f"observation/timestamp/cameras/{s}_frame_received",
            )
            if cap in f and rec in f:
                cam_t[s] = (
                    np.round(_array(f, cap, h5, n).astype(np.float64) * 1e6).astype(np.int64),
                    np.round(_array(f, rec, h5, n).astype(np.float64) * 1e6).astype(np.int64),
                )
        h5_attrs = {k: _attr(f, k) for k in f.attrs.keys()}
    if not serials:
        raise EpisodeError(
            h5, "observation/camera_type", "missing: cannot tell the cameras (and which is the wrist one)"
        )

    # ---- cameras: wrist = camera_type 0, exterior_1/2 = the others in serial order --------------------
    wrist = [s for s in serials if ctype[s] == 0]
    names = {}
    if wrist:
        names[wrist[0]] = "wrist"
    for i, s in enumerate(s for s in serials if s not in names):
        names[s] = f"exterior_{i + 1}"
    mp4 = ep / "recordings" / "MP4"
    size = tuple(a["image_size"]) if a["image_size"] else None
    cams, videos, absent, src_files = [], {}, {}, {}
    for s in serials:
        name = names[s]
        mono, stereo = mp4 / f"{s}.mp4", mp4 / f"{s}-stereo.mp4"
        path, half = (mono, False) if mono.is_file() else (stereo, True) if stereo.is_file() else (None, False)
        if path is None:
            if a["allow_missing_cameras"]:
                absent[f"cameras/{name}"] = f"DROID: recordings/MP4/{s}.mp4 missing"
                warnings.append(absent[f"cameras/{name}"])
                continue
            raise EpisodeError(mono, "video", f"missing (camera {name}, serial {s}; no {stereo.name} either)")
        if half:
            warnings.append(f"{mono.name} missing: camera {name} taken from the left half of {stereo.name}")
        h, w = size or _probe(path, half)
        src_h, src_w = _probe(path, half)
        K = None
        if s in intr:
            K = intr[s].copy()
            K[0] *= w / src_w
            K[1] *= h / src_h
            K = K.tolist()
        ext, mounted = None, "world"
        if s in extr:
            T = pose_matrix(extr[s])
            if name == "wrist":  # per-step in the base frame: make it T_tool_camera at step 0
                T, mounted = np.linalg.inv(pose_matrix(cart[0])) @ T, "tool"
            ext = T.tolist()
        elif name == "wrist":
            mounted = "tool"
        cams.append(
            CameraSpec(
                name,
                w,
                h,
                role="wrist" if name == "wrist" else "exterior",
                encoding=a["encoding"],
                quality=a["quality"],
                intrinsics=K,
                extrinsics=ext,
                mounted_on=mounted,
                serial=s,
                calibration={"method": "droid", "source": "trajectory.h5 observation/camera_extrinsics (step 0)"}
                if ext
                else None,
            )
        )
        videos[name] = (path, half)
        src_files[name] = {
            "serial": s,
            "mp4": str(path.relative_to(ep)),
            "stereo_mp4": stereo.is_file(),
            "svo": (ep / "recordings" / "SVO" / f"{s}.svo").is_file(),
        }
    for name in CAMERA_NAMES:
        if name not in names.values():
            absent[f"cameras/{name}"] = "DROID: this episode registers no such camera"

    # ---- metadata -------------------------------------------------------------------------------------
    success = meta_json.get("success", h5_attrs.get("success"))
    if success is None:
        parts = set(ep.parts)
        success = True if "success" in parts else False if "failure" in parts else None
    if meta_json.get("trajectory_length") not in (None, n):
        warnings.append(
            f"{meta_name}: trajectory_length {meta_json['trajectory_length']} but trajectory.h5 has {n} rows"
        )
    task = str(meta_json.get("current_task", h5_attrs.get("current_task", "")) or "")
    idle = np.flatnonzero(~enabled)
    keep = enabled if a["drop_idle"] else np.ones(n, bool)
    start_ms = float(ctl["step_start"][0]) / 1e6 if "step_start" in ctl and n else None
    meta = EpisodeMeta(
        lab=str(meta_json.get("lab", "unknown")),
        household=str(meta_json.get("building", h5_attrs.get("building", "unknown"))),
        scene_id=str(meta_json.get("scene_id", h5_attrs.get("scene_id", "unknown"))),
        operator=str(meta_json.get("user") or meta_json.get("user_id") or h5_attrs.get("user", "unknown")),
        robot_type="franka-panda",
        robot_serial=str(meta_json.get("robot_serial", h5_attrs.get("robot_serial_number", "unknown"))),
        control_hz=DROID_HZ,
        action_space="cartesian_velocity",
        teleop_device="vr",
        task=task,
        language=[task] if task else [],
        language_source="operator",
        extra={
            "source": {
                "kind": "droid",
                "folder": str(ep),
                "metadata_file": meta_name,
                "droid_uuid": meta_json.get("uuid", ""),
                "date": meta_json.get("date", ""),
                "timestamp": meta_json.get("timestamp", ""),
                "user_id": meta_json.get("user_id", ""),
                "droid_version": meta_json.get(
                    "droid_version", meta_json.get("r2d2_version", h5_attrs.get("version_number", ""))
                ),
                "cameras": src_files,
                "idle_steps": idle.tolist() if not a["drop_idle"] else [],
                "dropped_idle_steps": idle.tolist() if a["drop_idle"] else [],
                "timestamps": "DROID wall-clock ms converted to ns (not a monotonic clock)",
                "start_ms": start_ms,
            }
        },
        uuid=str(meta_json.get("uuid") or uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"droid:{job.key}")),
    )
    if start_ms:
        meta.start_time = (
            datetime.fromtimestamp(start_ms / 1e3, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )

    quat = euler_to_quat_wxyz(cart[:, 3:6])
    act_quat = euler_to_quat_wxyz(act_cart[:, 3:6])
    period = int(round(1e9 / DROID_HZ))
    gens = {
        name: _frames(p, half, (c.height, c.width) if size or half else None)
        for (name, (p, half)), c in zip(videos.items(), cams)
    }
    by_name = {c.name: c for c in cams}
    with EpisodeWriter(job.out, meta, cams, IMPORT_WRITER, absent=absent) as w:
        for t in range(n):
            images: dict[str, np.ndarray | None] = {}
            for name, g in gens.items():
                img = next(g, None)
                if img is None:
                    if t < n - 1:
                        path = videos[name][0]
                        raise EpisodeError(
                            path,
                            "video",
                            f"frame count mismatch: {t} frames, trajectory.h5 has {n} rows "
                            f"(expected {n}, or {n - 1}: one short)",
                        )
                    warnings.append(f"{videos[name][0].name}: one frame short: step {t} marked dropped")
                elif img.shape[:2] != (by_name[name].height, by_name[name].width):
                    raise EpisodeError(
                        videos[name][0],
                        "video",
                        f"frame {t} is {img.shape[1]}x{img.shape[0]}, the stream declared otherwise",
                    )
                images[name] = img
            if not keep[t]:
                continue
            fallback = (t + 1) * period
            ct = {ours: int(ctl[ours][t]) if ours in ctl else fallback for ours in CONTROL_MAP.values()}
            times = {}
            for name in images:
                s = src_files[name]["serial"]
                times[name] = (
                    (int(cam_t[s][0][t]), int(cam_t[s][1][t]))
                    if s in cam_t and images[name] is not None
                    else (0, 0)
                    if images[name] is None
                    else (ct["step_start"],) * 2
                )
            w.add_step(
                state={
                    "ee_position": cart[t, :3],
                    "ee_quaternion": quat[t],
                    "joint_positions": state["joint_positions"][t],
                    "joint_velocities": state["joint_velocities"][t],
                    "gripper_position": float(np.clip(state["gripper_position"][t], 0, 1)),
                },
                action={
                    "cartesian_velocity": actions["cartesian_velocity"][t],
                    "cartesian_position": np.concatenate([act_cart[t, :3], act_quat[t]]),
                    "joint_position": actions["joint_position"][t],
                    "joint_velocity": actions["joint_velocity"][t],
                    "gripper_position": float(np.clip(actions["gripper_position"][t], 0, 1)),
                },
                images=images,
                camera_times=times,
                control_times=ct,
                reward=float(bool(success) and t == n - 1),
                is_terminal=bool(success) and t == n - 1,
            )
        for name, g in gens.items():
            extra = sum(1 for _ in g)
            if extra:
                warnings.append(
                    f"{videos[name][0].name}: {extra} frames after the last row ignored (frames are read by index)"
                )
        w.set_outcome(None if success is None else bool(success), source="import:droid")
    return {"steps": int(keep.sum()), "warnings": warnings, "absent": sorted(absent), "idle_steps": int(idle.size)}
