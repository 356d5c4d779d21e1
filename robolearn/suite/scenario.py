"""What a suite scenario is, and the registry of them.

A scenario is one problem family at one setting: it generates its dataset deterministically from our MuJoCo
household (`generate`), and scores one encoder at one seed on it (`run_cell`) with an adapter trained on the
encoder's tokens under the scenario's fixed budget. Adding a scenario: subclass `Scenario`, fill the class
attributes, implement the two methods, and `register()` it (see docs/suite.md).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robolearn.suite.adapt import Budget
from robolearn.suite.dataset import SuiteDataset
from robolearn.suite.encoders import EncoderSpec

SIZES = ("tiny", "small", "full")


@dataclass
class CellContext:
    """What the runner hands a cell besides the dataset and the encoder."""

    out: Path  # the cell's folder: write predictions.npz, examples/*.png, curves here
    seed: int
    budget: Budget
    cache_dir: Path  # shared token cache (frozen encoders' tokens, per dataset)
    size: str = "tiny"
    progress: bool = False
    device: str = "cpu"


@dataclass
class CellResult:
    """One encoder at one seed on one scenario."""

    metrics: dict[str, float]  # name -> value (every name in the scenario's METRICS)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # 95% within-cell intervals
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)  # e.g. {"by_clutter": {"3-4": 0.6}}
    instances: int = 0  # test instances scored
    curves: dict[str, list[float]] = field(default_factory=dict)  # e.g. {"train_loss": [...]}
    examples: list[str] = field(default_factory=list)  # files in the cell folder the report shows
    extra: dict[str, Any] = field(default_factory=dict)


class Scenario(ABC):
    name: str = ""  # CLI name, e.g. "affordance"
    family: str = ""  # one of FAMILIES
    version: int = 1  # bump when generation changes: old datasets are then refused, not silently reused
    description: str = ""
    metrics: dict[str, bool] = {}  # metric -> higher is better (leaderboard columns), the first is primary
    uses_language: bool = False  # True: V-* encoders run multimodal (the instance's text goes in)
    default_budget: Budget = Budget()

    def data_config(self, size: str) -> dict[str, Any]:
        """Generation parameters for a size (tiny | small | full); part of the dataset's identity."""
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; expected one of {SIZES}")
        return {"size": size}

    def budget(self, size: str) -> Budget:
        return self.default_budget

    @abstractmethod
    def generate(self, out: Path, config: dict[str, Any], workers: int = 1, progress: bool = False) -> SuiteDataset:
        """Write the dataset for `config` into `out` (through robolearn.suite.dataset.write_dataset)."""

    @abstractmethod
    def run_cell(self, dataset: SuiteDataset, encoder: EncoderSpec, ctx: CellContext) -> CellResult:
        """Train the adapter on the train split and score the test splits."""


FAMILIES = ("affordance", "refer", "control", "imitation", "intent")
_REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if not scenario.name or scenario.family not in FAMILIES or not scenario.metrics:
        raise ValueError(f"scenario {scenario!r} needs a name, a family in {FAMILIES} and metrics")
    _REGISTRY[scenario.name] = scenario
    return scenario


def scenarios() -> dict[str, Scenario]:
    """Every registered scenario by name. The built-in ones register when robolearn.suite.families is imported
    (the runner, the leaderboard and the commands import it; the registry itself does not, so there is no cycle)."""
    return dict(_REGISTRY)


def get_scenario(name: str) -> Scenario:
    known = scenarios()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, list(known), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown scenario {name!r}.{hint} Known: {', '.join(sorted(known)) or 'none'}")
    return known[name]
