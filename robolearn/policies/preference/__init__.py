"""Preference fine-tuning of policies (DPO on action segments): pair mining, the objective, its config.

    pairs, report = mine_pairs(episode_paths, segment=8)      # (preferred, rejected) segments
    robolearn train --objective dpo --reference runs/bc --data demos rollouts --out runs/dpo

The training loop is robolearn.policies.preference.train.train_dpo (`robolearn train --objective dpo` calls
it; robolearn.policies.train.train is BC only).
"""

from robolearn.policies.preference.config import DpoConfig
from robolearn.policies.preference.objective import dpo_loss, segment_log_ratio
from robolearn.policies.preference.pairs import MiningReport, Pair, PairMiningError, Segment, mine_pairs

__all__ = [
    "DpoConfig",
    "MiningReport",
    "Pair",
    "PairMiningError",
    "Segment",
    "dpo_loss",
    "mine_pairs",
    "segment_log_ratio",
]
