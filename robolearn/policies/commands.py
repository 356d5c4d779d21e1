"""`robolearn train`: registered by robolearn.policies.train (interim)."""

from robolearn.policies import train as _train  # noqa: F401
