"""The pretraining loop, readable top to bottom: one process or torchrun DDP, gradient accumulation to the
effective batch, the reference's AdamW + warm-up/cosine schedule, bf16 autocast on GPU, safetensors
checkpoints with exact mid-epoch resume, JSONL metrics, a progress bar on rank 0.

The model contract: `loss, metrics = model(batch)` with `batch` a tensor, tuple or dict of tensors (moved to
the device here) and `metrics` a dict of floats/tensors to log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from robolearn.config import opt
from robolearn.encoders.files import CheckpointError
from robolearn.pretrain.checkpoint import Retention, latest_checkpoint, load_checkpoint, save_checkpoint
from robolearn.pretrain.distributed import DistInfo, ResumableSampler, all_reduce_mean
from robolearn.pretrain.loggers import MetricsLogger
from robolearn.pretrain.schedule import lr_at, make_optimizer


@dataclass
class TrainConfig:
    max_epochs: int = opt(400, help="epochs of the schedule (training stops here)")
    warmup_epochs: float = opt(20.0, help="linear warm-up epochs")
    base_lr: float = opt(1.5e-4, help="lr per 256 examples; peak lr = base_lr * effective_batch / 256")
    lr: float | None = opt(None, help="peak lr (overrides base_lr scaling)")
    min_lr: float = opt(0.0, help="lr at the end of the cosine")
    schedule: str = opt("warmup-cosine", help="warmup-cosine | constant")
    optimizer: str = opt("adamw", help="adamw | adam | sophia (docs/pretraining.md#sophia)")
    weight_decay: float = opt(0.05, help="AdamW weight decay (not on biases / 1-D parameters)")
    betas: tuple[float, float] = opt((0.9, 0.95), help="Adam betas")
    sophia_betas: tuple[float, float] = opt((0.965, 0.99), help="Sophia: EMA of gradients, EMA of the Hessian")
    sophia_rho: float = opt(0.04, help="Sophia: gamma in clip(m / max(gamma * h, eps), 1)")
    hessian_every: int = opt(10, help="Sophia: optimizer steps between Hutchinson Hessian estimates (k)")
    effective_batch: int = opt(1024, help="global batch per optimizer step (accumulation makes it up)")
    device_batch: int = opt(128, help="examples per forward pass per process")
    num_workers: int = opt(4, help="DataLoader workers per process")
    seed: int = opt(21, help="seed (weights, sampling, masking)")
    max_steps: int = opt(0, help="stop after this many optimizer steps in total (0: run all epochs)")
    checkpoint_every: int = opt(1500, help="optimizer steps between step checkpoints (0: epoch ends only)")
    keep_last: int = opt(2, help="keep the newest N checkpoints")
    keep_every_epochs: int = opt(0, help="also keep end-of-epoch checkpoints every M epochs (0: none)")
    log_every: int = opt(10, help="optimizer steps between metrics lines")
    bf16: bool = opt(True, help="bf16 autocast on GPU (ignored on CPU)")
    compile: bool = opt(
        False,
        help="torch.compile the training forward/backward (fuses the norm, gating and "
        "scaling ops; one-time compile of ~35-45 s for ViT-S on 2 CPU cores, then 3-9% faster "
        "steps: benchmarks/pretrain_step.py)",
    )
    resume: bool = opt(True, help="continue from the newest complete checkpoint in the run folder")
    tensorboard: bool = opt(False, help="also log to tensorboard (needs the tensorboard package)")
    wandb_project: str | None = opt(
        None,
        help="also log to Weights & Biases under this project (needs wandb; "
        "WANDB_MODE=offline works without a network)",
    )
    progress: bool = opt(True, help="progress bar on rank 0")


@dataclass
class TrainResult:
    steps: int
    epochs_done: int
    losses: list[float] = field(default_factory=list)  # per optimizer step (rank 0's mean micro-batch loss)
    val_losses: list[float] = field(default_factory=list)
    last_checkpoint: Path | None = None


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def compile_for_training(model: torch.nn.Module) -> Callable:
    """torch.compile(model) with eager random numbers (inductor's own generator would draw different MAE masks
    than an eager run with the same seed): a compiled run reproduces an eager run's masks and losses."""
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    return torch.compile(model)


class Trainer:
    def __init__(
        self,
        model: torch.nn.Module,
        train_set: torch.utils.data.Dataset,
        config: TrainConfig,
        run_dir: Path,
        info: DistInfo,
        val_set: torch.utils.data.Dataset | None = None,
        collate: Callable | None = None,
        on_epoch: Callable[[int], None] | None = None,
    ) -> None:
        self.cfg, self.info, self.run_dir = config, info, Path(run_dir)
        self.train_set, self.val_set, self.collate, self.on_epoch = train_set, val_set, collate, on_epoch
        world = info.world_size
        per_step = config.device_batch * world
        if config.effective_batch % per_step:
            raise ValueError(
                f"effective_batch {config.effective_batch} is not a multiple of device_batch "
                f"{config.device_batch} x {world} processes"
            )
        self.accum = config.effective_batch // per_step
        self.sampler = ResumableSampler(len(train_set), info.rank, world, config.seed)
        self.micro_per_epoch = self.sampler.per_rank() // config.device_batch
        self.steps_per_epoch = self.micro_per_epoch // self.accum
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"an epoch of {len(train_set)} examples is smaller than one optimizer step of "
                f"{config.effective_batch}; lower effective_batch or add data"
            )
        self.model = model.to(info.device)
        if world > 1:
            self.model = DistributedDataParallel(
                self.model, device_ids=[info.local_rank] if info.device.type == "cuda" else None
            )
        # Compiled forward for training steps only; self.model stays the plain module (checkpoint keys,
        # validation in eval mode without a second compile).
        self.train_forward = compile_for_training(self.model) if config.compile else self.model
        self.peak_lr = config.lr if config.lr is not None else config.base_lr * config.effective_batch / 256
        sophia = config.optimizer == "sophia"
        if sophia and config.hessian_every < 1:
            raise ValueError(f"hessian_every must be >= 1 (optimizer steps), got {config.hessian_every}")
        self.optimizer = make_optimizer(
            self.model,
            config.optimizer,
            self.peak_lr,
            config.weight_decay,
            tuple(config.sophia_betas if sophia else config.betas),
            config.sophia_rho,
        )
        self.step, self.epoch, self.micro_in_epoch = 0, 0, 0
        self.retention = Retention(config.keep_last, config.keep_every_epochs)
        self.logger: MetricsLogger | None = None  # built in fit(): it creates files in run_dir

    # ------------------------------------------------------------------ state
    def _state(self, epoch_end: bool) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "micro_in_epoch": self.micro_in_epoch,
            "epoch_end": epoch_end,
            "optimizer": self.optimizer.state_dict(),
            "world_size": self.info.world_size,
            "train_config": asdict(self.cfg),
        }

    def _checkpoint(self, epoch_end: bool) -> Path:
        return save_checkpoint(self.run_dir, self.step, self.model, self._state(epoch_end), self.info, self.retention)

    def maybe_resume(self) -> bool:
        path = latest_checkpoint(self.run_dir) if self.cfg.resume else None
        if path is None:
            return False
        state = load_checkpoint(path, self.model, self.info)
        if state["world_size"] != self.info.world_size:
            raise ValueError(
                f"{path}: saved with {state['world_size']} processes, resuming with "
                f"{self.info.world_size}; the sampler position would not match"
            )
        saved_opt = (state.get("train_config") or {}).get("optimizer", self.cfg.optimizer)
        if saved_opt != self.cfg.optimizer:  # torch would load another optimizer's state without complaint
            raise CheckpointError(
                f"{path / 'state.pt'}: train_config.optimizer is {saved_opt!r}, this run uses "
                f"--train.optimizer {self.cfg.optimizer!r}; resume with the same optimizer or start a new --run-dir"
            )
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (TypeError, ValueError, KeyError, IndexError, RuntimeError) as e:
            raise CheckpointError(
                f"{path / 'state.pt'}: the optimizer state does not fit this model and optimizer "
                f"({e}); expected a checkpoint of the same model and --train.optimizer"
            ) from None
        self.step, self.epoch, self.micro_in_epoch = state["step"], state["epoch"], state["micro_in_epoch"]
        if state["epoch_end"]:
            self.epoch, self.micro_in_epoch = self.epoch + 1, 0
        if self.info.is_main:
            print(f"resumed from {path} (step {self.step}, epoch {self.epoch}, batch {self.micro_in_epoch})")
        return True

    # ------------------------------------------------------------------ loop
    def _loader(self, start_micro: int) -> torch.utils.data.DataLoader:
        self.sampler.set_epoch(self.epoch, start=start_micro * self.cfg.device_batch)
        if self.on_epoch:
            self.on_epoch(self.epoch)  # e.g. data-locked datasets switch to this epoch's samples
        # A loader-private generator: worker seeds must not draw from the global RNG, or a resumed run's
        # masking randomness would be shifted by one draw against the uninterrupted run.
        g = torch.Generator()
        g.manual_seed(self.cfg.seed * 7919 + self.epoch * 104729 + self.info.rank)
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_size=self.cfg.device_batch,
            sampler=self.sampler,
            num_workers=self.cfg.num_workers,
            drop_last=True,
            generator=g,
            collate_fn=self.collate,
            persistent_workers=False,
            pin_memory=self.info.device.type == "cuda",
        )

    def _forward(self, batch: Any, train: bool = True) -> tuple[torch.Tensor, dict]:
        use_bf16 = self.cfg.bf16 and self.info.device.type == "cuda"
        forward = self.train_forward if train else self.model
        with torch.autocast(device_type=self.info.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return forward(_to_device(batch, self.info.device))

    def fit(self) -> TrainResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logger = MetricsLogger(
            self.run_dir, self.info.is_main, self.cfg.tensorboard, self.cfg.wandb_project, asdict(self.cfg)
        )
        try:
            return self._fit()
        finally:
            self.logger.close()

    def _fit(self) -> TrainResult:
        self.maybe_resume()
        if self.step == 0 and self.micro_in_epoch == 0 and self.epoch == 0:
            self._checkpoint(epoch_end=False)  # the initialisation, like the reference's epoch-0 checkpoint
        result = TrainResult(self.step, self.epoch)
        last = None
        while self.epoch < self.cfg.max_epochs and not self._done():
            last = self._train_epoch(result) or last
            if self._done() and self.micro_in_epoch < self.micro_per_epoch:
                break  # stopped mid-epoch (max_steps)
            if self.val_set is not None:
                result.val_losses.append(self.validate())
            last = self._checkpoint(epoch_end=True)
            self.epoch, self.micro_in_epoch = self.epoch + 1, 0
        result.steps, result.epochs_done, result.last_checkpoint = self.step, self.epoch, last
        return result

    def _done(self) -> bool:
        return bool(self.cfg.max_steps) and self.step >= self.cfg.max_steps

    def _train_epoch(self, result: TrainResult) -> Path | None:
        cfg, model = self.cfg, self.model
        model.train()
        loader = self._loader(self.micro_in_epoch)
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=self.micro_in_epoch // self.accum,
            desc=f"epoch {self.epoch}",
            disable=not (cfg.progress and self.info.is_main),
            leave=False,
        )
        last, acc_loss, acc_metrics, t0 = None, 0.0, {}, time.perf_counter()
        for batch in loader:
            if self.micro_in_epoch >= self.steps_per_epoch * self.accum:
                break  # the tail that does not fill an optimizer step
            final_micro = (self.micro_in_epoch + 1) % self.accum == 0
            sync = final_micro or self.info.world_size == 1
            ctx = model.no_sync() if (not sync and hasattr(model, "no_sync")) else _null()
            with ctx:
                loss, metrics = self._forward(batch)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss is {loss.item()} at step {self.step}, epoch {self.epoch}")
                (loss / self.accum).backward()
            acc_loss += float(loss.detach()) / self.accum
            for k, v in (metrics or {}).items():
                acc_metrics[k] = acc_metrics.get(k, 0.0) + float(v) / self.accum
            self.micro_in_epoch += 1
            if not final_micro:
                continue
            lr = lr_at(
                self.epoch + (self.micro_in_epoch // self.accum) / self.steps_per_epoch,
                self.peak_lr,
                cfg.warmup_epochs,
                cfg.max_epochs,
                cfg.min_lr,
                cfg.schedule,
            )
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if cfg.optimizer == "sophia" and self.step % cfg.hessian_every == 0:
                self._hessian(batch)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            result.losses.append(acc_loss)
            bar.update(1)
            bar.set_postfix(loss=f"{acc_loss:.4f}", lr=f"{lr:.2e}")
            if self.step % cfg.log_every == 0 or self.step == 1:
                self._log(
                    {
                        "step": self.step,
                        "epoch": self.epoch,
                        "lr": lr,
                        "loss": acc_loss,
                        **acc_metrics,
                        "examples_per_s": cfg.effective_batch / max(time.perf_counter() - t0, 1e-9),
                    }
                )
            acc_loss, acc_metrics, t0 = 0.0, {}, time.perf_counter()
            if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                last = self._checkpoint(epoch_end=False)
            if self._done():
                if not (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                    last = self._checkpoint(epoch_end=False)
                break
        bar.close()
        return last

    def _hessian(self, batch: Any) -> None:
        """Sophia's Hutchinson estimate on this step's last micro-batch (eager, plain module: see sophia.py).
        The Rademacher draws come from a generator seeded by (seed, step, rank): resume-exact, and the global
        RNG (masking) only advances by this extra forward's draws."""
        from robolearn.pretrain.checkpoint import unwrap
        from robolearn.pretrain.sophia import hutchinson_estimate, params_of

        net = unwrap(self.model)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step * 7 + self.info.rank)
        device_batch = _to_device(batch, self.info.device)
        est = hutchinson_estimate(lambda: net(device_batch)[0], params_of(self.optimizer), g, self.info.world_size)
        self.optimizer.update_hessian(est)

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        loader = torch.utils.data.DataLoader(
            self.val_set,
            batch_size=self.cfg.device_batch,
            shuffle=False,
            num_workers=self.cfg.num_workers,
            collate_fn=self.collate,
        )
        total, n = 0.0, 0
        for batch in loader:
            loss, _ = self._forward(batch, train=False)
            total, n = total + float(loss), n + 1
        value = all_reduce_mean(total / max(n, 1), self.info)
        self._log({"step": self.step, "epoch": self.epoch, "val_loss": value})
        self.model.train()
        return value

    def _log(self, record: dict) -> None:
        if self.logger is not None:
            self.logger.log(record)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
