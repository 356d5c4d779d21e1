"""Sophia: the clipped second-order update, its Hutchinson Hessian estimate, exact resume and 2-process DDP."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path

import pytest
import torch

from robolearn.pretrain.distributed import DistInfo
from robolearn.pretrain.sophia import Sophia, hutchinson_estimate

sys.path.insert(0, str(Path(__file__).parent))
from toy_training import ToyData, ToyMAE, config, main, weights_digest  # noqa: E402

from robolearn.pretrain.trainer import Trainer  # noqa: E402


def test_hutchinson_is_unbiased_for_a_known_diagonal() -> None:
    # loss = 0.5 * sum(a * x^2) + x0 * x1 (an off-diagonal term): diag(H) = a, estimates average to it.
    a = torch.tensor([1.0, 4.0, 9.0])
    x = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.5]))
    g = torch.Generator().manual_seed(0)
    est = torch.stack(
        [hutchinson_estimate(lambda: 0.5 * (a * x**2).sum() + x[0] * x[1], [x], g)[x] for _ in range(300)]
    )
    assert torch.allclose(est.mean(0), a, atol=0.15)
    assert est.std(0)[2] == 0 and est.std(0)[0] > 0.5  # the off-diagonal term is the estimator's only noise


def test_update_is_clipped_per_coordinate_and_newton_like_inside() -> None:
    p = torch.nn.Parameter(torch.zeros(2))
    opt = Sophia([p], lr=0.1, betas=(0.0, 0.0), rho=1.0, weight_decay=0.0)
    opt.update_hessian({p: torch.tensor([100.0, 0.01])})  # beta2 = 0: h = h_hat
    p.grad = torch.tensor([1.0, 1.0])
    opt.step()
    # coordinate 0: m / h = 0.01 (not clipped) -> -0.1 * 0.01; coordinate 1: m / h = 100, clipped to 1 -> -0.1
    assert torch.allclose(p.detach(), torch.tensor([-0.001, -0.1]))
    p.grad = torch.tensor([-1.0, 0.0])
    opt.update_hessian({p: torch.tensor([-5.0, 1.0])})  # negative curvature: denominator eps, sign step
    opt.step()
    assert torch.allclose(p.detach(), torch.tensor([0.099, -0.1]))


def test_weight_decay_is_decoupled() -> None:
    p = torch.nn.Parameter(torch.ones(3))
    opt = Sophia([p], lr=0.5, weight_decay=0.2)
    p.grad = torch.zeros(3)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((3,), 0.9))


def test_bad_hyperparameters_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="betas"):
        Sophia([torch.nn.Parameter(torch.zeros(1))], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="hessian_every"):
        Trainer(ToyMAE(), ToyData(), config(optimizer="sophia", hessian_every=0), tmp_path, DistInfo())


def _train(run: Path, **kw):
    torch.manual_seed(3)
    trainer = Trainer(ToyMAE(), ToyData(), config(optimizer="sophia", lr=3e-2, hessian_every=2, **kw), run, DistInfo())
    return trainer, trainer.fit()


def test_trainer_with_sophia_learns_and_resumes_bit_identically(tmp_path: Path) -> None:
    trainer_a, full = _train(tmp_path / "a", max_epochs=2)  # 12 steps
    assert sum(full.losses[-4:]) < 0.6 * sum(full.losses[:4])
    state = trainer_a.optimizer.state_dict()["state"]
    assert state and all(float(s["hessian"].abs().sum()) > 0 for s in state.values())
    _, first = _train(tmp_path / "b", max_epochs=2, max_steps=5)  # stops mid-epoch 0, Hessian refreshed at 0,2,4
    trainer_b, rest = _train(tmp_path / "b", max_epochs=2)
    assert first.steps == 5
    assert first.losses + rest.losses == full.losses
    assert weights_digest(trainer_a.model) == weights_digest(trainer_b.model)
    sa, sb = trainer_a.optimizer.state_dict()["state"], trainer_b.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["hessian"], sb[k]["hessian"]) for k in sa)


def test_resuming_with_another_optimizer_is_refused(tmp_path: Path) -> None:
    from robolearn.encoders.files import CheckpointError

    _train(tmp_path, max_epochs=1, max_steps=2)
    torch.manual_seed(3)
    with pytest.raises(CheckpointError, match="train_config.optimizer is 'sophia'"):
        Trainer(ToyMAE(), ToyData(), config(optimizer="adamw"), tmp_path, DistInfo()).fit()


def _rank(rank: int, port: int, run: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ.update(MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    main(run, 0, "sophia")


def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path: Path) -> None:
    # Two forked ranks (no torchrun launcher, no second torch import: a few seconds instead of ~40).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank, args=(r, port, str(tmp_path))) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["digest"] == r1["digest"]  # same gradients (DDP) and the same averaged Hessian estimate
    assert r0["steps"] == 4 * 96 // 16 and r0["losses"][-1] < 0.7 * r0["losses"][0]
