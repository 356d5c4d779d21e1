import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random DistilBERT-architecture LM + tokenizer (vocab 1000, dim 32), offline."""
    from robolearn.encoders.offline import write_language_model
    return write_language_model(tmp_path_factory.mktemp("lm") / "tiny-lm", vocab_size=1000, dim=32, layers=1, heads=2)
