"""`robolearn rollout`'s config (`RolloutConfig`), its results (`RolloutReport`, `RolloutEpisode`) and error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.config import opt


class RolloutError(ValueError):
    """The rollout cannot start (configuration, policy/robot/camera mismatch); nothing was moved."""


@dataclass
class RolloutConfig:
    """`robolearn rollout` flags; also the Python API's input (`rollout(config)`)."""

    robot: str = opt(
        "sim",
        help="robot URI: tcp://HOST:PORT (a `robolearn robot-server`), sim or sim:TASK (the "
        "local MuJoCo arm), or an installed robot plugin name",
    )
    policy: str = opt("", help="policy checkpoint folder (or training run folder)")
    out: Path = opt(Path("data/rollouts"), help="dataset folder (episodes/, rollout.json, catalog, reports/)")
    task: str = opt(
        "",
        help="task name recorded with the episodes (sim: the scene's task; default: the policy's first training task)",
    )
    instruction: str = opt(
        "", help="language instruction given to the policy and recorded (default: the sim task's, else the task name)"
    )
    episodes: int = opt(1, help="episodes to save in this session")
    max_steps: int = opt(0, help="steps per episode (0: max_seconds x control rate)")
    max_seconds: float = opt(60.0, help="episode time limit when --max-steps is 0 [s]")
    takeover_device: str = opt(
        "keyboard", help="keyboard | spacemouse | gamepad | none | a device plugin ('a+b' combines devices)"
    )
    device_options: dict[str, Any] = opt(
        default_factory=dict, help="takeover device options, e.g. '{\"linear_gain\": 0.3}'"
    )
    cameras: list[str] = opt(
        default_factory=list,
        help="NAME=SOURCE (OpenCV device index, /dev/videoN, file, "
        "URL) or, for the sim robot, NAME; default (sim): the "
        "policy's cameras",
    )
    camera_width: int = opt(0, help="stored image width (0: the policy's training frame size, else 320)")
    camera_height: int = opt(0, help="stored image height (0: the policy's training frame size, else 180)")
    camera_options: dict[str, Any] = opt(
        default_factory=dict, help="extra OpenCV camera options for every NAME=SOURCE camera, e.g. '{\"fps\": 30}'"
    )
    calibration: str = opt("", help="calibration.json from `robolearn calibrate` (OpenCV cameras)")
    camera_timeout_s: float = opt(10.0, help="fail when a camera delivers no frame within this time at start")
    control_hz: float = opt(0.0, help="control rate [Hz] (0: the robot's)")
    realtime: bool = opt(True, help="pace the loop in real time; --no-realtime runs a sim as fast as it can")
    success: str = opt(
        "ask",
        help="ask: the operator labels each episode; auto: the sim task's success "
        "detector ends and labels it; none: leave unlabelled",
    )
    token: str = opt("", help="robot server token (tcp:// robots; default $ROBOLEARN_ROBOT_TOKEN)")
    robot_options: dict[str, Any] = opt(default_factory=dict, help="options for the robot's class (JSON)")
    home: bool = opt(True, help="home the robot before every episode")
    reset_noise: float = opt(0.0, help="random joint noise at home [rad]")
    takeover_release_s: float = opt(
        0.0, help="hand control back only after the device has been idle this long (0: at once)"
    )
    policy_device: str = opt("cpu", help="torch device for the policy: cpu | cuda")
    lab: str = opt("lab", help="lab name")
    household: str = opt("household_0", help="household / building id")
    scene: str = opt("scene_0", help="scene id")
    operator: str = opt("operator", help="operator name (the person supervising the rollouts)")
    resume: bool = opt(False, help="add episodes to an existing rollout folder (same policy, rate, cameras)")
    unattended: bool = opt(
        False,
        help="no prompts: episodes start without confirmation and are labelled by "
        "--success auto or none (sim / scripted evaluation; never on a real arm "
        "without someone at the stop button)",
    )
    dry_run: bool = opt(
        False, help="run every check and one policy step on the live observation, then stop without moving the robot"
    )


# ---------------------------------------------------------------------------------------------------- results
@dataclass
class RolloutEpisode:
    path: Path | None
    outcome: str  # success | failure | unlabelled | discarded | aborted | quit (before it started)
    steps: int
    intervention_steps: int = 0
    takeovers: int = 0
    label_source: str = "unknown"
    aborted: str = ""
    dropped_frames: int = 0
    cadence: dict = field(default_factory=dict)


@dataclass
class RolloutReport:
    out: Path
    policy: str
    episodes: list[RolloutEpisode] = field(default_factory=list)
    aborted: str = ""  # why the session was aborted (operator quit, SIGINT, SIGTERM, the error), "" if not
    error: str = ""  # a robot/device/policy failure that ended the session ("" if none)
    dry_run_action: list[float] | None = None
    periods_ms: list[float] = field(default_factory=list, repr=False)  # step-start to step-start, all episodes
    step_ms: list[float] = field(default_factory=list, repr=False)  # step-start to step-end, all episodes
    target_hz: float = 0.0
    overruns: int = 0

    @property
    def saved(self) -> list[RolloutEpisode]:
        return [e for e in self.episodes if e.path is not None]

    @property
    def successes(self) -> int:
        return sum(e.outcome == "success" for e in self.saved)

    @property
    def failures(self) -> int:
        return sum(e.outcome == "failure" for e in self.saved)

    @property
    def total_steps(self) -> int:
        return sum(e.steps for e in self.saved)

    @property
    def intervention_steps(self) -> int:
        return sum(e.intervention_steps for e in self.saved)

    @property
    def intervention_fraction(self) -> float:
        return self.intervention_steps / self.total_steps if self.total_steps else 0.0

    @property
    def mean_hz(self) -> float | None:
        return float(1000.0 / np.mean(self.periods_ms)) if self.periods_ms else None

    @property
    def p99_step_ms(self) -> float | None:
        return float(np.percentile(self.step_ms, 99)) if self.step_ms else None

    @property
    def p99_period_ms(self) -> float | None:
        return float(np.percentile(self.periods_ms, 99)) if self.periods_ms else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "policy": self.policy,
            "aborted": self.aborted,
            "error": self.error,
            "episodes": [{**asdict(e), "path": str(e.path) if e.path else None} for e in self.episodes],
            "saved": len(self.saved),
            "successes": self.successes,
            "failures": self.failures,
            "steps": self.total_steps,
            "intervention_steps": self.intervention_steps,
            "intervention_fraction": self.intervention_fraction,
            "mean_hz": self.mean_hz,
            "target_hz": self.target_hz,
            "p99_step_ms": self.p99_step_ms,
            "p99_period_ms": self.p99_period_ms,
            "overruns": self.overruns,
            "dry_run_action": self.dry_run_action,
        }

    def summary(self) -> str:
        saved = self.saved
        unknown = len(saved) - self.successes - self.failures
        lines = [
            f"rollouts: {len(saved)} episodes saved in {self.out} ({self.successes} success, "
            f"{self.failures} failure, {unknown} unlabelled/aborted), "
            f"{sum(e.outcome == 'discarded' for e in self.episodes)} discarded"
        ]
        labelled = self.successes + self.failures
        if labelled:
            lines[0] += f"; success rate {self.successes / labelled:.2f} over {labelled} labelled"
        takeovers = sum(e.takeovers for e in saved)
        lines.append(
            f"interventions: {self.intervention_steps} of {self.total_steps} steps "
            f"({100 * self.intervention_fraction:.1f}%) in {takeovers} takeover(s)"
        )
        if self.step_ms:
            hz = f"{self.mean_hz:.2f}" if self.mean_hz else "-"
            p99p = f"{self.p99_period_ms:.1f}" if self.p99_period_ms is not None else "-"
            lines.append(
                f"loop: mean {hz}/{self.target_hz:g} Hz, p99 loop time {self.p99_step_ms:.1f} ms "
                f"(step start to end), p99 period {p99p} ms, {self.overruns} overruns"
            )
        if self.aborted:
            lines.append(f"aborted: {self.aborted}")
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)
