"""robolearn episodes -> one LeRobot v3.0 dataset folder (loads in lerobot 0.6.1's LeRobotDataset).

Per frame: `observation.state` (every recorded state field, concatenated) and `action` (the commanded form,
then the gripper target) as LeRobot policies expect, plus each field on its own (`observation.state.<key>`,
`action.<form>`, DROID-on-LeRobot style) so nothing is ambiguous; `next.reward`, `next.done`, `is_terminal`,
`discount`, `intervention`; `task_index` follows the instruction active at each step. Cameras become
`observation.images.<name>` MP4s. Each episode's attributes (uuid, lab, household, scene, operator, success,
cameras with calibration, language annotations, ...) ride along as JSON in the episodes parquet column
`robolearn/attrs`, which LeRobot ignores and `import_lerobot` restores. The folder is built under
`<out>.partial` and renamed to `out` at the end, so `out` is either absent or complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from robolearn.data import schema
from robolearn.data.errors import EpisodeError
from robolearn.data.interop.lerobot import layout as L
from robolearn.data.interop.lerobot.mp4 import VideoAppender
from robolearn.data.interop.lerobot.stats import aggregate, feature_stats, image_stats, to_json
from robolearn.data.reader import Episode
from robolearn.utils import fsync_path, write_text_atomic


@dataclass
class ExportConfig:
    codec: str = "h264"  # h264 (libx264) or av1 (libsvtav1, LeRobot's default; slower to encode)
    crf: int = 18  # video quality (lower = closer to the source frames)
    episodes_per_file: int = 50  # episodes per data parquet / MP4 file before a new file starts
    dtype: str = "float32"  # numeric features (LeRobot's convention; float64 keeps every bit)


@dataclass
class _Layout:
    """What every exported episode must share (taken from the first one)."""

    fps: int
    state: list[str]
    actions: list[str]
    commanded: str
    cameras: list[tuple[str, int, int]]

    @classmethod
    def of(cls, ep: Episode) -> _Layout:
        hz = float(ep.attrs["control_hz"])
        if abs(hz - round(hz)) > 1e-6:
            raise EpisodeError(ep.path, "attrs/control_hz", f"LeRobot needs an integer fps, got {hz}")
        absent = ep.absent
        return cls(
            fps=int(round(hz)),
            state=[k for k in L.STATE_KEYS if f"{schema.STATE_GROUP}/{k}" not in absent],
            actions=[k for k in L.ACTION_KEYS if f"{schema.ACTION_GROUP}/{k}" not in absent],
            commanded=str(ep.attrs["action_space"]),
            cameras=[(c.name, c.width, c.height) for c in ep.cameras],
        )


def _names(key: str, group: str) -> list[str]:
    n = L.field_size(key, group)
    return [key] if n == 1 else [f"{key}.{i}" for i in range(n)]


def _features(lay: _Layout, dtype: str) -> dict[str, dict[str, Any]]:
    f: dict[str, dict[str, Any]] = {}
    state_names = [n for k in lay.state for n in _names(k, "state")]
    f["observation.state"] = {"dtype": dtype, "shape": [len(state_names)], "names": state_names}
    for k in lay.state:
        f[L.STATE_PREFIX + k] = {"dtype": dtype, "shape": [L.field_size(k, "state")], "names": _names(k, "state")}
    act = [lay.commanded] + (["gripper_position"] if "gripper_position" in lay.actions else [])
    act_names = [n for k in act for n in _names(k, "action")]
    f["action"] = {"dtype": dtype, "shape": [len(act_names)], "names": act_names}
    for k in lay.actions:
        f[L.ACTION_PREFIX + k] = {"dtype": dtype, "shape": [L.field_size(k, "action")], "names": _names(k, "action")}
    for name, (_src, dt) in L.SIGNALS.items():
        f[name] = {"dtype": dt, "shape": [1], "names": None}
    for name, w, h in lay.cameras:
        f[L.IMAGE_PREFIX + name] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
        }
    for k, dt in zip(L.INDEX_FEATURES, ("float32", "int64", "int64", "int64", "int64")):
        f[k] = {"dtype": dt, "shape": [1], "names": None}
    return f


def _arrow(values: np.ndarray, ft: dict[str, Any]) -> pa.Array:
    if ft["shape"] == [1]:
        return pa.array(np.asarray(values).reshape(-1).astype(ft["dtype"]))
    v = np.asarray(values, ft["dtype"]).reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


class _Files:
    """The data parquet and camera MP4s being filled (one of each per `episodes_per_file` episodes)."""

    def __init__(self, root: Path, lay: _Layout, feats: dict[str, dict[str, Any]], cfg: ExportConfig):
        self.root, self.lay, self.feats, self.cfg = root, lay, feats, cfg
        self.n, self.rows, self.videos = -1, {}, {}
        self.in_file = 0

    def roll(self) -> None:
        self.close()
        self.n += 1
        self.in_file, self.rows = 0, {k: [] for k, ft in self.feats.items() if ft["dtype"] != "video"}
        cf = L.chunk_file(self.n)
        self.videos = {
            name: VideoAppender(
                self.root / L.VIDEO_PATH.format(video_key=L.IMAGE_PREFIX + name, **cf),
                self.lay.fps,
                w,
                h,
                self.cfg.codec,
                self.cfg.crf,
            )
            for name, w, h in self.lay.cameras
        }

    def close(self) -> None:
        if self.n < 0:
            return
        for v in self.videos.values():
            v.close()
        if self.rows and self.rows["index"]:
            cols = {k: _arrow(np.concatenate(v), self.feats[k]) for k, v in self.rows.items()}
            path = self.root / L.DATA_PATH.format(**L.chunk_file(self.n))
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(cols), path)
        self.rows = {}


def export_lerobot(
    paths: list[Path], out: Path, cfg: ExportConfig | None = None, robot_type: str | None = None
) -> dict[str, Any]:
    """Write `paths` as LeRobot v3.0 episodes 0..N-1 under `out` (must not exist). Returns a report:
    episodes, frames, skipped [{file, error}]."""
    cfg = cfg or ExportConfig()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: exists; refusing to overwrite")
    if not paths:
        raise ValueError("no episodes to export")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)  # an earlier export that never finished: never published
    tmp.mkdir(parents=True)
    try:
        report = _export(paths, tmp, cfg, robot_type)
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                fsync_path(p)
        os.rename(tmp, out)  # out did not exist: the rename publishes the whole folder at once
        fsync_path(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def _export(paths: list[Path], root: Path, cfg: ExportConfig, robot_type: str | None) -> dict[str, Any]:
    lay: _Layout | None = None
    tasks: dict[str, int] = {}
    episodes: list[dict[str, Any]] = []
    ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
    skipped: list[dict[str, str]] = []
    files: _Files | None = None
    total = 0
    for p in paths:
        with Episode(p) as ep:
            if ep.num_steps == 0:
                skipped.append({"file": str(p), "error": "no steps"})
                continue
            this = _Layout.of(ep)
            if lay is None:
                lay = this
                robot_type = robot_type or str(ep.attrs.get("robot_type", ""))
                feats = _features(lay, cfg.dtype)
                files = _Files(root, lay, feats, cfg)
            elif this != lay:
                skipped.append({"file": str(p), "error": f"layout {this} differs from the first episode's {lay}"})
                continue
            assert files is not None
            if files.n < 0 or files.in_file >= cfg.episodes_per_file:
                files.roll()
            row, stats = _episode(ep, len(episodes), total, lay, feats, files, tasks)
            episodes.append(row)
            ep_stats.append(stats)
            total += ep.num_steps
            files.in_file += 1
    if files is None or lay is None:
        raise ValueError(f"no episode with steps among {len(paths)} files")
    files.close()
    _write_meta(root, lay, feats, episodes, ep_stats, tasks, total, robot_type or "")
    return {"episodes": len(episodes), "frames": total, "skipped": skipped}


def _episode(
    ep: Episode,
    index: int,
    offset: int,
    lay: _Layout,
    feats: dict[str, dict[str, Any]],
    files: _Files,
    tasks: dict[str, int],
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    T = ep.num_steps
    cols: dict[str, np.ndarray] = {}
    state = {k: ep.state(k).reshape(T, -1) for k in lay.state}
    acts = {k: ep.action(k).reshape(T, -1) for k in lay.actions}
    cols["observation.state"] = np.concatenate([state[k] for k in lay.state], 1)
    cols.update({L.STATE_PREFIX + k: v for k, v in state.items()})
    act = [lay.commanded] + (["gripper_position"] if "gripper_position" in lay.actions else [])
    cols["action"] = np.concatenate([acts[k] for k in act], 1)
    cols.update({L.ACTION_PREFIX + k: v for k, v in acts.items()})
    for name, (src, _dt) in L.SIGNALS.items():
        cols[name] = ep.array(src)
    instr = ep.instructions() or [str(ep.attrs.get("task", ""))]
    active = np.clip(ep.array("language/active").astype(np.int64), 0, len(instr) - 1)
    ep_tasks = []
    for text in instr:
        tasks.setdefault(text, len(tasks))
    for i in dict.fromkeys(active.tolist()):
        ep_tasks.append(instr[i])
    cols["task_index"] = np.array([tasks[instr[i]] for i in active], np.int64)
    cols["timestamp"] = np.arange(T, dtype=np.float64) / lay.fps
    cols["frame_index"] = np.arange(T, dtype=np.int64)
    cols["episode_index"] = np.full(T, index, np.int64)
    cols["index"] = offset + np.arange(T, dtype=np.int64)
    stats = {k: feature_stats(v) for k, v in cols.items()}
    for k, v in cols.items():
        files.rows[k].append(v)
    cf = L.chunk_file(files.n)
    row: dict[str, Any] = {
        "episode_index": index,
        "tasks": ep_tasks,
        "length": T,
        "data/chunk_index": cf["chunk_index"],
        "data/file_index": cf["file_index"],
        "dataset_from_index": offset,
        "dataset_to_index": offset + T,
    }
    for name, _w, _h in lay.cameras:
        key = L.IMAGE_PREFIX + name
        frames = ep.frames(name)
        v = files.videos[name]
        start = v.frames
        for fr in frames:
            v.add(fr)
        row |= {
            f"videos/{key}/chunk_index": cf["chunk_index"],
            f"videos/{key}/file_index": cf["file_index"],
            f"videos/{key}/from_timestamp": start / lay.fps,
            f"videos/{key}/to_timestamp": v.frames / lay.fps,
        }
        stats[key] = image_stats(frames)
        feats[key].setdefault(
            "info",
            {
                "video.height": _h,
                "video.width": _w,
                "video.codec": v.codec_name.replace("libx264", "h264").replace("libsvtav1", "av1"),
                "video.pix_fmt": v.pix_fmt,
                "video.is_depth_map": False,
                "video.fps": lay.fps,
                "video.channels": 3,
                "has_audio": False,
            },
        )
    attrs = {k: v for k, v in ep.attrs.items() if k != schema.CONTENT_CRC_ATTR}
    row[L.ROBOLEARN_ATTRS_COLUMN] = json.dumps(attrs | {"instructions": instr}, default=str)
    for k, s in stats.items():
        for sk, sv in s.items():
            row[f"stats/{k}/{sk}"] = np.asarray(sv).tolist()
    return row, stats


def _write_meta(
    root: Path,
    lay: _Layout,
    feats: dict[str, dict[str, Any]],
    episodes: list[dict[str, Any]],
    ep_stats: list[dict[str, dict[str, np.ndarray]]],
    tasks: dict[str, int],
    total: int,
    robot_type: str,
) -> None:
    n = len(episodes)
    for i in range(0, n, L.CHUNKS_SIZE):  # one episodes parquet per CHUNKS_SIZE episodes
        part = episodes[i : i + L.CHUNKS_SIZE]
        cf = L.chunk_file(i // L.CHUNKS_SIZE)
        for r in part:
            r["meta/episodes/chunk_index"], r["meta/episodes/file_index"] = cf["chunk_index"], cf["file_index"]
        path = root / L.EPISODES_PATH.format(**cf)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part), path)
    names = sorted(tasks, key=tasks.get)
    pandas_meta = {  # so pandas.read_parquet restores `task` as the index, as LeRobot's load_tasks expects
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64"},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object"},
        ],
    }
    t = pa.table({"task_index": pa.array([tasks[k] for k in names], pa.int64()), "task": pa.array(names)})
    pq.write_table(t.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()}), root / L.TASKS_PATH)
    write_text_atomic(root / L.STATS_PATH, json.dumps(to_json(aggregate(ep_stats)), indent=2), fsync=False)
    info = {
        "codebase_version": L.CODEBASE_VERSION,
        "robot_type": robot_type or None,
        "total_episodes": n,
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": L.CHUNKS_SIZE,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200,
        "fps": lay.fps,
        "splits": {"train": f"0:{n}"},
        "data_path": L.DATA_PATH,
        "video_path": L.VIDEO_PATH if lay.cameras else None,
        "features": feats,
    }
    write_text_atomic(root / L.INFO_PATH, json.dumps(info, indent=4), fsync=False)
