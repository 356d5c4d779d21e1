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

Modules: `layout` (names, formats, a finished shard's tables), `write` (decoding and writing shards), `index`
(tokenising, index.h5, report.json), `read` (ShardSource). Their public names are importable from here.
"""

from robolearn.pretrain.shards.index import (
    ClipRecord,
    IndexStats,
    Tokenized,
    finish_prepare,
    load_tokenizer,
    tokenize,
    write_index,
    write_report,
)
from robolearn.pretrain.shards.layout import (
    INDEX_FORMAT,
    INDEX_NAME,
    REPORT_NAME,
    SHARD_FORMAT,
    SHARD_RE,
    VERSION,
    PrepareError,
    ShardContents,
    read_shard_tables,
    scan_output,
    shard_name,
)
from robolearn.pretrain.shards.read import ShardSource
from robolearn.pretrain.shards.write import DIED, LOCK_NAME, ClipResult, ClipTask, WriteStats, output_lock, write_shards

__all__ = [
    "DIED",
    "INDEX_FORMAT",
    "INDEX_NAME",
    "LOCK_NAME",
    "REPORT_NAME",
    "SHARD_FORMAT",
    "SHARD_RE",
    "VERSION",
    "ClipRecord",
    "ClipResult",
    "ClipTask",
    "IndexStats",
    "PrepareError",
    "ShardContents",
    "ShardSource",
    "Tokenized",
    "WriteStats",
    "finish_prepare",
    "load_tokenizer",
    "output_lock",
    "read_shard_tables",
    "scan_output",
    "shard_name",
    "tokenize",
    "write_index",
    "write_report",
    "write_shards",
]
