"""Validate episode files against the schema, and quarantine the bad ones.

`validate_episode(path)` returns a list of `Problem`s (errors and warnings), each naming the file, the field,
what was expected and what was found; it never raises on bad data. It checks, in order: the file opens as
HDF5; `format` and `schema_version`; every attribute of `schema.EPISODE_ATTRS` (presence, type, JSON);
the camera registry (intrinsics 3x3, extrinsics 4x4 rigid); every per-step dataset (presence, dtype,
per-step shape, length, declared size against the file size, HDF5 filters this installation can decode);
values (NaN/Inf, the documented ranges of schema fields, unit quaternions, is_first/is_last, timestamps);
the byte streams (index within the data, no overlap, dropped markers, every frame's CRC32) and that frames
decode at the registered size; the checksums (robolearn.data.checksum: fletcher32 on numeric datasets, checked
by HDF5 on every read; the content CRC of attributes and strings). Attributes above schema.MAX_ATTR_BYTES are
reported, never read. Files older than schema 1.1 carry no checksums: they validate with a note.

`validate_dataset(root, quarantine=True)` validates every episode under `root` and moves files with errors
to `<root>/_quarantine/` (robolearn.data.quarantine: relative paths kept, never overwriting, one line per
move in `_quarantine/QUARANTINE.log`). `.partial` files (unfinished episodes) are reported as warnings;
salvaging them is `robolearn data repair`'s job.

The per-file checks stay in this one module (about 700 lines): they share one `_Ctx` and run in a fixed order,
each relying on what the earlier ones established (the parsed attributes, the camera registry, the datasets
whose layout is right), so splitting them would scatter one checklist over several files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.data import codec, schema
from robolearn.data.checksum import content_crc32, frame_crc, has_checksums, read_bounded_attr
from robolearn.data.errors import H5_ERRORS, EpisodeError, Problem
from robolearn.data.quarantine import find_partials, quarantine_file
from robolearn.data.reader import (
    JSON_ATTRS,
    _file_size,
    check_num_steps,
    check_rows,
    list_episodes,
    open_h5,
    open_swmr,
    read_error_message,
    read_rows,
)

QUAT_TOL = 1e-3  # |norm(q) - 1| allowed for stored unit quaternions
ROT_TOL = 1e-3  # max |R^T R - I| for extrinsic rotations
JSON_KINDS: dict[str, type] = {
    "teleop_params": dict,
    "language_annotations": list,
    "label_history": list,
    "cameras": list,
    "env": dict,
    "cadence": dict,
    "extra": dict,
    "repair": dict,
    schema.ABSENT_ATTR: dict,
}
_READ_ERRORS = H5_ERRORS


# ---- one episode ------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    """State shared by the checks of one file."""

    path: Path
    f: h5py.File
    partial: bool
    problems: list[Problem] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)
    cams: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0  # steps to check
    good: set[str] = field(default_factory=set)  # per-step datasets whose dtype, shape and length are right
    unreadable: set[str] = field(default_factory=set)  # datasets already reported as unreadable
    cache: dict[tuple[str, int | None], np.ndarray] = field(default_factory=dict)  # what read() returned
    size: int = 0  # file size in bytes

    def error(self, fld: str, msg: str) -> None:
        self.problems.append(Problem(str(self.path), fld, msg, "error"))

    def warn(self, fld: str, msg: str) -> None:
        self.problems.append(Problem(str(self.path), fld, msg, "warning"))

    def note(self, fld: str, msg: str) -> None:
        self.problems.append(Problem(str(self.path), fld, msg, "note"))

    def read(self, path: str, rows: int | None = None) -> np.ndarray | None:
        """Dataset contents (first `rows` rows), or None after reporting why it cannot be read (bounded by the
        file size; a checksum mismatch is reported as such)."""
        if path in self.unreadable:
            return None
        key = (path, rows)
        if key in self.cache:
            return self.cache[key]
        try:
            out = self.cache[key] = read_rows(self.f[path], self.path, path, rows)
            return out
        except EpisodeError as e:
            self.error(e.field, e.problems[0].message)
        except _READ_ERRORS as e:
            self.error(path, read_error_message(e, self.f.get(path)))
        self.unreadable.add(path)
        return None


def validate_episode(path: str | Path, sample_frames: int | None = None) -> list[Problem]:
    """Every problem found in one episode file. `sample_frames`: decode only that many frames per stream
    (evenly spaced, first and last included); None or 0 decodes all."""
    path = Path(path)
    partial = path.name.endswith(schema.TMP_SUFFIX)
    try:
        f = open_swmr(path) if partial else open_h5(path)
    except EpisodeError as e:
        return list(e.problems)
    except _READ_ERRORS as e:
        return [Problem(str(path), "file", f"cannot open as HDF5: {type(e).__name__}: {e}")]
    ctx = _Ctx(path, f, partial, size=_file_size(f))
    try:
        if partial:
            ctx.warn("file", "unfinished episode (writer still running, or crashed): run `robolearn data repair`")
        if _check_attrs(ctx):
            _check_cameras(ctx)
            _check_layout(ctx)
            _check_values(ctx)
            _check_streams(ctx, sample_frames)
            _check_checksums(ctx)
    except EpisodeError as e:
        ctx.problems += e.problems
    except _READ_ERRORS as e:  # a damaged file can fail anywhere; report it, never raise
        ctx.error("file", f"unreadable HDF5 structure: {read_error_message(e)}")
    finally:
        try:
            f.close()
        except _READ_ERRORS:
            pass
    return ctx.problems


def _attr_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return v


def _type_ok(value: Any, tp: type) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # integers are accepted where a float is expected
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _check_attrs(ctx: _Ctx) -> bool:
    """Root attributes. Returns False when the file is not a known robolearn episode (stop checking)."""
    raw = {k: _attr_value(v) for k, v in _bounded_attrs(ctx, ctx.f, "attrs/").items()}
    fmt = raw.get("format")
    if fmt != schema.FORMAT_NAME:
        ctx.error("attrs/format", f"expected {schema.FORMAT_NAME!r}, found {fmt!r}")
        return False
    version = raw.get("schema_version")
    if version not in schema.SUPPORTED_VERSIONS:
        ctx.error(
            "attrs/schema_version",
            f"unknown schema version {version!r}; supported versions: "
            f"{list(schema.SUPPORTED_VERSIONS)} (newer file: upgrade robolearn; older: `robolearn data migrate`)",
        )
        return False
    for name, (tp, required, _doc) in schema.EPISODE_ATTRS.items():
        if name not in raw:
            if required:
                ctx.error(f"attrs/{name}", f"missing; expected a {tp.__name__} attribute")
            continue
        if not _type_ok(raw[name], tp):
            ctx.error(
                f"attrs/{name}", f"expected type {tp.__name__}, found {type(raw[name]).__name__} {raw[name]!r:.60}"
            )
    attrs = dict(raw)
    for name in (*JSON_ATTRS, "repair"):
        if name not in raw or not isinstance(raw[name], str):
            continue
        try:
            attrs[name] = json.loads(raw[name])
        except json.JSONDecodeError as e:
            ctx.error(f"attrs/{name}", f"expected a JSON string, found {raw[name]!r:.60} ({e})")
            attrs[name] = None
            continue
        kind = JSON_KINDS.get(name)
        if kind is not None and not isinstance(attrs[name], kind):
            ctx.error(f"attrs/{name}", f"expected a JSON {kind.__name__}, found {type(attrs[name]).__name__}")
            attrs[name] = None
    _check_attr_values(ctx, attrs)
    ctx.attrs = attrs
    return True


def _bounded_attrs(ctx: _Ctx, obj: h5py.HLObject, prefix: str) -> dict[str, Any]:
    """The attributes of `obj` that can be read; each one above schema.MAX_ATTR_BYTES or unreadable is an error."""
    out: dict[str, Any] = {}
    for k in list(obj.attrs.keys()):
        try:
            out[k] = read_bounded_attr(obj, k)
        except ValueError as e:
            ctx.error(f"{prefix}{k}", str(e))
        except _READ_ERRORS as e:
            ctx.error(f"{prefix}{k}", read_error_message(e))
    return out


def _check_attr_values(ctx: _Ctx, a: dict[str, Any]) -> None:
    if _type_ok(a.get("success"), int) and a["success"] not in (-1, 0, 1):
        ctx.error("attrs/success", f"expected 1, 0 or -1, found {a['success']}")
    if isinstance(a.get("action_space"), str) and a["action_space"] not in schema.ACTION_SPACES:
        ctx.error("attrs/action_space", f"expected one of {list(schema.ACTION_SPACES)}, found {a['action_space']!r}")
    if _type_ok(a.get("control_hz"), float) and not (np.isfinite(a["control_hz"]) and a["control_hz"] > 0):
        ctx.error("attrs/control_hz", f"expected a positive rate, found {a['control_hz']}")
    if _type_ok(a.get("num_steps"), int) and a["num_steps"] < 0:
        ctx.error("attrs/num_steps", f"expected >= 0, found {a['num_steps']}")
    if a.get("complete") is False and not ctx.partial:
        how = "salvaged by `robolearn data repair`" if "repair" in a else "never closed cleanly"
        ctx.warn("attrs/complete", f"incomplete episode ({how}); expected complete=True for a cleanly closed one")


# ---- camera registry ----------------------------------------------------------------------------------
def _matrix(ctx: _Ctx, fld: str, value: Any, shape: tuple[int, int]) -> np.ndarray | None:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        ctx.error(fld, f"expected a {shape[0]}x{shape[1]} matrix of numbers, found {value!r:.60}")
        return None
    if m.shape != shape:
        ctx.error(fld, f"expected shape {shape}, found {m.shape}")
        return None
    if not np.isfinite(m).all():
        ctx.error(fld, "expected finite numbers, found NaN/Inf")
        return None
    return m


def _check_cameras(ctx: _Ctx) -> None:
    reg = ctx.attrs.get("cameras")
    if not isinstance(reg, list):
        return  # missing or bad JSON: already reported
    names: set[str] = set()
    for i, cam in enumerate(reg):
        fld = f"attrs/cameras[{i}]"
        if not isinstance(cam, dict) or not isinstance(cam.get("name"), str) or not cam["name"]:
            ctx.error(fld, f"expected an object with a non-empty string `name`, found {cam!r:.60}")
            continue
        name = cam["name"]
        fld = f"attrs/cameras[{name}]"
        if name in names:
            ctx.error(fld, "duplicate camera name")
            continue
        names.add(name)
        ok = True
        for key in ("width", "height"):
            if not _type_ok(cam.get(key), int) or cam[key] <= 0:
                ctx.error(f"{fld}.{key}", f"expected a positive int, found {cam.get(key)!r}")
                ok = False
        if cam.get("encoding", "jpeg") not in schema.IMAGE_ENCODINGS:
            ctx.error(
                f"{fld}.encoding", f"expected one of {list(schema.IMAGE_ENCODINGS)}, found {cam.get('encoding')!r}"
            )
            ok = False
        if cam.get("intrinsics") is not None:
            _check_intrinsics(ctx, f"{fld}.intrinsics", cam["intrinsics"])
        if cam.get("extrinsics") is not None:
            _check_extrinsics(ctx, f"{fld}.extrinsics", cam["extrinsics"])
        dist = cam.get("distortion")
        if dist is not None and (not isinstance(dist, list) or not all(_type_ok(x, float) for x in dist)):
            ctx.error(f"{fld}.distortion", f"expected a list of numbers, found {dist!r:.60}")
        if ok:
            ctx.cams.append(cam)


def _check_intrinsics(ctx: _Ctx, fld: str, value: Any) -> None:
    k = _matrix(ctx, fld, value, (3, 3))
    if k is None:
        return
    if not np.allclose(k[2], [0, 0, 1]) or k[1, 0] != 0:
        ctx.error(fld, f"expected an upper-triangular camera matrix with last row [0, 0, 1], found {k.tolist()}")
    elif k[0, 0] <= 0 or k[1, 1] <= 0:
        ctx.error(fld, f"expected positive focal lengths fx, fy, found {k[0, 0]}, {k[1, 1]}")


def _check_extrinsics(ctx: _Ctx, fld: str, value: Any) -> None:
    m = _matrix(ctx, fld, value, (4, 4))
    if m is None:
        return
    if not np.allclose(m[3], [0, 0, 0, 1], atol=1e-9):
        ctx.error(fld, f"expected a rigid transform with last row [0, 0, 0, 1], found {m[3].tolist()}")
    r = m[:3, :3]
    err = float(np.abs(r.T @ r - np.eye(3)).max())
    if err > ROT_TOL:
        ctx.error(fld, f"expected an orthonormal rotation (|R^T R - I| <= {ROT_TOL}), found deviation {err:.3g}")
    elif np.linalg.det(r) < 0:
        ctx.error(fld, "expected a proper rotation (det +1), found a reflection (det -1)")


# ---- datasets: presence, dtype, shape, length -----------------------------------------------------------
def _camera_step_specs(cam: dict[str, Any], checksummed: bool = False) -> list[tuple[str, str, tuple[int, ...]]]:
    """(path, dtype, per-step shape) of one camera's per-step datasets (with the frame CRCs from schema 1.1)."""
    g = schema.camera_group(cam["name"])
    out = [(f"{g}/{f.path}", f.dtype, f.shape) for f in schema.CAMERA_STEP_FIELDS]
    for stream in ("rgb", "depth") if cam.get("depth") else ("rgb",):
        out.append((f"{g}/{stream}/index", "i8", (2,)))
        if checksummed:
            out.append((f"{g}/{stream}/{schema.FRAME_CRC}", "u4", ()))
    return out


def _expected_length(ctx: _Ctx) -> int:
    """T: num_steps for closed/salvaged files; the committed rows (see reader.Episode) for `.partial` files."""
    end = schema.CONTROL_FIELDS[-1].path
    if ctx.partial:
        if end not in ctx.f:
            return 0
        marks = ctx.read(end)
        if marks is None or marks.ndim != 1:
            return 0
        zero = np.flatnonzero(marks == 0)
        return int(zero[0]) if zero.size else len(marks)
    n = ctx.attrs.get("num_steps")
    if _type_ok(n, int) and n >= 0:
        try:
            return check_num_steps(ctx.path, int(n), ctx.size)
        except EpisodeError as e:
            ctx.error(e.field, e.problems[0].message)
            return 0
    obj = ctx.f.get(end)
    return int(obj.shape[0]) if isinstance(obj, h5py.Dataset) and obj.ndim >= 1 else 0


def _check_layout(ctx: _Ctx) -> None:
    ctx.n = _expected_length(ctx)
    what = "committed steps" if ctx.partial else "num_steps"
    absent = _check_absent(ctx)
    specs = [(f.path, f.dtype, f.shape) for f in schema.STEP_FIELDS if f.path not in absent]
    checksummed = has_checksums(ctx.attrs.get("schema_version"))
    for cam in ctx.cams:
        g = schema.camera_group(cam["name"])
        if not isinstance(ctx.f.get(g), h5py.Group):
            ctx.error(g, f"missing group for camera {cam['name']!r} of the camera registry")
            continue
        specs += _camera_step_specs(cam, checksummed)
        for stream in ("rgb", "depth") if cam.get("depth") else ("rgb",):
            _check_dataset(ctx, f"{g}/{stream}/data", "u1", None)
    for path, dtype, shape in specs:
        length = _check_dataset(ctx, path, dtype, shape, fletcher32=checksummed)
        if length is None:
            continue
        if length == ctx.n or (ctx.partial and length >= ctx.n):
            ctx.good.add(path)
            ctx.read(path, ctx.n)  # every per-step dataset is read once: HDF5 verifies its checksums
        else:
            ctx.error(path, f"length mismatch: expected {ctx.n} rows ({what}), found {length}")
    inst = ctx.f.get("language/instructions")
    if not isinstance(inst, h5py.Dataset) or inst.ndim != 1 or inst.dtype.kind not in "OSU" or inst.shape[0] < 1:
        found = (
            "nothing"
            if inst is None
            else f"{type(inst).__name__} {getattr(inst, 'dtype', '')} {getattr(inst, 'shape', '')}"
        )
        ctx.error(
            "language/instructions", f"expected a 1-D string dataset with at least one instruction, found {found}"
        )


def _check_absent(ctx: _Ctx) -> dict[str, str]:
    """The `absent_streams` attribute (schema >= 1.2): known keys, not stored, not the commanded form.
    Returns the absent keys that are valid (those are not expected in the file)."""
    fld = f"attrs/{schema.ABSENT_ATTR}"
    version = ctx.attrs.get("schema_version")
    new = schema.version_at_least(version, schema.ABSENT_VERSION)
    if schema.ABSENT_ATTR not in ctx.attrs:
        if new:
            ctx.error(fld, f"missing; expected a JSON object (schema {schema.ABSENT_VERSION}+, `{{}}` if none)")
        return {}
    absent = ctx.attrs[schema.ABSENT_ATTR]
    if not isinstance(absent, dict):
        return {}  # bad JSON: already reported
    if not new:
        ctx.error(fld, f"present in a schema {version} file; absent streams exist from schema {schema.ABSENT_VERSION}")
    names = [c["name"] for c in ctx.cams]
    out: dict[str, str] = {}
    for key, reason in absent.items():
        why = schema.check_absent_key(key, names)
        if why is not None:
            ctx.error(f"{fld}/{key}", why)
            continue
        if not isinstance(reason, str):
            ctx.error(f"{fld}/{key}", f"expected a str reason, found {reason!r:.60}")
        if key in ctx.f:
            ctx.error(key, f"listed in {fld} but stored; expected no dataset or group for an absent stream")
        if key == f"{schema.ACTION_GROUP}/{ctx.attrs.get('action_space')}":
            ctx.error(f"{fld}/{key}", "the commanded action form (attrs/action_space) cannot be absent")
        out[key] = str(reason)
    return out


def _check_dataset(
    ctx: _Ctx, path: str, dtype: str, shape: tuple[int, ...] | None, fletcher32: bool = False
) -> int | None:
    """Presence, dtype, per-step shape (None: any 1-D), declared size within the file size, decodable filters
    (and the fletcher32 checksum when asked). Returns the number of rows, or None if wrong."""
    obj = ctx.f.get(path)
    want_shape = "(N,)" if shape is None else str(("T", *shape)).replace("'", "")
    want = f"{np.dtype(dtype).name} dataset of shape {want_shape}"
    if obj is None:
        ctx.error(path, f"missing; expected a {want}")
        return None
    if not isinstance(obj, h5py.Dataset):
        ctx.error(path, f"expected a {want}, found a group")
        return None
    if obj.dtype != np.dtype(dtype):
        ctx.error(path, f"wrong dtype: expected {np.dtype(dtype).name}, found {obj.dtype.name}")
        return None
    per_step = () if shape is None else shape
    if obj.ndim != 1 + len(per_step) or tuple(obj.shape[1:]) != per_step:
        ctx.error(path, f"wrong shape: expected {want_shape}, found {obj.shape}")
        return None
    try:
        check_rows(obj, ctx.path, path)
    except EpisodeError as e:
        ctx.error(path, e.problems[0].message)
        ctx.unreadable.add(path)
        return None
    if not _check_filters(ctx, path, obj):
        return None
    if fletcher32 and not obj.fletcher32:
        ctx.error(
            path, f"expected a fletcher32 checksum (schema {schema.CHECKSUM_VERSION}+ numeric datasets), found none"
        )
    return int(obj.shape[0])


def _check_filters(ctx: _Ctx, path: str, obj: h5py.Dataset) -> bool:
    """False (after an error) when the dataset uses an HDF5 filter this installation cannot decode."""
    plist = obj.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        fid, _flags, _vals, name = plist.get_filter(i)
        if not h5py.h5z.filter_avail(fid):
            label = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
            ctx.error(
                path,
                f"stored with HDF5 filter {fid} ({label or 'unnamed'}), which this HDF5 installation "
                "cannot decode (plugin missing?); expected only built-in filters",
            )
            ctx.unreadable.add(path)
            return False
    return True


# ---- values -----------------------------------------------------------------------------------------------
def _steps(idx: np.ndarray, limit: int = 5) -> str:
    s = ", ".join(str(int(i)) for i in idx[:limit])
    return f"step {s}" if idx.size == 1 else f"{idx.size} steps ({s}{', ...' if idx.size > limit else ''})"


def _check_values(ctx: _Ctx) -> None:
    n = ctx.n
    if n == 0:
        if not ctx.partial:
            ctx.warn("attrs/num_steps", "empty episode: expected at least one step, found 0")
        return
    for fld in (
        *schema.STATE_FIELDS,
        *schema.ACTION_FIELDS,
        *(f for f in schema.SIGNAL_FIELDS if f.path in ("reward", "discount")),
    ):
        a = ctx.read(fld.path, n) if fld.path in ctx.good else None
        if a is not None:
            finite = np.isfinite(a).reshape(n, -1)
            bad = np.flatnonzero(~finite.all(axis=1))
            if bad.size:
                ctx.error(fld.path, f"expected finite numbers, found NaN/Inf at {_steps(bad)}")
            if fld.range is not None:
                lo, hi = fld.range
                flat = a.reshape(n, -1)
                out = finite & ((flat < lo - schema.RANGE_TOL) | (flat > hi + schema.RANGE_TOL))
                rows = np.flatnonzero(out.any(axis=1))
                if rows.size:
                    ctx.error(
                        fld.path,
                        f"expected values in [{lo:g}, {hi:g}] (schema), found "
                        f"{flat[rows[0]][out[rows[0]]][0]:.6g} at {_steps(rows)}",
                    )
    _check_quaternion(ctx, schema.STATE_FIELDS[3].path, slice(None), error=True)
    commanded_pose = ctx.attrs.get("action_space") == "cartesian_position"
    _check_quaternion(ctx, f"{schema.ACTION_GROUP}/cartesian_position", slice(3, 7), error=commanded_pose)
    _check_first_last(ctx)
    _check_control_times(ctx)
    if "language/active" in ctx.good and "language/instructions" in ctx.f:
        active = ctx.read("language/active", n)
        k = ctx.f["language/instructions"].shape[0] if ctx.f["language/instructions"].ndim == 1 else 0
        if active is not None:
            bad = np.flatnonzero((active < 0) | (active >= k))
            if bad.size:
                ctx.error(
                    "language/active",
                    f"expected indices in [0, {k}) into language/instructions, found {active[bad[0]]} at {_steps(bad)}",
                )


def _check_quaternion(ctx: _Ctx, path: str, cols: slice, error: bool) -> None:
    if path not in ctx.good:
        return
    a = ctx.read(path, ctx.n)
    if a is None:
        return
    norm = np.linalg.norm(a[:, cols], axis=1)
    bad = np.flatnonzero(np.isfinite(norm) & (np.abs(norm - 1) > QUAT_TOL))
    if bad.size:
        where = path if cols == slice(None) else f"{path}[{cols.start}:{cols.stop}]"
        msg = f"expected unit quaternions (|norm - 1| <= {QUAT_TOL}), found norm {norm[bad[0]]:.6g} at {_steps(bad)}"
        (ctx.error if error else ctx.warn)(where, msg)


def _check_first_last(ctx: _Ctx) -> None:
    n = ctx.n
    for name, want in (("is_first", 0), ("is_last", n - 1)):
        a = ctx.read(name, n) if name in ctx.good else None
        if a is None:
            continue
        others = np.flatnonzero(a)
        others = others[others != want]
        if others.size:
            ctx.error(name, f"expected True only at step {want}, found True at {_steps(others)}")
        if not a[want] and not (ctx.partial and name == "is_last"):
            msg = f"expected True at step {want}, found False"
            (ctx.error if ctx.attrs.get("complete") or name == "is_first" else ctx.warn)(name, msg)


def _check_control_times(ctx: _Ctx) -> None:
    cols = []
    for fld in schema.CONTROL_FIELDS:
        a = ctx.read(fld.path, ctx.n) if fld.path in ctx.good else None
        if a is None:
            continue
        cols.append(a)
        bad = np.flatnonzero(a <= 0)
        if bad.size:
            ctx.error(fld.path, f"expected positive timestamps, found {a[bad[0]]} at {_steps(bad)}")
        back = np.flatnonzero(np.diff(a) < 0) + 1
        if back.size:
            ctx.error(
                fld.path,
                f"expected non-decreasing timestamps, found a step back at {_steps(back)} "
                f"({a[back[0] - 1]} -> {a[back[0]]})",
            )
    if len(cols) == len(schema.CONTROL_FIELDS):
        order = np.flatnonzero((np.diff(np.stack(cols, 1), axis=1) < 0).any(axis=1))
        if order.size:
            ctx.warn(
                "timestamp/control",
                f"expected phases in order {list(schema.CONTROL_PHASES)} within a "
                f"step, found them out of order at {_steps(order)}",
            )


# ---- byte streams and frames -----------------------------------------------------------------------------
def _check_streams(ctx: _Ctx, sample_frames: int | None) -> None:
    for cam in ctx.cams:
        g = schema.camera_group(cam["name"])
        dropped = ctx.read(f"{g}/dropped", ctx.n) if f"{g}/dropped" in ctx.good else None
        _check_camera_times(ctx, g, dropped)
        for stream, enc in [("rgb", cam.get("encoding", "jpeg"))] + ([("depth", "png16")] if cam.get("depth") else []):
            _check_stream(ctx, cam, f"{g}/{stream}", enc, dropped if stream == "rgb" else None, sample_frames)


def _check_camera_times(ctx: _Ctx, g: str, dropped: np.ndarray | None) -> None:
    if dropped is None:
        return
    keep = ~dropped.astype(bool)
    times = {}
    for key in ("capture_ns", "receive_ns"):
        a = ctx.read(f"{g}/{key}", ctx.n) if f"{g}/{key}" in ctx.good else None
        if a is None:
            continue
        steps = np.flatnonzero(keep)
        t = a[keep]
        times[key] = (steps, t)
        bad = steps[t <= 0]
        if bad.size:
            ctx.error(
                f"{g}/{key}", f"expected positive timestamps on frames not dropped, found 0 or less at {_steps(bad)}"
            )
        back = np.flatnonzero(np.diff(t) < 0) + 1
        if back.size:
            ctx.error(
                f"{g}/{key}",
                f"expected non-decreasing timestamps over frames not dropped, found a step "
                f"back at {_steps(steps[back])} ({t[back[0] - 1]} -> {t[back[0]]})",
            )
    if len(times) == 2:
        steps, cap = times["capture_ns"]
        late = steps[times["receive_ns"][1] < cap]
        if late.size:
            ctx.warn(f"{g}/receive_ns", f"expected receive_ns >= capture_ns, found earlier at {_steps(late)}")


def _check_stream(
    ctx: _Ctx, cam: dict[str, Any], s: str, enc: str, dropped: np.ndarray | None, sample_frames: int | None
) -> None:
    grp = ctx.f.get(s)
    stored = _attr_value(grp.attrs.get("encoding")) if isinstance(grp, h5py.Group) else None
    if isinstance(grp, h5py.Group) and stored != enc:
        ctx.error(f"{s}.encoding", f"expected {enc!r} (camera registry), found {stored!r}")
        return
    if f"{s}/index" not in ctx.good or not isinstance(ctx.f.get(f"{s}/data"), h5py.Dataset):
        return
    index = ctx.read(f"{s}/index", ctx.n)
    if index is None:
        return
    size = int(ctx.f[f"{s}/data"].shape[0])
    off, length = index[:, 0], index[:, 1]
    bad = np.flatnonzero((off < 0) | (length < 0) | (off + length > size))
    if bad.size:
        t = bad[0]
        ctx.error(
            f"{s}/index",
            f"expected [offset, length] within {s}/data ({size} bytes), found [{off[t]}, {length[t]}] at {_steps(bad)}",
        )
        return
    present = np.flatnonzero(length > 0)
    order = present[np.argsort(off[present], kind="stable")]
    overlap = order[1:][off[order[1:]] < (off + length)[order[:-1]]]
    if overlap.size:
        ctx.error(f"{s}/index", f"expected non-overlapping frames, found overlaps at {_steps(np.sort(overlap))}")
    if dropped is not None:
        mismatch = np.flatnonzero(dropped.astype(bool) != (length == 0))
        if mismatch.size:
            t = mismatch[0]
            ctx.error(
                f"{s}/index",
                f"expected length 0 exactly where `dropped` is True, found length {length[t]} "
                f"with dropped={bool(dropped[t])} at {_steps(mismatch)}",
            )
    big = np.flatnonzero(length > schema.MAX_FRAME_BYTES)
    if big.size:
        ctx.error(
            f"{s}/index",
            f"expected frames of at most {schema.MAX_FRAME_BYTES} bytes, found {length[big[0]]} at {_steps(big)}",
        )
        return
    crc_path = f"{s}/{schema.FRAME_CRC}"
    crc = ctx.read(crc_path, ctx.n) if crc_path in ctx.good else None
    _check_frames(ctx, cam, s, enc, index, present, sample_frames, crc)


def _check_frames(
    ctx: _Ctx,
    cam: dict[str, Any],
    s: str,
    enc: str,
    index: np.ndarray,
    present: np.ndarray,
    sample_frames: int | None,
    crc: np.ndarray | None = None,
) -> None:
    """Every present frame's CRC32 (when the file has them); decoding and size of all or `sample_frames`."""
    data = ctx.f[f"{s}/data"]
    if crc is not None:
        wrong = []
        for t in range(len(index)):
            off, n = (int(x) for x in index[t])
            try:
                got = frame_crc(data[off : off + n].tobytes()) if n else 0
            except _READ_ERRORS as e:
                ctx.error(f"{s}/data", read_error_message(e))
                return
            if got != int(crc[t]):
                wrong.append(t)
        if wrong:
            ctx.error(
                f"{s}/data",
                f"CRC32 mismatch: the bytes of {len(wrong)} frames do not match "
                f"{s}/{schema.FRAME_CRC} (corrupted), first at step {wrong[0]}",
            )
    if sample_frames and present.size > sample_frames:
        present = present[np.unique(np.linspace(0, present.size - 1, sample_frames).round().astype(int))]
    want = (cam["height"], cam["width"]) if enc == "png16" else (cam["height"], cam["width"], 3)
    failed: list[tuple[int, str]] = []
    for t in present:
        off, n = (int(x) for x in index[t])
        try:
            buf = data[off : off + n].tobytes()
            img = codec.decode_depth(buf) if enc == "png16" else codec.decode_rgb(buf, enc)
        except Exception as e:  # decoders raise assorted types on garbage
            failed.append((int(t), f"cannot decode {enc} frame ({type(e).__name__}: {e})"))
            continue
        if img.shape != want:
            failed.append((int(t), f"expected size {want} (camera registry), found {img.shape}"))
    if failed:
        t, why = failed[0]
        ctx.error(f"{s}/data", f"{len(failed)} of {present.size} checked frames bad; first at step {t}: {why}")


# ---- checksums ---------------------------------------------------------------------------------------------
def _check_checksums(ctx: _Ctx) -> None:
    """The content CRC of attributes and strings (schema >= 1.1; the numeric checksums are verified by HDF5 as
    the datasets are read above); a note for older files, which carry none."""
    version = ctx.attrs.get("schema_version")
    if not has_checksums(version):
        ctx.note(
            "file",
            f"schema {version} file: carries no checksums, so silent corruption cannot be detected; "
            "`robolearn data migrate` adds them",
        )
        return
    if ctx.partial:
        return  # set on close
    stored = ctx.attrs.get(schema.CONTENT_CRC_ATTR)
    if not _type_ok(stored, int):
        ctx.error(f"attrs/{schema.CONTENT_CRC_ATTR}", f"missing; expected the content CRC32 (schema {version})")
        return
    try:
        got = content_crc32(ctx.f)
    except _READ_ERRORS as e:
        ctx.error(f"attrs/{schema.CONTENT_CRC_ATTR}", f"cannot compute the content CRC32: {read_error_message(e)}")
        return
    if got != stored:
        ctx.error(
            f"attrs/{schema.CONTENT_CRC_ATTR}",
            f"CRC32 mismatch (stored {stored:08x}, attributes and strings "
            f"give {got:08x}): an attribute or /language/instructions is corrupted or was edited outside "
            "robolearn",
        )


# ---- datasets and quarantine -------------------------------------------------------------------------
@dataclass
class ValidationReport:
    root: str
    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # original path -> quarantine path

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def notes(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "note"]

    @property
    def bad_files(self) -> list[str]:
        return sorted({p.path for p in self.errors})

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "checked": len(self.checked),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "notes": len(self.notes),
            "bad_files": self.bad_files,
            "problems": [asdict(p) for p in self.problems],
            "quarantined": self.quarantined,
        }


def validate_dataset(root: str | Path, quarantine: bool = False, sample_frames: int | None = None) -> ValidationReport:
    """Validate every episode under `root` (a folder or one file); optionally quarantine files with errors."""
    root = Path(root)
    report = ValidationReport(str(root))
    if not root.exists():
        report.problems.append(Problem(str(root), "file", "does not exist"))
        return report
    for path in list_episodes(root):
        report.checked.append(str(path))
        report.problems += validate_episode(path, sample_frames)
    for path in find_partials(root) if root.is_dir() else []:
        report.problems.append(
            Problem(
                str(path),
                "file",
                "unfinished episode (writer still running, or crashed): run `robolearn data repair`",
                "warning",
            )
        )
    if quarantine:
        qroot = root if root.is_dir() else root.parent
        for bad in report.bad_files:
            if Path(bad).exists():
                reason = "; ".join(str(p) for p in report.errors if p.path == bad)
                report.quarantined[bad] = str(quarantine_file(qroot, Path(bad), reason))
    return report
