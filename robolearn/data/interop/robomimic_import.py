"""Import a robomimic-layout HDF5 file (robomimic's documented dataset structure) as robolearn episodes.

Source layout read (robomimic "datasets overview" page): `data` with attrs `total` and `env_args` (JSON:
env_name, env_type/type, env_kwargs); `data/demo_<i>` with attr `num_samples` (and `ep_meta`, `model_file`
when present) and datasets `actions` (T, A), `obs/<key>` (T, ...), `next_obs/<key>` (optional), `rewards`,
`dones`, `states`; `mask/<filter_key>`: arrays of demo names. Datasets may be gzip/lzf compressed (h5py
decodes both).

Mapping (docs/interop.md has the full table):
- demos in numeric order (demo_10 after demo_9) -> `<out>/<file stem>/demo_<i:06d>.h5`;
- `*_image` (T, H, W, 3) uint8 -> a camera (PNG by default: lossless); `*_depth` uint16 -> its depth stream;
- `robot0_eef_pos` -> ee_position, `robot0_eef_quat` (x, y, z, w) -> ee_quaternion (w, x, y, z),
  `robot0_joint_pos` / `robot0_joint_vel` (7,) -> joint_positions / joint_velocities; robosuite's
  `robot0_gripper_qpos` is two finger joint positions, not an opening in [0, 1]: gripper state is absent
  (except in files robolearn exported, where it is the opening);
- `actions`: robosuite OSC_POSE delta (6 + gripper) -> cartesian_velocity (the normalised [-1, 1] twist
  command the controller scales by its output_max, kept in teleop_params) + gripper_position = (g + 1) / 2;
  a robolearn export names its action form in `data.attrs["robolearn"]`; every other form is absent;
- `rewards` -> reward, `dones` -> is_terminal; `mask/*` filter keys -> splits under `<out>/splits/`.
Not carried over: `states` (MuJoCo state vectors), `model_file`, `next_obs` (the next row of `obs`), low-dim
obs without a schema field (object poses, joint cos/sin, gripper joint velocities, ...; their names are
listed in each episode's `extra`), float depth.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.data import schema
from robolearn.data.catalog.splits import SplitResult, _write_split
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.interop.runner import IMPORT_WRITER, ImportFailed, ImportReport, Job, check_finite, run_jobs
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter

ROBOSUITE_CONTROL_HZ = 20.0  # robosuite's default control_freq, used when env_kwargs does not give one
SPLIT_PREFIX = "robomimic"


def demo_order(name: str) -> tuple[int, int | str]:
    """Sort key: demo_<n> by n, then any other name alphabetically."""
    m = re.fullmatch(r"demo_(\d+)", name)
    return (0, int(m.group(1))) if m else (1, name)


def _json_attr(obj: h5py.HLObject, name: str, src: Path, fld: str) -> Any:
    if name not in obj.attrs:
        return None
    raw = obj.attrs[name]
    raw = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise EpisodeError(src, fld, f"expected a JSON string, got {raw[:60]!r} ({e})") from None


def _find_controller(cfg: Any) -> dict[str, Any] | None:
    """The arm controller config inside env_kwargs.controller_configs (robosuite 1.4: flat; 1.5: composite
    with body_parts)."""
    if not isinstance(cfg, dict):
        return None
    if isinstance(cfg.get("type"), str) and cfg["type"] not in ("BASIC", "HYBRID_MOBILE_BASE", "WHOLE_BODY_IK"):
        return cfg
    for key in ("body_parts", "right", "arms", "left"):
        found = _find_controller(cfg.get(key))
        if found is not None:
            return found
    return None


def action_layout(src: Path, data: h5py.Group, env_args: dict[str, Any], forced: str = "auto") -> dict[str, Any]:
    """How `actions` columns map to our action forms: {"form", "dims", "source"} (gripper: the last column,
    mapped from [-1, 1] to [0, 1])."""
    dims = {f.path.rsplit("/", 1)[-1]: (f.shape[0] if f.shape else 1) for f in schema.ACTION_FIELDS}
    if forced != "auto":
        if forced not in schema.ACTION_SPACES:
            raise EpisodeError(
                src, "actions", f"--action-space {forced!r}: expected auto or one of {schema.ACTION_SPACES}"
            )
        return {"form": forced, "dims": dims[forced], "source": "--action-space"}
    ours = _json_attr(data, "robolearn", src, "data.attrs/robolearn")
    if isinstance(ours, dict) and isinstance(ours.get("actions"), str):
        form = ours["actions"].split(" ")[0]
        if form in schema.ACTION_SPACES:
            return {"form": form, "dims": dims[form], "source": "robolearn export (data.attrs/robolearn)"}
    ctrl = _find_controller((env_args.get("env_kwargs") or {}).get("controller_configs"))
    if ctrl is None:
        raise EpisodeError(
            src,
            "data.attrs/env_args/env_kwargs/controller_configs",
            "cannot tell which action form `actions` holds (no controller config); pass --action-space",
        )
    if (
        ctrl.get("type") == "OSC_POSE"
        and ctrl.get("control_delta", True)
        and ctrl.get("input_type", "delta") == "delta"
    ):
        return {"form": "cartesian_velocity", "dims": 6, "source": "robosuite OSC_POSE delta", "controller": ctrl}
    raise EpisodeError(
        src,
        "data.attrs/env_args/env_kwargs/controller_configs",
        f"controller {ctrl.get('type')!r} (control_delta={ctrl.get('control_delta', True)}) has no robolearn action "
        "form: supported are OSC_POSE delta actions and robolearn exports; pass --action-space to override",
    )


def _masks(f: h5py.File) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    g = f.get("mask")
    for k in g.keys() if isinstance(g, h5py.Group) else []:
        out[k] = [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(g[k][()])]
    return out


def import_robomimic(
    src: str | Path,
    out: str | Path,
    workers: int = 1,
    strict: bool = False,
    encoding: str = "png",
    quality: int = 95,
    action_space: str = "auto",
) -> ImportReport:
    """Import every demo of `src` into `<out>/<src stem>/`; filter keys become splits. Resumable."""
    src, out = Path(src), Path(out)
    report = ImportReport(
        str(src),
        "robomimic",
        str(out),
        config={
            "workers": workers,
            "strict": strict,
            "encoding": encoding,
            "quality": quality,
            "action_space": action_space,
        },
    )
    try:
        with h5py.File(src, "r") as f:
            data = f.get("data")
            if not isinstance(data, h5py.Group):
                raise EpisodeError(src, "data", "missing: a robomimic file has a `data` group holding demo_<i> groups")
            env_args = _json_attr(data, "env_args", src, "data.attrs/env_args") or {}
            layout = action_layout(src, data, env_args, action_space)
            demos = sorted((k for k in data.keys() if isinstance(data[k], h5py.Group)), key=demo_order)
            masks = _masks(f)
            total = int(data.attrs.get("total", -1))
    except EpisodeError as e:
        report.skipped.append(
            {"key": str(src), "file": e.problems[0].path, "field": e.problems[0].field, "error": e.problems[0].message}
        )
        report.stopped = str(e)
        report.write(out)
        raise ImportFailed(str(e), report) from None
    except (OSError, *H5_ERRORS) as e:
        report.stopped = f"{src}: file: cannot open as HDF5: {e}"
        report.write(out)
        raise ImportFailed(report.stopped, report) from None
    sub = out / src.stem
    names = {d: f"{src.stem}/demo_{i:06d}.h5" for i, d in enumerate(demos)}
    in_mask = {d for k in ("success",) for d in masks.get(k, [])}
    failed = {d for d in masks.get("failure", [])}
    jobs = [
        Job(
            d,
            out / names[d],
            {
                "src": str(src),
                "demo": d,
                "layout": {k: v for k, v in layout.items()},
                "env_args": env_args,
                "encoding": encoding,
                "quality": quality,
                "total": total,
                "success": 1 if d in in_mask else 0 if d in failed else -1,
            },
        )
        for d in demos
    ]
    sub.mkdir(parents=True, exist_ok=True)
    try:
        run_jobs(jobs, import_demo, report, workers=workers, strict=strict)
    finally:
        _write_splits(out, masks, names)
    return report


def _write_splits(out: Path, masks: dict[str, list[str]], names: dict[str, str]) -> list[str]:
    """robomimic filter keys as splits: `<p>_train`/`<p>_valid` (and `train`/`valid`) pairs become one split's
    train/val sides; any other key a split with that train list and an empty val side. Only demos that
    were imported count."""
    have = {d: rel for d, rel in names.items() if (out / rel).exists()}
    pairs: dict[str, dict[str, list[str]]] = {}
    for key, demos in masks.items():
        m = re.fullmatch(r"(?:(.+)_)?(train|valid)", key)
        name = f"{SPLIT_PREFIX}_{m.group(1)}" if m and m.group(1) else SPLIT_PREFIX if m else f"{SPLIT_PREFIX}_{key}"
        side = ("train" if m.group(2) == "train" else "val") if m else "train"
        pairs.setdefault(name, {"train": [], "val": []})[side] = [
            have[d] for d in sorted((d for d in demos if d in have), key=demo_order)
        ]
    written = []
    for name, sides in pairs.items():
        res = SplitResult(
            name, out / "splits" / name, sides["train"], sides["val"], [], [], {"source": "robomimic mask"}
        )
        _write_split(res, overwrite=True)
        written.append(name)
    return written


def _read(g: h5py.Group, key: str, src: str, fld: str) -> np.ndarray:
    try:
        return g[key][()]
    except H5_ERRORS as e:
        raise EpisodeError(src, fld, f"cannot read: {type(e).__name__}: {e}") from None


def import_demo(job: Job) -> dict[str, Any]:
    """Write one demo as one episode (runs in a worker process)."""
    a = job.args
    src, demo, layout = a["src"], a["demo"], a["layout"]
    warnings: list[str] = []
    with h5py.File(src, "r") as f:
        g = f["data"][demo]
        base = f"data/{demo}"
        if not isinstance(g.get("actions"), h5py.Dataset):
            raise EpisodeError(src, f"{base}/actions", "missing; every robomimic demo has an actions dataset")
        actions = np.asarray(_read(g, "actions", src, f"{base}/actions"), np.float64)
        if actions.ndim != 2 or actions.shape[1] != layout["dims"] + 1:
            raise EpisodeError(
                src,
                f"{base}/actions",
                f"expected shape (T, {layout['dims'] + 1}) for {layout['source']}, got {actions.shape}",
            )
        n = actions.shape[0]
        if "num_samples" in g.attrs and int(g.attrs["num_samples"]) != n:
            raise EpisodeError(
                src, f"{base}.attrs/num_samples", f"{int(g.attrs['num_samples'])}, but actions has {n} rows"
            )
        check_finite(src, f"{base}/actions", actions)
        obs = g.get("obs")
        obs_keys = sorted(obs.keys()) if isinstance(obs, h5py.Group) else []
        arrays = {k: _read(obs, k, src, f"{base}/obs/{k}") for k in obs_keys}
        for k, v in arrays.items():
            if v.shape[:1] != (n,):
                raise EpisodeError(src, f"{base}/obs/{k}", f"has {v.shape[0] if v.ndim else 0} rows, actions has {n}")
        rewards = _read(g, "rewards", src, f"{base}/rewards") if "rewards" in g else None
        dones = _read(g, "dones", src, f"{base}/dones") if "dones" in g else None
        states_shape = list(g["states"].shape) if isinstance(g.get("states"), h5py.Dataset) else None
        ep_meta = _json_attr(g, "ep_meta", Path(src), f"{base}.attrs/ep_meta") or {}
        ours = _json_attr(f["data"], "robolearn", Path(src), "data.attrs/robolearn")
    for name, x in (("rewards", rewards), ("dones", dones)):
        if x is not None and np.shape(x)[:1] != (n,):
            raise EpisodeError(src, f"{base}/{name}", f"has shape {np.shape(x)}, expected ({n},)")
    if rewards is not None:
        check_finite(src, f"{base}/rewards", rewards)
    else:
        warnings.append("no rewards dataset: reward 0")

    # ---- actions --------------------------------------------------------------------------------------
    form, d = layout["form"], layout["dims"]
    arm, grip_raw = actions[:, :d], actions[:, d]
    if np.any(np.abs(grip_raw) > 1 + schema.RANGE_TOL):
        raise EpisodeError(src, f"{base}/actions[:, {d}]", "gripper command outside [-1, 1] (robosuite's range)")
    if form == "cartesian_velocity" and np.any(np.abs(arm) > 1 + schema.RANGE_TOL):
        bad = int(np.flatnonzero(np.abs(arm).max(axis=1) > 1 + schema.RANGE_TOL)[0])
        raise EpisodeError(
            src, f"{base}/actions", f"delta command outside [-1, 1] at step {bad}: not a normalised OSC delta"
        )
    if form == "cartesian_position":
        quat = arm[:, 3:7]
        arm = np.concatenate([arm[:, :3], quat / np.linalg.norm(quat, axis=1, keepdims=True).clip(1e-12)], 1)
    action_rows = {form: arm, "gripper_position": np.clip((grip_raw + 1.0) / 2.0, 0.0, 1.0)}
    absent = {
        f"{schema.ACTION_GROUP}/{k}": "robomimic: not recorded (actions hold one form)"
        for k in schema.ACTION_SPACES
        if k != form
    }

    # ---- state ----------------------------------------------------------------------------------------
    state: dict[str, np.ndarray] = {}
    mapping = {
        "ee_position": ("robot0_eef_pos", (3,), None),
        "ee_quaternion": ("robot0_eef_quat", (4,), [3, 0, 1, 2]),  # x, y, z, w -> w, x, y, z
        "joint_positions": ("robot0_joint_pos", (7,), None),
        "joint_velocities": ("robot0_joint_vel", (7,), None),
    }
    if isinstance(ours, dict):  # a robolearn export stores the gripper opening itself
        mapping["gripper_position"] = ("robot0_gripper_qpos", (1,), None)
    used = set()
    for key, (okey, shape, cols) in mapping.items():
        v = arrays.get(okey)
        if v is None:
            absent[f"{schema.STATE_GROUP}/{key}"] = f"robomimic: obs/{okey} not in the file"
            continue
        if v.shape[1:] != shape:
            absent[f"{schema.STATE_GROUP}/{key}"] = (
                f"robomimic: obs/{okey} has shape {v.shape[1:]}, schema needs {shape}"
            )
            warnings.append(absent[f"{schema.STATE_GROUP}/{key}"])
            continue
        v = np.asarray(v, np.float64)
        check_finite(src, f"{base}/obs/{okey}", v)
        state[key] = v[:, cols] if cols else (v[:, 0] if shape == (1,) else v)
        used.add(okey)
    if "ee_quaternion" in state:
        q = state["ee_quaternion"]
        state["ee_quaternion"] = q / np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    if "gripper_position" not in state:
        absent[f"{schema.STATE_GROUP}/gripper_position"] = (
            "robomimic: robot0_gripper_qpos holds finger joint positions, not an opening in [0, 1]"
        )

    # ---- cameras --------------------------------------------------------------------------------------
    cams, images, depth = [], {}, {}
    for k, v in arrays.items():
        if k.endswith("_image") and v.ndim == 4 and v.shape[-1] == 3 and v.dtype == np.uint8:
            name = k[: -len("_image")]
            wrist = "eye_in_hand" in name or "wrist" in name
            dk = f"{name}_depth"
            dv = arrays.get(dk)
            has_depth = dv is not None and dv.dtype == np.uint16 and dv.shape[1:3] == v.shape[1:3]
            if dv is not None and not has_depth:
                warnings.append(f"obs/{dk}: {dv.dtype} depth not carried over (only uint16 millimetres)")
            cams.append(
                CameraSpec(
                    name,
                    int(v.shape[2]),
                    int(v.shape[1]),
                    role="wrist" if wrist else "fixed",
                    encoding=a["encoding"],
                    quality=a["quality"],
                    depth=has_depth,
                    mounted_on="tool" if wrist else "world",
                )
            )
            images[name] = v
            used.add(k)
            if has_depth:
                depth[name] = dv[..., 0] if dv.ndim == 4 else dv
                used.add(dk)
    unmapped = sorted(set(arrays) - used)

    # ---- metadata -------------------------------------------------------------------------------------
    env_args = a["env_args"] or {}
    kw = env_args.get("env_kwargs") or {}
    hz = float(
        kw.get("control_freq") or (kw.get("control_hz") if isinstance(kw.get("control_hz"), (int, float)) else 0) or 0
    )
    if hz <= 0:
        hz = ROBOSUITE_CONTROL_HZ
        warnings.append(f"env_kwargs has no control_freq: control_hz {hz:g} (robosuite's default)")
    robots = kw.get("robots")
    robot = robots[0] if isinstance(robots, list) and robots else robots if isinstance(robots, str) else "unknown"
    task = str(ep_meta.get("task") or env_args.get("env_name") or "")
    lang = ep_meta.get("lang")
    success = ep_meta.get("success", a["success"])
    meta = EpisodeMeta(
        lab=str(ep_meta.get("lab", "unknown")),
        household=str(ep_meta.get("household", "unknown")),
        scene_id=str(ep_meta.get("scene_id", "unknown")),
        operator=str(ep_meta.get("operator", "unknown")),
        robot_type=str(robot),
        control_hz=hz,
        action_space=form,
        teleop_device="unknown",
        teleop_params={"robomimic_controller": layout.get("controller")} if layout.get("controller") else {},
        task=task,
        language=[str(lang)] if lang else ([task] if task else []),
        language_source="source",
        env=env_args,
        extra={
            "source": {
                "kind": "robomimic",
                "file": str(src),
                "demo": demo,
                "actions": layout["source"],
                "unmapped_obs": unmapped,
                "states_shape": states_shape,
                "timestamps": "synthesised: step * 1e9 / control_hz (robomimic stores none)",
            }
        },
        uuid=str(
            ep_meta.get("uuid")
            or uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"robomimic:{Path(src).name}:{a['total']}:{demo}")
        ),
    )
    period = int(round(1e9 / hz))
    with EpisodeWriter(job.out, meta, cams, IMPORT_WRITER, absent=absent) as w:
        for t in range(n):
            ts = (t + 1) * period  # 0 is the writer's "never committed" marker
            w.add_step(
                state={k: v[t] for k, v in state.items()},
                action={k: v[t] for k, v in action_rows.items()},
                images={c: v[t] for c, v in images.items()},
                depth={c: v[t] for c, v in depth.items()} or None,
                camera_times={c: (ts, ts) for c in images},
                control_times={p: ts for p in schema.CONTROL_PHASES},
                reward=float(rewards[t]) if rewards is not None else 0.0,
                is_terminal=bool(dones[t]) if dones is not None else False,
            )
        if success in (0, 1, True, False):
            w.set_outcome(bool(success), source="import:robomimic")
    return {"steps": n, "warnings": warnings, "absent": sorted(absent)}
