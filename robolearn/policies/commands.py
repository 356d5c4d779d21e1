"""`robolearn train`: behaviour cloning from the command line (the Python API is robolearn.policies.train)."""

from __future__ import annotations

import sys

from robolearn.config import command
from robolearn.policies.train import TrainConfig, train


@command("train", "")
def train_cmd(cfg: TrainConfig) -> int:
    """Train a policy head on an encoder by behaviour cloning, or fine-tune one on preferences (--objective dpo)."""
    try:
        if cfg.objective == "dpo":
            from robolearn.policies.preference.train import train_dpo

            r = train_dpo(cfg)
        else:
            r = train(cfg)
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"robolearn train: {e}", file=sys.stderr)
        return 2
    what = "preference-tuned (dpo)" if cfg.objective == "dpo" else "trained"
    print(
        f"{what} {r.steps} steps on {r.train_episodes} episodes (val {r.val_episodes}) in {r.seconds:.1f} s: "
        f"loss {r.final_loss:.4f}" + (f", val {r.val_loss:.4f}" if r.val_loss is not None else "")
    )
    print(f"policy: {r.policy_dir}")
    return 0
