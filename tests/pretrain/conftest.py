"""Fixtures for the pretraining-data tests: a tiny offline tokenizer, a small Something-Something-v2 layout
(clipdata.py), one prepared output of it, and a few synthetic robolearn episodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clipdata import CLIPS, TRAIN_IDS, VAL_IDS, entry, run_prepare, write_webm


@pytest.fixture(scope="session")
def vp8_available() -> bool:
    import av

    if "libvpx" not in av.codecs_available:
        pytest.skip("this PyAV build cannot encode VP8 (libvpx); the .webm tests need it")
    return True


@pytest.fixture(scope="session")
def ssv2_raw(tmp_path_factory, vp8_available) -> Path:
    """videos/<id>.webm + train.json + validation.json in the official layout. Read-only."""
    root = tmp_path_factory.mktemp("ssv2")
    (root / "videos").mkdir()
    for i, c in enumerate(CLIPS):
        write_webm(root / "videos" / f"{c[0]}.webm", c[1], c[2], c[3], seed=i)
    by_id = {c[0]: c for c in CLIPS}
    (root / "train.json").write_text(json.dumps([entry(by_id[i]) for i in TRAIN_IDS]))
    (root / "validation.json").write_text(json.dumps([entry(by_id[i]) for i in VAL_IDS]))
    return root


@pytest.fixture
def ssv2_copy(ssv2_raw, copy_tree) -> Path:
    """A private, mutable copy of ssv2_raw."""
    return copy_tree(ssv2_raw, "ssv2")


@pytest.fixture(scope="session")
def prepared(ssv2_raw, lm_dir, tmp_path_factory) -> Path:
    """ssv2_raw prepared (crop 32, 30 frames per shard, 2 validation clips). Read-only."""
    out = tmp_path_factory.mktemp("prepared")
    run_prepare(ssv2_raw, out, lm_dir)
    return out


@pytest.fixture(scope="session")
def episodes_root(tmp_path_factory) -> Path:
    """4 synthetic robolearn episodes x 12 steps, cameras wrist + exterior_1 at 40x40. Read-only."""
    from robolearn.data.synthetic import SyntheticConfig, make_dataset

    root = tmp_path_factory.mktemp("episodes")
    make_dataset(root, SyntheticConfig(num_episodes=4, steps=12, size=40))
    return root
