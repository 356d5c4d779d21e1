"""Reading checkpoint files safely: the typed errors every checkpoint loader raises (encoders, policies, BC and
pretraining resume), the project's one `torch.load` (restricted to tensors and plain values), a safetensors
reader and a JSON-object reader that name the file and what was expected, and a type check for the simple
dataclass configs stored in `config.json` files.

`torch.load` is always called with `weights_only=True` here: a pickle that would run code or build any object
beyond tensors, containers, numbers and strings is refused. RNG states hold numpy arrays, so numpy's array,
dtype and scalar constructors are allowed too (they rebuild arrays and nothing else). Only an explicit
`weights_only=False` (`robolearn encoders convert --trust-pickle`) unpickles arbitrary objects.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint (or training-state) file that cannot be used; the message names the file, what is wrong and
    what was expected."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint, or a file a checkpoint needs, does not exist."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's parameter names, shapes or dtypes do not match the model."""


def _numpy_globals() -> list[Any]:
    """numpy's array, dtype and scalar reconstructors, under the names numpy 2.x and 1.x pickles use."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    out: list[Any] = [np.ndarray, np.dtype]
    for fn in (core.multiarray._reconstruct, core.multiarray.scalar):
        out += [(fn, f"numpy._core.multiarray.{fn.__name__}"), (fn, f"numpy.core.multiarray.{fn.__name__}")]
    dtypes = getattr(np, "dtypes", None)  # numpy >= 1.25 builds dtype instances of these classes
    if dtypes is not None:
        out += [
            c
            for n in dir(dtypes)
            if n.endswith("DType") and n != "ObjectDType" and isinstance(c := getattr(dtypes, n), type)
        ]
    return out


def read_torch_file(path: str | Path, what: str, weights_only: bool = True, hint: str = "") -> Any:
    """`torch.load(path)` on the CPU, restricted to tensors, plain values and numpy arrays unless
    `weights_only=False`. `what` says what the file should hold (for the message); `hint` how to get past a
    refusal. Raises CheckpointNotFoundError / CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: missing (expected {what})")
    try:
        if not weights_only:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to unpickle is the file's fault
        text = str(e)
        reason = (
            text.split("WeightsUnpickler error:", 1)[1].strip().split("\n\n")[0]
            if "WeightsUnpickler error:" in text
            else ""
        )
        if weights_only and re.search(r"global|Can only build|allowlist", reason):
            found = re.findall(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>", reason)
            name = next((a or b for a, b in found), "")
            why = (
                f"holds objects other than tensors and plain values{f' ({name})' if name else ''}; refused: "
                f"unpickling them could run code" + (f". {hint}" if hint else "")
            )
        else:
            why = (
                f"could not read it ({_short(reason) if reason else _short(e)}); the file is corrupted, "
                f"truncated or not a torch file"
            )
        raise CheckpointError(f"{path}: {why}; expected {what}") from None


def _short(e: BaseException | str) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = (lines[0] if lines else type(e).__name__).split(". ")[0]
    return text[:200]


def read_safetensors(
    path: str | Path, what: str, error: type[CheckpointError] = CheckpointError
) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; a missing, empty, truncated or non-safetensors file is a CheckpointError."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: missing (expected {what})")
    try:
        return load_file(str(path))
    except Exception as e:  # noqa: BLE001 - SafetensorError, OSError, ... : the file is not what it should be
        raise error(
            f"{path}: not a readable safetensors file ({_short(e)}); expected {what}; the file "
            f"is corrupted or truncated"
        ) from None


def read_json_object(path: str | Path, what: str, error: type[CheckpointError] = CheckpointError) -> dict[str, Any]:
    """A JSON file holding an object; anything else is a CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: missing (expected {what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e}); expected {what}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: holds a JSON {type(data).__name__}, expected an object ({what})")
    return data


_SIMPLE = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def _type_ok(value: Any, ann: str) -> bool | None:
    """None: `ann` is not checked; else whether `value` fits it (a bool is no int)."""
    if ann in _SIMPLE:
        kinds = _SIMPLE[ann]
        return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
    if ann.startswith("list[") and ann.endswith("]"):
        inner = ann[5:-1]
        return isinstance(value, list) and all(_type_ok(v, inner) is not False for v in value)
    if ann.startswith("dict[str,"):
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    return None


def check_field_types(
    cls: type, data: dict[str, Any], source: str, error: type[CheckpointError] = CheckpointError
) -> None:
    """Values of `data` whose dataclass field in `cls` is declared int / float / str / bool / list[...] /
    dict[str, ...] (optionally `| None`) must have that type; other annotations are not checked."""
    bad = []
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        ann = str(f.type).replace(" ", "")
        optional = ann.endswith("|None")
        ann = ann.removesuffix("|None")
        value = data[f.name]
        if optional and value is None:
            continue
        if _type_ok(value, ann) is False:
            bad.append(f"{f.name}={value!r} (expected {ann})")
    if bad:
        raise error(f"{source}: wrong type for field(s) {'; '.join(bad)}")
