"""Policies: heads on frozen or fine-tuned encoders (robolearn.encoders) and from-scratch baselines,
trained by behaviour cloning on episode datasets (robolearn.data).

    policy = load_policy("runs/bc/policy")
    runner = policy.runner()
    action = runner.act(obs)          # a household env observation -> an action
"""

from robolearn.policies.checkpoint import PolicyCheckpointError, load_policy, read_policy_config, save_policy
from robolearn.policies.config import ChunkHeadConfig, HeadConfig, HyenaHeadConfig, MapMlpHeadConfig, PolicyConfig
from robolearn.policies.policy import Policy, PolicyRunner, build_policy

__all__ = [
    "ChunkHeadConfig",
    "HeadConfig",
    "HyenaHeadConfig",
    "MapMlpHeadConfig",
    "Policy",
    "PolicyCheckpointError",
    "PolicyConfig",
    "PolicyRunner",
    "build_policy",
    "load_policy",
    "read_policy_config",
    "save_policy",
]
