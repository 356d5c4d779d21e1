"""A suite dataset: one folder per (scenario, version, generation config), hashed so any cell can name exactly
what it was scored on.

    <folder>/
      dataset.json      scenario, version, config, counts per split, sha256 of every file, the dataset hash
      records.jsonl     one JSON object per instance: "split" (train | val | test_seen | test_heldout) and
                        whatever the scenario needs (language, expression type, clutter, household, scene, ...)
      <name>.npy        one array per name, first axis = instance (images uint8 [N, H, W, 3], labels, boxes...)

Arrays are plain `.npy` (no pickles). `write_dataset` writes into a temp folder beside the target and renames
it into place, so a crash leaves no half dataset; `load_dataset` re-hashes every file and refuses a truncated
or edited one with an error naming the file and both hashes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.lineage import write_card

META_FILE = "dataset.json"
RECORDS_FILE = "records.jsonl"
SPLITS = ("train", "val", "test_seen", "test_heldout")
FORMAT = "robolearn-suite-dataset/1"


class SuiteDataError(ValueError):
    """A suite dataset that is missing, truncated, edited or of the wrong scenario/version."""


@dataclass
class SuiteDataset:
    folder: Path
    meta: dict[str, Any]
    records: list[dict[str, Any]]
    arrays: dict[str, np.ndarray] = field(repr=False)

    @property
    def hash(self) -> str:
        return str(self.meta["hash"])

    @property
    def scenario(self) -> str:
        return str(self.meta["scenario"])

    def split(self, *names: str) -> np.ndarray:
        """Indices of the instances in any of the given splits."""
        unknown = set(names) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown split(s) {sorted(unknown)}; expected some of {list(SPLITS)}")
        return np.array([i for i, r in enumerate(self.records) if r["split"] in names], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.records)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _dataset_hash(files: dict[str, str], scenario: str, version: int, config: dict[str, Any]) -> str:
    doc = json.dumps({"scenario": scenario, "version": version, "config": config, "files": files}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def write_dataset(
    out: str | Path,
    scenario: str,
    version: int,
    config: dict[str, Any],
    arrays: dict[str, np.ndarray],
    records: list[dict[str, Any]],
) -> SuiteDataset:
    """Write a dataset folder atomically; `out` must not exist yet (datasets are immutable once written)."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: exists; suite datasets are written once (delete it to regenerate)")
    n = len(records)
    for name, a in arrays.items():
        if len(a) != n:
            raise ValueError(f"array {name!r} has {len(a)} rows but there are {n} records")
    bad = sorted({str(r.get("split")) for r in records} - set(SPLITS))
    if bad:
        raise ValueError(f"records with unknown split(s) {bad}; expected {list(SPLITS)}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, a in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(a), allow_pickle=False)
        (tmp / RECORDS_FILE).write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
        counts = {s: sum(r["split"] == s for r in records) for s in SPLITS}
        meta = {
            "format": FORMAT,
            "scenario": scenario,
            "version": version,
            "config": config,
            "instances": n,
            "splits": counts,
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
            "files": files,
            "hash": _dataset_hash(files, scenario, version, config),
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        write_card(tmp, "suite-dataset", [], meta["config"], {"instances": n, **counts}, [META_FILE])  # sha256s
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return load_dataset(out, verify=False)


def load_dataset(
    folder: str | Path, scenario: str | None = None, version: int | None = None, verify: bool = True
) -> SuiteDataset:
    """Read a dataset folder; with `verify`, every file's sha256 must match dataset.json."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise SuiteDataError(f"{folder}: not a suite dataset (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
        files: dict[str, str] = dict(meta["files"])
    except (ValueError, KeyError, TypeError) as e:
        raise SuiteDataError(f"{meta_path}: unreadable dataset metadata ({type(e).__name__}: {e})") from e
    if meta.get("format") != FORMAT:
        raise SuiteDataError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if scenario is not None and meta.get("scenario") != scenario:
        raise SuiteDataError(f"{meta_path}: a {meta.get('scenario')!r} dataset, expected {scenario!r}")
    if version is not None and meta.get("version") != version:
        raise SuiteDataError(
            f"{meta_path}: {meta.get('scenario')} dataset version {meta.get('version')}, this robolearn "
            f"generates version {version}: regenerate it"
        )
    for name, want in files.items():
        path = folder / name
        if not path.is_file():
            raise SuiteDataError(f"{path}: missing (listed in {META_FILE})")
        if verify and (got := sha256_file(path)) != want:
            raise SuiteDataError(
                f"{path}: sha256 {got}, expected {want} ({META_FILE}): the file was truncated or edited"
            )
    try:
        records = [json.loads(line) for line in (folder / RECORDS_FILE).read_text().splitlines() if line]
        arrays = {p.stem: np.load(p, allow_pickle=False, mmap_mode="r") for p in sorted(folder.glob("*.npy"))}
    except (ValueError, OSError) as e:
        raise SuiteDataError(f"{folder}: unreadable dataset file ({type(e).__name__}: {e})") from e
    for name, a in arrays.items():
        if len(a) != len(records):
            raise SuiteDataError(f"{folder / (name + '.npy')}: {len(a)} rows, expected {len(records)} (records)")
    return SuiteDataset(folder, meta, records, arrays)
