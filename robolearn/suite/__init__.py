"""The evaluation suite: Voltron's five problem families (grasp affordance, referring expressions, single-task
control, language-conditioned imitation, intent scoring) generated from our MuJoCo household, run for any
encoders over seeds, and reported as one leaderboard (`robolearn suite run`; docs/suite.md).

Floor 4 (beside workflows): it stands on envs (scenes), encoders (features), policies (backbones, BC) and
eval (rollouts, report rendering).
"""

from robolearn.suite.adapt import Adapter, Budget, fit, predict
from robolearn.suite.dataset import SuiteDataError, SuiteDataset, load_dataset, write_dataset
from robolearn.suite.encoders import EncoderSpec, SuiteEncoderError, TokenSource
from robolearn.suite.scenario import CellContext, CellResult, Scenario, get_scenario, register, scenarios

__all__ = [
    "Adapter",
    "Budget",
    "CellContext",
    "CellResult",
    "EncoderSpec",
    "Scenario",
    "SuiteDataError",
    "SuiteDataset",
    "SuiteEncoderError",
    "TokenSource",
    "fit",
    "get_scenario",
    "load_dataset",
    "predict",
    "register",
    "scenarios",
    "write_dataset",
]
