"""Pretraining visual representations on video clips with language (Voltron and baselines).

Data side: clip sources (`ssv2` Something-Something-v2 layout prepared into shards, `episodes_source` our
own episodes), sharded HDF5 frame stores (`shards`), data-locked per-epoch sampling and mixtures (`sampling`),
torch datasets per batch format (`datasets`). See docs/pretraining-data.md.

Names are imported lazily so `import robolearn.pretrain` stays cheap (torch is only needed by `datasets`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ShardSource": "shards",
    "PrepareError": "shards",
    "EpisodeSource": "episodes_source",
    "prepare_episodes": "episodes_source",
    "prepare_ssv2": "ssv2",
    "read_labels": "ssv2",
    "ClipTable": "sampling",
    "plan_epoch": "sampling",
    "quintets": "sampling",
    "FORMATS": "sampling",
    "StateDataset": "datasets",
    "StateLanguageDataset": "datasets",
    "StateOKDataset": "datasets",
    "GenStateOKDataset": "datasets",
    "QuintetDataset": "datasets",
    "dataset_for": "datasets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"robolearn.pretrain.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'robolearn.pretrain' has no attribute {name!r}")
