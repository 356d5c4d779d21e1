"""Deprecated import paths: robots, cameras and devices moved from robolearn.collection to robolearn.hardware.
`alias(old, new, namespace)` fills an alias module's namespace from `new`, makes `old.<submodule>` the same
module object as `new.<submodule>` (so `from robolearn.collection.devices.base import Device` still gives the
one Device class) and warns the importer once."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings
from typing import Any


def alias(old: str, new: str, namespace: dict[str, Any]) -> None:
    target = importlib.import_module(new)
    warnings.warn(
        f"{old} moved to {new}; import from {new} (the old path goes away in a later release)",
        DeprecationWarning,
        stacklevel=3,
    )
    names = list(getattr(target, "__all__", ()))
    namespace.update({name: getattr(target, name) for name in names}, __all__=names)
    for info in pkgutil.iter_modules(target.__path__):
        sub = importlib.import_module(f"{new}.{info.name}")
        sys.modules[f"{old}.{info.name}"] = sub
        namespace[info.name] = sub
