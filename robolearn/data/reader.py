"""Read robolearn episode files.

`Episode` opens one file read-only, checks its format and schema version, and gives the metadata, the
per-step arrays and decoded frames. Frame bytes of uncompressed byte stores are read with `os.pread`
from the chunk addresses HDF5 reports, so fetching one frame costs one or two system calls, not an h5py
slicing round trip. Nothing here holds state that breaks when a worker process forks: open episodes in
the process that reads them (the loader does this lazily per worker).
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.data import codec, schema
from robolearn.data.checksum import frame_crc, read_bounded_attr
from robolearn.data.errors import H5_ERRORS, EpisodeError, SchemaVersionError
from robolearn.data.schema import CameraSpec

JSON_ATTRS = (
    "teleop_params",
    "language_annotations",
    "label_history",
    "cameras",
    "env",
    "cadence",
    "extra",
    schema.ABSENT_ATTR,
)
LIVE_READ_ATTEMPTS = 10  # SWMR metadata read attempts for a `.partial` whose writer may still be running


@functools.cache
def _hdf5_c_library() -> ctypes.CDLL | None:
    """The HDF5 C library h5py is linked against (Linux: found in /proc/self/maps), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if "libhdf5" in line}
        for path in sorted(paths):
            if re.search(r"/libhdf5([-.][^/]*)?\.so", path) and "_hl" not in path:
                lib = ctypes.CDLL(path)
                lib.H5Pset_metadata_read_attempts.argtypes = [ctypes.c_int64, ctypes.c_uint]
                lib.H5Pset_metadata_read_attempts.restype = ctypes.c_int
                return lib
    except (OSError, AttributeError):
        pass
    return None


def open_swmr(path: str | Path, read_attempts: int = LIVE_READ_ATTEMPTS) -> h5py.File:
    """Open an unfinished (`.partial`) episode with SWMR read, retrying a metadata block whose checksum does
    not match at most `read_attempts` times. HDF5's default for SWMR readers is 100 attempts with growing
    sleeps per block, which on a truncated or damaged file means minutes of waiting per dataset read;
    bounded, such a read fails at once with an error. h5py does not expose the setting, so it is set through
    the HDF5 C library h5py loaded; falls back to open_h5 where that library cannot be found."""
    lib = _hdf5_c_library()
    p = Path(path)
    if lib is None or not p.exists():
        return open_h5(p, swmr=True)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    if lib.H5Pset_metadata_read_attempts(fapl.id, read_attempts) < 0:
        return open_h5(p, swmr=True)
    try:
        fid = h5py.h5f.open(os.fsencode(p), h5py.h5f.ACC_RDONLY | h5py.h5f.ACC_SWMR_READ, fapl=fapl)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as e:
        raise EpisodeError(p, "file", f"cannot open as an unfinished (SWMR) HDF5 file: {e}") from None
    return h5py.File(fid)


def open_h5(path: str | Path, swmr: bool = False) -> h5py.File:
    """Open read-only, turning h5py's low-level errors into an EpisodeError naming the file."""
    p = Path(path)
    if not p.exists():
        raise EpisodeError(p, "file", "does not exist")
    try:
        if swmr:
            return h5py.File(p, "r", libver="latest", swmr=True)
        return h5py.File(p, "r")
    except OSError as e:
        msg = str(e)
        if "signature" in msg or "truncated" in msg.lower() or "EOF" in msg:
            raise EpisodeError(p, "file", f"not a readable HDF5 file (truncated or not HDF5): {msg}") from None
        if "already open for write" in msg:
            raise EpisodeError(
                p, "file", "was never closed by its writer (crash?): run `robolearn data repair`"
            ) from None
        raise EpisodeError(p, "file", f"cannot open as HDF5: {msg}") from None
    except H5_ERRORS as e:  # RuntimeError and friends from a damaged superblock or root object header
        raise EpisodeError(p, "file", f"cannot open as HDF5: {type(e).__name__}: {e}") from None


# ---- bounded reads ------------------------------------------------------------------------------------
# A damaged or hostile file can declare any shape or attribute size; reading it as declared could ask for
# terabytes. Every read below is checked against what a file of this size can hold first.
def _file_size(obj: h5py.HLObject) -> int:
    try:
        return int(obj.file.id.get_filesize())
    except H5_ERRORS:
        return 0


def check_rows(ds: h5py.Dataset, path: str | Path, field: str, rows: int | None = None) -> int:
    """The number of rows a read of `ds[:rows]` (all rows when None) returns; EpisodeError when those rows
    need more bytes than the file holds (a declared shape no honest file has)."""
    if ds.ndim == 0:
        return 1
    n = int(ds.shape[0]) if rows is None else max(0, min(int(rows), int(ds.shape[0])))
    row_bytes = int(ds.dtype.itemsize) * int(np.prod(ds.shape[1:], dtype=np.int64))
    size = _file_size(ds)
    limit = size * (64 if ds.compression else 1) + (1 << 20)
    if n * row_bytes > limit:
        raise EpisodeError(
            path,
            field,
            f"declares {n} rows of {row_bytes} bytes ({n * row_bytes} bytes), more "
            f"than a file of {size} bytes can hold: the shape is damaged",
        )
    return n


def read_rows(ds: h5py.Dataset, path: str | Path, field: str, rows: int | None = None) -> np.ndarray:
    """`ds[:rows]` (or all of it), bounded by check_rows; read errors (a fletcher32 checksum mismatch, a damaged
    chunk index, an unavailable filter) become an EpisodeError naming the file and the field."""
    n = check_rows(ds, path, field, rows)
    try:
        return ds[()] if ds.ndim == 0 else ds[:n]
    except H5_ERRORS as e:
        raise EpisodeError(path, field, read_error_message(e, ds)) from None


def read_error_message(e: BaseException, ds: h5py.Dataset | None = None) -> str:
    """A one-line reason for a failed read; `ds`: the dataset read (a filter failure on a dataset whose only
    filter is fletcher32 is a checksum mismatch)."""
    msg = " ".join(str(e).split())
    fletcher_only = False
    try:
        fletcher_only = ds is not None and ds.fletcher32 and set(ds._filters) <= {"fletcher32"}
    except H5_ERRORS:
        pass
    if "Fletcher32" in msg or "checksum" in msg.lower() or (fletcher_only and "filter" in msg.lower()):
        return f"checksum mismatch: the stored data is corrupted ({msg})"
    if "filter" in msg.lower():
        return f"cannot decode: stored with an HDF5 filter this installation cannot decode ({msg})"
    return f"cannot read: {type(e).__name__}: {msg}"


def attr_items(obj: h5py.HLObject, path: str | Path, prefix: str = "attrs/") -> dict[str, Any]:
    """Every attribute of an h5py object as read, each first checked against schema.MAX_ATTR_BYTES; errors
    become an EpisodeError naming the attribute."""
    out: dict[str, Any] = {}
    try:
        names = list(obj.attrs.keys())
    except H5_ERRORS as e:
        raise EpisodeError(
            path, prefix.rstrip("/") or "attrs", f"cannot list attributes: {read_error_message(e)}"
        ) from None
    for k in names:
        try:
            out[k] = read_bounded_attr(obj, k)
        except ValueError as e:
            raise EpisodeError(path, f"{prefix}{k}", str(e)) from None
        except H5_ERRORS as e:
            raise EpisodeError(path, f"{prefix}{k}", read_error_message(e)) from None
    return out


def read_attrs(f: h5py.File, path: str | Path) -> dict[str, Any]:
    """Episode attributes as Python values (JSON attributes parsed); checks format and version. `f` may be an
    h5py File (attribute sizes are bounded) or anything with a dict `attrs`."""
    out: dict[str, Any] = {}
    raw = f.attrs if isinstance(f.attrs, dict) else attr_items(f, path)
    for k, v in raw.items():
        if isinstance(v, bytes):
            v = v.decode(errors="replace")
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    if out.get("format") != schema.FORMAT_NAME:
        raise EpisodeError(path, "attrs/format", f"expected {schema.FORMAT_NAME!r}, got {out.get('format')!r}")
    version = out.get("schema_version")
    if version not in schema.SUPPORTED_VERSIONS:
        raise SchemaVersionError(
            path,
            "attrs/schema_version",
            f"unknown schema version {version!r}; this robolearn "
            f"reads {list(schema.SUPPORTED_VERSIONS)} (newer file? upgrade robolearn; older? "
            "`robolearn data migrate`)",
        )
    for k in JSON_ATTRS:
        if k in out:
            try:
                out[k] = json.loads(out[k])
            except (TypeError, json.JSONDecodeError):
                raise EpisodeError(path, f"attrs/{k}", f"expected a JSON string, got {out[k]!r:.80}") from None
    return out


class ByteStream:
    """One camera stream's frames: a flat uint8 store plus a (T, 2) [offset, length] index."""

    def __init__(self, group: h5py.Group, path: Path, num_steps: int | None = None):
        self.path, self.name = path, group.name
        self.encoding = group.attrs.get("encoding", "jpeg")
        if isinstance(self.encoding, bytes):
            self.encoding = self.encoding.decode()
        try:
            self._data = group["data"]
            index = group["index"]
        except KeyError as e:
            raise EpisodeError(
                path, group.name, f"byte stream incomplete, expected datasets data and index ({e})"
            ) from None
        if (
            not isinstance(self._data, h5py.Dataset)
            or not isinstance(index, h5py.Dataset)
            or self._data.ndim != 1
            or index.ndim != 2
            or index.shape[1:] != (2,)
            or index.dtype.kind not in "iu"
        ):
            raise EpisodeError(path, group.name, "expected datasets data (N,) uint8 and index (T, 2) int64")
        self.index = read_rows(index, path, f"{group.name}/index", num_steps)
        self.size = check_rows(self._data, path, f"{group.name}/data")  # bytes in the store (bounded)
        crc = group.get(schema.FRAME_CRC)
        self.crc = (
            read_rows(crc, path, f"{group.name}/{schema.FRAME_CRC}", num_steps)
            if isinstance(crc, h5py.Dataset)
            else None
        )  # schema >= 1.1
        self._fd: int | None = None
        self._chunks: np.ndarray | None = None  # file offset of each chunk (pread path)
        self._chunk_len = 0
        ds = self._data
        try:
            self._chunk_table(ds)
        except H5_ERRORS as e:
            raise EpisodeError(path, f"{group.name}/data", read_error_message(e)) from None

    def _chunk_table(self, ds: h5py.Dataset) -> None:
        if ds.chunks and not ds.compression and not ds._filters and ds.id.get_num_chunks() > 0:
            n = ds.id.get_num_chunks()
            self._chunk_len = ds.chunks[0]
            table = np.full(-(-ds.shape[0] // self._chunk_len), -1, np.int64)
            for i in range(n):
                info = ds.id.get_chunk_info(i)
                table[info.chunk_offset[0] // self._chunk_len] = info.byte_offset
            if (table >= 0).all():
                self._chunks = table

    def extent(self, t: int) -> tuple[int, int]:
        """(offset, length) of frame t, checked to lie inside the byte store."""
        off, n = (int(x) for x in self.index[t])
        if off < 0 or n < 0 or off + n > self.size or n > schema.MAX_FRAME_BYTES:
            raise EpisodeError(
                self.path,
                f"{self.name}/index",
                f"frame {t} at [{off}, {n}]: expected an offset "
                f"and length inside the byte store ({self.size} bytes, frames <= "
                f"{schema.MAX_FRAME_BYTES} bytes)",
            )
        return off, n

    def check(self, t: int, buf: bytes) -> None:
        """EpisodeError when frame t's bytes do not match their stored CRC32 (no-op for files without)."""
        if self.crc is not None and t < len(self.crc) and frame_crc(buf) != int(self.crc[t]):
            raise EpisodeError(
                self.path,
                f"{self.name}[{t}]",
                f"CRC32 mismatch in {self.name}/data (stored "
                f"{int(self.crc[t]):08x}, bytes give {frame_crc(buf):08x}): the frame is corrupted",
            )

    def raw(self, t: int) -> bytes:
        off, n = self.extent(t)
        if n == 0:
            return b""
        if self._chunks is None:
            try:
                return self._data[off : off + n].tobytes()
            except H5_ERRORS as e:
                raise EpisodeError(self.path, f"{self.name}/data", read_error_message(e)) from None
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        parts, end = [], off + n
        while off < end:
            c, within = divmod(off, self._chunk_len)
            take = min(end - off, self._chunk_len - within)
            parts.append(os.pread(self._fd, take, int(self._chunks[c]) + within))
            off += take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def last_valid(self, t: int) -> int:
        """Most recent step <= t whose frame is present, or -1."""
        while t >= 0 and self.index[t, 1] == 0:
            t -= 1
        return t

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Episode:
    """A read-only view of one episode file."""

    def __init__(self, path: str | Path, swmr: bool = False):
        self.path = Path(path)
        self._f = open_swmr(self.path) if swmr else open_h5(self.path)
        self._streams: dict[tuple[str, str], ByteStream] = {}
        try:
            self.attrs = read_attrs(self._f, self.path)
            self.num_steps = self._infer_length()
        except BaseException as e:
            self._f.close()
            if isinstance(e, H5_ERRORS) and not isinstance(e, EpisodeError):
                raise EpisodeError(self.path, "file", read_error_message(e)) from None
            raise

    def _infer_length(self) -> int:
        n = self.attrs.get("num_steps", 0)
        if not isinstance(n, int) or isinstance(n, bool):
            raise EpisodeError(self.path, "attrs/num_steps", f"expected an int, got {n!r:.60}")
        if not self.attrs.get("complete"):
            # Unclosed/salvaged files: the commit marker (last control timestamp) tells what is on disk.
            # A crash mid-flush can leave datasets with different extents: take the shortest, too.
            end_path = schema.CONTROL_FIELDS[-1].path
            end = read_rows(self.field(end_path), self.path, end_path)
            committed = np.flatnonzero(end == 0)
            n = int(committed[0]) if committed.size else end.shape[0]
            for path in self.per_step_paths():
                n = min(n, self._f[path].shape[0]) if path in self._f else n
        return check_num_steps(self.path, n, _file_size(self._f))

    def per_step_paths(self) -> list[str]:
        """Every dataset with one row per step (present step fields, camera fields, byte-stream indices)."""
        paths = [f.path for f in schema.STEP_FIELDS if f.path not in self.absent]
        for cam in self.cameras:
            g = schema.camera_group(cam.name)
            for stream in ("rgb", "depth") if cam.depth else ("rgb",):
                paths += [f"{g}/{stream}/index"] + (
                    [f"{g}/{stream}/{schema.FRAME_CRC}"] if f"{g}/{stream}/{schema.FRAME_CRC}" in self._f else []
                )
            paths += [f"{g}/{f.path}" for f in schema.CAMERA_STEP_FIELDS]
        return paths

    # ---- metadata ---------------------------------------------------------------------------------
    @cached_property
    def cameras(self) -> list[CameraSpec]:
        reg = self.attrs.get("cameras")
        if not isinstance(reg, list) or not all(isinstance(d, dict) for d in reg):
            raise EpisodeError(self.path, "attrs/cameras", f"expected a JSON list of camera objects, got {reg!r:.60}")
        try:
            return [CameraSpec.from_dict(d) for d in reg]
        except (TypeError, ValueError) as e:
            raise EpisodeError(self.path, "attrs/cameras", f"bad camera object: {e}") from None

    def camera(self, name: str) -> CameraSpec:
        for c in self.cameras:
            if c.name == name:
                return c
        if schema.camera_group(name) in self.absent:
            raise self._absent_error(schema.camera_group(name))
        raise EpisodeError(self.path, "attrs/cameras", f"camera {name!r} not in the registry {self.camera_names}")

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @cached_property
    def absent(self) -> dict[str, str]:
        """{stream key: reason} of the streams the source did not record (schema >= 1.2; {} before)."""
        a = self.attrs.get(schema.ABSENT_ATTR, {})
        if not isinstance(a, dict) or not all(isinstance(k, str) for k in a):
            raise EpisodeError(self.path, f"attrs/{schema.ABSENT_ATTR}", f"expected a JSON object, got {a!r:.60}")
        return {k: str(v) for k, v in a.items()}

    def has(self, key: str) -> bool:
        """Whether stream `key` (a step field path or `cameras/<name>`) is recorded in this episode."""
        if key.startswith("cameras/") and key.count("/") == 1:
            return key.split("/", 1)[1] in self.camera_names
        return key not in self.absent and isinstance(self._f.get(key), h5py.Dataset)

    @property
    def present_streams(self) -> list[str]:
        """The state fields, action forms and cameras (`cameras/<name>`) this episode records."""
        return [p for p in schema.OPTIONAL_STREAMS if p not in self.absent] + [
            schema.camera_group(c) for c in self.camera_names
        ]

    def _absent_error(self, key: str) -> EpisodeError:
        return EpisodeError(
            self.path,
            key,
            f"absent: the source did not record this stream ({self.absent[key]}); present: {self.present_streams}",
        )

    @property
    def language(self) -> list[str]:
        return [a["text"] for a in self.attrs.get("language_annotations", [])]

    @property
    def complete(self) -> bool:
        return bool(self.attrs.get("complete"))

    # ---- per-step arrays --------------------------------------------------------------------------
    def field(self, path: str) -> h5py.Dataset:
        if path in self.absent:
            raise self._absent_error(path)
        try:
            obj = self._f[path]
        except KeyError:
            raise EpisodeError(
                self.path, path, f"missing (required by schema {self.attrs.get('schema_version')})"
            ) from None
        if not isinstance(obj, h5py.Dataset):
            raise EpisodeError(self.path, path, "expected a dataset, found a group")
        return obj

    def array(self, path: str) -> np.ndarray:
        return read_rows(self.field(path), self.path, path, self.num_steps)

    def lowdim(self, paths: list[str] | None = None) -> dict[str, np.ndarray]:
        """All (or the given) per-step numeric fields, cut to num_steps."""
        return {p: self.array(p) for p in (paths or [f.path for f in schema.STEP_FIELDS if f.path not in self.absent])}

    def state(self, key: str) -> np.ndarray:
        return self.array(f"{schema.STATE_GROUP}/{key}")

    def action(self, key: str | None = None) -> np.ndarray:
        """An action form; default: the commanded one."""
        return self.array(f"{schema.ACTION_GROUP}/{key or self.attrs['action_space']}")

    def instructions(self) -> list[str]:
        rows = read_rows(self.field("language/instructions"), self.path, "language/instructions")
        return [s.decode(errors="replace") if isinstance(s, bytes) else str(s) for s in np.atleast_1d(rows)]

    # ---- frames -----------------------------------------------------------------------------------
    def stream(self, camera: str, kind: str = "rgb") -> ByteStream:
        key = (camera, kind)
        if key not in self._streams:
            gpath = f"{schema.camera_group(camera)}/{kind}"
            if schema.camera_group(camera) in self.absent:
                raise self._absent_error(schema.camera_group(camera))
            if not isinstance(self._f.get(gpath), h5py.Group):
                raise EpisodeError(self.path, gpath, f"missing; cameras in file: {self.camera_names}")
            self._streams[key] = ByteStream(self._f[gpath], self.path, self.num_steps)
        return self._streams[key]

    def camera_field(self, camera: str, key: str) -> np.ndarray:
        return self.array(f"{schema.camera_group(camera)}/{key}")

    def frame(self, camera: str, t: int, fast: bool = True) -> np.ndarray:
        """Decoded RGB frame (H, W, 3) uint8 at step t; dropped frames repeat the last present one."""
        s = self.stream(camera)
        t = self._check_t(t)
        src = s.last_valid(t)
        if src < 0:
            cam = self.camera(camera)
            return np.zeros((cam.height, cam.width, 3), np.uint8)
        buf = s.raw(src)
        s.check(src, buf)
        try:
            return codec.decode_rgb(buf, s.encoding, fast=fast)
        except H5_ERRORS as e:
            raise EpisodeError(self.path, f"{s.name}[{src}]", f"cannot decode {s.encoding} frame: {e}") from None

    def depth(self, camera: str, t: int) -> np.ndarray:
        s = self.stream(camera, "depth")
        src = s.last_valid(self._check_t(t))
        if src < 0:
            cam = self.camera(camera)
            return np.zeros((cam.height, cam.width), np.uint16)
        buf = s.raw(src)
        s.check(src, buf)
        try:
            return codec.decode_depth(buf)
        except H5_ERRORS as e:
            raise EpisodeError(self.path, f"{s.name}[{src}]", f"cannot decode {s.encoding} depth frame: {e}") from None

    def frames(self, camera: str, ts: list[int] | np.ndarray | None = None) -> np.ndarray:
        ts = range(self.num_steps) if ts is None else ts
        return np.stack([self.frame(camera, int(t)) for t in ts])

    def _check_t(self, t: int) -> int:
        if not 0 <= t < self.num_steps:
            raise IndexError(f"{self.path}: step {t} out of range [0, {self.num_steps})")
        return t

    # ---- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        for s in self._streams.values():
            s.close()
        self._streams.clear()
        self._f.close()

    def __enter__(self) -> Episode:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("Episode holds an open HDF5 file and cannot be pickled; pass its path to the worker")


def check_num_steps(path: str | Path, n: int, file_size: int) -> int:
    """`n` when a file of `file_size` bytes can hold that many steps (every step stores at least
    schema.MIN_STEP_BYTES of per-step data), else an EpisodeError: a damaged or absurd num_steps."""
    if n < 0 or n * schema.MIN_STEP_BYTES > file_size:
        raise EpisodeError(
            path,
            "attrs/num_steps",
            f"{n} steps: expected 0 <= num_steps <= "
            f"{file_size // schema.MIN_STEP_BYTES} (a file of {file_size} bytes holds at most that "
            "many steps)",
        )
    return n


def list_episodes(root: str | Path) -> list[Path]:
    """Episode files under `root` (recursively), sorted; skips `.partial` and quarantined files."""
    root = Path(root)
    if root.is_file():
        return [root]
    # `_quarantine` is matched below root only, so a root that itself lies in one still lists its files
    return sorted(
        p
        for p in root.rglob(f"*{schema.EPISODE_SUFFIX}")
        if p.is_file() and "_quarantine" not in p.relative_to(root).parts and not p.name.endswith(schema.TMP_SUFFIX)
    )
