"""Shared fixtures: small synthetic datasets written through the real EpisodeWriter."""

from __future__ import annotations

from pathlib import Path

import pytest

from robolearn.data.synthetic import SyntheticConfig, make_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """6 episodes x 20 steps, 2 cameras at 32x32, 2 households x 2 scenes. Read-only: copy before mutating."""
    root = tmp_path_factory.mktemp("small_dataset")
    make_dataset(root, SyntheticConfig(num_episodes=6, steps=20, size=32))
    return root


@pytest.fixture
def dataset_copy(small_dataset, copy_tree) -> Path:
    """A private, mutable copy of small_dataset."""
    return copy_tree(small_dataset, "ds")
