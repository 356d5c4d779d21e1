"""The pretraining loop: loss falls, exact mid-epoch resume, retention, 2-process gloo DDP with a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robolearn.pretrain.checkpoint import complete_checkpoints, latest_checkpoint
from robolearn.pretrain.distributed import DistInfo, ResumableSampler
from robolearn.pretrain.schedule import lr_at, param_groups

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import ToyData, ToyMAE, config, weights_digest  # noqa: E402

from robolearn.pretrain.trainer import Trainer  # noqa: E402

TOY = Path(__file__).parent / "toy_training.py"


def _train(run: Path, **kw):
    torch.manual_seed(3)
    trainer = Trainer(ToyMAE(), ToyData(), config(**kw), run, DistInfo())
    return trainer, trainer.fit()


def test_loss_falls_and_metrics_are_logged(tmp_path: Path) -> None:
    _, res = _train(tmp_path, max_epochs=8)
    assert res.steps == 8 * 96 // 16
    assert sum(res.losses[-6:]) / 6 < 0.5 * sum(res.losses[:6]) / 6
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 1 and {"lr", "loss", "kept", "examples_per_s"} <= set(lines[0])


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    trainer_a, full = _train(tmp_path / "a")
    _, first = _train(tmp_path / "b", max_steps=5)  # stops mid-epoch 0 (6 steps per epoch)
    assert first.steps == 5 and latest_checkpoint(tmp_path / "b").name == "step-00000005"
    trainer_b, rest = _train(tmp_path / "b")  # resumes from step 5
    assert first.losses + rest.losses == full.losses  # bit-identical: RNG, sampler, optimizer restored
    assert weights_digest(trainer_a.model) == weights_digest(trainer_b.model)


def test_retention_keeps_newest_and_epoch_checkpoints(tmp_path: Path) -> None:
    _train(tmp_path, max_epochs=4, checkpoint_every=2, keep_last=2, keep_every_epochs=2)
    names = [p.name for p in complete_checkpoints(tmp_path)]
    # 6 steps per epoch: epoch ends at steps 6, 12, 18, 24; epochs 0 and 2 end at 6 and 18.
    assert names == ["step-00000006", "step-00000018", "step-00000022", "step-00000024"]


def test_schedule_and_param_groups() -> None:
    assert lr_at(0.5, 1.0, 1.0, 10.0) == pytest.approx(0.5)
    assert lr_at(1.0, 1.0, 1.0, 10.0) == pytest.approx(1.0)
    assert lr_at(10.0, 1.0, 1.0, 10.0) == pytest.approx(0.0)
    assert lr_at(5.5, 1.0, 1.0, 10.0) == pytest.approx(0.5)
    decay, no_decay = param_groups(ToyMAE(), 0.05)
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    with pytest.raises(ValueError, match="schedule"):
        lr_at(1, 1, 1, 1, schedule="step")


def test_sampler_is_deterministic_and_splits_ranks() -> None:
    a, b = ResumableSampler(10, 0, 2, seed=1), ResumableSampler(10, 1, 2, seed=1)
    a.set_epoch(3), b.set_epoch(3)
    ia, ib = list(a), list(b)
    assert len(ia) == len(ib) == 5 and not set(ia) & set(ib)
    a.set_epoch(3, start=2)
    assert list(a) == ia[2:]
    a.set_epoch(4)
    assert list(a) != ia


def test_bad_batch_configuration_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of device_batch"):
        Trainer(ToyMAE(), ToyData(), config(effective_batch=12), tmp_path, DistInfo())
    with pytest.raises(ValueError, match="smaller than one optimizer step"):
        Trainer(ToyMAE(), ToyData(8), config(), tmp_path, DistInfo())


def _torchrun(run: Path, max_steps: int = 0) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(TOY),
        str(run),
        str(max_steps),
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_process_gloo_ddp_and_kill_resume(tmp_path: Path) -> None:
    ref = _torchrun(tmp_path / "ref")
    out, _ = ref.communicate(timeout=240)
    assert ref.returncode == 0, out
    r0, r1 = (json.loads((tmp_path / "ref" / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["digest"] == r1["digest"]  # DDP keeps the ranks' weights identical
    assert r0["steps"] == 4 * 96 // 16 and r0["losses"][-1] < r0["losses"][0]
    # Kill a run once it has a checkpoint past the start, then resume: same final weights.
    run = tmp_path / "killed"
    proc = _torchrun(run)
    deadline = time.time() + 240
    while time.time() < deadline and not any(p.name >= "step-00000006" for p in complete_checkpoints(run)):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # the launcher; its workers are killed next (no clean shutdown anywhere)
    proc.wait(timeout=60)
    subprocess.run(["pkill", "-9", "-f", str(run)], check=False)
    resumed = _torchrun(run)
    out, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, out
    assert "resumed from" in out
    final = json.loads((run / "rank0.json").read_text())
    assert final["digest"] == r0["digest"]
