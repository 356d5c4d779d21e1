"""Frozen-LM caption features, computed once per distinct caption and stored on disk.

The language model is frozen, so running it every training step (as the reference does, ~15% of a V-Cond
step) is waste. Before training, `build_feature_store()` runs it once over every distinct tokenised caption
of the sources (plus the null [CLS]-only caption) and writes

    <folder>/lm_features.npy   [N, L, D] float16, memory-mapped at train time (SSv2: ~170k captions x 20 x 768
                               x 2 bytes = 5 GB on disk, paged in as needed, shared by every worker/process)
    <folder>/lm_keys.npy       [N, 2, L] int32: the (ids, mask) rows the features belong to
    <folder>/lm_meta.json      language model, length, dimension, count; written last (= complete)

Datasets given a `FeatureStore` add `lang_features` [L, D] (float32) to their items; the encoders then skip
the LM. A store is reused when its language model and token length match (it is rebuilt otherwise).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.utils import write_text_atomic

FEATURES, KEYS, META = "lm_features.npy", "lm_keys.npy", "lm_meta.json"


def _key(ids: np.ndarray, mask: np.ndarray) -> bytes:
    return np.asarray(ids, np.int32).tobytes() + np.asarray(mask, np.int32).tobytes()


class FeatureStore:
    """Look up precomputed caption features by (ids, mask) row; opens the memmap lazily per process."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / META
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.folder}: no complete LM feature store ({META} missing)")
        self.meta = json.loads(meta_path.read_text())
        keys = np.load(self.folder / KEYS)
        self._index = {_key(k[0], k[1]): i for i, k in enumerate(keys)}
        self._features: np.ndarray | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self._index)

    def _array(self) -> np.ndarray:
        if self._features is None or self._pid != os.getpid():
            self._features = np.load(self.folder / FEATURES, mmap_mode="r")
            self._pid = os.getpid()
        return self._features

    def get(self, ids: torch.Tensor | np.ndarray, mask: torch.Tensor | np.ndarray) -> torch.Tensor:
        """[L, D] float32 features of one caption row; KeyError naming the store if it was not precomputed."""
        key = _key(np.asarray(ids), np.asarray(mask))
        try:
            row = self._index[key]
        except KeyError:
            raise KeyError(
                f"{self.folder}: caption ids {np.asarray(ids).tolist()} are not in the LM feature store; "
                "rebuild it for these sources (delete the folder)"
            ) from None
        return torch.from_numpy(np.asarray(self._array()[row], dtype=np.float32))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_features"] = None  # workers map the file themselves
        return state


def _distinct_rows(tables: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    seen: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    for t in tables:
        null_ids, null_mask = t.null_language()
        for ids, mask in [(null_ids, null_mask), *zip(t.input_ids, t.attention_mask)]:
            seen.setdefault(_key(ids, mask), (np.asarray(ids, np.int64), np.asarray(mask, np.int64)))
    rows = list(seen.values())
    return np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows])


def build_feature_store(
    tables: Sequence[Any],
    language_model: Any,
    folder: str | Path,
    batch: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> FeatureStore:
    """Compute (or reuse) the features of every distinct caption of `tables` (ClipTables of the sources).

    `language_model` is a robolearn.encoders.LanguageModel (or anything with `.model` and `.name_or_path`)."""
    from tqdm import tqdm

    folder = Path(folder)
    ids, mask = _distinct_rows(tables)
    name = str(getattr(language_model, "name_or_path", language_model))
    meta_path = folder / META
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("language_model") == name and meta.get("length") == ids.shape[1] and meta["count"] >= len(ids):
            store = FeatureStore(folder)
            if all(_key(i, m) in store._index for i, m in zip(ids, mask)):
                return store
        meta_path.unlink()  # stale: rebuild
    folder.mkdir(parents=True, exist_ok=True)
    model = language_model.model.to(device)
    dim = int(model.config.dim if hasattr(model.config, "dim") else model.config.hidden_size)
    out = np.lib.format.open_memmap(folder / FEATURES, mode="w+", dtype=np.float16, shape=(len(ids), ids.shape[1], dim))
    with torch.no_grad():
        for start in tqdm(range(0, len(ids), batch), desc="LM features", disable=not progress, leave=False):
            i = torch.from_numpy(ids[start : start + batch]).to(device)
            m = torch.from_numpy(mask[start : start + batch]).to(device)
            out[start : start + len(i)] = model(input_ids=i, attention_mask=m).last_hidden_state.float().cpu().numpy()
    out.flush()
    del out
    np.save(folder / KEYS, np.stack([ids, mask], axis=1).astype(np.int32))
    write_text_atomic(
        meta_path,
        json.dumps(
            {
                "language_model": name,
                "length": int(ids.shape[1]),
                "dim": dim,
                "count": int(len(ids)),
                "dtype": "float16",
            }
        ),
    )
    return FeatureStore(folder)
