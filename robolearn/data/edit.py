"""Helpers shared by the dataset-editing modules (info, relabel, merge, migrate): the edit-a-copy-then-replace
of an episode file, hidden temp files beside a file, attribute reading, episode selection by catalog filters
and one-line error messages.

Every change to an episode goes through `edit_atomically`: the file is copied to a hidden temp file in the
same folder, the copy is modified with h5py, fsynced, and `os.replace`d over the original. A failure at any
point deletes the copy and leaves the original byte-identical. Files at schema >= 1.1 get their content CRC
(robolearn.data.checksum) recomputed after the edit. Because the replace installs a new inode,
editing a hard-linked episode (as `merge` makes them) never changes the other links.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import h5py

from robolearn.data import schema
from robolearn.data.checksum import content_crc32, has_checksums, set_content_crc
from robolearn.data.errors import H5_ERRORS, EpisodeError
from robolearn.data.reader import list_episodes
from robolearn.utils import fsync_path

T = TypeVar("T")
UNREADABLE_ERRORS = (EpisodeError, *H5_ERRORS)


def temp_beside(path: Path, tag: str) -> Path:
    """A fresh hidden temp file next to `path` (same file system, so replace/link are atomic). Its name
    does not end in `.h5`, so dataset listings never pick it up."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{tag}.tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def edit_atomically(path: str | Path, edit: Callable[[h5py.File], T]) -> T:
    """Apply `edit(f)` to a copy of the episode at `path` opened r+, then atomically replace the original.

    Any exception (in the copy, the edit, the fsync or the replace) removes the copy and leaves the original
    untouched; so does a change of the original on disk while the edit ran.
    """
    path = Path(path)
    before = path.stat()
    tmp = temp_beside(path, "edit")
    try:
        shutil.copy2(path, tmp)
        try:
            f = h5py.File(tmp, "r+")
        except OSError as e:
            raise EpisodeError(path, "file", f"cannot open a copy for editing: {e}") from None
        with f:
            _check_content_crc(f, path)
            result = edit(f)
            if has_checksums(attr_str(f, "schema_version")):
                set_content_crc(f)  # the edit changed attributes: certify the new content
        fsync_path(tmp)
        now = path.stat()
        if (now.st_ino, now.st_size, now.st_mtime_ns) != (before.st_ino, before.st_size, before.st_mtime_ns):
            raise EpisodeError(
                path, "file", "changed on disk while it was being edited; nothing was replaced, run the command again"
            )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return result


def _check_content_crc(f: h5py.File, path: Path) -> None:
    """Refuse to edit a file whose content CRC does not match: re-certifying it would hide the corruption."""
    stored = f.attrs.get(schema.CONTENT_CRC_ATTR)
    if (
        stored is None
        or not has_checksums(attr_str(f, "schema_version"))
        or not f.attrs.get("complete", True)
        and "repair" not in f.attrs
    ):
        return
    try:
        got = content_crc32(f)
    except H5_ERRORS as e:
        raise EpisodeError(path, f"attrs/{schema.CONTENT_CRC_ATTR}", f"cannot verify before editing: {e}") from None
    if got != int(stored):
        raise EpisodeError(
            path,
            f"attrs/{schema.CONTENT_CRC_ATTR}",
            "content CRC32 mismatch: attributes are corrupted "
            "or were changed outside robolearn; refusing to edit (run `robolearn data validate`)",
        )


def attr_str(f: h5py.File, key: str, default: str = "") -> str:
    v = f.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def check_format(f: h5py.File, path: Path) -> None:
    fmt = attr_str(f, "format")
    if fmt != schema.FORMAT_NAME:
        raise EpisodeError(path, "attrs/format", f"expected {schema.FORMAT_NAME!r}, got {fmt!r}")


def select_episodes(src: Path, filters: list[str] | None) -> list[Path]:
    """Episodes under `src`, optionally restricted by catalog filters such as `success=1`."""
    if not filters:
        return list_episodes(src)
    from robolearn.data import catalog  # lazy: the catalog is optional for everything else here

    select = getattr(catalog, "select_paths", None)
    if select is None:
        raise RuntimeError("metadata filters need robolearn.data.catalog.select_paths, which is not available")
    return [Path(p) for p in select(src, list(filters))]
