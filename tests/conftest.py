import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

TESTS = Path(__file__).parent
# Test folders whose tests start with 2 torch threads and torch's RNG seeded to 0.
SEEDED_TORCH_DIRS = {"encoders", "eval", "policies"}


@pytest.fixture(autouse=True)
def _seeded_torch(request: pytest.FixtureRequest):
    rel = Path(request.node.path).resolve().relative_to(TESTS.resolve())
    if rel.parts and rel.parts[0] in SEEDED_TORCH_DIRS:
        import torch

        torch.set_num_threads(2)
        torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random DistilBERT-architecture LM + tokenizer (vocab 1000, dim 32), offline."""
    from robolearn.encoders.offline import write_language_model

    return write_language_model(tmp_path_factory.mktemp("lm") / "tiny-lm", vocab_size=1000, dim=32, layers=1, heads=2)


@pytest.fixture
def copy_tree(tmp_path: Path) -> Callable[[Path, str], Path]:
    """`copy_tree(src, name)`: a private, mutable copy of a read-only session fixture folder."""

    def copy(src: Path, name: str) -> Path:
        return Path(shutil.copytree(src, tmp_path / name))

    return copy


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    """(chromium, chromedriver) paths, installing Debian's packages on a fresh machine (tests/browser_driver.py)."""
    from browser_driver import BrowserUnavailable, find_or_install_chromium

    try:
        return find_or_install_chromium()
    except BrowserUnavailable as e:
        reason = str(e)
    pytest.fail(f"headless Chromium is needed for the browser tests and could not be set up: {reason}", pytrace=False)
