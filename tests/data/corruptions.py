"""Broken copies of a good episode, one kind of damage each, for the validator, loader and catalog tests.

Every function takes a good episode `src` and a destination `dst`, writes a damaged copy there (edited with
h5py on the copy; `src` is never touched) and returns a `Broken` naming the path, the field a validator
must report and a short description. `CORRUPTIONS` maps a name to `(function, kwargs)` for parametrised
tests:

    for name, (fn, kw) in CORRUPTIONS.items():
        broken = fn(good, tmp_path / f"{name}.h5", **kw)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STATE = "observation/robot_state"


@dataclass(frozen=True)
class Broken:
    path: Path
    field: str  # what a validator must name ("file" for damage that stops the file from opening)
    what: str


def _copy(src: str | Path, dst: str | Path) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _first_camera(f: h5py.File) -> str:
    return json.loads(f.attrs["cameras"])[0]["name"]


def _replace(f: h5py.File, path: str, data: np.ndarray) -> None:
    """Recreate dataset `path` with new contents (keeps its attributes)."""
    attrs = dict(f[path].attrs)
    del f[path]
    ds = f.create_dataset(path, data=data)
    ds.attrs.update(attrs)


# ---- whole-file damage ---------------------------------------------------------------------------------
def truncated(src: str | Path, dst: str | Path, fraction: float = 0.4) -> Broken:
    data = Path(src).read_bytes()
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Broken(Path(dst), "file", f"file cut to {fraction:.0%} of its size")


def not_hdf5(src: str | Path, dst: str | Path) -> Broken:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    Path(dst).write_bytes(b"GIF89a definitely not an HDF5 file\n" * 64)
    return Broken(Path(dst), "file", "not an HDF5 file, named .h5")


# ---- attributes -------------------------------------------------------------------------------------------
def unknown_schema_version(src: str | Path, dst: str | Path, version: str = "9.9") -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f.attrs["schema_version"] = version
    return Broken(p, "attrs/schema_version", f"schema_version {version!r}")


def bad_json_attr(src: str | Path, dst: str | Path, attr: str = "teleop_params") -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f.attrs[attr] = "{gain: 0.5,"
    return Broken(p, f"attrs/{attr}", "attribute is not JSON")


def missing_attr(src: str | Path, dst: str | Path, attr: str = "household") -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        del f.attrs[attr]
    return Broken(p, f"attrs/{attr}", "required attribute deleted")


def bad_extrinsics(src: str | Path, dst: str | Path) -> Broken:
    """Rotation block scaled by 2 in the first camera's registry entry (not a rigid transform)."""
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        cams = json.loads(f.attrs["cameras"])
        ext = np.asarray(cams[0].get("extrinsics") or np.eye(4), float)
        ext[:3, :3] *= 2.0
        cams[0]["extrinsics"] = ext.tolist()
        f.attrs["cameras"] = json.dumps(cams)
        name = cams[0]["name"]
    return Broken(p, f"attrs/cameras[{name}].extrinsics", "extrinsic rotation scaled by 2")


# ---- datasets -----------------------------------------------------------------------------------------------
def missing_dataset(src: str | Path, dst: str | Path, path: str = "action/joint_velocity") -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        del f[path]
    return Broken(p, path, "dataset deleted")


def missing_group(src: str | Path, dst: str | Path, group: str = STATE) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        first = sorted(f[group].keys())[0]
        del f[group]
    return Broken(p, f"{group}/{first}", "group deleted")


def wrong_dtype(src: str | Path, dst: str | Path, path: str = f"{STATE}/joint_positions", dtype: str = "f4") -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        _replace(f, path, f[path][()].astype(dtype))
    return Broken(p, path, f"dtype changed to {dtype}")


def mismatched_length(src: str | Path, dst: str | Path, path: str = "action/cartesian_velocity") -> Broken:
    """One stream one row shorter than the others and num_steps."""
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        _replace(f, path, f[path][:-1])
    return Broken(p, path, "one row short")


def nan_action(src: str | Path, dst: str | Path, path: str = "action/cartesian_velocity", step: int = 3) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        a = f[path][step]
        a[..., 0] = np.nan
        f[path][step] = a
    return Broken(p, path, f"NaN at step {step}")


def inf_state(src: str | Path, dst: str | Path, path: str = f"{STATE}/joint_velocities", step: int = 5) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        a = f[path][step]
        a[..., -1] = np.inf
        f[path][step] = a
    return Broken(p, path, f"Inf at step {step}")


def non_unit_quaternion(src: str | Path, dst: str | Path, step: int = 2) -> Broken:
    path = f"{STATE}/ee_quaternion"
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f[path][step] = f[path][step] * 1.5
    return Broken(p, path, f"quaternion scaled by 1.5 at step {step}")


def non_monotonic_timestamps(
    src: str | Path, dst: str | Path, path: str = "timestamp/control/step_start_ns", step: int = 4
) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f[path][step] = f[path][step - 1] - 1_000_000
    return Broken(p, path, f"timestamp goes back at step {step}")


def non_monotonic_camera_times(src: str | Path, dst: str | Path, step: int = 4) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        path = f"cameras/{_first_camera(f)}/capture_ns"
        f[path][step] = f[path][step - 1] - 1_000_000
    return Broken(p, path, f"capture time goes back at step {step}")


def byte_index_out_of_range(src: str | Path, dst: str | Path, step: int = 6) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        path = f"cameras/{_first_camera(f)}/rgb"
        size = f[f"{path}/data"].shape[0]
        f[f"{path}/index"][step] = [size - 10, 5000]
    return Broken(p, f"{path}/index", f"frame {step} points past the end of the byte store")


def undecodable_frame(src: str | Path, dst: str | Path, step: int = 7) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        path = f"cameras/{_first_camera(f)}/rgb"
        off, n = (int(x) for x in f[f"{path}/index"][step])
        f[f"{path}/data"][off : off + n] = np.resize(np.frombuffer(b"garbage!", np.uint8), n)
    return Broken(p, f"{path}/data", f"frame {step} overwritten with garbage")


CORRUPTIONS: dict[str, tuple[Callable[..., Broken], dict[str, Any]]] = {
    "truncated": (truncated, {}),
    "not_hdf5": (not_hdf5, {}),
    "unknown_schema_version": (unknown_schema_version, {}),
    "bad_json_attr": (bad_json_attr, {}),
    "missing_attr": (missing_attr, {}),
    "bad_extrinsics": (bad_extrinsics, {}),
    "missing_dataset": (missing_dataset, {}),
    "missing_group": (missing_group, {}),
    "wrong_dtype": (wrong_dtype, {}),
    "mismatched_length": (mismatched_length, {}),
    "nan_action": (nan_action, {}),
    "inf_state": (inf_state, {}),
    "non_unit_quaternion": (non_unit_quaternion, {}),
    "non_monotonic_timestamps": (non_monotonic_timestamps, {}),
    "non_monotonic_camera_times": (non_monotonic_camera_times, {}),
    "byte_index_out_of_range": (byte_index_out_of_range, {}),
    "undecodable_frame": (undecodable_frame, {}),
}
