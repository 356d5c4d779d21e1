"""Lineage cards: `lineage.json` in an artifact's folder, saying what the artifact is, what it was made from
(its inputs' ids), by which command and config, with which versions, its figures, and what is not known.

The id of an artifact is a content hash of its key files (`files`: glob patterns relative to the folder),
computed by `fingerprint` (method FINGERPRINT): files up to 2 MiB are hashed whole; bigger files by size,
their first and last MiB and 64 KiB from the middle (cheap on multi-GB shards; an edit elsewhere inside a big
file that keeps its size is not seen). Modification times are not hashed, so a copied artifact keeps its id.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robolearn import __version__
from robolearn.config import to_dict
from robolearn.utils import write_text_atomic

CARD_NAME = "lineage.json"
FORMAT = "robolearn.lineage/1"
FINGERPRINT = "sha256:size+head+mid+tail/1"  # how ids are computed (changes if `fingerprint` ever changes)
UNKNOWN = "unknown"
WHOLE, EDGE, MID = 2 << 20, 1 << 20, 64 << 10
CARD_FIELDS = ("format", "kind", "id", "id_method", "created", "inputs", "command", "config", "versions", "figures")
# Transparency fields a card may know or not (FMTI-style: one row per artifact, one column per field).
TRANSPARENCY = ("inputs", "command", "config", "versions", "code commit", "figures")


class LineageError(ValueError):
    """A card that cannot be written or read; the message names the file, the field and what was expected."""


def file_digest(path: Path) -> str:
    """sha256 of a file's content; for files above 2 MiB of its size, first and last MiB and a middle block."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= WHOLE:
            h.update(f.read())
        else:
            for offset, n in ((0, EDGE), (size // 2 - MID // 2, MID), (size - EDGE, EDGE)):
                f.seek(offset)
                h.update(f.read(n))
    return h.hexdigest()


def key_files(folder: Path, patterns: Sequence[str]) -> list[Path]:
    """The files of `folder` matching the glob patterns (recursive `**` allowed), sorted, without the card and
    hidden or temporary files."""
    found: set[Path] = set()
    for pat in patterns:
        for p in folder.glob(pat):
            rel = p.relative_to(folder)
            if p.is_file() and p.name != CARD_NAME and not any(part.startswith(".") for part in rel.parts):
                found.add(p)
    return sorted(found)


def fingerprint(folder: Path, patterns: Sequence[str]) -> tuple[str, int]:
    """(id, number of files): a hash over the relative path and `file_digest` of every key file."""
    h = hashlib.sha256(FINGERPRINT.encode())
    files = key_files(folder, patterns)
    for p in files:
        h.update(p.relative_to(folder).as_posix().encode() + b"\0" + file_digest(p).encode() + b"\n")
    return h.hexdigest(), len(files)


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    """The commit of the checkout robolearn runs from (None when it is not a git checkout or git is missing)."""
    src = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _dist_version(name: str) -> str | None:
    mod = sys.modules.get(name)  # the version actually loaded, when it is
    if mod is not None and isinstance(getattr(mod, "__version__", None), str):
        return mod.__version__
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """python, robolearn, torch, mujoco, numpy versions and the git commit (None: not known). Never imports
    torch or mujoco (reads the installed distribution's metadata unless the module is already loaded)."""
    return {
        "python": platform.python_version(),
        "robolearn": __version__,
        "torch": _dist_version("torch"),
        "mujoco": _dist_version("mujoco"),
        "numpy": _dist_version("numpy"),
        "git_commit": _git_commit(),
    }


def _covers(folder: Path, card_file: Path, part: Path) -> bool:
    """Whether the card in `folder` describes `part` (a file or folder below it): `part` is one of the card's
    key files or holds one."""
    try:
        method = read_card(card_file).get("id_method") or {}
    except LineageError:
        return False
    target = part.resolve()
    for f in key_files(folder, method.get("files") or []):
        f = f.resolve()
        if f == target or target in f.parents:
            return True
    return False


def owner(path: str | Path) -> Path | None:
    """The folder of the artifact `path` belongs to: `path` itself when it is a folder with a card, a file's
    folder when that has one, else the nearest folder above whose card lists `path` among its key files (a
    clip corpus's `videos/` or `labels/train.json`). None when no card describes it."""
    p = Path(path)
    start = p if p.is_dir() else p.parent
    if (start / CARD_NAME).is_file():
        return start
    for folder in start.resolve().parents:
        card_file = folder / CARD_NAME
        if card_file.is_file():
            return folder if _covers(folder, card_file, p) else None
    return None


def artifact_folder(path: Path) -> Path:
    """The folder whose card describes `path` (see `owner`); without one, the folder itself or a file's folder."""
    return owner(path) or (path if path.is_dir() else path.parent)


def find_card(path: str | Path) -> Path | None:
    """The card of an artifact (see `owner`): `<path>/lineage.json` for a folder, `<folder>/lineage.json` for a
    file in it, or the card of the nearest folder above whose key files include `path`."""
    folder = owner(path)
    return None if folder is None else folder / CARD_NAME


def read_card(path: str | Path) -> dict[str, Any]:
    """A card (given its file or the artifact's folder), its fields type-checked; LineageError names what is
    wrong."""
    p = Path(path)
    f = p if p.name == CARD_NAME and p.is_file() else find_card(p)
    if f is None:
        raise LineageError(f"{p}: no {CARD_NAME} here (the artifact has no lineage card)")
    try:
        card = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LineageError(f"{f}: not readable as JSON ({type(e).__name__}: {e})") from None
    if not isinstance(card, dict):
        raise LineageError(f"{f}: holds a {type(card).__name__}, expected a JSON object with {CARD_FIELDS}")
    if card.get("format") != FORMAT:
        raise LineageError(f"{f}: field 'format' is {card.get('format')!r}, expected {FORMAT!r}")
    types = {"kind": str, "id": str, "inputs": list, "command": list, "versions": dict, "figures": dict}
    for name, tp in types.items():
        if not isinstance(card.get(name), tp):
            raise LineageError(f"{f}: field {name!r} is {card.get(name)!r}, expected a {tp.__name__}")
    for i, inp in enumerate(card["inputs"]):
        if not isinstance(inp, dict) or not all(isinstance(inp.get(k), str) for k in ("path", "kind", "id")):
            raise LineageError(f"{f}: field 'inputs[{i}]' is {inp!r}, expected {{path, kind, id}} strings")
    return card


def _plain(value: Any) -> Any:
    """A config or figures value as JSON-able data (dataclasses via config.to_dict, paths as strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    return json.loads(json.dumps(value, default=str))


def _input_entry(spec: str | Path | Mapping[str, Any], folder: Path) -> tuple[dict[str, Any], list[str]]:
    """An input as {path, rel, kind, id}: kind and id from its card, `unknown` (plus a reason) without one."""
    hint = None
    if isinstance(spec, Mapping):
        hint, spec = spec.get("kind"), spec["path"]
    p = Path(spec)
    entry: dict[str, Any] = {"path": str(p.resolve()) if p.exists() else str(spec), "kind": UNKNOWN, "id": UNKNOWN}
    if p.exists():
        entry["rel"] = os.path.relpath(p.resolve(), folder.resolve())
    else:
        entry["exists"] = False  # a name (a hub id), or a path already gone when the artifact was made
    card_file = find_card(p) if p.exists() else None
    if card_file is None:
        if hint:
            entry["kind"] = str(hint)
        why = "does not exist" if not p.exists() else "has no lineage card"
        return entry, [f"input {spec}: {why}, its id and what made it are unknown"]
    card = read_card(card_file)
    entry.update(kind=card["kind"], id=card["id"])
    if card_file.parent.resolve() != p.resolve():
        entry["card"] = str(card_file.resolve())
    return entry, []


def resolve_input(base: Path, entry: Mapping[str, Any]) -> Path | None:
    """Where a recorded input is now: its path relative to the consumer's folder (a moved tree), else the
    absolute path it had; None when neither exists."""
    for cand in ([base / entry["rel"]] if entry.get("rel") else []) + [Path(entry["path"])]:
        if cand.exists():
            return cand
    return None


def _check_no_cycle(folder: Path, inputs: list[dict[str, Any]]) -> None:
    """Refuse a card whose inputs lead back to its own folder (an artifact cannot be made from itself)."""
    me = folder.resolve()
    stack = [(Path(folder), inp, [str(me)]) for inp in inputs]
    seen: set[Path] = set()
    while stack:
        base, inp, trail = stack.pop()
        target = resolve_input(base, inp)
        if target is None:
            continue
        art = artifact_folder(target)
        if art.resolve() == me:
            raise LineageError(
                f"{folder / CARD_NAME}: field 'inputs' makes a cycle ({' -> '.join([*trail, str(art.resolve())])}): "
                "an artifact cannot be made from itself"
            )
        if art.resolve() in seen:
            continue
        seen.add(art.resolve())
        card_file = find_card(target)
        if card_file is not None:
            try:
                card = read_card(card_file)
            except LineageError:
                continue
            stack += [(card_file.parent, i, [*trail, str(art.resolve())]) for i in card["inputs"]]


def write_card(
    folder: str | Path,
    kind: str,
    inputs: Iterable[str | Path | Mapping[str, Any] | None] = (),
    config: Any = None,
    figures: Mapping[str, Any] | None = None,
    files: Sequence[str] = ("**/*",),
    command: Sequence[str] | None = None,
) -> Path:
    """Write `<folder>/lineage.json` for the finished artifact in `folder` (atomically); returns its path.

    inputs: paths of what it was made from (None entries are skipped; {"path", "kind"} gives a kind for an
    input that has no card). config: its dataclass config (or a dict). figures: its metrics. files: glob
    patterns of the key files its id hashes. command: argv (default: this process's). Raises LineageError
    when an input leads back to `folder` (a cycle)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LineageError(f"{folder}: not a folder; a lineage card is written into the artifact's folder")
    entries, unknowns = [], []
    for spec in inputs:
        if spec is None or spec == "":
            continue
        entry, why = _input_entry(spec, folder)
        entries.append(entry)
        unknowns += why
    _check_no_cycle(folder, entries)
    ident, n_files = fingerprint(folder, files)
    if n_files == 0:
        unknowns.append(f"id: no key files match {list(files)} in {folder}; the id hashes nothing")
    vers = versions()
    unknowns += [f"versions.{k}: not known" for k, v in vers.items() if v is None]
    if config is None:
        unknowns.append("config: none was given")
    if not figures:
        unknowns.append("figures: none (this artifact reports no metrics)")
    card = {
        "format": FORMAT,
        "kind": kind,
        "id": ident,
        "id_method": {"method": FINGERPRINT, "files": list(files), "count": n_files},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": entries,
        "command": [str(a) for a in (sys.argv if command is None else command)],
        "config": None if config is None else _plain(config),
        "versions": vers,
        "figures": _plain(dict(figures or {})),
        "unknowns": unknowns,
    }
    return write_text_atomic(folder / CARD_NAME, json.dumps(card, indent=1) + "\n")


def transparency(card: Mapping[str, Any] | None) -> dict[str, bool]:
    """Which transparency fields a card knows (no card: none)."""
    if card is None:
        return dict.fromkeys(TRANSPARENCY, False)
    inputs = card.get("inputs") or []
    return {
        "inputs": all(i.get("id") != UNKNOWN for i in inputs),
        "command": bool(card.get("command")),
        "config": card.get("config") is not None,
        "versions": all(v is not None for k, v in (card.get("versions") or {}).items() if k != "git_commit"),
        "code commit": bool((card.get("versions") or {}).get("git_commit")),
        "figures": bool(card.get("figures")),
    }
