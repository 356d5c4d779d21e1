"""Train/val splits of the catalogued episodes, written as episode lists under `<root>/splits/<name>/`
(`train.txt`, `val.txt`, `split.json`): random (copies of one uuid stay on one side) or by whole groups
(scene, household, lab or any column), held out by name or drawn with a seed. `read_split` reads one side.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from robolearn.data.catalog.filters import _select
from robolearn.data.catalog.index import ensure_catalog
from robolearn.data.catalog.table import COLUMNS, CatalogError, _utc_now
from robolearn.utils import write_text_atomic

SPLITS_DIR = "splits"

SPLIT_GROUPS = {"scene": "scene_id", "household": "household", "lab": "lab", "random": None}


@dataclass
class SplitResult:
    name: str
    folder: Path
    train: list[str]  # relative paths, sorted
    val: list[str]
    train_groups: list[str]
    val_groups: list[str]
    config: dict[str, Any]


def _group_column(by: str) -> str | None:
    if by in SPLIT_GROUPS:
        return SPLIT_GROUPS[by]
    if by in COLUMNS:
        return by
    raise CatalogError(
        f"cannot split by {by!r}: use one of {', '.join(SPLIT_GROUPS)} or a catalog column ({', '.join(COLUMNS)})"
    )


def _group_key(by: str, row: tuple) -> str:
    # Scene ids are unique within a household only, so a scene group is "household/scene_id".
    return f"{row[2]}/{row[1]}" if by == "scene" else str(row[1])


def split(
    catalog: str | Path,
    by: str = "scene",
    holdout: Sequence[str] | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    filters: Sequence[str] | None = None,
    name: str | None = None,
    overwrite: bool = False,
    update_catalog: bool = True,
) -> SplitResult:
    """Train/val split of the (filtered) episodes, written to `<root>/splits/<name>/{train,val}.txt` and
    `split.json`.

    by="random": episodes are shuffled with `seed` and `val_fraction` of them go to val. Otherwise episodes
    are grouped (scene: household/scene_id; household; lab; or any catalog column) and whole groups go to
    val: the `holdout` groups (for scenes, either `scene_id` or `household/scene_id`), or groups drawn with
    `seed` until val holds about `val_fraction` of the episodes. No group is on both sides."""
    cat, root, _ = ensure_catalog(catalog, refresh=update_catalog)
    col = _group_column(by)
    if not 0.0 <= val_fraction < 1.0:
        raise CatalogError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if col is None and holdout:
        raise CatalogError("a random split has no groups to hold out; use --by scene|household|lab with --holdout")
    rows = _select(cat, ("path", col or "uuid", "household"), filters, None, None)
    if not rows:
        raise CatalogError(f"no episodes match {list(filters or [])} in {cat}; nothing to split")
    if col is None:
        train, val, train_groups, val_groups = _random_split({r[0]: r[1] for r in rows}, val_fraction, seed)
    else:
        groups: dict[str, list[str]] = {}
        for r in rows:
            groups.setdefault(_group_key(by, r), []).append(r[0])
        val_set = _holdout_groups(groups, holdout, by) if holdout else _draw_groups(groups, val_fraction, seed)
        train_groups = sorted(g for g in groups if g not in val_set)
        val_groups = sorted(val_set)
        train = sorted(p for g in train_groups for p in groups[g])
        val = sorted(p for g in val_groups for p in groups[g])
    name = name or _split_name(by, holdout, val_fraction, seed)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise CatalogError(f"split name {name!r}: use letters, digits and _ . + - only")
    config = {
        "by": by,
        "group_column": col,
        "holdout": list(holdout or []),
        "val_fraction": None if holdout else val_fraction,
        "seed": seed,
        "filters": list(filters or []),
    }
    result = SplitResult(name, root / SPLITS_DIR / name, train, val, train_groups, val_groups, config)
    _write_split(result, overwrite)
    return result


def _random_split(uuids: dict[str, str], frac: float, seed: int) -> tuple[list[str], list[str], list[str], list[str]]:
    """{path: uuid} -> shuffled paths, the first ~frac to val. Copies of one episode (same uuid, different
    paths) stay on one side, so val never holds an episode that train also has."""
    order = sorted(uuids)
    random.Random(seed).shuffle(order)
    n_val = round(frac * len(order))
    if frac > 0 and len(order) >= 2:
        n_val = min(max(n_val, 1), len(order) - 1)
    copies: dict[str, list[str]] = {}
    for p in order:
        copies.setdefault(uuids[p], []).append(p)
    val: set[str] = set()
    for p in order:
        if len(val) >= n_val:
            break
        val.update(copies[uuids[p]])
    if len(val) == len(order) and n_val < len(order):  # one uuid everywhere: nothing can be held out
        val = set()
    return sorted(p for p in order if p not in val), sorted(val), [], []


def _holdout_groups(groups: dict[str, list[str]], holdout: Sequence[str], by: str) -> set[str]:
    chosen: set[str] = set()
    for h in holdout:
        hit = {g for g in groups if g == h or (by == "scene" and g.split("/", 1)[1] == h)}
        if not hit:
            raise CatalogError(
                f"holdout {by} {h!r} matches no episode; {by} groups: "
                f"{', '.join(sorted(groups)[:50])}{' ...' if len(groups) > 50 else ''}"
            )
        chosen |= hit
    if len(chosen) == len(groups):
        raise CatalogError(f"holding out {list(holdout)} leaves no {by} for training")
    return chosen


def _draw_groups(groups: dict[str, list[str]], frac: float, seed: int) -> set[str]:
    """Whole groups in seeded random order until val holds about frac of the episodes (>= 1 group each side)."""
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    total = sum(len(v) for v in groups.values())
    chosen: set[str] = set()
    n = 0
    for g in order:
        if frac <= 0 or len(chosen) == len(order) - 1:
            break
        if chosen and abs(n + len(groups[g]) - frac * total) > abs(n - frac * total):
            continue  # this group would overshoot more than stopping here
        chosen.add(g)
        n += len(groups[g])
        if n >= frac * total:
            break
    return chosen


def _split_name(by: str, holdout: Sequence[str] | None, frac: float, seed: int) -> str:
    if holdout:
        tag = "+".join(h.replace("/", ".") for h in holdout)
        return f"{by}_holdout_{tag}"[:120]
    return f"{by}_val{frac:g}_seed{seed}"


def _write_split(res: SplitResult, overwrite: bool) -> None:
    train_txt = "".join(p + "\n" for p in res.train)
    val_txt = "".join(p + "\n" for p in res.val)
    old = res.folder / "train.txt", res.folder / "val.txt"
    if not overwrite and all(p.is_file() for p in old):
        if (old[0].read_text(), old[1].read_text()) != (train_txt, val_txt):
            raise CatalogError(f"{res.folder}: a different split with this name exists; pass --name or --overwrite")
    res.folder.mkdir(parents=True, exist_ok=True)
    info = {
        "name": res.name,
        "created": _utc_now(),
        "config": res.config,
        "counts": {"train": len(res.train), "val": len(res.val)},
        "groups": {"train": res.train_groups, "val": res.val_groups},
    }
    write_text_atomic(res.folder / "train.txt", train_txt)
    write_text_atomic(res.folder / "val.txt", val_txt)
    write_text_atomic(res.folder / "split.json", json.dumps(info, indent=2) + "\n")


def read_split(root: str | Path, name: str, part: Literal["train", "val"]) -> list[Path]:
    """Absolute episode paths of one side of a written split."""
    if part not in ("train", "val"):
        raise CatalogError(f"split part must be 'train' or 'val', got {part!r}")
    root = Path(root).absolute()
    f = root / SPLITS_DIR / name / f"{part}.txt"
    if not f.is_file():
        have = sorted(p.parent.name for p in (root / SPLITS_DIR).glob("*/split.json"))
        raise FileNotFoundError(f"{f}: no such split; splits here: {have or 'none'}")
    return [root / line for line in f.read_text().splitlines() if line.strip()]
