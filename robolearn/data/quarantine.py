"""The quarantine folder `<root>/_quarantine/`: where `validate --quarantine` moves files with errors and
`repair` moves the `.partial` originals it salvaged (or could not). Files keep their path relative to the
dataset root, are never overwritten (a numbered name is used if taken), and every move is one line in
`_quarantine/QUARANTINE.log`. Dataset listings skip the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from robolearn.data import schema
from robolearn.data.writer import utc_now
from robolearn.utils import fsync_path

QUARANTINE_DIR = "_quarantine"
QUARANTINE_LOG = "QUARANTINE.log"


def find_partials(root: str | Path) -> list[Path]:
    """`*.h5.partial` files under `root`, outside `_quarantine`."""
    root = Path(root)
    if root.is_file():
        return [root] if root.name.endswith(schema.TMP_SUFFIX) else []
    return sorted(
        p
        for p in root.rglob(f"*{schema.TMP_SUFFIX}")
        if p.is_file() and QUARANTINE_DIR not in p.relative_to(root).parts
    )


def quarantine_file(root: str | Path, path: str | Path, reason: str) -> Path:
    """Move `path` to `<root>/_quarantine/<path relative to root>` (never overwriting: a numbered name is
    used if taken), fsync, and append a line to `_quarantine/QUARANTINE.log`. Returns the new path."""
    root, path = Path(root).resolve(), Path(path).resolve()
    try:
        rel = path.relative_to(root)
    except ValueError:
        rel = Path(path.name)
    qdir = root / QUARANTINE_DIR
    dest = qdir / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        try:
            os.link(path, dest)  # fails instead of replacing an existing file
            os.unlink(path)
            break
        except FileExistsError:
            dest = dest.with_name(f"{(qdir / rel).name}.{k}")
            k += 1
        except OSError:  # no hard links on this file system
            if dest.exists():
                dest = dest.with_name(f"{(qdir / rel).name}.{k}")
                k += 1
                continue
            os.replace(path, dest)
            break
    for d in {dest.parent, path.parent}:
        fsync_path(d)
    line = f"{utc_now()}\t{rel.as_posix()}\t{dest.relative_to(qdir).as_posix()}\t{' '.join(reason.split())}\n"
    with open(qdir / QUARANTINE_LOG, "a", encoding="utf-8") as log:
        log.write(line)
        log.flush()
        os.fsync(log.fileno())
    return dest
