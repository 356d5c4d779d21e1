from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random DistilBERT-architecture LM + tokenizer (vocab 1000, dim 32), offline."""
    from robolearn.encoders.offline import write_language_model
    return write_language_model(tmp_path_factory.mktemp("lm") / "tiny-lm", vocab_size=1000, dim=32, layers=1, heads=2)


@pytest.fixture(scope="session")
def demos(tmp_path_factory: pytest.TempPathFactory):
    """Expert press-button demos recorded at the station: 2 scenes x 3 episodes, 2 cameras at 32 x 32."""
    from robolearn.collection.expert_demos import record_expert_demos
    out = tmp_path_factory.mktemp("demos") / "press-button"
    record_expert_demos(out, "press-button", [(0, 0), (1, 1)], 3, size=32, noise=0.05)
    return out


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
    torch.manual_seed(0)
    yield
