"""`robolearn data ...`: every command of the data stage, as thin wrappers over the Python API of the
modules (catalog, info, relabel, merge, migrate, stats, validate, repair, robomimic, video, browser,
synthetic). Importing this module registers them all with @command; robolearn.cli imports it.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import h5py

from robolearn.config import command, opt, positional, save_config
from robolearn.data import schema
from robolearn.data.browser import make_server
from robolearn.data.catalog import (
    COLUMNS,
    TABLE_COLUMNS,
    CatalogError,
    IndexReport,
    Row,
    check_column,
    ensure_catalog,
    query,
    read_split,
    select_paths,
    split,
    update,
)
from robolearn.data.edit import UNREADABLE_ERRORS
from robolearn.data.errors import EpisodeError
from robolearn.data.info import format_dataset_info, format_episode_info, info
from robolearn.data.interop.lerobot import ExportConfig, export_lerobot
from robolearn.data.merge import MergeReport, filter_dataset, merge
from robolearn.data.migrate import migrate
from robolearn.data.reader import list_episodes
from robolearn.data.relabel import parse_success, relabel
from robolearn.data.repair import repair_dataset
from robolearn.data.robomimic import export_robomimic
from robolearn.data.stats import DEFAULT_BINS, STATS_FILE, compute_stats, save_stats
from robolearn.data.synthetic import SyntheticConfig, make_dataset
from robolearn.data.validate import validate_dataset
from robolearn.data.video import export_video
from robolearn.utils import is_loopback, one_line


# ---- synth ----------------------------------------------------------------------------------------------
@dataclass
class SynthCommand:
    out: Path = positional(help="output dataset folder")
    episodes: int = opt(8, help="number of episodes")
    steps: int = opt(40, help="steps per episode")
    size: int = opt(128, help="image side in pixels")
    cameras: list[str] = opt(default_factory=lambda: ["wrist", "exterior_1"], help="camera names")
    depth: bool = opt(False, help="also store depth")
    encoding: str = opt("jpeg", help="jpeg | png")
    households: int = opt(2, help="households")
    scenes_per_household: int = opt(2, help="scenes per household")
    seed: int = opt(0, help="random seed")


@command("data", "synth")
def synth(cfg: SynthCommand) -> int:
    """Write a synthetic dataset (for trying the toolkit, tests and benchmarks)."""
    paths = make_dataset(
        cfg.out,
        SyntheticConfig(
            num_episodes=cfg.episodes,
            steps=cfg.steps,
            size=cfg.size,
            cameras=tuple(cfg.cameras),
            depth=cfg.depth,
            encoding=cfg.encoding,
            households=cfg.households,
            scenes_per_household=cfg.scenes_per_household,
            seed=cfg.seed,
        ),
    )
    save_config(cfg, cfg.out, "synth")
    print(f"wrote {len(paths)} episodes to {cfg.out}")
    return 0


# ---- catalog: index, query, split -------------------------------------------------------------------------
def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _progress_printer() -> Callable[[int, int], None]:
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 2.0 or done == total:
            last[0] = now
            _err(f"  read {done}/{total} files")

    return show


def _print_report(rep: IndexReport, verbose: bool = True, out: Callable[[str], None] = print) -> None:
    out(f"catalog {rep.catalog}: {rep.summary()}")
    for p, fld, msg in rep.errors if verbose else ():
        out(f"  error: {p}: {fld}: {msg}")
    if not verbose and rep.errors:
        out(f"  {len(rep.errors)} unreadable files (see `robolearn data index {rep.root}`)")
    for p in rep.unfinished if verbose else ():
        out(f"  unfinished: {p} (still being written, or crashed: `robolearn data repair`)")
    if rep.duplicate_uuids:
        out(f"  warning: {rep.duplicate_uuids} uuids appear in more than one file (copies of an episode?)")


@dataclass
class IndexCommand:
    root: Path = positional(help="dataset folder")
    catalog: Path | None = opt(None, help="catalog file (default: ROOT/catalog.sqlite)")
    rebuild: bool = opt(False, help="drop the catalog and read every file again")


@command("data", "index")
def index_command(cfg: IndexCommand) -> int:
    """Build or incrementally update the episode catalog (SQLite) of a dataset."""
    try:
        rep = update(cfg.root, cfg.catalog, rebuild=cfg.rebuild, progress=_progress_printer())
    except (CatalogError, FileNotFoundError, sqlite3.Error) as e:
        _err(f"robolearn data index: {e}")
        return 2
    save_config(cfg, rep.catalog.parent, "index")
    _print_report(rep)
    return 1 if rep.errors else 0


@dataclass
class QueryCommand:
    root: Path = positional(help="dataset folder (or a catalog file)")
    where: list[str] = opt(default_factory=list, help="filters, ANDed: col=v, col=v1,v2, col!=v, col>=n, col~text")
    sql: str | None = opt(None, help="extra SQL condition on the catalog columns (read-only)")
    columns: list[str] = opt(default_factory=list, help="columns to show (default: a short set; json: all)")
    format: Literal["table", "paths", "json"] = opt("table", help="output format")
    limit: int | None = opt(None, help="at most this many rows")
    catalog: Path | None = opt(None, help="catalog file (default: ROOT/catalog.sqlite)")
    update: bool = opt(True, help="refresh the catalog first (stats every file, reads changed ones)")


@command("data", "query")
def query_command(cfg: QueryCommand) -> int:
    """Select episodes by metadata from the catalog (built or refreshed first)."""
    try:
        cat, root, rep = ensure_catalog(cfg.root, cfg.catalog, refresh=cfg.update)
        if rep is not None and rep.changed:
            _print_report(rep, verbose=False, out=_err)
        elif rep is not None and rep.errors:
            _err(f"warning: {len(rep.errors)} unreadable files in {rep.root} (see `robolearn data index`)")
        cols = list(cfg.columns) or (list(COLUMNS) if cfg.format == "json" else list(TABLE_COLUMNS))
        for c in cols:
            check_column(c, "--columns")
        rows = query(cat, cfg.where, cfg.sql, cfg.limit)
    except (CatalogError, FileNotFoundError, sqlite3.Error) as e:
        _err(f"robolearn data query: {e}")
        return 2
    if cfg.format == "paths":
        for r in rows:
            print(root.absolute() / r.path)
    elif cfg.format == "json":
        print(json.dumps([{c: getattr(r, c) for c in cols} for r in rows], indent=1))
    else:
        _print_table(rows, cols)
    _err(f"{len(rows)} episode{'' if len(rows) == 1 else 's'} match")
    return 0


def _print_table(rows: list[Row], cols: list[str]) -> None:
    cells = [[str(getattr(r, c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [min(len(x[i]), 60) for x in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip())
    for x in cells:
        print("  ".join((v if len(v) <= 60 else v[:57] + "...").ljust(w) for v, w in zip(x, widths)).rstrip())


@dataclass
class SplitCommand:
    root: Path = positional(help="dataset folder (or a catalog file)")
    by: str = opt("scene", help="scene | household | lab | random (or any catalog column)")
    holdout: list[str] = opt(default_factory=list, help="groups that go entirely to val")
    val_fraction: float = opt(0.1, help="val share when no --holdout (episodes for random, groups otherwise)")
    name: str | None = opt(None, help="split name (default: from the settings)")
    seed: int = opt(0, help="random seed")
    where: list[str] = opt(default_factory=list, help="only split episodes matching these filters")
    catalog: Path | None = opt(None, help="catalog file (default: ROOT/catalog.sqlite)")
    overwrite: bool = opt(False, help="replace an existing split of the same name")


@command("data", "split")
def split_command(cfg: SplitCommand) -> int:
    """Write a train/val split (held-out scenes, households, labs, or random) as episode lists."""
    try:
        if cfg.catalog is not None:
            ensure_catalog(cfg.root, cfg.catalog)
            target: str | Path = cfg.catalog
        else:
            target = cfg.root
        res = split(
            target,
            by=cfg.by,
            holdout=cfg.holdout,
            val_fraction=cfg.val_fraction,
            seed=cfg.seed,
            filters=cfg.where,
            name=cfg.name,
            overwrite=cfg.overwrite,
            update_catalog=cfg.catalog is None,
        )
    except (CatalogError, FileNotFoundError, sqlite3.Error) as e:
        _err(f"robolearn data split: {e}")
        return 2
    save_config(cfg, res.folder, "split")
    print(f"split {res.name}: train {len(res.train)} episodes, val {len(res.val)} episodes -> {res.folder}")
    if res.val_groups or res.train_groups:
        print(f"  val {cfg.by}: {', '.join(res.val_groups)}")
        print(f"  train {cfg.by}: {', '.join(res.train_groups)}")
    return 0


# ---- info, relabel, merge, filter, migrate -------------------------------------------------------------
def _fail(cmd: str, e: BaseException) -> int:
    problems = e.problems if isinstance(e, EpisodeError) else []
    print(f"robolearn data {cmd}: {one_line(e)}", file=sys.stderr)
    for p in problems[1:]:
        print(f"  {p}", file=sys.stderr)
    return 1


@dataclass
class InfoCommand:
    path: Path = positional(help="episode file or dataset folder")
    json: bool = opt(False, help="print JSON instead of text")


@command("data", "info")
def info_cmd(cfg: InfoCommand) -> int:
    """Summarise one episode (metadata, streams, fields) or a dataset folder (counts, lengths, sizes)."""
    try:
        i = info(cfg.path)
    except UNREADABLE_ERRORS as e:
        return _fail("info", e)
    if cfg.json:
        print(json.dumps(i, indent=2, default=str))
    else:
        print(format_dataset_info(i) if i["kind"] == "dataset" else format_episode_info(i))
    return 1 if i.get("unreadable") else 0


@dataclass
class RelabelCommand:
    path: list[Path] = positional(help="episode files, or a dataset folder (with --where to select)")
    success: str | None = opt(None, help="new outcome: true | false | unknown")
    language: list[str] | None = opt(None, help="new instruction(s); replace language/instructions")
    who: str = opt("", help="who relabels (default: the current user)")
    source: str = opt("relabel", help="annotation source recorded with new language (relabel, vlm, ...)")
    where: list[str] = opt(default_factory=list, help="catalog filters when PATH is a folder, e.g. task~drawer")


@command("data", "relabel")
def relabel_cmd(cfg: RelabelCommand) -> int:
    """Relabel success and/or language instructions safely (atomic rewrite, history kept)."""
    try:
        results = relabel(
            cfg.path,
            success=parse_success(cfg.success),
            language=cfg.language,
            who=cfg.who or None,
            source=cfg.source,
            filters=cfg.where or None,
        )
    except (*UNREADABLE_ERRORS, RuntimeError) as e:
        return _fail("relabel", e)
    changed = [r for r in results if r.changes]
    for r in changed:
        print(f"{r.path}: " + "; ".join(f"{c['field']} {c['old']!r} -> {c['new']!r}" for c in r.changes))
    print(
        f"relabelled {len(changed)} of {len(results)} episodes ({len(results) - len(changed)} already had these labels)"
    )
    return 0


@dataclass
class MergeCommand:
    sources: list[Path] = positional(help="source dataset folders (or episode files)")
    out: Path | None = opt(None, help="new dataset folder (created; existing files are never overwritten)")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1 household=house_1")
    copy: bool = opt(False, help="copy files instead of hard-linking them")


def _print_merge(report: MergeReport) -> int:
    c = report.counts()
    for s in report.sources:
        print(
            f"  {s['path']} -> {report.out / s['label'] if s['label'] else report.out}: {s['found']} found, "
            f"{s['added']} added, {s['duplicates']} duplicates skipped, {s['unreadable']} unreadable"
        )
    for u in report.unreadable:
        print(f"  unreadable, skipped: {u['error']}")
    print(
        f"{c['added']} episodes into {report.out} ({c['linked']} hard-linked, {c['copied']} copied), "
        f"{c['duplicates']} duplicates skipped; see {report.out / 'merge.json'}"
    )
    return 1 if report.unreadable else 0


@command("data", "merge")
def merge_cmd(cfg: MergeCommand) -> int:
    """Merge datasets into a new folder: hard links, uuid dedup, never overwrites."""
    if cfg.out is None:
        print("robolearn data merge: --out DIR is required", file=sys.stderr)
        return 2
    try:
        report = merge(cfg.sources, cfg.out, filters=cfg.where or None, link=not cfg.copy)
    except (*UNREADABLE_ERRORS, RuntimeError) as e:
        return _fail("merge", e)
    return _print_merge(report)


@dataclass
class FilterCommand:
    source: Path = positional(help="source dataset folder")
    out: Path | None = opt(None, help="new dataset folder")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1")
    copy: bool = opt(False, help="copy files instead of hard-linking them")


@command("data", "filter")
def filter_cmd(cfg: FilterCommand) -> int:
    """Write the episodes matching --where into a new folder (hard links, same relative paths)."""
    if cfg.out is None or not cfg.where:
        print("robolearn data filter: --out DIR and at least one --where condition are required", file=sys.stderr)
        return 2
    try:
        report = filter_dataset(cfg.source, cfg.out, cfg.where, link=not cfg.copy)
    except (*UNREADABLE_ERRORS, RuntimeError) as e:
        return _fail("filter", e)
    return _print_merge(report)


@dataclass
class MigrateCommand:
    path: Path = positional(help="episode file or dataset folder")
    dry_run: bool = opt(False, help="only report what would be upgraded")


@command("data", "migrate")
def migrate_cmd(cfg: MigrateCommand) -> int:
    """Upgrade episode files to the current schema version (temp copy + atomic replace)."""
    if not cfg.path.exists():
        return _fail("migrate", EpisodeError(cfg.path, "file", "does not exist"))
    report = migrate(cfg.path, dry_run=cfg.dry_run)
    verb = "would upgrade" if cfg.dry_run else "upgraded"
    for u in report.upgraded:
        print(f"{u['path']}: {verb} {u['from']} -> {' -> '.join(u['steps'])}")
    for p in report.problems:
        print(f"ERROR {p}", file=sys.stderr)
    print(
        f"{verb} {len(report.upgraded)}, already at {schema.SCHEMA_VERSION}: {len(report.current)}, "
        f"failed: {len(report.problems)}"
    )
    return 1 if report.problems else 0


# ---- stats ---------------------------------------------------------------------------------------------
@dataclass
class StatsCommand:
    root: Path = positional(help="dataset folder (or one episode file)")
    out: Path | None = opt(None, help="output JSON (default: <root>/stats.json)")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. household=house_1 (needs the catalog)")
    keys: list[str] = opt(default_factory=list, help="fields to cover (default: every state and action field)")
    bins: int = opt(DEFAULT_BINS, help="histogram bins per dimension (quantile error <= range/bins)")
    skip_bad: bool = opt(False, help="skip unreadable episodes (listed in the output) instead of failing")


def _stats_paths(cfg: StatsCommand) -> list[Path]:
    if not cfg.where:
        return list_episodes(cfg.root)
    return list(select_paths(cfg.root, list(cfg.where)))


def _fmt(values: list[float], n: int = 3) -> str:
    s = " ".join(f"{v:+9.3g}" for v in values[:n])
    return s + (" ..." if len(values) > n else "")


@command("data", "stats")
def stats_command(cfg: StatsCommand) -> int:
    """Per-key mean/std/min/max/quantiles of state and action fields -> stats.json."""
    try:
        paths = _stats_paths(cfg)
    except (ValueError, OSError) as e:
        print(f"robolearn data stats: {e}")
        return 2
    if not paths:
        print(f"robolearn data stats: no episodes under {cfg.root}" + (f" matching {cfg.where}" if cfg.where else ""))
        return 1
    root = cfg.root if cfg.root.is_dir() else cfg.root.parent
    try:
        st = compute_stats(paths, keys=list(cfg.keys) or None, bins=cfg.bins, skip_bad=cfg.skip_bad, root=root)
    except EpisodeError as e:
        print(f"robolearn data stats: {e}\n(use --skip-bad to leave bad episodes out)")
        return 1
    except ValueError as e:
        print(f"robolearn data stats: {e}")
        return 1
    st["config"]["where"] = list(cfg.where)
    try:
        out = save_stats(st, cfg.out or root / STATS_FILE)
    except (ValueError, OSError) as e:
        print(f"robolearn data stats: {e}")
        return 1
    print(f"{st['num_episodes']} episodes, {st['num_steps']} steps -> {out}")
    width = max(len(k) for k in st["stats"])
    print(f"{'key':<{width}}  {'dim':>3}  {'mean':<34}  {'std':<34}  {'min':<34}  max")
    for k, s in st["stats"].items():
        print(
            f"{k:<{width}}  {len(s['mean']):>3}  {_fmt(s['mean']):<34}  {_fmt(s['std']):<34}  "
            f"{_fmt(s['min']):<34}  {_fmt(s['max'])}"
        )
    for s in st["skipped"]:
        print(f"skipped {s['path']}: {s['field']}: {s['error']}")
    return 0


# ---- imports: robomimic, droid, lerobot (robolearn.data.interop) ---------------------------------------------------
@dataclass
class ImportCommand:
    kind: str = positional(help="source layout: robomimic | droid | lerobot (LeRobot v3.0)")
    source: Path = positional(
        help="robomimic: the .hdf5 file; droid: an episode folder or a tree of them; lerobot: the dataset folder"
    )
    out: Path = opt(Path("imported"), help="output dataset folder (a rerun skips episodes already there)")
    workers: int = opt(1, help="parallel worker processes")
    strict: bool = opt(False, help="stop at the first bad episode (default: skip it and report it)")
    encoding: str = opt("", help="frame encoding: jpeg | png (default: robomimic png, droid jpeg)")
    quality: int = opt(90, help="JPEG quality")
    action_space: str = opt("auto", help="robomimic: the action form `actions` holds (auto: from the file)")
    image_size: str = opt("", help="droid: store frames resized to HxW, e.g. 180x320 (default: as recorded)")
    drop_idle: bool = opt(False, help="droid: leave out steps with movement disabled (default: keep them)")
    allow_missing_cameras: bool = opt(False, help="droid: import with a missing camera marked absent")
    map: list[str] = opt(
        default_factory=list,
        help="lerobot: what a generic vector holds, FEATURE=key1,key2 (e.g. action=cartesian_velocity,gripper_position)",  # noqa: E501
    )


@command("data", "import")
def import_command(cfg: ImportCommand) -> int:
    """Import robomimic HDF5, DROID raw or LeRobot v3.0 episodes as robolearn episodes (parallel, resumable)."""
    from robolearn.data.interop.registry import run_import
    from robolearn.data.interop.runner import ImportFailed

    opts = {k: getattr(cfg, k) for k in ("workers", "strict", "quality", "action_space", "drop_idle")}
    opts["allow_missing_cameras"] = cfg.allow_missing_cameras
    opts["map"] = list(cfg.map)
    if cfg.encoding:
        opts["encoding"] = cfg.encoding
    if cfg.image_size:
        try:
            h, w = (int(v) for v in cfg.image_size.lower().split("x"))
        except ValueError:
            print(f"robolearn data import: --image-size {cfg.image_size!r}: expected HxW, e.g. 180x320")
            return 2
        opts["image_size"] = (h, w)
    try:
        rep = run_import(cfg.kind, cfg.source, cfg.out, **opts)
    except ImportFailed as e:
        print(f"robolearn data import {cfg.kind}: {one_line(e)}")
        return 1
    except (EpisodeError, OSError, ValueError) as e:
        print(f"robolearn data import {cfg.kind}: {one_line(e)}")
        return 1
    save_config(cfg, cfg.out, f"import_{cfg.kind}")
    print(
        f"imported {len(rep.imported)} episodes into {cfg.out} in {rep.seconds:.1f} s "
        f"({len(rep.already_done)} already there, {len(rep.skipped)} skipped; report: "
        f"{cfg.out}/import_report_{cfg.kind}.json)"
    )
    for s in rep.skipped[:20]:
        print(f"  skipped {s['key']}: {s['file']}: {s['field']}: {s['error']}")
    return 0


# ---- exports: robomimic, video ---------------------------------------------------------------------------
@dataclass
class RobomimicExportConfig:
    source: Path = positional(help="dataset folder (or one episode file)")
    out: Path = opt(Path("robomimic.hdf5"), help="output HDF5 file (must not exist)")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1")
    split: str = opt("", help="name of a split under SOURCE/splits to write as mask/train and mask/valid")
    next_obs: bool = opt(False, help="also write next_obs (robomimic's offline-RL key)")
    images: bool = opt(True, help="write decoded camera images")
    compress: bool = opt(False, help="gzip image datasets (smaller, slower to read)")


@command("data", "export-robomimic")
def export_robomimic_command(cfg: RobomimicExportConfig) -> int:
    """Export episodes as one robomimic-layout HDF5 file (obs/, actions, rewards, dones, mask/)."""
    src = Path(cfg.source)
    if src.is_file():
        paths = [src]
    elif cfg.where:
        paths = select_paths(src, cfg.where)
    else:
        paths = list_episodes(src)
    split_paths = None
    if cfg.split:
        split_paths = {"train": read_split(src, cfg.split, "train"), "valid": read_split(src, cfg.split, "val")}
    try:
        out = export_robomimic(paths, cfg.out, split_paths, cfg.next_obs, cfg.images, cfg.compress)
    except (EpisodeError, OSError, ValueError) as e:
        print(f"robolearn data export-robomimic: {' '.join(str(e).split())}")
        return 1
    save_config(cfg, out.parent, out.stem + ".export")
    with h5py.File(out, "r") as f:
        n = len(f["data"])
    print(
        f"wrote {n} demos to {out}" + (f" ({len(paths) - n} episodes without steps left out)" if n < len(paths) else "")
    )
    return 0


# ---- LeRobot v3.0 export (its import is `data import lerobot` above) ----------------------------------
@dataclass
class LeRobotExportCommand:
    source: Path = positional(help="dataset folder (or one episode file)")
    out: Path = opt(Path("lerobot"), help="output LeRobot v3.0 dataset folder (must not exist)")
    where: list[str] = opt(default_factory=list, help="catalog filters, e.g. success=1")
    codec: str = opt("h264", help="video codec: h264 or av1 (LeRobot's default, slower to encode)")
    crf: int = opt(18, help="video quality (lower: closer to the stored frames, bigger files)")
    episodes_per_file: int = opt(50, help="episodes per data parquet / MP4 file")


@command("data", "export-lerobot")
def export_lerobot_command(cfg: LeRobotExportCommand) -> int:
    """Export episodes as a LeRobot v3.0 dataset (loads in lerobot's LeRobotDataset from a local folder)."""
    src = Path(cfg.source)
    paths = [src] if src.is_file() else select_paths(src, cfg.where) if cfg.where else list_episodes(src)
    try:
        rep = export_lerobot(paths, cfg.out, ExportConfig(cfg.codec, cfg.crf, cfg.episodes_per_file))
    except (EpisodeError, OSError, ValueError) as e:
        print(f"robolearn data export-lerobot: {one_line(e)}")
        return 1
    save_config(cfg, cfg.out.parent, cfg.out.name + ".export")
    print(f"wrote {rep['episodes']} episodes ({rep['frames']} frames) to {cfg.out}")
    for s in rep["skipped"]:
        print(f"  left out {s['file']}: {s['error']}")
    return 0


@dataclass
class ExportVideoCommand:
    episode: Path = positional(help="episode file")
    out: Path | None = opt(None, help="output .mp4 (default: next to the episode)")
    cameras: list[str] | None = opt(None, help="cameras to show, left to right (default: all)")
    fps: float | None = opt(None, help="frame rate (default: the episode's control rate)")
    plot_keys: list[str] = opt(
        default_factory=lambda: ["action"],
        help="plotted series: 'action' (commanded action + gripper) or dataset paths",
    )
    scale: int | None = opt(None, help="integer panel scale (default: up to at least 160 px high)")


@command("data", "export-video")
def export_video_cmd(cfg: ExportVideoCommand) -> int:
    """Export an episode as MP4: cameras side by side, action plot with a cursor, text overlay."""
    try:
        path = export_video(
            cfg.episode, cfg.out, cameras=cfg.cameras, fps=cfg.fps, plot_keys=cfg.plot_keys, scale=cfg.scale
        )
    except (EpisodeError, OSError, KeyError, ValueError) as e:
        print(f"robolearn data export-video: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


# ---- validate, repair ------------------------------------------------------------------------------------
@dataclass
class ValidateCommand:
    path: Path = positional(help="dataset folder or episode file")
    quarantine: bool = opt(False, help="move files with errors to <root>/_quarantine/")
    sample_frames: int = opt(0, help="decode only N evenly spaced frames per camera stream (0 = all)")
    json: bool = opt(False, help="print the report as JSON")


@command("data", "validate")
def validate_command(cfg: ValidateCommand) -> int:
    """Check episodes against the schema (attributes, shapes, NaN/Inf, timestamps, frames); exit 1 on errors."""
    report = validate_dataset(cfg.path, quarantine=cfg.quarantine, sample_frames=cfg.sample_frames or None)
    if cfg.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for p in report.problems:
            print(f"{p.severity.upper():7s} {p}")
        for src, dst in report.quarantined.items():
            print(f"QUARANTINED {src} -> {dst}")
        print(
            f"checked {len(report.checked)} episodes: {len(report.errors)} errors in {len(report.bad_files)} "
            f"files, {len(report.warnings)} warnings"
            + (f", {len(report.quarantined)} quarantined" if cfg.quarantine else "")
        )
    return 1 if report.errors else 0


@dataclass
class RepairCommand:
    dir: Path = positional(help="dataset folder (or one .h5.partial file)")
    dry_run: bool = opt(False, help="report what would be done; change nothing")
    min_age_s: float = opt(30.0, help="skip partials modified less than this many seconds ago (may be recording)")


@command("data", "repair")
def repair_command(cfg: RepairCommand) -> int:
    """Salvage episodes whose writer crashed (`.h5.partial` files) up to their last flush."""
    if not cfg.dir.exists():
        print(f"{cfg.dir}: does not exist")
        return 2
    results = repair_dataset(cfg.dir, dry_run=cfg.dry_run, min_age_s=cfg.min_age_s)
    for r in results:
        print(r.line())
    lost = sum(r.lost for r in results)
    print(
        f"{len(results)} unfinished episodes: {sum(not r.lost and r.action != 'skipped' for r in results)} "
        f"{'salvageable' if cfg.dry_run else 'salvaged'}, {lost} not salvageable, "
        f"{sum(r.action == 'skipped' for r in results)} skipped"
    )
    return 1 if lost or any(r.problems for r in results) else 0


# ---- serve -----------------------------------------------------------------------------------------------
@dataclass
class ServeCommand:
    root: Path = positional(help="dataset folder")
    host: str = opt("127.0.0.1", help="address to bind (keep the loopback default unless you mean to share it)")
    port: int = opt(8765, help="port (0 = pick a free one)")
    open: bool = opt(False, help="open the page in the default web browser")
    verbose: bool = opt(False, help="log every request")
    who: str = opt("", help="name recorded with relabels made from the page (default: browser:<user>)")


@command("data", "serve")
def serve_cmd(cfg: ServeCommand) -> int:
    """Browse a dataset in a local web page: filter the catalog, play episodes, relabel."""
    try:
        server = make_server(cfg.root, cfg.host, cfg.port, verbose=cfg.verbose, who=cfg.who or None)
    except (OSError, ValueError, sqlite3.Error) as e:  # missing folder, port in use, bad catalog
        print(f"robolearn data serve: {e}", file=sys.stderr)
        return 2
    rep = server.app.last_report
    if rep is not None:
        print(f"catalog {rep.catalog}: {rep.summary()}")
    if not is_loopback(cfg.host):
        print(
            f"warning: bound to {cfg.host}: anyone who can reach this address can browse the dataset; "
            "relabels still need the page's token",
            file=sys.stderr,
        )
    print(f"serving {server.app.root} at {server.url}  (Ctrl-C to stop)", flush=True)
    if cfg.open:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
        server.app.close()
    return 0
