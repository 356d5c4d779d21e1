"""LeRobot v3.0 dataset -> robolearn episodes, one `lerobot_<episode_index>.h5` per LeRobot episode.

Parallel over episodes (`workers`), resumable (an episode whose file exists is done; a `.partial` left by a
killed run is discarded and redone), written only through the crash-safe EpisodeWriter. A bad episode (a
missing or truncated MP4, frame counts that do not match, a corrupt parquet file, NaN values) is skipped and
reported with the file and field, or stops the import with `strict`; finished episodes are never touched.
The report goes to `<out>/import_report_lerobot.json`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pyarrow.parquet as pq

from robolearn.data import schema
from robolearn.data.errors import EpisodeError
from robolearn.data.interop.lerobot import layout as L
from robolearn.data.interop.lerobot.mapping import Plan, plan
from robolearn.data.interop.lerobot.mp4 import read_range
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig
from robolearn.utils import one_line, write_text_atomic

REPORT = "import_report_lerobot.json"  # next to the other importers' import_report_<kind>.json
ATTR_KEEP = ("uuid", "lab", "household", "scene_id", "operator", "robot_serial", "teleop_device")
# Attributes the writer sets anew; the exported originals are kept under extra["lerobot"]["original"].
ATTR_ORIGINAL = ("start_time", "end_time", "label_history", "language_annotations", "cadence", "software_version")


@dataclass
class ImportConfig:
    workers: int = 1  # processes importing episodes in parallel
    strict: bool = False  # stop at the first bad episode instead of skipping it
    map: list[str] = field(default_factory=list)  # FEATURE=key1,key2 for generic vectors (see mapping.py)
    action_space: str = ""  # the commanded action form; default: robolearn's attrs, else the first mapped
    quality: int = 95  # JPEG quality of the stored frames
    episodes: list[int] | None = None  # only these LeRobot episode indices (default: all)


@dataclass
class ImportReport:
    source: str
    out: str
    imported: list[int] = field(default_factory=list)
    already_done: list[int] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # {episode, file, field, error}
    not_carried: list[str] = field(default_factory=list)  # LeRobot features with no robolearn field

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def episode_name(index: int) -> str:
    return f"lerobot_{index:06d}{schema.EPISODE_SUFFIX}"


def read_parquet(path: Path, what: str, **kw: Any) -> pa.Table:
    if not path.is_file():
        raise L.LeRobotFormatError(path, what, "missing parquet file")
    try:
        return pq.read_table(path, **kw)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise L.LeRobotFormatError(path, what, f"corrupt or unreadable parquet file ({one_line(e)})") from None


def load_episodes(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / L.EPISODES_DIR).glob("*/*.parquet"))
    if not files:
        raise L.LeRobotFormatError(root / L.EPISODES_DIR, "file", "no episodes parquet (chunk-XXX/file-XXX.parquet)")
    rows: list[dict[str, Any]] = []
    for f in files:
        t = read_parquet(f, "file")
        t = t.select([c for c in t.column_names if not c.startswith("stats/")])
        for c in ("episode_index", "length", "data/chunk_index", "data/file_index"):
            if c not in t.column_names:
                raise L.LeRobotFormatError(f, c, "missing column of the v3.0 episodes table")
        rows += t.to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def load_tasks(root: Path) -> dict[int, str]:
    t = read_parquet(root / L.TASKS_PATH, "file")
    cols = t.column_names
    text = "task" if "task" in cols else next((c for c in cols if c.startswith("__index_level")), None)
    if text is None or "task_index" not in cols:
        raise L.LeRobotFormatError(root / L.TASKS_PATH, "task", f"expected columns task and task_index, got {cols}")
    return dict(zip(t.column("task_index").to_pylist(), t.column(text).to_pylist()))


def import_lerobot(src: Path, out: Path, cfg: ImportConfig | None = None) -> ImportReport:
    cfg = cfg or ImportConfig()
    src, out = Path(src), Path(out)
    info = L.load_info(src)
    episodes = load_episodes(src)
    tasks = load_tasks(src)
    p = plan(info, cfg.map, src / L.INFO_PATH)
    robolearn_source = bool(episodes) and L.ROBOLEARN_ATTRS_COLUMN in episodes[0]
    if robolearn_source:  # robolearn's export: the two generic vectors repeat the per-field features
        per_field = {"observation.state": L.STATE_PREFIX, "action": L.ACTION_PREFIX}
        p.not_carried = [
            f for f in p.not_carried if not (f in per_field and any(c.startswith(per_field[f]) for c in p.columns))
        ]
    if not any(g == "action" and k != "gripper_position" for cols in p.columns.values() for g, k, _a, _b in cols):
        raise L.LeRobotFormatError(
            src / L.INFO_PATH,
            "features",
            "no feature maps to a robolearn action form (action.<form> or --map action=<forms>, e.g. "
            f"--map action=cartesian_velocity,gripper_position); features: {sorted(info['features'])}",
        )
    if cfg.episodes is not None:
        episodes = [e for e in episodes if e["episode_index"] in set(cfg.episodes)]
    out.mkdir(parents=True, exist_ok=True)
    report = ImportReport(str(src), str(out), not_carried=p.not_carried)
    todo = []
    for e in episodes:
        idx = int(e["episode_index"])
        final = out / episode_name(idx)
        if final.exists():
            report.already_done.append(idx)
            continue
        final.with_name(final.stem + schema.TMP_SUFFIX).unlink(missing_ok=True)  # a killed run's leftover
        todo.append(e)
    jobs = [(src, info, p, e, tasks, out, cfg) for e in todo]
    try:
        if cfg.workers <= 1 or len(jobs) <= 1:
            for j in jobs:
                _collect(report, _run(j), cfg)
        else:
            # spawn, as the shared runner: a forked child would inherit the parent's Arrow/HDF5/FFmpeg threads
            ctx = multiprocessing.get_context("spawn")
            n = min(cfg.workers, os.cpu_count() or 1, len(jobs))
            with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
                futs = [pool.submit(_run, j) for j in jobs]
                try:
                    for f in as_completed(futs):
                        _collect(report, f.result(), cfg)
                except BaseException:
                    for f in futs:
                        f.cancel()
                    raise
    finally:
        report.imported.sort()
        report.skipped.sort(key=lambda s: s["episode"])
        write_text_atomic(out / REPORT, report.to_json())
    return report


def _collect(report: ImportReport, result: tuple[int, dict[str, Any] | None], cfg: ImportConfig) -> None:
    idx, err = result
    if err is None:
        report.imported.append(idx)
        return
    report.skipped.append({"episode": idx, **err})
    if cfg.strict:
        raise L.LeRobotFormatError(err["file"], err["field"], f"episode {idx}: {err['error']} (--strict)")


def _run(job: tuple) -> tuple[int, dict[str, Any] | None]:
    src, info, p, e, tasks, out, cfg = job
    idx = int(e["episode_index"])
    try:
        import_episode(src, info, p, e, tasks, out / episode_name(idx), cfg)
    except (L.LeRobotFormatError, EpisodeError) as err:
        return idx, {"file": err.path, "field": err.field, "error": str(err).split(f"{err.field}: ", 1)[-1]}
    except (KeyError, ValueError, TypeError, IndexError, OSError) as err:  # malformed in a way not foreseen
        return idx, {"file": str(src), "field": f"episode {idx}", "error": f"{type(err).__name__}: {one_line(err)}"}
    return idx, None


_TABLE: dict[tuple[str, float], pa.Table] = {}  # per worker: the data file last read (episodes come in order)


def _data_table(path: Path) -> pa.Table:
    try:
        key = (str(path), path.stat().st_mtime)
    except OSError:
        key = (str(path), -1.0)
    if key not in _TABLE:
        _TABLE.clear()
        _TABLE[key] = read_parquet(path, "file")
    return _TABLE[key]


def _ep(e: dict[str, Any], key: str, src: Path) -> Any:
    if e.get(key) is None:
        raise L.LeRobotFormatError(
            src / L.EPISODES_DIR, key, f"episode {e.get('episode_index')}: missing from the episodes table"
        )
    return e[key]


def _columns(src: Path, info: dict[str, Any], p: Plan, e: dict[str, Any]) -> tuple[Path, dict[str, np.ndarray]]:
    idx, length = int(e["episode_index"]), int(e["length"])
    path = src / info["data_path"].format(chunk_index=e["data/chunk_index"], file_index=e["data/file_index"])
    want = ["frame_index", "task_index", *p.columns, *p.signals]
    t = _data_table(path)
    if "episode_index" not in t.column_names:
        raise L.LeRobotFormatError(path, "episode_index", "column missing from the data file")
    t = t.filter(pa.compute.equal(t.column("episode_index"), idx))
    missing = [c for c in want if c not in t.column_names]
    if missing:
        raise L.LeRobotFormatError(path, missing[0], "column missing from the data file")
    if t.num_rows != length:
        raise L.LeRobotFormatError(
            path, "episode_index", f"episode {idx} has {t.num_rows} rows, meta/episodes says length {length}"
        )
    order = np.argsort(t.column("frame_index").to_numpy())
    cols: dict[str, np.ndarray] = {}
    for c in want:
        col = t.column(c).combine_chunks()
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
            arr = np.asarray(col.to_pylist(), np.float64).reshape(t.num_rows, -1)
        else:
            arr = col.to_numpy(zero_copy_only=False)
        cols[c] = arr[order]
    for c in (*p.columns, *p.signals):
        if cols[c].dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(cols[c]).reshape(length, -1).all(1))
            if bad.size:
                raise L.LeRobotFormatError(
                    path, c, f"episode {idx} frame {int(bad[0])}: NaN or infinite value ({bad.size} frames)"
                )
    return path, cols


def import_episode(
    src: Path,
    info: dict[str, Any],
    p: Plan,
    e: dict[str, Any],
    tasks: dict[int, str],
    final: Path,
    cfg: ImportConfig,
) -> Path:
    idx, T, fps = int(e["episode_index"]), int(e["length"]), float(info["fps"])
    data_path, cols = _columns(src, info, p, e)
    videos = {}
    for key in p.videos:
        vpath = src / info["video_path"].format(
            video_key=key,
            chunk_index=_ep(e, f"videos/{key}/chunk_index", src),
            file_index=_ep(e, f"videos/{key}/file_index", src),
        )
        start = float(_ep(e, f"videos/{key}/from_timestamp", src))
        videos[key] = read_range(vpath, key, start, start + T / fps, fps, T)
    attrs = json.loads(e[L.ROBOLEARN_ATTRS_COLUMN]) if e.get(L.ROBOLEARN_ATTRS_COLUMN) else {}
    step_tasks = [tasks.get(int(i), "") for i in cols["task_index"]]
    instructions = attrs.get("instructions") or list(dict.fromkeys(step_tasks))
    for text in step_tasks:
        if text not in instructions:
            instructions.append(text)
    state, action = {}, {}
    for name, slices in p.columns.items():
        for g, k, a, b in slices:
            v = cols[name].reshape(T, -1)[:, a:b]
            (state if g == "state" else action)[k] = v[:, 0] if L.field_size(k, g) == 1 else v
    mapped = {f"{schema.STATE_GROUP}/{k}" for k in state} | {f"{schema.ACTION_GROUP}/{k}" for k in action}
    absent = {k: "not in the LeRobot source" for k in schema.OPTIONAL_STREAMS if k not in mapped}
    src_absent = attrs.get(schema.ABSENT_ATTR) or {}  # robolearn's export: the original reasons
    absent |= {k: str(v) for k, v in src_absent.items() if k in absent or k.startswith("cameras/")}
    space = cfg.action_space or attrs.get("action_space") or next(k for k in L.ACTION_KEYS if k in action)
    if space not in action:
        raise L.LeRobotFormatError(data_path, f"action.{space}", f"the commanded form {space!r} is not mapped")
    cams = _cameras(attrs, videos, cfg.quality)
    meta = EpisodeMeta(
        **{k: str(attrs[k]) for k in ATTR_KEEP if k in attrs},
        robot_type=str(attrs.get("robot_type") or info.get("robot_type") or "unknown"),
        control_hz=float(attrs.get("control_hz") or fps),
        action_space=space,
        teleop_params=attrs.get("teleop_params") or {},
        task=str(attrs.get("task") or (instructions[0] if instructions else "")),
        language=instructions,
        env=attrs.get("env") or None,
        extra=(attrs.get("extra") or {})
        | {
            "lerobot": {
                "source": str(src),
                "episode_index": idx,
                "robot_type": info.get("robot_type"),
                "original": {k: attrs[k] for k in ATTR_ORIGINAL if k in attrs},
            }
        },
    )
    wcfg = WriterConfig(background_flush=False, min_free_mb=16)
    absent = {k: v for k, v in absent.items() if k[len("cameras/") :] not in {c.name for c in cams}}
    w = EpisodeWriter(final, meta, cams, wcfg, absent=absent)
    try:
        sig = {s: cols[f] for f, s in p.signals.items()}
        t0 = 1_000_000_000  # synthetic monotonic clock, t / fps apart (0 would read as an uncommitted step)
        for t in range(T):
            w.add_step(
                state={k: v[t] for k, v in state.items()},
                action={k: v[t] for k, v in action.items()},
                images={c.name: videos[L.IMAGE_PREFIX + c.name][t] for c in cams},
                control_times={ph: t0 + int(t * 1e9 / fps) for ph in schema.CONTROL_PHASES},
                reward=float(sig["reward"][t]) if "reward" in sig else 0.0,
                discount=float(sig["discount"][t]) if "discount" in sig else 1.0,
                is_terminal=bool(sig["is_terminal"][t]) if "is_terminal" in sig else False,
                intervention=bool(sig["intervention"][t]) if "intervention" in sig else False,
                language_index=instructions.index(step_tasks[t]),
            )
        success = attrs.get("success", -1)
        if "next.success" in cols:
            success = int(bool(np.asarray(cols["next.success"]).any()))
        w.set_outcome(None if success in (-1, None) else bool(success), attrs.get("label_source") or "lerobot")
        return w.close()
    except BaseException:
        w.discard()  # never a half-imported episode; a rerun redoes it
        raise


def _cameras(attrs: dict[str, Any], videos: dict[str, np.ndarray], quality: int) -> list[CameraSpec]:
    known = {c["name"]: c for c in attrs.get("cameras") or [] if isinstance(c, dict)}
    cams = []
    for key, frames in videos.items():
        name = key[len(L.IMAGE_PREFIX) :]
        h, w = frames.shape[1:3]
        base = known.get(name) or {"name": name, "role": "wrist" if "wrist" in name else "exterior"}
        fix = {"name": name, "width": int(w), "height": int(h), "quality": quality, "depth": False}
        cams.append(CameraSpec.from_dict(base | fix))
    return cams


def import_lerobot_kind(
    source: str | Path,
    out: str | Path,
    workers: int = 1,
    strict: bool = False,
    quality: int = 95,
    action_space: str = "auto",
    map: list[str] | None = None,  # noqa: A002 (the CLI flag's name)
) -> Any:
    """`robolearn data import lerobot` (robolearn.data.interop.registry): import_lerobot with the shared
    command's options, its report in the runner's shape for the command's summary."""
    from robolearn.data.interop.runner import ImportReport as RunnerReport

    cfg = ImportConfig(workers, strict, list(map or []), "" if action_space == "auto" else action_space, quality)
    t0 = time.perf_counter()
    rep = import_lerobot(source, out, cfg)
    return RunnerReport(
        source=rep.source,
        kind="lerobot",
        out=rep.out,
        config=asdict(cfg),
        imported=[{"key": f"episode_{i}", "path": str(Path(out) / episode_name(i))} for i in rep.imported],
        already_done=[f"episode_{i}" for i in rep.already_done],
        skipped=[{"key": f"episode_{s['episode']}", **s} for s in rep.skipped],
        seconds=time.perf_counter() - t0,
    )
