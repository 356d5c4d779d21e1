from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory: pytest.TempPathFactory):
    from robolearn.encoders.offline import write_language_model
    return write_language_model(tmp_path_factory.mktemp("lm") / "tiny-lm", vocab_size=1000, dim=32, layers=1, heads=2)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield
