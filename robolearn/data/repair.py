"""Salvage episodes whose writer died: `robolearn data repair DIR`.

A writer that crashes leaves `<name>.h5.partial`, an HDF5 file in SWMR state that can only be opened with
SWMR read. For each such file `repair_dataset`:

1. opens it with SWMR read (bounded metadata retries, so a damaged file fails fast) and finds the committed
   length n: rows whose commit marker (`timestamp/control/step_end_ns`, written last in every flush) and
   other control timestamps are non-zero, cut to the shortest per-step dataset, to the first row whose
   frame lies past the byte store or is empty without being marked dropped, and before each stream's
   trailing frames that do not decode (bytes that never reached the disk);
2. copies every dataset (per-step ones cut to n, byte stores cut to the bytes those rows use) and every
   attribute into a fresh temp file written like the writer writes (libver latest), with complete=False,
   num_steps=n, is_last[n-1]=True and a `repair` attribute (JSON: time, steps on disk, salvaged steps,
   reason); fsyncs it and publishes it as `<name>.h5` (never replacing an existing file);
3. moves the `.partial` into `<root>/_quarantine/` (kept for the user to delete), logged in QUARANTINE.log.

A `.partial` with nothing salvageable (cannot be opened, 0 committed steps) is quarantined with the reason.
A `.partial` whose writer got through `close()` but died before the rename (the file is closed and marked
complete) is published as is. A partial modified in the last `min_age_s` seconds, or held open by a
running process, may still be recording and is skipped. Readable `.h5` files with complete=False are already
salvaged and are left alone.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn import __version__
from robolearn.data import codec, schema
from robolearn.data.checksum import frame_crc, set_content_crc
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.quarantine import find_partials, quarantine_file
from robolearn.data.reader import open_h5, open_swmr, read_rows
from robolearn.data.validate import validate_episode
from robolearn.data.writer import publish, utc_now
from robolearn.utils import fsync_path

SALVAGE_TMP_SUFFIX = ".h5.salvage-tmp"  # temp name of a salvaged copy: matches neither *.h5 nor *.h5.partial
BYTE_STREAMS = ("rgb", "depth")
_H5_ERRORS = (EpisodeError, *H5_ERRORS)  # what reading a damaged file raises (bounded reads: EpisodeError)
READ_ATTEMPTS = 3  # SWMR metadata read attempts: the writer is gone, so a bad checksum is damage, not a race


@dataclass
class RepairResult:
    partial: Path
    action: str  # salvaged | published | unlinked | quarantined | skipped; dry run: would-<action>
    reason: str
    steps_on_disk: int = 0
    salvaged_steps: int = 0
    output: Path | None = None
    quarantined_to: Path | None = None
    problems: int = 0  # validation errors in the salvaged copy

    def line(self) -> str:
        s = f"{self.action:16s} {self.partial}"
        if self.action.endswith("salvage") or self.action == "salvaged":
            s += f": {self.salvaged_steps} of {self.steps_on_disk} steps on disk"
        if self.output is not None:
            s += f" -> {self.output}"
        s += f" ({self.reason})"
        if self.quarantined_to is not None:
            s += f"; original kept at {self.quarantined_to}"
        if self.problems:
            s += f"; salvaged copy has {self.problems} validation errors (`robolearn data validate`)"
        return s

    @property
    def lost(self) -> bool:
        """True when this episode's recorded data could not be salvaged."""
        return self.action in ("quarantined", "would-quarantine")


# ---- the committed length -----------------------------------------------------------------------------
def _per_step_paths(f: h5py.File) -> list[str]:
    """Every dataset with one row per step: schema step fields plus each camera group's fields and indices
    (cameras found in the file itself, so a damaged registry attribute does not hide them)."""
    paths = [fld.path for fld in schema.STEP_FIELDS]
    cams = f.get("cameras")
    for name in cams.keys() if isinstance(cams, h5py.Group) else []:
        g = schema.camera_group(name)
        paths += [f"{g}/{fld.path}" for fld in schema.CAMERA_STEP_FIELDS]
        paths += [f"{g}/{s}/{k}" for s in BYTE_STREAMS for k in ("index", schema.FRAME_CRC) if f"{g}/{s}/{k}" in f]
    return [p for p in paths if isinstance(f.get(p), h5py.Dataset)]


def _stream_groups(f: h5py.File) -> list[str]:
    cams = f.get("cameras")
    return [
        f"cameras/{c}/{s}"
        for c in (cams.keys() if isinstance(cams, h5py.Group) else [])
        for s in BYTE_STREAMS
        if isinstance(f.get(f"cameras/{c}/{s}/index"), h5py.Dataset)
    ]


def committed_length(f: h5py.File) -> tuple[int, int, str]:
    """(n committed steps, rows on disk, why n is less than the rows on disk)."""
    end_path = schema.CONTROL_FIELDS[-1].path
    if not isinstance(f.get(end_path), h5py.Dataset):
        return 0, 0, f"commit marker {end_path} missing"
    end = read_rows(f[end_path], f.filename, end_path)
    on_disk = int(end.shape[0])
    zero = np.flatnonzero(end == 0)
    n, why = (
        (int(zero[0]), f"{end_path} is 0 from step {int(zero[0])} (never committed)")
        if zero.size
        else (on_disk, "every row on disk committed")
    )
    for p in _per_step_paths(f):
        if f[p].shape[0] < n:
            n, why = int(f[p].shape[0]), f"{p} has only {f[p].shape[0]} rows"
    for p in (fld.path for fld in schema.CONTROL_FIELDS[:-1]):
        if isinstance(f.get(p), h5py.Dataset):
            bad = np.flatnonzero(read_rows(f[p], f.filename, p, n) == 0)
            if bad.size:
                n, why = int(bad[0]), f"{p} is 0 at step {int(bad[0])}"
    for s in _stream_groups(f):
        cut = _first_bad_row(f, s, n)
        if cut < n:
            n, why = cut, f"{s}/index: frame of step {cut} is missing or past the end of the byte store"
    cut, cut_why = _decodable_prefix(f, n)
    if cut < n:
        n, why = cut, cut_why
    return n, on_disk, why


def _first_bad_row(f: h5py.File, s: str, n: int) -> int:
    """First row < n whose frame lies outside the byte store, or is empty but not marked dropped."""
    index = read_rows(f[f"{s}/index"], f.filename, f"{s}/index", n)
    if index.ndim != 2 or index.shape[1:] != (2,):
        return 0
    size = f[f"{s}/data"].shape[0] if isinstance(f.get(f"{s}/data"), h5py.Dataset) else 0
    off, length = index[:, 0], index[:, 1]
    bad = (off < 0) | (length < 0) | (off + length > size) | (length > schema.MAX_FRAME_BYTES)
    dropped_path = f"{s.rsplit('/', 1)[0]}/dropped"
    if s.endswith("/rgb") and isinstance(f.get(dropped_path), h5py.Dataset):
        dropped = f[dropped_path][:n].astype(bool)
        bad[: dropped.size] |= (length[: dropped.size] == 0) & ~dropped
    rows = np.flatnonzero(bad)
    return int(rows[0]) if rows.size else n


def _decodable_prefix(f: h5py.File, n: int) -> tuple[int, str]:
    """Cut each stream's trailing frames that do not decode (bytes that never reached the disk): walk back
    from row n-1 over the stream's present frames until one decodes. Undecodable frames followed by good
    ones are damage, not a crash tail: they are kept (and reported by validate)."""
    why = ""
    for s in _stream_groups(f):
        index = read_rows(f[f"{s}/index"], f.filename, f"{s}/index", n)
        crc_ds = f.get(f"{s}/{schema.FRAME_CRC}")
        crc = read_rows(crc_ds, f.filename, f"{s}/{schema.FRAME_CRC}", n) if isinstance(crc_ds, h5py.Dataset) else None
        enc = f[s].attrs.get("encoding", "jpeg")
        enc = enc.decode() if isinstance(enc, bytes) else str(enc)
        for t in np.flatnonzero(index[:, 1] > 0)[::-1]:
            if _decodes(f[f"{s}/data"], index[t], enc, None if crc is None or t >= len(crc) else int(crc[t])):
                break
            n, why = int(t), f"{s}: frame of step {t} does not decode"
    return n, why


def _decodes(data: h5py.Dataset, entry: np.ndarray, enc: str, crc: int | None = None) -> bool:
    """True when the frame's bytes match their CRC32 (if stored) and decode."""
    off, length = int(entry[0]), int(entry[1])
    try:
        buf = data[off : off + length].tobytes()
        if crc is not None and frame_crc(buf) != crc:
            return False
        codec.decode_depth(buf) if enc == "png16" else codec.decode_rgb(buf, enc)
        return True
    except Exception:  # decoders raise assorted types on garbage
        return False


# ---- copying ------------------------------------------------------------------------------------------------
def _copy_attrs(src: h5py.AttributeManager, dst: h5py.AttributeManager) -> None:
    for k, v in src.items():
        dst[k] = v


def _copy_truncated(src: h5py.File, dst: h5py.File, n: int) -> None:
    """Every group, dataset and attribute of `src` into `dst`; per-step datasets cut to n rows, byte stores
    cut to the bytes those rows use."""
    per_step = set(_per_step_paths(src))
    byte_ends = {}
    for s in _stream_groups(src):
        idx = src[f"{s}/index"][:n]
        byte_ends[f"{s}/data"] = int((idx[:, 0] + idx[:, 1]).max()) if n else 0

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            _copy_attrs(obj.attrs, dst.require_group(name).attrs)
            return
        rows = n if name in per_step else byte_ends.get(name)
        data = read_rows(obj, src.filename, name, rows)
        kw: dict[str, Any] = {}
        if obj.chunks is not None:
            kw = {
                "chunks": obj.chunks,
                "maxshape": obj.maxshape,
                "compression": obj.compression,
                "compression_opts": obj.compression_opts,
                "fletcher32": obj.fletcher32,
            }
            if obj.fillvalue is not None and obj.dtype.kind not in "OSUV":
                kw["fillvalue"] = obj.fillvalue
        ds = dst.create_dataset(name, data=data, dtype=obj.dtype, **kw)
        _copy_attrs(obj.attrs, ds.attrs)

    src.visititems(visit)
    _copy_attrs(src.attrs, dst.attrs)


def write_salvaged(src: h5py.File, tmp: Path, n: int, on_disk: int, reason: str, source: Path) -> None:
    """Write the first n steps of `src` to `tmp` as an incomplete episode with a `repair` record; fsync."""
    with h5py.File(tmp, "w", libver="latest") as dst:
        _copy_truncated(src, dst, n)
        dst["is_last"][n - 1] = True
        dst.attrs["complete"] = False
        dst.attrs["num_steps"] = np.int64(n)
        dst.attrs["repair"] = json.dumps(
            {
                "time": utc_now(),
                "original_steps_on_disk": on_disk,
                "salvaged_steps": n,
                "reason": reason,
                "source": source.name,
                "software_version": __version__,
            }
        )
        if schema.CONTENT_CRC_ATTR in dst.attrs:  # schema >= 1.1: the salvaged copy's attributes are final now
            set_content_crc(dst)
        dst.flush()
    fsync_path(tmp)


# ---- one partial ------------------------------------------------------------------------------------------
def _held_open(path: Path) -> bool:
    """True when a running process on this host has `path` open (Linux /proc; False where unknown)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    target = str(path.resolve())
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                if os.readlink(fd) == target:
                    return True
        except OSError:  # process gone, or not ours to inspect
            continue
    return False


def _finished_close(path: Path) -> bool:
    """True when the writer got through close() (file closed cleanly and marked complete) but died before
    the rename: a normal, non-SWMR open succeeds only on a cleanly closed file."""
    try:
        with h5py.File(path, "r") as f:
            done = f.attrs.get("complete", False)
            return isinstance(done, (bool, np.bool_)) and bool(done)
    except _H5_ERRORS:
        return False


def _publish_free_name(tmp: Path, final: Path) -> Path:
    """Publish under `final`, or `<stem>.salvaged[-k].h5` if `final` is taken (never overwrite)."""
    candidates = [final] + [
        final.with_name(f"{final.stem}.salvaged{'' if k == 1 else f'-{k}'}{schema.EPISODE_SUFFIX}")
        for k in range(1, 100)
    ]
    for cand in candidates:
        try:
            publish(tmp, cand)
            return cand
        except FileExistsError:
            continue
    raise FileExistsError(f"{final}: no free name to publish the salvaged copy")


def repair_partial(path: str | Path, root: str | Path, dry_run: bool = False, min_age_s: float = 30.0) -> RepairResult:
    """Salvage one `.partial` file (see the module docstring)."""
    path, root = Path(path), Path(root)
    final = path.with_name(path.name[: -len(schema.TMP_SUFFIX)] + schema.EPISODE_SUFFIX)
    age = time.time() - path.stat().st_mtime
    if age < min_age_s or _held_open(path):
        why = "held open by a running process" if age >= min_age_s else f"modified {age:.0f} s ago"
        return RepairResult(path, "skipped", f"{why}: may still be recording (wait, or lower --min-age-s)")
    if final.exists() and path.exists() and os.path.samefile(final, path):
        # Killed between publish's link and unlink: the episode is published; finish the rename.
        if not dry_run:
            path.unlink()
        return RepairResult(
            path,
            "would-unlink" if dry_run else "unlinked",
            f"already published as {final.name} (same file); removed the leftover name",
        )
    if _finished_close(path):
        if dry_run:
            return RepairResult(path, "would-publish", "closed and complete; only the rename was missing")
        fsync_path(path)
        out = _publish_free_name(path, final)
        return RepairResult(path, "published", "closed and complete; only the rename was missing", output=out)
    return _salvage(path, root, final, dry_run)


def _salvage(path: Path, root: Path, final: Path, dry_run: bool) -> RepairResult:
    try:
        src = open_swmr(path, READ_ATTEMPTS)
    except (EpisodeError, *_H5_ERRORS) as e:
        try:  # a writer that died before switching to SWMR: a plain open may still work
            src = open_h5(path)
        except (EpisodeError, *_H5_ERRORS):
            return _give_up(path, root, f"cannot open: {e}", 0, dry_run)
    tmp = final.with_name(final.name[: -len(schema.EPISODE_SUFFIX)] + SALVAGE_TMP_SUFFIX)
    try:
        try:
            n, on_disk, why = committed_length(src)
        except _H5_ERRORS as e:
            return _give_up(path, root, f"cannot read: {e}", 0, dry_run)
        if n == 0:
            return _give_up(path, root, f"no committed steps ({why})", on_disk, dry_run)
        if dry_run:
            return RepairResult(path, "would-salvage", why, on_disk, n, output=final)
        try:
            write_salvaged(src, tmp, n, on_disk, why, path)
        except _H5_ERRORS as e:  # damaged beyond the commit marker's reach: keep the original, aside
            tmp.unlink(missing_ok=True)
            return _give_up(path, root, f"cannot copy {n} committed steps: {e}", on_disk, dry_run)
    finally:
        src.close()
    errors = [p for p in validate_episode(tmp) if p.severity == "error"]
    out = _publish_free_name(tmp, final)
    moved = quarantine_file(root, path, f"salvaged {n} of {on_disk} steps into {out.name}: {why}")
    return RepairResult(path, "salvaged", why, on_disk, n, output=out, quarantined_to=moved, problems=len(errors))


def _give_up(path: Path, root: Path, reason: str, on_disk: int, dry_run: bool) -> RepairResult:
    if dry_run:
        return RepairResult(path, "would-quarantine", reason, on_disk)
    moved = quarantine_file(root, path, f"nothing salvaged: {reason}")
    return RepairResult(path, "quarantined", reason, on_disk, quarantined_to=moved)


def repair_dataset(root: str | Path, dry_run: bool = False, min_age_s: float = 30.0) -> list[RepairResult]:
    """Salvage every `.partial` under `root` (outside `_quarantine`). Complete and already salvaged `.h5`
    files are never touched."""
    root = Path(root)
    base = root if root.is_dir() else root.parent
    return [repair_partial(p, base, dry_run, min_age_s) for p in find_partials(root)]
