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


# ---- more targeted damage (issue 16) -----------------------------------------------------------------------
def huge_declared_rows(
    src: str | Path, dst: str | Path, path: str = "action/cartesian_velocity", rows: int = 2**31
) -> Broken:
    """A dataset declaring 2^31 rows (chunked and resizable: the file stays small)."""
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f[path].resize(rows, axis=0)
    return Broken(p, path, f"declares {rows} rows")


def huge_num_steps(src: str | Path, dst: str | Path, rows: int = 2**31) -> Broken:
    """num_steps and every action and control-timestamp dataset claim 2^31 steps."""
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        for k in [k for k in f["action"]]:
            f[f"action/{k}"].resize(rows, axis=0)
        for k in f["timestamp/control"]:
            f[f"timestamp/control/{k}"].resize(rows, axis=0)
        f.attrs["num_steps"] = np.int64(rows)
    return Broken(p, "attrs/num_steps", f"num_steps = {rows}")


def huge_attribute(src: str | Path, dst: str | Path, attr: str = "extra", size: int = 60_000_000) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f.attrs[attr] = '{"a": "' + "x" * size + '"}'
    return Broken(p, f"attrs/{attr}", f"{size / 1e6:.0f} MB attribute")


def out_of_range_action(src: str | Path, dst: str | Path, value: float = 1e300, step: int = 2) -> Broken:
    path = "action/cartesian_velocity"
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f[path][step, 0] = value
    return Broken(p, path, f"{value:g} at step {step} (documented range [-1, 1])")


def exponent_flip(src: str | Path, dst: str | Path, path: str = "action/cartesian_velocity", value: int = 3) -> Broken:
    """One bit of one float64's exponent byte flipped in place, on disk (bypassing HDF5)."""
    p = _copy(src, dst)
    with h5py.File(p, "r") as f:
        off = f[path].id.get_chunk_info(0).byte_offset
    data = bytearray(p.read_bytes())
    data[off + 8 * value + 7] ^= 0x10
    p.write_bytes(bytes(data))
    return Broken(p, path, f"exponent bit flipped in value {value}")


def unknown_filter(src: str | Path, dst: str | Path) -> Broken:
    """The first camera's frame store recreated with an (optional) HDF5 filter id no installation registers."""
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        path = f"cameras/{_first_camera(f)}/rgb/data"
        data = f[path][()]
        del f[path]
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((1 << 16,))
        dcpl.set_filter(32999, h5py.h5z.FLAG_OPTIONAL, ())
        sid = h5py.h5s.create_simple((data.size,), (h5py.h5s.UNLIMITED,))
        h5py.Dataset(h5py.h5d.create(f.id, path.encode(), h5py.h5t.NATIVE_UINT8, sid, dcpl=dcpl))[:] = data
    return Broken(p, path, "frame store uses unknown HDF5 filter 32999")


def bad_frame_index(src: str | Path, dst: str | Path, entry: tuple[int, int] = (-5, 10), step: int = 1) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        path = f"cameras/{_first_camera(f)}/rgb/index"
        f[path][step] = entry
    return Broken(p, path, f"index[{step}] = {entry}")


def garbage_frame(src: str | Path, dst: str | Path, step: int = 2, fix_crc: bool = False, seed: int = 0) -> Broken:
    """Frame `step` overwritten with random bytes; with fix_crc its CRC32 is updated too (a writer that stored
    garbage), so only decoding can tell."""
    import zlib

    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        path = f"cameras/{_first_camera(f)}/rgb"
        off, n = (int(x) for x in f[f"{path}/index"][step])
        junk = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8)
        f[f"{path}/data"][off : off + n] = junk
        if fix_crc and "crc32" in f[path]:
            f[f"{path}/crc32"][step] = zlib.crc32(junk.tobytes())
    return Broken(p, f"{path}/data", f"frame {step} replaced by random bytes" + (" (CRC updated)" if fix_crc else ""))


def set_attr(src: str | Path, dst: str | Path, attr: str = "num_steps", value: Any = "twenty") -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        f.attrs[attr] = value
    return Broken(p, f"attrs/{attr}", f"{attr} = {value!r:.40}")


def camera_registry(src: str | Path, dst: str | Path, key: str = "height", value: Any = 10**9) -> Broken:
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        cams = json.loads(f.attrs["cameras"])
        cams[0][key] = value
        f.attrs["cameras"] = json.dumps(cams)
        name = cams[0]["name"]
    return Broken(p, f"attrs/cameras[{name}].{key}", f"camera {key} = {value!r}")


def as_schema_1_0(src: str | Path, dst: str | Path) -> Path:
    """A copy of a current episode laid out as schema 1.0 wrote it: no fletcher32, no frame CRCs, no
    content_crc32 (for the migration tests)."""
    p = _copy(src, dst)
    with h5py.File(p, "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for n in names:
            ds = f[n]
            if n.endswith("/crc32"):
                del f[n]
            elif ds.fletcher32:
                data, attrs, chunks, maxshape, fill = ds[()], dict(ds.attrs), ds.chunks, ds.maxshape, ds.fillvalue
                del f[n]
                new = f.create_dataset(n, data=data, chunks=chunks, maxshape=maxshape, fillvalue=fill)
                new.attrs.update(attrs)
        del f.attrs["content_crc32"]
        if "absent_streams" in f.attrs:  # schema 1.2+
            del f.attrs["absent_streams"]
        f.attrs["schema_version"] = "1.0"
    return p


MORE_CORRUPTIONS: dict[str, tuple[Callable[..., Broken], dict[str, Any]]] = {
    "huge_declared_rows": (huge_declared_rows, {}),
    "huge_declared_rows_index": (huge_declared_rows, {"path": "cameras/wrist/rgb/index"}),
    "huge_declared_rows_data": (huge_declared_rows, {"path": "cameras/wrist/rgb/data", "rows": 2**40}),
    "huge_declared_instructions": (huge_declared_rows, {"path": "timestamp/control/step_end_ns", "rows": 2**35}),
    "huge_num_steps": (huge_num_steps, {}),
    "huge_attribute": (huge_attribute, {"size": 8_000_000}),
    "out_of_range_action": (out_of_range_action, {}),
    "out_of_range_gripper": (out_of_range_action, {"value": 3.0}),
    "exponent_flip": (exponent_flip, {}),
    "unknown_filter": (unknown_filter, {}),
    "frame_offset_negative": (bad_frame_index, {}),
    "frame_length_huge": (bad_frame_index, {"entry": (0, 2**62)}),
    "frame_offset_past_end": (bad_frame_index, {"entry": (2**40, 100)}),
    "frame_length_negative": (bad_frame_index, {"entry": (0, -100)}),
    "garbage_jpeg": (garbage_frame, {}),
    "garbage_jpeg_crc_updated": (garbage_frame, {"fix_crc": True}),
    "num_steps_str": (set_attr, {}),
    "num_steps_negative": (set_attr, {"value": np.int64(-3)}),
    "num_steps_float": (set_attr, {"value": 3.5}),
    "control_hz_str": (set_attr, {"attr": "control_hz", "value": "fast"}),
    "success_str": (set_attr, {"attr": "success", "value": "yes"}),
    "cameras_not_list": (set_attr, {"attr": "cameras", "value": '{"name": 3}'}),
    "cameras_list_of_ints": (set_attr, {"attr": "cameras", "value": "[1, 2]"}),
    "schema_version_empty": (unknown_schema_version, {"version": ""}),
    "schema_version_future": (unknown_schema_version, {"version": "2.0"}),
    "schema_version_garbage": (unknown_schema_version, {"version": "1.1\ufffdjunk"}),
    "schema_version_int": (set_attr, {"attr": "schema_version", "value": np.int64(1)}),
    "camera_height_huge": (camera_registry, {}),
    "camera_height_str": (camera_registry, {"value": "tall"}),
    "camera_encoding_unknown": (camera_registry, {"key": "encoding", "value": "webp"}),
    "wrong_dtype_index": (wrong_dtype, {"path": "cameras/wrist/rgb/index", "dtype": "f8"}),
    "wrong_dtype_data": (wrong_dtype, {"path": "cameras/wrist/rgb/data", "dtype": "i4"}),
    "wrong_dtype_dropped": (wrong_dtype, {"path": "cameras/wrist/dropped", "dtype": "f4"}),
    "wrong_dtype_active": (wrong_dtype, {"path": "language/active", "dtype": "f8"}),
    "wrong_dtype_action": (wrong_dtype, {"path": "action/cartesian_velocity", "dtype": "i8"}),
    "missing_crc": (missing_dataset, {"path": "cameras/wrist/rgb/crc32"}),
    "missing_content_crc": (missing_attr, {"attr": "content_crc32"}),
    "content_crc_changed": (set_attr, {"attr": "content_crc32", "value": np.int64(12345)}),
    "task_edited_outside": (set_attr, {"attr": "task", "value": "something else"}),
    "missing_instructions": (missing_dataset, {"path": "language/instructions"}),
}


# ---- a seeded corpus of damaged files ------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One damaged file of the corpus: how it was made (`kind`: truncate | flip | struct), the file region a
    flip hit, the byte offset (truncations and flips) and where the file is."""

    name: str
    kind: str
    region: str
    offset: int | None
    path: Path


SIGNATURES = (b"OHDR", b"OCHK", b"FRHP", b"FHDB", b"FHIB", b"BTHD", b"BTLF", b"BTIN", b"GCOL", b"FSHD", b"FSSE")


def _find_all(data: bytes, needle: bytes) -> list[int]:
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def file_regions(path: str | Path) -> dict[str, list[tuple[int, int]]]:
    """Byte ranges [start, end) of a file by what they hold: superblock, object headers (parsed from their
    OHDR prefix), other metadata blocks (heaps, B-trees: 64 bytes after each signature), attribute values
    (the strings of the root attributes, found in the file), chunk data of numeric datasets and the frame
    store. Unclassified bytes are not listed (`flip_offsets` also draws from the whole file)."""
    data = Path(path).read_bytes()
    regions: dict[str, list[tuple[int, int]]] = {
        k: [] for k in ("superblock", "object_header", "other_metadata", "attributes", "chunk_data", "frame_store")
    }
    regions["superblock"].append((0, 48))
    for i in _find_all(data, b"OHDR"):
        flags = data[i + 5]
        pos = i + 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        size = int.from_bytes(data[pos : pos + width], "little")
        regions["object_header"].append((i, min(len(data), pos + width + size + 4)))
    for sig in SIGNATURES[1:]:
        regions["other_metadata"] += [(i, min(len(data), i + 64)) for i in _find_all(data, sig)]
    with h5py.File(path, "r") as f:
        for v in f.attrs.values():
            if isinstance(v, str) and len(v) >= 4:
                regions["attributes"] += [(i, i + len(v.encode())) for i in _find_all(data, v.encode())]
        chunked: list[tuple[str, h5py.Dataset]] = []
        f.visititems(lambda n, o: chunked.append((n, o)) if isinstance(o, h5py.Dataset) and o.chunks else None)
        for name, ds in chunked:
            key = "frame_store" if name.endswith("/data") else "chunk_data"
            for c in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(c)
                used = info.size
                if key == "frame_store":  # only the bytes frames occupy (the rest of the last chunk is slack)
                    used = min(used, ds.shape[0] - info.chunk_offset[0])
                regions[key].append((info.byte_offset, info.byte_offset + used))
    return {k: v for k, v in regions.items() if v}


def flip_offsets(
    path: str | Path, per_region: int, rng: np.random.Generator, anywhere: int = 0
) -> list[tuple[str, int]]:
    """(region, offset) pairs: `per_region` distinct offsets drawn in each region of `file_regions`, and
    `anywhere` more from the whole file."""
    out = []
    for region, spans in file_regions(path).items():
        pool = np.unique(np.concatenate([np.arange(a, b) for a, b in spans]))
        for off in rng.choice(pool, size=min(per_region, pool.size), replace=False):
            out.append((region, int(off)))
    size = Path(path).stat().st_size
    out += [("anywhere", int(o)) for o in rng.choice(size, size=min(anywhere, size), replace=False)]
    return out


def make_corpus(
    base: str | Path,
    out: str | Path,
    seed: int = 0,
    flips_per_region: int = 20,
    anywhere: int = 20,
    truncations: int = 30,
    structural: bool = True,
    tag: str = "",
) -> list[Case]:
    """A seeded, bounded corpus of damaged copies of `base` under `out`: truncations at `truncations` offsets
    (the first bytes, the superblock, spread over the file, one byte short), one-byte flips (a random bit, or
    all bits) at offsets drawn per region (`flip_offsets`), and every targeted corruption of CORRUPTIONS and
    MORE_CORRUPTIONS. The same seed gives the same corpus."""
    base, out = Path(base), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = base.read_bytes()
    cases: list[Case] = []
    cuts = {0, 8, 47, 48, 512, len(data) - 1} | {int(x) for x in np.linspace(100, len(data) - 2, truncations - 6)}
    for cut in sorted(cuts):
        p = out / f"{tag}trunc_{cut}.h5"
        p.write_bytes(data[:cut])
        cases.append(Case(p.stem, "truncate", "file", cut, p))
    for region, off in flip_offsets(base, flips_per_region, rng, anywhere):
        mask = 0xFF if rng.random() < 0.3 else 1 << int(rng.integers(8))
        bad = bytearray(data)
        bad[off] ^= mask
        p = out / f"{tag}flip_{region}_{off}_{mask:02x}.h5"
        p.write_bytes(bytes(bad))
        cases.append(Case(p.stem, "flip", region, off, p))
    if structural:
        for name, (fn, kw) in {**CORRUPTIONS, **MORE_CORRUPTIONS}.items():
            p = out / f"{tag}struct_{name}.h5"
            fn(base, p, **kw)
            cases.append(Case(p.stem, "struct", name, None, p))
    return cases


def content_digest(path: str | Path) -> str | None:
    """A digest of everything readable in an episode file (every attribute and every dataset's values, all
    objects in sorted order), or None when some of it cannot be read. Two files with the same digest hold the
    same data: a flip that leaves the digest unchanged hit bytes nothing reads (slack, stale copies)."""
    import hashlib

    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256()
    try:
        with h5py.File(p, "r") as f:
            names: list[str] = []
            f.visit(names.append)
            for name in ["/"] + sorted(names):
                obj = f[name]
                for k in sorted(obj.attrs.keys()):
                    aid = h5py.h5a.open(obj.id, k.encode())
                    if aid.get_storage_size() > (1 << 22):
                        return None
                    h.update(f"{name}.{k}={obj.attrs[k]!r}".encode())
                if isinstance(obj, h5py.Dataset):
                    if obj.size * obj.dtype.itemsize > 4 * size + (1 << 20):
                        return None
                    v = obj[()]
                    h.update(f"{name}:{obj.dtype}:{obj.shape}".encode())
                    h.update(v.tobytes() if v.dtype.kind != "O" else repr(v.tolist()).encode())
    except Exception:  # noqa: BLE001 - anything unreadable counts as changed
        return None
    return h.hexdigest()
