"""Metrics backends of the pretraining loop: wandb (resumed runs continue the same wandb run) and tensorboard,
driven through fake modules (neither package is a dependency); a missing package fails before any step."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import ToyData, ToyMAE, config  # noqa: E402

from robolearn.pretrain.checkpoint import complete_checkpoints  # noqa: E402
from robolearn.pretrain.distributed import DistInfo  # noqa: E402
from robolearn.pretrain.trainer import Trainer  # noqa: E402


def _fit(run: Path, **kw):
    torch.manual_seed(3)
    return Trainer(ToyMAE(), ToyData(), config(**kw), run, DistInfo()).fit()


class FakeWandb(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("wandb")
        self.inits: list[dict] = []
        self.logged: list[tuple[dict, int]] = []
        self.finished = 0
        self.util = types.SimpleNamespace(generate_id=lambda: f"run{len(self.inits)}")

    def init(self, **kw):
        self.inits.append(kw)
        return self

    def log(self, data: dict, step: int) -> None:
        self.logged.append((data, step))

    def finish(self) -> None:
        self.finished += 1


def test_wandb_logs_every_metrics_line_and_a_resumed_run_continues_it(tmp_path: Path, monkeypatch) -> None:
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    first = _fit(tmp_path, max_epochs=1, wandb_project="robolearn-test")
    assert fake.inits[0]["project"] == "robolearn-test" and fake.inits[0]["resume"] == "allow"
    assert fake.inits[0]["config"]["wandb_project"] == "robolearn-test" and fake.finished == 1
    steps = [s for d, s in fake.logged if "loss" in d]
    assert steps == list(range(1, first.steps + 1))
    jsonl = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert [d["loss"] for d, _ in fake.logged if "loss" in d] == [x["loss"] for x in jsonl]
    _fit(tmp_path, max_epochs=2, wandb_project="robolearn-test")  # resumes: same wandb run id
    assert fake.inits[1]["id"] == fake.inits[0]["id"] == (tmp_path / "wandb_id.txt").read_text().strip()
    assert [s for d, s in fake.logged if "loss" in d][len(steps)] == first.steps + 1


def test_tensorboard_gets_the_scalars(tmp_path: Path, monkeypatch) -> None:
    scalars: list[tuple[str, float, int]] = []

    class Writer:
        def __init__(self, logdir: str) -> None:
            assert logdir == str(tmp_path / "tensorboard")

        def add_scalar(self, key: str, value: float, step: int) -> None:
            scalars.append((key, value, step))

        def close(self) -> None:
            scalars.append(("closed", 0.0, 0))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=Writer))
    res = _fit(tmp_path, max_epochs=1, tensorboard=True)
    assert [s for k, _, s in scalars if k == "loss"] == list(range(1, res.steps + 1))
    assert scalars[-1][0] == "closed"


@pytest.mark.parametrize(
    "module,option,hint",
    [
        ("wandb", {"wandb_project": "p"}, "pip install wandb"),
        ("torch.utils.tensorboard", {"tensorboard": True}, "pip install tensorboard"),
    ],
)
def test_a_missing_backend_fails_before_training(
    tmp_path: Path, monkeypatch, module: str, option: dict, hint: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ImportError, match=hint):
        _fit(tmp_path, **option)
    assert complete_checkpoints(tmp_path) == [] and not (tmp_path / "metrics.jsonl").exists()
