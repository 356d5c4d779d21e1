"""`robolearn suite ...`: Voltron's five evaluation problems on our household as one reproducible board.

robolearn suite list
robolearn suite run --scenarios affordance refer --encoders v-cond-tiny:CKPT v-cond-tiny scratch-cnn
robolearn suite generate --scenarios refer --size small --out runs/suite
robolearn suite leaderboard runs/suite
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from robolearn.config import command, opt, positional
from robolearn.suite.dataset import SuiteDataError
from robolearn.suite.encoders import SuiteEncoderError
from robolearn.suite.leaderboard import write_leaderboard
from robolearn.suite.runner import SuiteConfig, dataset_for, expand_scenarios, run_suite
from robolearn.suite.scenario import SIZES, get_scenario, scenarios
from robolearn.suite.study.config import StudyConfig


@dataclass
class SuiteListCommand:
    pass


@command("suite", "list")
def suite_list(cfg: SuiteListCommand) -> int:
    """List the suite's scenarios: family, metrics (arrow: higher/lower is better) and description."""
    for name, s in sorted(scenarios().items()):
        metrics = ", ".join(f"{m} {'↑' if up else '↓'}" for m, up in s.metrics.items())
        print(f"{name:22s} {s.family:11s} v{s.version}  {metrics}\n{'':22s} {s.description}")
    return 0


@command("suite", "run")
def suite_run(cfg: SuiteConfig) -> int:
    """Run scenarios x encoders x seeds (resumable) and write the leaderboard."""
    try:
        run = run_suite(cfg)
    except (ValueError, FileExistsError, FileNotFoundError, SuiteDataError, SuiteEncoderError) as e:
        print(f"robolearn suite run: {e}", file=sys.stderr)
        return 2
    print(f"{len(run.results)} cells; seconds per scenario: {run.seconds}")
    print(f"leaderboard: {Path(cfg.out) / 'leaderboard.html'}")
    return 0


@dataclass
class SuiteGenerateCommand:
    scenarios: list[str] = opt(default_factory=lambda: ["all"], help="scenarios to generate (`all`: every one)")
    size: str = opt("tiny", help=f"{' | '.join(SIZES)}")
    out: Path = opt(Path("runs/suite"), help="run folder (datasets go to <out>/datasets)")
    workers: int = opt(1, help="processes")
    progress: bool = opt(True, help="progress bars")


@command("suite", "generate")
def suite_generate(cfg: SuiteGenerateCommand) -> int:
    """Generate (or verify) scenario datasets without running any encoder."""
    try:
        for name in expand_scenarios(cfg.scenarios):
            ds = dataset_for(get_scenario(name), cfg.size, Path(cfg.out) / "datasets", cfg.workers, cfg.progress)
            print(f"{name}: {ds.folder} ({len(ds)} instances, {ds.meta['splits']}, hash {ds.hash[:12]})")
    except (ValueError, SuiteDataError) as e:
        print(f"robolearn suite generate: {e}", file=sys.stderr)
        return 2
    return 0


@dataclass
class SuiteLeaderboardCommand:
    out: Path = positional(help="suite run folder")


@command("suite", "leaderboard")
def suite_leaderboard(cfg: SuiteLeaderboardCommand) -> int:
    """Rebuild leaderboard.{json,md,html} from a run folder's cells."""
    if not (Path(cfg.out) / "cells").is_dir():
        print(f"robolearn suite leaderboard: {cfg.out}: no cells/ folder (not a suite run)", file=sys.stderr)
        return 2
    paths = write_leaderboard(cfg.out)
    print(paths[1].read_text())
    print(f"leaderboard: {paths[2]}")
    return 0


@command("suite", "study")
def suite_study(cfg: StudyConfig) -> int:
    """The research study: corpus -> pretrain V-Cond/V-Gen/R-MVP at equal compute -> suite -> report (resumable)."""
    from robolearn.suite.study import StudyError, run_study

    try:
        report = run_study(cfg)
    except (StudyError, ValueError, FileNotFoundError, SuiteDataError, SuiteEncoderError) as e:
        print(f"robolearn suite study: {e}", file=sys.stderr)
        return 2
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0
