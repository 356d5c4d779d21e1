"""Where the trainer's metrics go: `run/metrics.jsonl` always; tensorboard and Weights & Biases on request.

Only rank 0 logs. Optional backends are imported when the logger is built, so a missing package fails
before the first step, not after it. A wandb run id is kept in `run/wandb_id.txt`: a resumed pretraining
run continues the same wandb run instead of starting a new one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any


class MetricsLogger:
    def __init__(
        self,
        run_dir: Path,
        enabled: bool = True,
        tensorboard: bool = False,
        wandb_project: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir, self.enabled = Path(run_dir), enabled
        self.path = self.run_dir / "metrics.jsonl"
        self._tb: Any = None
        self._wandb: Any = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("--train.tensorboard needs the tensorboard package: pip install tensorboard") from e
            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
        if wandb_project:
            self._wandb = _start_wandb(self.run_dir, wandb_project, config or {})

    def log(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        # JSON has no NaN/inf: write them as strings so the file stays valid JSON lines.
        record = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in record.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps({"time": time.time(), **record}) + "\n")
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, record["step"])
        if self._wandb is not None:
            self._wandb.log(scalars, step=record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _start_wandb(run_dir: Path, project: str, config: dict[str, Any]) -> Any:
    try:
        import wandb
    except ImportError as e:
        raise ImportError(
            "--train.wandb-project needs the wandb package: pip install wandb (WANDB_MODE=offline "
            "logs without a network; `wandb sync` uploads later)"
        ) from e
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
    id_file.write_text(run_id + "\n")
    return wandb.init(project=project, id=run_id, resume="allow", dir=str(run_dir), config=config, name=run_dir.name)
