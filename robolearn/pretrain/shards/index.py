"""The language index of a prepared folder: tokenising captions (`load_tokenizer`, `tokenize`), rebuilding
`index.h5` from the finished shards and the labels (`write_index`), and `report.json` (`finish_prepare`, shared
by every prepare source).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from robolearn.pretrain.sampling import MIN_FRAMES, SPLITS
from robolearn.pretrain.shards.layout import (
    _STR,
    INDEX_FORMAT,
    INDEX_NAME,
    REPORT_NAME,
    VERSION,
    PrepareError,
    scan_output,
)
from robolearn.pretrain.shards.write import WriteStats
from robolearn.utils import atomic_path, write_text_atomic


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
    """Captions tokenised to a fixed length, with their untruncated lengths."""

    input_ids: np.ndarray  # (N, L) int64
    attention_mask: np.ndarray  # (N, L) int64
    lengths: np.ndarray  # (N,) untruncated token counts (with special tokens)
    cls_token_id: int
    pad_token_id: int

    def truncated(self) -> np.ndarray:
        """Per caption: True when it was longer than the fixed length."""
        return self.lengths > self.input_ids.shape[1]


def load_tokenizer(name_or_path: str) -> Any:
    """An HF tokenizer by local folder or hub id, with an error that says what to do offline."""
    try:
        from transformers import AutoTokenizer

        from robolearn.encoders.pretrained_lm import resolve_language_model

        return AutoTokenizer.from_pretrained(resolve_language_model(name_or_path))
    except Exception as e:  # noqa: BLE001 (transformers raises OSError, ValueError, HF hub errors...)
        raise PrepareError(
            f"cannot load tokenizer {name_or_path!r}: {type(e).__name__}: {str(e)[:300]}; pass "
            "--tokenizer with a local folder holding the tokenizer files (e.g. one saved with "
            "save_pretrained, or robolearn.encoders.offline.write_language_model for tests)"
        ) from None


def tokenize(captions: Sequence[str], tokenizer: Any, max_lang_len: int) -> Tokenized:
    """Pad/truncate to max_lang_len; also return every caption's untruncated length to count truncations."""
    if max_lang_len < 2:
        raise PrepareError(f"max_lang_len must be >= 2 (room for [CLS] and [SEP]), got {max_lang_len}")
    n = len(captions)
    ids = np.zeros((n, max_lang_len), np.int64)
    mask = np.zeros((n, max_lang_len), np.int64)
    lengths = np.zeros(n, np.int64)
    for s in range(0, n, 4096):  # (no call at all for n == 0: HF tokenizers fail on an empty batch)
        chunk = list(captions[s : s + 4096])
        enc = tokenizer(chunk, padding="max_length", truncation=True, max_length=max_lang_len)
        full = tokenizer(chunk, add_special_tokens=True, truncation=False)["input_ids"]
        ids[s : s + len(chunk)] = np.asarray(enc["input_ids"], np.int64)
        mask[s : s + len(chunk)] = np.asarray(enc["attention_mask"], np.int64)
        lengths[s : s + len(chunk)] = [len(x) for x in full]
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else 101
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return Tokenized(ids, mask, lengths, int(cls), int(pad))


@dataclass
class IndexStats:
    """What `write_index` put in the index and what it left out."""

    clips: int = 0
    train: int = 0
    val: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {id, split, error}, current failures
    truncated: int = 0
    truncated_ids: list[str] = field(default_factory=list)
    stale: int = 0  # clips in shards that the labels no longer list (left out of the index)
    short: int = 0  # clips with fewer than MIN_FRAMES frames (left out)


def write_index(
    out: str | Path,
    records: Sequence[ClipRecord],
    tokenizer: Any,
    tokenizer_name: str,
    max_lang_len: int,
    attrs: dict[str, Any] | None = None,
) -> IndexStats:
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
    with atomic_path(out / INDEX_NAME) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update({k: v for k, v in (attrs or {}).items() if v is not None})
        f.attrs.update(
            {
                "format": INDEX_FORMAT,
                "version": VERSION,
                "tokenizer": tokenizer_name,
                "max_lang_len": max_lang_len,
                "cls_token_id": tok.cls_token_id,
                "pad_token_id": tok.pad_token_id,
                "truncated": st.truncated,
                "train": st.train,
                "val": st.val,
            }
        )
        f.create_dataset("shards", data=np.array([s.name for s in shards], dtype=_STR), dtype=_STR)
        g = f.create_group("clips")
        g.create_dataset("id", data=np.array([r.id for r in rows], dtype=_STR), dtype=_STR)
        g.create_dataset("split", data=split)
        g.create_dataset("shard", data=loc[:, 0].astype(np.int64))
        g.create_dataset("first", data=loc[:, 1].astype(np.int64))
        g.create_dataset("n_frames", data=loc[:, 2].astype(np.int64))
        g.create_dataset("fps", data=loc[:, 3])
        for key, vals in (
            ("caption", [r.caption for r in rows]),
            ("template", [r.template for r in rows]),
            ("placeholders", [json.dumps(r.placeholders) for r in rows]),
            ("extra", [json.dumps(r.extra) for r in rows]),
        ):
            g.create_dataset(key, data=np.array(vals, dtype=_STR), dtype=_STR)
        g.create_dataset("input_ids", data=tok.input_ids.astype(np.int32))
        g.create_dataset("attention_mask", data=tok.attention_mask.astype(np.int8))
        g.create_dataset("n_tokens", data=tok.lengths.astype(np.int32))
    return st


def write_report(out: Path, report: dict[str, Any]) -> Path:
    """Replace `out/report.json` atomically."""
    return write_text_atomic(out / REPORT_NAME, json.dumps(report, indent=2) + "\n")


def _rate(n: int, seconds: float, digits: int) -> float | None:
    """n per second, rounded; None when there is nothing to rate."""
    return round(n / seconds, digits) if n and seconds > 0 else None


def finish_prepare(
    out: Path,
    source: str,
    records: Sequence[ClipRecord],
    stats: WriteStats,
    tok: Any,
    tokenizer: str,
    max_lang_len: int,
    attrs: dict[str, Any],
    extra: dict[str, Any],
    inputs: Sequence[Any] = (),
    config: Any = None,
) -> dict[str, Any]:
    """Rebuild the index, write report.json and the shards' lineage card (its `inputs` and `config`), return
    the report (shared by every prepare source)."""
    from robolearn.lineage import write_card

    t0 = time.perf_counter()
    ist = write_index(out, records, tok, tokenizer, max_lang_len, attrs)
    secs = stats.seconds + time.perf_counter() - t0
    report = {
        "source": source,
        "out": str(out),
        "clips_labelled": len(records),
        "clips_in_index": ist.clips,
        "train": ist.train,
        "val": ist.val,
        "this_run": {
            "to_do": stats.decoded,
            "skipped_done": stats.done_before,
            "written": stats.written,
            "failed": stats.failed,
            "frames": stats.frames,
            "bytes": stats.bytes,
            "new_shards": stats.new_shards,
            "removed_partial": stats.removed_partial,
            "seconds": round(secs, 3),
            "clips_per_s": _rate(stats.decoded, stats.seconds, 2),
            "frames_per_s": _rate(stats.frames, stats.seconds, 1),
        },
        "failed": ist.failed,
        "truncated_captions": ist.truncated,
        "truncated_ids": ist.truncated_ids[:100],
        "max_lang_len": max_lang_len,
        "stale_clips": ist.stale,
        "short_clips": ist.short,
        "tokenizer": tokenizer,
        **attrs,
        **extra,
    }
    write_report(out, report)
    figures = {k: report[k] for k in ("clips_in_index", "train", "val", "truncated_captions")}
    write_card(out, "shards", inputs, config, {**figures, "failed": len(report["failed"])}, ["*.h5"])
    return report
