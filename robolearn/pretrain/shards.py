"""Sharded HDF5 frame stores for pretraining clips: writing (parallel, resumable), the language index, reading.

An output folder holds:

    shard_00000.h5 ...   frames as JPEG bytes, whole clips per shard (layout below); immutable once written
    index.h5             one row per usable clip: id, split, shard, first frame, n_frames, caption, template,
                         placeholders, tokenised input_ids / attention_mask (rebuilt at the end of every run)
    report.json          what the last run did: counts, failed clips with their error, truncated captions, speed
    prepare.config.json  the configuration of the last run

Shard layout (attrs: format, version, encoding, size, quality, source, complete):

    /frames/data        (B,) uint8, contiguous: the JPEG bytes of every frame, back to back
    /frames/index       (F, 2) int64 [offset into data, length] per frame
    /clips/id           (C,) str      /clips/split (C,) str "train" | "val"
    /clips/first        (C,) int64 first frame row    /clips/n_frames (C,) int64
    /clips/fps          (C,) float64  /clips/source_hw (C, 2) int64 original height, width
    /failed/id, /failed/split, /failed/error   clips this shard's run could not decode, with the reason

Resumability: a shard is built in memory and written as `shard_NNNNN.h5.partial`, which is renamed when
complete, so a `.h5` shard is always finished; finished shards are never rewritten. A re-run reads the clip
(and failure) tables of the finished shards, skips those clips (failed ones too, unless retry_failed) and writes
the rest into new shards. Leftover `.partial` files, and `.h5` files that cannot be read or lack the `complete`
mark, are deleted and their clips redone.

Reading: `ShardSource(folder)` is a `ClipSource`; frames are read with one `os.pread` each from the file offset
of the contiguous byte store. Files are opened lazily in the process that reads (fork-safe for DataLoader
workers).
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import os
import re
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import h5py
import numpy as np

from robolearn.pretrain.sampling import MIN_FRAMES, SPLITS, ClipTable

SHARD_FORMAT = "robolearn.pretrain.shard"
INDEX_FORMAT = "robolearn.pretrain.index"
VERSION = "1"
INDEX_NAME = "index.h5"
REPORT_NAME = "report.json"
SHARD_RE = re.compile(r"^shard_(\d{5,})\.h5$")
_STR = h5py.string_dtype()


class PrepareError(ValueError):
    """Bad input to `prepare` (labels, videos, output folder, tokenizer); the message names what and where."""


# ---- tasks and results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClipTask:
    """One clip to decode: id, split, and whatever the worker needs (a video path, an episode segment)."""

    id: str
    split: str
    payload: Any


@dataclass
class ClipResult:
    """A worker's answer: JPEG frames, or an error message."""

    id: str
    split: str
    frames: list[bytes] | None = None
    fps: float = 0.0
    source_hw: tuple[int, int] = (0, 0)
    error: str | None = None


@dataclass
class WriteStats:
    """What `write_shards` did in this run."""

    total: int = 0  # clips asked for
    done_before: int = 0  # already in finished shards (skipped)
    decoded: int = 0  # clips handed to workers in this run
    written: int = 0  # clips written in this run
    failed: int = 0  # clips that failed in this run
    frames: int = 0  # frames written in this run
    bytes: int = 0
    new_shards: list[str] = field(default_factory=list)
    removed_partial: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ---- shard files ----------------------------------------------------------------------------------------
def shard_name(i: int) -> str:
    return f"shard_{i:05d}.h5"


def _str_list(ds: h5py.Dataset) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in ds[()]]


@dataclass
class ShardContents:
    """The clip and failure tables of one finished shard (no frame bytes)."""

    name: str
    attrs: dict[str, Any]
    ids: list[str]
    splits: list[str]
    first: np.ndarray
    n_frames: np.ndarray
    fps: np.ndarray
    failed: dict[str, tuple[str, str]]  # id -> (split, error)


def read_shard_tables(path: Path) -> ShardContents:
    """The tables of a finished shard; ValueError if it is not a complete shard."""
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
                     for k, v in f.attrs.items()}
            if attrs.get("format") != SHARD_FORMAT or not attrs.get("complete"):
                raise ValueError(f"{path}: not a complete {SHARD_FORMAT} file (attrs {attrs})")
            c = f["clips"]
            failed = {i: (s, e) for i, s, e in zip(_str_list(f["failed/id"]), _str_list(f["failed/split"]),
                                                  _str_list(f["failed/error"]))}
            return ShardContents(path.name, attrs, _str_list(c["id"]), _str_list(c["split"]), c["first"][()],
                                 c["n_frames"][()], c["fps"][()], failed)
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: unreadable shard ({e})") from None


def _write_shard(path: Path, clips: list[ClipResult], failures: list[ClipResult], attrs: dict[str, Any]) -> int:
    """Write one shard as `<path>.partial`, then rename to `path`; returns the bytes of frame data."""
    sizes = [len(b) for c in clips for b in c.frames or ()]
    total = int(sum(sizes))
    index = np.zeros((len(sizes), 2), np.int64)
    if sizes:
        index[:, 1] = sizes
        index[1:, 0] = np.cumsum(sizes)[:-1]
    n_frames = np.array([len(c.frames or ()) for c in clips], np.int64)
    first = np.concatenate([[0], np.cumsum(n_frames)[:-1]]).astype(np.int64) if len(clips) else np.zeros(0, np.int64)
    tmp = path.with_name(path.name + ".partial")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({k: v for k, v in attrs.items() if v is not None})
        f.attrs["format"], f.attrs["version"], f.attrs["complete"] = SHARD_FORMAT, VERSION, False
        data = f.create_dataset("frames/data", shape=(total,), dtype=np.uint8)  # contiguous: pread-able
        pos, block, held = 0, [], 0
        for b in (b for c in clips for b in c.frames or ()):  # write in ~32 MB blocks
            block.append(b)
            held += len(b)
            if held >= 32 << 20:
                buf = np.frombuffer(b"".join(block), np.uint8)
                data[pos: pos + buf.size] = buf
                pos, block, held = pos + buf.size, [], 0
        if block:
            buf = np.frombuffer(b"".join(block), np.uint8)
            data[pos: pos + buf.size] = buf
        f.create_dataset("frames/index", data=index)
        f.create_dataset("clips/id", data=np.array([c.id for c in clips], dtype=_STR), dtype=_STR)
        f.create_dataset("clips/split", data=np.array([c.split for c in clips], dtype=_STR), dtype=_STR)
        f.create_dataset("clips/first", data=first)
        f.create_dataset("clips/n_frames", data=n_frames)
        f.create_dataset("clips/fps", data=np.array([c.fps for c in clips], np.float64))
        f.create_dataset("clips/source_hw", data=np.array([c.source_hw for c in clips], np.int64).reshape(-1, 2))
        for key, vals in (("id", [c.id for c in failures]), ("split", [c.split for c in failures]),
                          ("error", [c.error or "" for c in failures])):
            f.create_dataset(f"failed/{key}", data=np.array(vals, dtype=_STR), dtype=_STR)
        f.attrs["complete"] = True
        f.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return total


def scan_output(out: Path, expect: dict[str, Any] | None = None) -> tuple[list[ShardContents], list[str]]:
    """Finished shards of an output folder (sorted) and the names of partial/broken files it deleted.

    `expect`: shard attributes that must match (e.g. the crop size); a mismatch is a PrepareError."""
    removed = []
    for p in sorted(out.glob("shard_*.h5.partial")):
        p.unlink()
        removed.append(p.name)
    shards = []
    for p in sorted(out.glob("shard_*.h5")):
        if not SHARD_RE.match(p.name):
            continue
        try:
            sc = read_shard_tables(p)
        except ValueError:
            p.unlink()  # a crash can only leave .partial files, but a damaged copy is redone too
            removed.append(p.name)
            continue
        for k, v in (expect or {}).items():
            if v is not None and sc.attrs.get(k) != v:
                raise PrepareError(f"{p}: was prepared with {k}={sc.attrs.get(k)!r}, this run asks for {v!r}; use "
                                   f"the same setting to resume, or a new --out folder")
        shards.append(sc)
    return shards, removed


LOCK_NAME = ".prepare.lock"


@contextmanager
def output_lock(out: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder for a whole prepare run: a second run on the same folder
    (which would delete the first one's partial shards) fails at once instead."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            raise PrepareError(f"{out}: another prepare run (pid {holder}) is writing this folder; wait for it "
                               "or use another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield out
    finally:
        os.close(fd)  # releases the lock


DIED = "the decoding process died on this clip (a crash inside the decoder?)"


def _ping() -> int:
    return os.getpid()


def _alone(task: ClipTask, worker: Callable[[ClipTask], ClipResult], ctx: Any) -> ClipResult:
    """Run one task in a fresh single process; its death becomes the clip's error, unless no process can run at
    all (then nothing is blamed on the clip: a PrepareError)."""
    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
        try:
            ex.submit(_ping).result()
        except BrokenProcessPool:
            raise PrepareError("decoding worker processes die before doing any work (with the 'spawn' start "
                               "method a script calling prepare must guard its code with `if __name__ == "
                               "'__main__':`); nothing was recorded for the clips in flight") from None
        try:
            return ex.submit(worker, task).result()
        except BrokenProcessPool:
            return ClipResult(task.id, task.split, error=DIED)


def _results(tasks: Sequence[ClipTask], worker: Callable[[ClipTask], ClipResult], workers: int,
             start_method: str | None) -> Iterator[ClipResult]:
    """Results in task order. With workers > 0: a process pool with a bounded window of tasks in flight (memory
    stays bounded when one clip is slow); if a worker process dies, the tasks in flight are redone one process
    each, so only the clip that kills its process is marked failed, and the pool is restarted."""
    if workers <= 0:
        yield from map(worker, tasks)
        return
    ctx = mp.get_context(start_method)
    window = workers * 4
    todo = iter(tasks)
    pending: deque[tuple[ClipTask, Future]] = deque()
    ex = ProcessPoolExecutor(workers, mp_context=ctx)
    try:
        while True:
            while len(pending) < window and (t := next(todo, None)) is not None:
                pending.append((t, ex.submit(worker, t)))
            if not pending:
                return
            task, fut = pending.popleft()
            try:
                yield fut.result()
            except BrokenProcessPool:
                ex.shutdown(wait=True, cancel_futures=True)
                for t, f in [(task, fut), *pending]:
                    ok = f.done() and not f.cancelled() and f.exception() is None
                    yield f.result() if ok else _alone(t, worker, ctx)
                pending.clear()
                ex = ProcessPoolExecutor(workers, mp_context=ctx)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def write_shards(out: str | Path, tasks: Sequence[ClipTask], worker: Callable[[ClipTask], ClipResult],
                 attrs: dict[str, Any], workers: int = 0, frames_per_shard: int = 8192, retry_failed: bool = False,
                 start_method: str | None = "spawn", check_attrs: Sequence[str] = ("size", "encoding", "source"),
                 on_shard: Callable[[str, WriteStats], None] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> WriteStats:
    """Decode `tasks` with `worker` (a picklable top-level function; `workers` processes, 0 = in this process)
    into new shards of about `frames_per_shard` frames, skipping clips already in finished shards.

    `on_shard(name, stats)` is called after each shard is committed (progress; tests use it to simulate a crash)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if frames_per_shard < 1:
        raise PrepareError(f"frames_per_shard must be >= 1, got {frames_per_shard}")
    t0 = time.perf_counter()
    shards, removed = scan_output(out, {k: attrs.get(k) for k in check_attrs})
    done: set[str] = set()
    for sc in shards:
        done.update(sc.ids)
        if not retry_failed:
            done.update(sc.failed)
    todo = [t for t in tasks if t.id not in done]
    stats = WriteStats(total=len(tasks), done_before=len(tasks) - len(todo), decoded=len(todo),
                       removed_partial=removed)
    next_i = max((int(SHARD_RE.match(s.name).group(1)) + 1 for s in shards), default=0)  # type: ignore[union-attr]
    clips: list[ClipResult] = []
    failures: list[ClipResult] = []
    n_frames = 0

    def commit() -> None:
        nonlocal next_i, clips, failures, n_frames
        name = shard_name(next_i)
        stats.bytes += _write_shard(out / name, clips, failures, attrs)
        stats.new_shards.append(name)
        stats.written += len(clips)
        stats.failed += len(failures)
        stats.frames += n_frames
        next_i, clips, failures, n_frames = next_i + 1, [], [], 0
        if on_shard:
            on_shard(name, stats)

    for i, r in enumerate(_results(todo, worker, workers, start_method)):
        if r.error is None and r.frames:
            clips.append(r)
            n_frames += len(r.frames)
        else:
            r.error = r.error or "no frames decoded"
            r.frames = None
            failures.append(r)
        if n_frames >= frames_per_shard:
            commit()
        if progress:
            progress(i + 1, len(todo))
    if clips or failures:
        commit()
    stats.seconds = time.perf_counter() - t0
    return stats


# ---- the language index -----------------------------------------------------------------------------------
@dataclass
class ClipRecord:
    """What the index keeps about a clip besides its frames."""

    id: str
    split: str
    caption: str
    template: str = ""
    placeholders: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tokenized:
    input_ids: np.ndarray  # (N, L) int64
    attention_mask: np.ndarray  # (N, L) int64
    lengths: np.ndarray  # (N,) untruncated token counts (with special tokens)
    cls_token_id: int
    pad_token_id: int

    def truncated(self) -> np.ndarray:
        return self.lengths > self.input_ids.shape[1]


def load_tokenizer(name_or_path: str) -> Any:
    """An HF tokenizer by local folder or hub id, with an error that says what to do offline."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as e:  # noqa: BLE001 (transformers raises OSError, ValueError, HF hub errors...)
        raise PrepareError(f"cannot load tokenizer {name_or_path!r}: {type(e).__name__}: {str(e)[:300]}; pass "
                           "--tokenizer with a local folder holding the tokenizer files (e.g. one saved with "
                           "save_pretrained, or robolearn.encoders.offline.write_language_model for tests)") from None


def tokenize(captions: Sequence[str], tokenizer: Any, max_lang_len: int) -> Tokenized:
    """Pad/truncate to max_lang_len; also return every caption's untruncated length to count truncations."""
    if max_lang_len < 2:
        raise PrepareError(f"max_lang_len must be >= 2 (room for [CLS] and [SEP]), got {max_lang_len}")
    n = len(captions)
    ids = np.zeros((n, max_lang_len), np.int64)
    mask = np.zeros((n, max_lang_len), np.int64)
    lengths = np.zeros(n, np.int64)
    for s in range(0, n, 4096):  # (no call at all for n == 0: HF tokenizers fail on an empty batch)
        chunk = list(captions[s: s + 4096])
        enc = tokenizer(chunk, padding="max_length", truncation=True, max_length=max_lang_len)
        full = tokenizer(chunk, add_special_tokens=True, truncation=False)["input_ids"]
        ids[s: s + len(chunk)] = np.asarray(enc["input_ids"], np.int64)
        mask[s: s + len(chunk)] = np.asarray(enc["attention_mask"], np.int64)
        lengths[s: s + len(chunk)] = [len(x) for x in full]
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else 101
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Tokenized(ids, mask, lengths, int(cls), int(pad))


@dataclass
class IndexStats:
    clips: int = 0
    train: int = 0
    val: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {id, split, error}, current failures
    truncated: int = 0
    truncated_ids: list[str] = field(default_factory=list)
    stale: int = 0  # clips in shards that the labels no longer list (left out of the index)
    short: int = 0  # clips with fewer than MIN_FRAMES frames (left out)


def write_index(out: str | Path, records: Sequence[ClipRecord], tokenizer: Any, tokenizer_name: str,
                max_lang_len: int, attrs: dict[str, Any] | None = None) -> IndexStats:
    """Rebuild `out/index.h5` from the finished shards and the labels (`records`, in index order)."""
    out = Path(out)
    shards, _ = scan_output(out)
    where: dict[str, tuple[int, int, int, float]] = {}  # id -> (shard, first, n_frames, fps)
    failed: dict[str, tuple[str, str]] = {}
    for s_i, sc in enumerate(shards):
        failed.update(sc.failed)
        for j, cid in enumerate(sc.ids):
            where[cid] = (s_i, int(sc.first[j]), int(sc.n_frames[j]), float(sc.fps[j]))
    st = IndexStats()
    wanted = {r.id for r in records}
    st.stale = sum(1 for cid in where if cid not in wanted)
    rows = []
    for r in records:
        if r.id in where:
            if where[r.id][2] < MIN_FRAMES:
                st.short += 1
                continue
            rows.append(r)
        elif r.id in failed:
            st.failed.append({"id": r.id, "split": failed[r.id][0], "error": failed[r.id][1]})
    tok = tokenize([r.caption for r in rows], tokenizer, max_lang_len)
    trunc = tok.truncated()
    st.clips, st.truncated = len(rows), int(trunc.sum())
    st.truncated_ids = [rows[i].id for i in np.flatnonzero(trunc)]
    split = np.array([SPLITS[r.split] for r in rows], np.int8)
    st.train, st.val = int((split == 0).sum()), int((split == 1).sum())
    loc = np.array([where[r.id] for r in rows], np.float64).reshape(-1, 4)
    tmp = out / (INDEX_NAME + ".partial")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
        f.attrs.update({"format": INDEX_FORMAT, "version": VERSION, "tokenizer": tokenizer_name,
                        "max_lang_len": max_lang_len, "cls_token_id": tok.cls_token_id,
                        "pad_token_id": tok.pad_token_id, "truncated": st.truncated, "train": st.train,
                        "val": st.val})
        f.create_dataset("shards", data=np.array([s.name for s in shards], dtype=_STR), dtype=_STR)
        g = f.create_group("clips")
        g.create_dataset("id", data=np.array([r.id for r in rows], dtype=_STR), dtype=_STR)
        g.create_dataset("split", data=split)
        g.create_dataset("shard", data=loc[:, 0].astype(np.int64))
        g.create_dataset("first", data=loc[:, 1].astype(np.int64))
        g.create_dataset("n_frames", data=loc[:, 2].astype(np.int64))
        g.create_dataset("fps", data=loc[:, 3])
        for key, vals in (("caption", [r.caption for r in rows]), ("template", [r.template for r in rows]),
                          ("placeholders", [json.dumps(r.placeholders) for r in rows]),
                          ("extra", [json.dumps(r.extra) for r in rows])):
            g.create_dataset(key, data=np.array(vals, dtype=_STR), dtype=_STR)
        g.create_dataset("input_ids", data=tok.input_ids.astype(np.int32))
        g.create_dataset("attention_mask", data=tok.attention_mask.astype(np.int8))
        g.create_dataset("n_tokens", data=tok.lengths.astype(np.int32))
    os.replace(tmp, out / INDEX_NAME)
    return st


def write_report(out: Path, report: dict[str, Any]) -> Path:
    path = out / REPORT_NAME
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _rate(n: int, seconds: float, digits: int) -> float | None:
    return round(n / seconds, digits) if n and seconds > 0 else None


def finish_prepare(out: Path, source: str, records: Sequence[ClipRecord], stats: WriteStats, tok: Any,
                   tokenizer: str, max_lang_len: int, attrs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the index, write report.json, return the report (shared by every prepare source)."""
    t0 = time.perf_counter()
    ist = write_index(out, records, tok, tokenizer, max_lang_len, attrs)
    secs = stats.seconds + time.perf_counter() - t0
    report = {
        "source": source, "out": str(out), "clips_labelled": len(records), "clips_in_index": ist.clips,
        "train": ist.train, "val": ist.val,
        "this_run": {"to_do": stats.decoded, "skipped_done": stats.done_before, "written": stats.written,
                     "failed": stats.failed, "frames": stats.frames, "bytes": stats.bytes,
                     "new_shards": stats.new_shards, "removed_partial": stats.removed_partial,
                     "seconds": round(secs, 3), "clips_per_s": _rate(stats.decoded, stats.seconds, 2),
                     "frames_per_s": _rate(stats.frames, stats.seconds, 1)},
        "failed": ist.failed,
        "truncated_captions": ist.truncated, "truncated_ids": ist.truncated_ids[:100], "max_lang_len": max_lang_len,
        "stale_clips": ist.stale, "short_clips": ist.short, "tokenizer": tokenizer, **attrs, **extra,
    }
    write_report(out, report)
    return report


# ---- reading ------------------------------------------------------------------------------------------------
class _OpenShard:
    """A shard opened for reading in one process: its frame index and a raw file descriptor."""

    def __init__(self, path: Path):
        with h5py.File(path, "r") as f:
            data = f["frames/data"]
            self.index = f["frames/index"][()]
            self.base = data.id.get_offset()
            self.encoding = f.attrs.get("encoding", "jpeg")
            if data.chunks is not None:
                raise ValueError(f"{path}: frames/data is chunked; expected the contiguous layout this module writes")
        self.fd = os.open(path, os.O_RDONLY)
        self.path = path

    def read(self, row: int) -> bytes:
        off, n = (int(x) for x in self.index[row])
        buf = os.pread(self.fd, n, int(self.base) + off)
        if len(buf) != n:
            raise OSError(f"{self.path}: short read of frame row {row} ({len(buf)} of {n} bytes): truncated shard?")
        return buf

    def close(self) -> None:
        os.close(self.fd)


class ShardSource:
    """The clips of a prepared output folder (`prepare`), as a ClipSource.

    `table` is read from index.h5 at construction; frames are decoded JPEG, (size, size, 3) uint8 RGB."""

    def __init__(self, folder: str | Path, name: str | None = None, max_open: int = 64):
        self.folder = Path(folder)
        path = self.folder / INDEX_NAME
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no pretraining index here; run `robolearn pretrain prepare --out "
                                    f"{self.folder} ...` first")
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != INDEX_FORMAT:
                raise ValueError(f"{path}: attrs/format is {f.attrs.get('format')!r}, expected {INDEX_FORMAT!r}")
            self.attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if isinstance(v, np.generic) else v)
                          for k, v in f.attrs.items()}
            self.shards = _str_list(f["shards"])
            g = f["clips"]
            self.shard = g["shard"][()]
            self.first = g["first"][()]
            self.templates = _str_list(g["template"])
            self.table = ClipTable(name or str(self.attrs.get("source", "ssv2")), _str_list(g["id"]),
                                   _str_list(g["caption"]), g["n_frames"][()], g["split"][()], g["input_ids"][()],
                                   g["attention_mask"][()], self.attrs.get("cls_token_id", 101),
                                   self.attrs.get("pad_token_id", 0))
        self.size = self.attrs.get("size")
        self.max_open = max_open
        self._pid = -1
        self._open: dict[int, _OpenShard] = {}

    def __len__(self) -> int:
        return len(self.table)

    def _shard(self, s: int) -> _OpenShard:
        if self._pid != os.getpid():  # forked: never use the parent's descriptors
            self._open, self._pid = {}, os.getpid()
        sh = self._open.get(s)
        if sh is None:
            if len(self._open) >= self.max_open:
                oldest = next(iter(self._open))
                self._open.pop(oldest).close()
            sh = self._open[s] = _OpenShard(self.folder / self.shards[s])
        return sh

    def read_jpeg(self, clip: int, frame: int) -> bytes:
        n = int(self.table.n_frames[clip])
        if not 0 <= frame < n:
            raise IndexError(f"clip {self.table.ids[clip]!r}: frame {frame} out of range [0, {n})")
        return self._shard(int(self.shard[clip])).read(int(self.first[clip]) + frame)

    def read_frames(self, clip: int, frames: Iterable[int]) -> list[np.ndarray]:
        import simplejpeg

        return [simplejpeg.decode_jpeg(self.read_jpeg(clip, int(t)), colorspace="RGB") for t in frames]

    def close(self) -> None:
        if self._pid == os.getpid():
            for sh in self._open.values():
                sh.close()
        self._open = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"], state["_pid"] = {}, -1
        return state
