"""DpoConfig: the preference fine-tuning settings of `robolearn train --objective dpo` (`--dpo.*`)."""

from __future__ import annotations

from dataclasses import dataclass

from robolearn.config import opt


@dataclass
class DpoConfig:
    beta: float = opt(0.1, help="DPO temperature on the log-ratio margin")
    sigma: float = opt(1.0, help="fixed std of the Gaussian around the head's action (normalised units)")
    bc_weight: float = opt(0.5, help="weight of a BC term on the preferred segments (0: pure DPO)")
    dpo_weight: float = opt(1.0, help="weight of the DPO term (0 with bc-weight > 0: the BC-only ablation)")
    segment: int = opt(8, help="steps per preferred / rejected segment")
    stride: int = opt(4, help="a segment starts every N steps of an episode")
    match: str = opt("instruction", help="pairs share the scene and: instruction (exact text) | task (task id)")
    max_pairs: int = opt(0, help="keep at most N pairs, sampled with the seed (0: all)")
    pairs_per_batch: int = opt(16, help="pairs per optimizer step")

    def validate(self) -> None:
        from robolearn.policies.preference.pairs import MATCHES

        checks = [
            (self.beta > 0, f"--dpo.beta must be > 0, got {self.beta}"),
            (self.sigma > 0, f"--dpo.sigma must be > 0, got {self.sigma}"),
            (self.bc_weight >= 0, f"--dpo.bc-weight must be >= 0, got {self.bc_weight}"),
            (self.dpo_weight >= 0, f"--dpo.dpo-weight must be >= 0, got {self.dpo_weight}"),
            (self.bc_weight + self.dpo_weight > 0, "--dpo.dpo-weight and --dpo.bc-weight are both 0: nothing to train"),
            (self.segment >= 1, f"--dpo.segment must be >= 1, got {self.segment}"),
            (self.stride >= 1, f"--dpo.stride must be >= 1, got {self.stride}"),
            (self.match in MATCHES, f"--dpo.match must be one of {', '.join(MATCHES)}, got {self.match!r}"),
            (self.pairs_per_batch >= 1, f"--dpo.pairs-per-batch must be >= 1, got {self.pairs_per_batch}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
