"""Crash-safe episode writer.

The episode is written with HDF5's single-writer/multiple-reader (SWMR) mode under `<name>.h5.partial`.
Steps are buffered and appended at least once per `flush_interval_s` (also by a background timer, so a
paused loop still flushes); SWMR orders raw-data and metadata writes so the file on disk is readable up to
the last flush at any instant. `close()` writes the closing attributes, fsyncs, and moves the file to
`<name>.h5` without ever replacing an existing file. A reader therefore sees either no `.h5` file or a
complete one; after a crash, `robolearn data repair` salvages the `.partial` file up to its last flush.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid as uuidlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn import __version__
from robolearn.data import codec, schema
from robolearn.data.checksum import NUMERIC_KW, frame_crc, set_content_crc
from robolearn.data.errors import EpisodeError, EpisodeWriteError
from robolearn.data.schema import CameraSpec
from robolearn.utils import fsync_path


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class EpisodeMeta:
    """Episode-level metadata supplied by the collector (see schema.EPISODE_ATTRS)."""

    lab: str = "unknown"
    household: str = "unknown"
    scene_id: str = "unknown"
    operator: str = "unknown"
    robot_type: str = "unknown"
    robot_serial: str = "unknown"
    control_hz: float = 15.0
    action_space: str = "cartesian_velocity"
    teleop_device: str = "unknown"
    teleop_params: dict[str, Any] = field(default_factory=dict)
    task: str = ""
    language: list[str] = field(default_factory=list)  # instructions shown at collection time
    language_source: str = "operator"
    env: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    uuid: str = ""
    start_time: str = ""  # ISO-8601 UTC episode start; "" = now (importers pass the source's start)

    def __post_init__(self) -> None:
        if self.action_space not in schema.ACTION_SPACES:
            raise ValueError(f"action_space must be one of {schema.ACTION_SPACES}, got {self.action_space!r}")
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")


@dataclass
class WriterConfig:
    flush_interval_s: float = 1.0  # at most this much recorded time is at risk in a crash
    background_flush: bool = True  # flush from a timer thread too, so a paused loop loses nothing
    min_free_mb: float = 64.0  # refuse to start an episode below this much free disk


class EpisodeWriter:
    """Append steps to one episode file.

    >>> with EpisodeWriter(path, meta, cameras) as w:
    ...     w.add_step(state=..., action=..., images={"wrist": rgb}, ...)
    ...     w.set_outcome(success=True)
    """

    def __init__(
        self,
        path: str | Path,
        meta: EpisodeMeta,
        cameras: list[CameraSpec],
        config: WriterConfig | None = None,
        absent: dict[str, str] | None = None,
    ):
        """`absent`: {stream key: reason} for state fields / action forms (schema.OPTIONAL_STREAMS paths, e.g.
        `action/joint_velocity`) and cameras (`cameras/<name>`) the source did not record. They are not
        stored and add_step must not be given them; the commanded action form cannot be absent."""
        self.final_path = Path(path)
        if self.final_path.suffix != schema.EPISODE_SUFFIX:
            raise ValueError(f"{path}: episode files must end in {schema.EPISODE_SUFFIX}")
        if self.final_path.exists():
            raise FileExistsError(f"{path}: episode file already exists; refusing to overwrite recorded data")
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"{path}: duplicate camera names {names}")
        self.tmp_path = self.final_path.with_name(self.final_path.stem + schema.TMP_SUFFIX)
        if self.tmp_path.exists():
            raise FileExistsError(f"{self.tmp_path}: an unfinished episode is here; run `robolearn data repair` first")
        self.cfg = config or WriterConfig()
        self.meta, self.cameras = meta, list(cameras)
        self.absent = self._check_absent(dict(absent or {}), names)
        self.fields = tuple(f for f in schema.STEP_FIELDS if f.path not in self.absent)  # the ones stored
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(self.final_path.parent).free / 2**20
        if free_mb < self.cfg.min_free_mb:
            raise EpisodeWriteError(
                self.final_path.parent,
                "disk",
                f"only {free_mb:.0f} MiB free, need {self.cfg.min_free_mb:.0f} MiB (WriterConfig.min_free_mb)",
            )
        self.uuid = meta.uuid or str(uuidlib.uuid4())
        self.num_steps = 0  # steps on disk
        self._buf: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._lock = threading.RLock()  # the HDF5 file (flushes, close)
        self._buf_lock = threading.Lock()  # the row buffer only: add_step never waits for a flush
        self._failed: BaseException | None = None
        self._closed = False
        self._success, self._label_source = -1, "unknown"
        self._cadence: dict[str, Any] | None = None
        try:
            self._f = self._create()
        except OSError as e:
            self._cleanup_failed_create()
            raise EpisodeWriteError(self.tmp_path, "file", f"cannot create episode: {e}") from e
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if self.cfg.background_flush:
            self._timer = threading.Thread(target=self._flush_loop, name="episode-flush", daemon=True)
            self._timer.start()

    def _check_absent(self, absent: dict[str, str], camera_names: list[str]) -> dict[str, str]:
        for key, reason in absent.items():
            why = schema.check_absent_key(str(key), camera_names)
            if why is not None:
                raise EpisodeError(self.final_path, f"attrs/{schema.ABSENT_ATTR}/{key}", why)
            if not isinstance(reason, str):
                raise EpisodeError(
                    self.final_path, f"attrs/{schema.ABSENT_ATTR}/{key}", f"reason must be a str, got {reason!r:.60}"
                )
        commanded = f"{schema.ACTION_GROUP}/{self.meta.action_space}"
        if commanded in absent:
            raise EpisodeError(
                self.final_path,
                f"attrs/{schema.ABSENT_ATTR}/{commanded}",
                f"the commanded action form (action_space={self.meta.action_space!r}) cannot be absent",
            )
        return absent

    # ---- creation ---------------------------------------------------------------------------------
    def _create(self) -> h5py.File:
        f = h5py.File(self.tmp_path, "w", libver="latest")
        m = self.meta
        lang = [
            {"text": t, "source": m.language_source, "annotator": m.operator, "time": utc_now()} for t in m.language
        ]
        attrs: dict[str, Any] = {
            "format": schema.FORMAT_NAME,
            "schema_version": schema.SCHEMA_VERSION,
            "uuid": self.uuid,
            "complete": False,
            "num_steps": np.int64(0),
            "lab": m.lab,
            "household": m.household,
            "scene_id": str(m.scene_id),
            "operator": m.operator,
            "robot_type": m.robot_type,
            "robot_serial": m.robot_serial,
            "control_hz": float(m.control_hz),
            "action_space": m.action_space,
            "teleop_device": m.teleop_device,
            "teleop_params": json.dumps(m.teleop_params),
            "task": m.task,
            "language_annotations": json.dumps(lang),
            "success": np.int64(-1),
            "label_source": "unknown",
            "label_history": "[]",
            "start_time": m.start_time or utc_now(),
            "end_time": "",
            "software_version": __version__,
            "cameras": schema.cameras_to_json(self.cameras),
            "cadence": "{}",
            "env": json.dumps(m.env or {}),
            "extra": json.dumps(m.extra),
            schema.ABSENT_ATTR: json.dumps(self.absent, sort_keys=True),
            schema.CONTENT_CRC_ATTR: np.int64(0),  # set on close (an attribute cannot be added under SWMR)
        }
        for k, v in attrs.items():
            f.attrs[k] = v
        for fld in self.fields:
            ds = f.create_dataset(
                fld.path,
                shape=(0, *fld.shape),
                maxshape=(None, *fld.shape),
                dtype=fld.dtype,
                chunks=(schema.STEP_CHUNK, *fld.shape),
                fillvalue=fld.fill,
                **NUMERIC_KW,
            )
            ds.attrs["doc"] = fld.doc
            for k, v in fld.attrs:
                ds.attrs[k] = v
        f["action"].attrs["commanded"] = m.action_space
        f.create_dataset("language/instructions", data=np.array(m.language or [m.task], dtype=h5py.string_dtype()))
        for cam in self.cameras:
            g = f.create_group(schema.camera_group(cam.name))
            for k, v in cam.to_dict().items():
                if v is not None and k != "calibration":
                    g.attrs[k] = v
            g.attrs["calibration"] = json.dumps(cam.calibration or {})
            for fld in schema.CAMERA_STEP_FIELDS:
                ds = g.create_dataset(
                    fld.path, shape=(0,), maxshape=(None,), dtype=fld.dtype, chunks=(schema.STEP_CHUNK,), **NUMERIC_KW
                )
                for k, v in fld.attrs:
                    ds.attrs[k] = v
            streams = [("rgb", cam.encoding)] + ([("depth", "png16")] if cam.depth else [])
            for stream, enc in streams:
                s = g.create_group(stream)
                s.attrs["encoding"] = enc
                s.create_dataset("data", shape=(0,), maxshape=(None,), dtype="u1", chunks=(schema.BYTES_CHUNK,))
                s.create_dataset(
                    "index", shape=(0, 2), maxshape=(None, 2), dtype="i8", chunks=(schema.INDEX_CHUNK, 2), **NUMERIC_KW
                )
                s.create_dataset(
                    schema.FRAME_CRC,
                    shape=(0,),
                    maxshape=(None,),
                    dtype="u4",
                    chunks=(schema.INDEX_CHUNK,),
                    **NUMERIC_KW,
                )
        f.swmr_mode = True
        f.flush()
        return f

    def _cleanup_failed_create(self) -> None:
        try:
            self.tmp_path.unlink()
        except OSError:
            pass

    # ---- appending --------------------------------------------------------------------------------
    def add_step(
        self,
        state: dict[str, Any],
        action: dict[str, Any],
        images: dict[str, np.ndarray | None] | None = None,
        depth: dict[str, np.ndarray | None] | None = None,
        camera_times: dict[str, tuple[int, int]] | None = None,
        control_times: dict[str, int] | None = None,
        reward: float = 0.0,
        discount: float = 1.0,
        is_terminal: bool = False,
        intervention: bool = False,
        language_index: int = 0,
    ) -> None:
        """Append one control step.

        state: joint_positions, joint_velocities, ee_position, ee_quaternion, gripper_position.
        action: every form in schema.ACTION_FIELDS (cartesian_velocity, cartesian_position, joint_position,
        joint_velocity, gripper_position); fields declared absent (constructor `absent`) must be left out.
        images[name]: RGB uint8 (H, W, 3), or None when the frame was
        dropped. depth[name]: uint16 mm. camera_times[name]: (capture_ns, receive_ns). control_times:
        `<phase>` -> host monotonic ns for schema.CONTROL_PHASES (missing phases default to now).
        """
        self._check_open()
        row: dict[str, Any] = {}
        for fld in schema.STATE_FIELDS:
            row[fld.path] = self._coerce(state, fld, "state")
        for fld in schema.ACTION_FIELDS:
            row[fld.path] = self._coerce(action, fld, "action")
        for k in [k for k, v in row.items() if v is None]:
            del row[k]
        now = time.monotonic_ns()
        ct = control_times or {}
        for p, fld in zip(schema.CONTROL_PHASES, schema.CONTROL_FIELDS):
            row[fld.path] = int(ct.get(p, now))
        row["is_first"] = self.steps_recorded == 0
        row["is_last"] = False
        row["is_terminal"] = bool(is_terminal)
        row["reward"], row["discount"] = float(reward), float(discount)
        n_instr = max(len(self.meta.language), 1)  # language/instructions holds meta.language, or [task]
        if not 0 <= int(language_index) < n_instr:
            raise EpisodeError(
                self.tmp_path,
                "language/active",
                f"language_index {language_index} out of range: "
                f"expected 0..{n_instr - 1} (index into EpisodeMeta.language)",
            )
        row["intervention"], row["language/active"] = bool(intervention), int(language_index)
        images, depth, camera_times = images or {}, depth or {}, camera_times or {}
        unknown = set(images) - {c.name for c in self.cameras}
        if unknown:
            raise EpisodeError(
                self.tmp_path,
                f"images/{sorted(unknown)[0]}",
                f"camera not registered; registered: {[c.name for c in self.cameras]}",
            )
        no_depth = set(depth) - {c.name for c in self.cameras if c.depth}
        if no_depth:  # would be dropped silently
            raise EpisodeError(
                self.tmp_path,
                f"depth/{sorted(no_depth)[0]}",
                f"no depth stream registered for this "
                f"camera; cameras with depth: {[c.name for c in self.cameras if c.depth]}",
            )
        for cam in self.cameras:
            img = images.get(cam.name)
            g = schema.camera_group(cam.name)
            if img is not None and img.shape[:2] != (cam.height, cam.width):
                raise EpisodeError(
                    self.tmp_path, f"{g}/rgb", f"expected ({cam.height}, {cam.width}, 3), got {img.shape}"
                )
            row[f"{g}/rgb"] = (
                None if img is None else self._encode(f"{g}/rgb", codec.encode_rgb, img, cam.encoding, cam.quality)
            )
            if cam.depth:
                d = depth.get(cam.name)
                if d is not None and np.shape(d)[:2] != (cam.height, cam.width):
                    raise EpisodeError(
                        self.tmp_path, f"{g}/depth", f"expected uint16 ({cam.height}, {cam.width}), got {np.shape(d)}"
                    )
                row[f"{g}/depth"] = None if d is None else self._encode(f"{g}/depth", codec.encode_depth, d)
            cap, rec = camera_times.get(cam.name, (0, 0) if img is None else (time.time_ns(),) * 2)
            row[f"{g}/capture_ns"], row[f"{g}/receive_ns"], row[f"{g}/dropped"] = int(cap), int(rec), img is None
        self._check_open()
        with self._buf_lock:
            self._buf.append(row)
            backlog = len(self._buf)
        overdue = time.monotonic() - self._last_flush >= self.cfg.flush_interval_s
        # With the background flusher the control thread never writes to the file, unless the flusher has
        # fallen far behind (then the caller pays, so memory and data at risk stay bounded).
        if overdue and (
            self._timer is None
            or time.monotonic() - self._last_flush >= 4 * self.cfg.flush_interval_s
            or backlog > 4096
        ):
            with self._lock:
                self._flush_locked()

    def _encode(self, field: str, encode: Any, *args: Any) -> bytes:
        try:
            return encode(*args)
        except ValueError as e:  # wrong dtype / channels: name the file and the stream
            raise EpisodeError(self.tmp_path, field, str(e)) from None

    def _coerce(self, src: dict[str, Any], fld: schema.Field, group: str) -> np.ndarray | None:
        key = fld.path.rsplit("/", 1)[-1]
        if fld.path in self.absent:
            if key in src:  # a value for a stream declared not recorded: one of the two is wrong
                raise EpisodeError(
                    self.tmp_path,
                    fld.path,
                    f"declared absent ({self.absent[fld.path]!r}) but given in the {group} dict",
                )
            return None
        if key not in src:
            raise EpisodeError(self.tmp_path, fld.path, f"missing from {group} dict; expected shape {fld.shape}")
        arr = np.asarray(src[key], dtype=fld.dtype)
        if arr.shape != fld.shape:
            raise EpisodeError(self.tmp_path, fld.path, f"expected shape {fld.shape}, got {arr.shape}")
        return arr

    def _check_open(self) -> None:
        if self._failed is not None:
            raise EpisodeWriteError(
                self.tmp_path,
                "file",
                f"writer failed earlier ({self._failed}); flushed steps "
                "are kept, salvage them with `robolearn data repair`",
            )
        if self._closed:
            raise EpisodeError(self.final_path, "file", "episode already closed")

    # ---- flushing ---------------------------------------------------------------------------------
    def flush(self) -> None:
        with self._lock:
            self._check_open()
            self._flush_locked()

    def _flush_loop(self) -> None:
        period = max(self.cfg.flush_interval_s / 4, 0.01)
        while not self._stop.wait(period):
            with self._lock:
                if self._closed or self._failed is not None:
                    return
                if self._buf and time.monotonic() - self._last_flush >= self.cfg.flush_interval_s:
                    try:
                        self._flush_locked()
                    except EpisodeWriteError:
                        return

    def _flush_locked(self) -> None:
        self._last_flush = time.monotonic()
        with self._buf_lock:
            rows = self._buf[:]  # a snapshot: steps added meanwhile wait for the next flush
        if not rows:
            return
        n0 = self.num_steps
        n1 = n0 + len(rows)
        try:
            f = self._f
            # Bytes first, then per-step datasets: a crash mid-flush leaves frame bytes without their
            # steps, which repair drops; never steps whose frames are missing.
            for cam in self.cameras:
                g = schema.camera_group(cam.name)
                for stream in ("rgb", "depth") if cam.depth else ("rgb",):
                    self._append_bytes(f[f"{g}/{stream}"], [r[f"{g}/{stream}"] for r in rows], n0)
                for fld in schema.CAMERA_STEP_FIELDS:
                    self._append(f[f"{g}/{fld.path}"], [r[f"{g}/{fld.path}"] for r in rows], n0)
            for fld in self.fields:
                if fld.path.startswith("timestamp/control/step_end"):
                    continue
                self._append(f[fld.path], [r[fld.path] for r in rows], n0)
            f.flush()  # everything above is on disk before the commit marker is written
            # The last control timestamp is the commit marker: a row counts only once it is non-zero.
            end = schema.CONTROL_FIELDS[-1].path
            self._append(f[end], [r[end] for r in rows], n0)
            f.flush()
        except (OSError, RuntimeError, ValueError) as e:
            self._failed = e
            raise EpisodeWriteError(
                self.tmp_path,
                "file",
                f"write failed after {n0} flushed steps ({e}); "
                f"flushed steps are kept, salvage them with `robolearn data repair`",
            ) from e
        self.num_steps = n1
        with self._buf_lock:
            del self._buf[: len(rows)]

    @staticmethod
    def _append(ds: h5py.Dataset, values: list[Any], n0: int) -> None:
        ds.resize(n0 + len(values), axis=0)
        ds[n0:] = np.asarray(values, dtype=ds.dtype)

    @staticmethod
    def _append_bytes(group: h5py.Group, frames: list[bytes | None], n0: int) -> None:
        data, index, crcs = group["data"], group["index"], group[schema.FRAME_CRC]
        off = data.shape[0]
        idx = np.zeros((len(frames), 2), np.int64)
        crc = np.zeros(len(frames), np.uint32)
        chunks = []
        for i, b in enumerate(frames):
            n = 0 if b is None else len(b)
            idx[i] = (off, n)
            off += n
            if n:
                chunks.append(b)
                crc[i] = frame_crc(b)
        if chunks:
            blob = np.frombuffer(b"".join(chunks), np.uint8)
            start = data.shape[0]
            data.resize((start + blob.size,))
            data[start:] = blob
        index.resize((n0 + len(frames), 2))
        index[n0:] = idx
        crcs.resize((n0 + len(frames),))
        crcs[n0:] = crc

    # ---- closing ----------------------------------------------------------------------------------
    def set_outcome(self, success: bool | None, source: str = "operator") -> None:
        """Label the episode; written on close. None = unknown."""
        self._success = -1 if success is None else int(bool(success))
        self._label_source = source if success is not None else "unknown"

    def set_cadence(self, report: dict[str, Any]) -> None:
        self._cadence = report

    @property
    def steps_recorded(self) -> int:
        """Steps added so far (flushed or still buffered)."""
        return self.num_steps + len(self._buf)

    def update_extra(self, **items: Any) -> None:
        """Merge items into the episode's `extra` attribute (rewritten on close), e.g. why it was aborted."""
        json.dumps(items)  # fail now, not at close, if not JSON-serialisable
        self.meta.extra.update(items)

    def close(self) -> Path:
        """Flush, mark complete and move the file to its final name. Returns the final path."""
        with self._lock:
            self._check_open()
            self._stop_timer()
            self._flush_locked()
            try:
                f = self._f
                n = self.num_steps
                if n:
                    f["is_last"][n - 1] = True
                f.attrs["num_steps"] = np.int64(n)
                f.attrs["success"] = np.int64(self._success)
                f.attrs["label_source"] = self._label_source
                f.attrs["end_time"] = utc_now()
                f.attrs["cadence"] = json.dumps(self._cadence or {})
                f.attrs["extra"] = json.dumps(self.meta.extra)
                f.attrs["complete"] = True
                set_content_crc(f)
                f.flush()
                f.close()
                fsync_path(self.tmp_path)
                publish(self.tmp_path, self.final_path)
            except OSError as e:
                self._failed = e
                raise EpisodeWriteError(
                    self.tmp_path,
                    "file",
                    f"closing failed ({e}); flushed steps are kept, salvage them with `robolearn data repair`",
                ) from e
            self._closed = True
        return self.final_path

    def discard(self) -> None:
        """Drop the episode being written (operator pressed discard / re-record)."""
        with self._lock:
            self._stop_timer()
            self._closed = True
            try:
                self._f.close()
            except Exception:
                pass
            self.tmp_path.unlink(missing_ok=True)

    def _stop_timer(self) -> None:
        self._stop.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.join(timeout=5)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            self.close()
            return
        # An exception in the recording loop: keep what was recorded, leave it as an incomplete episode
        # for `repair` (never lose it, never mark it complete).
        with self._lock:
            self._stop_timer()
            if self._failed is None:
                try:
                    self._flush_locked()
                except EpisodeWriteError:
                    pass
            try:
                self._f.close()
            except Exception:
                pass
            self._closed = True

    @property
    def config(self) -> dict[str, Any]:
        return asdict(self.cfg)


def publish(tmp: Path, final: Path) -> None:
    """Move `tmp` to `final` atomically without ever replacing an existing `final`; fsync the folder."""
    try:
        os.link(tmp, final)  # fails with FileExistsError instead of clobbering
        os.unlink(tmp)
    except FileExistsError:
        raise
    except OSError:  # file systems without hard links
        if final.exists():
            raise FileExistsError(f"{final}: exists; refusing to overwrite") from None
        os.replace(tmp, final)
    fsync_path(final.parent)
