"""The importers `robolearn data import KIND SOURCE --out DIR` dispatches to, by kind. Each is
`fn(source, out, **options) -> ImportReport` (options it does not take are dropped, so one command config
serves every kind); modules are imported on use, so the CLI starts without loading them all."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from robolearn.data.interop.runner import ImportReport

IMPORTERS: dict[str, str] = {
    "robomimic": "robolearn.data.interop.robomimic_import:import_robomimic",
    "droid": "robolearn.data.interop.droid:import_droid",
    "lerobot": "robolearn.data.interop.lerobot.importer:import_lerobot_kind",
}


def run_import(kind: str, source: str | Path, out: str | Path, **options: Any) -> ImportReport:
    if kind not in IMPORTERS:
        raise ValueError(f"unknown import kind {kind!r}; expected one of {sorted(IMPORTERS)}")
    mod, name = IMPORTERS[kind].split(":")
    fn = getattr(importlib.import_module(mod), name)
    takes = inspect.signature(fn).parameters
    return fn(source, out, **{k: v for k, v in options.items() if k in takes})
