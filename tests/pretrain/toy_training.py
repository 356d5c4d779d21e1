"""A toy masked autoencoder trained by robolearn.pretrain.Trainer (used by the trainer tests, also under
torchrun): python -m torch.distributed.run --standalone --nproc-per-node 2 tests/pretrain/toy_training.py RUN"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
from torch import nn

from robolearn.pretrain.distributed import init_distributed, shutdown
from robolearn.pretrain.trainer import TrainConfig, Trainer


class ToyMAE(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, dim))

    def forward(self, x: torch.Tensor):
        keep = (torch.rand_like(x) > 0.5).float()  # random masking: exercises RNG restore on resume
        loss = ((self.net(x * keep) - x) ** 2).mean()
        return loss, {"kept": keep.mean()}


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n: int = 96, dim: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        basis = torch.randn(3, dim, generator=g)
        self.x = torch.randn(n, 3, generator=g) @ basis  # low-rank: learnable from half the inputs

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def config(**kw) -> TrainConfig:
    base = dict(
        max_epochs=4,
        warmup_epochs=0.5,
        lr=1e-2,
        effective_batch=16,
        device_batch=8,
        num_workers=0,
        seed=3,
        checkpoint_every=3,
        log_every=1,
        progress=False,
        weight_decay=0.0,
    )
    base.update(kw)
    return TrainConfig(**base)


def weights_digest(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def main(run_dir: str, max_steps: int = 0, optimizer: str = "adamw") -> None:
    info = init_distributed()
    torch.manual_seed(3)
    model = ToyMAE()
    extra = dict(optimizer="sophia", lr=3e-2, hessian_every=2) if optimizer == "sophia" else {}
    trainer = Trainer(model, ToyData(), config(max_steps=max_steps, **extra), Path(run_dir), info)
    result = trainer.fit()
    net = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    out = {"rank": info.rank, "digest": weights_digest(net), "losses": result.losses, "steps": result.steps}
    (Path(run_dir) / f"rank{info.rank}.json").write_text(json.dumps(out))
    shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0, sys.argv[3] if len(sys.argv) > 3 else "adamw")
