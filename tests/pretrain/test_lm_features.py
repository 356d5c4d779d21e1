"""Caption features computed once before training, read from disk by the datasets; the LM is then idle."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robolearn.encoders import LanguageModel, build
from robolearn.pretrain.datasets import dataset_for
from robolearn.pretrain.lm_features import FeatureStore, build_feature_store
from robolearn.pretrain.shards import ShardSource


def test_store_matches_the_language_model_and_skips_it_in_training(
    prepared: Path, lm_dir: Path, tmp_path: Path
) -> None:
    source = ShardSource(prepared)
    lm = LanguageModel(str(lm_dir))
    store = build_feature_store([source.table], lm, tmp_path / "feats", progress=False)
    t = source.table
    assert len(store) == len({(tuple(i), tuple(m)) for i, m in zip(t.input_ids, t.attention_mask)}) + 1  # + null
    ids, mask = torch.from_numpy(t.input_ids[:2].copy()), torch.from_numpy(t.attention_mask[:2].copy())
    direct = lm.encode(ids, mask)
    stored = torch.stack([store.get(ids[i], mask[i]) for i in range(2)])
    assert torch.allclose(direct, stored, atol=2e-3)  # float16 on disk
    # Reused, not recomputed, when nothing changed.
    again = build_feature_store([source.table], lm, tmp_path / "feats", progress=False)
    assert len(again) == len(store)

    model = build("v-cond-tiny", language_model=str(lm_dir))
    ds = dataset_for("v-cond", source, "train", image_size=32, features=FeatureStore(tmp_path / "feats"))
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["lang_features"].shape == (4, 20, 32)
    before = dict(model.language.stats)
    loss, _ = model(batch)
    loss.backward()
    assert model.language.stats == before and not model.language.loaded  # the LM never ran
    with pytest.raises(KeyError, match="not in the LM feature store"):
        store.get(torch.full((20,), 7), torch.ones(20, dtype=torch.long))
