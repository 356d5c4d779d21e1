"""The collection station: robot + cameras + teleop device + operator flow -> crash-safe episodes.

Per episode: reset phase (robot homes with random joint noise; the operator resets the scene) -> wait for
"start" -> record at the fixed rate until success / failure / discard / quit / the time limit -> label ->
close (or discard) -> update the catalog -> print the cadence report. Every `scene_check_every` saved
episodes the operator is asked whether the scene changed. The station config (lab, household, scene,
operator, robot, cameras, device, task) is saved in the dataset folder as `station.json` and reused on
resume; a resume with a different control rate or camera set is refused (mixing them silently is a known
LeRobot complaint).

Faults: a robot error (e.g. the robot server went away) ends the episode with success unknown and
`extra.aborted` set, keeps every recorded step, and stops the session with the error. A dropped camera frame
is recorded as dropped. A device returning NaN/inf ends the episode the same way (the data is kept).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from robolearn.collection.recorder import EPISODES_DIR, EpisodeRecorder
from robolearn.config import opt
from robolearn.data import catalog
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig
from robolearn.hardware.cameras.base import Camera
from robolearn.hardware.devices.base import Device, DeviceCommand, DeviceError
from robolearn.hardware.loop import ControlLoop, format_report
from robolearn.hardware.robots.base import Robot, RobotError
from robolearn.utils import write_text_atomic

STATION_FILE = "station.json"


@dataclass
class StationConfig:
    """Who, where and how; saved as station.json in the dataset and reused on resume."""

    lab: str = opt("lab", help="lab name")
    household: str = opt("household_0", help="household / building id")
    scene: str = opt("scene_0", help="scene id (changes when the operator says the scene changed)")
    operator: str = opt("operator", help="operator name")
    task: str = opt("", help="task name (catalogue id or free text)")
    instruction: str = opt("", help="language instruction shown and recorded (default: the task's)")
    control_hz: float = opt(15.0, help="control rate [Hz]")
    max_seconds: float = opt(60.0, help="episode time limit [s]")
    reset_noise: float = opt(0.02, help="random joint noise at home [rad]")
    scene_check_every: int = opt(20, help="ask 'has the scene changed?' every N saved episodes (0: never)")
    realtime: bool = opt(
        True,
        help="pace the loop in real time; --no-station.realtime runs a sim as fast as it can "
        "(unattended expert collection; wall-clock timestamps then run fast)",
    )
    cameras: list[str] = field(default_factory=list)
    robot: str = "sim"
    device: str = "keyboard"


class Operator(Protocol):
    def say(self, text: str) -> None: ...

    def ask(self, question: str, choices: dict[str, str]) -> str: ...


class TerminalOperator:
    """Plain prompts on the terminal (works over SSH)."""

    def say(self, text: str) -> None:
        print(text, flush=True)

    def ask(self, question: str, choices: dict[str, str]) -> str:
        keys = "/".join(f"{k}={v}" for k, v in choices.items())
        while True:
            answer = input(f"{question} [{keys}] ").strip().lower()
            if answer in choices:
                return answer
            print(f"please answer one of {list(choices)}")


class AutoOperator:
    """No human: default answers (unattended expert collection) or scripted ones (tests)."""

    def __init__(self, answers: list[str] | None = None, log: Callable[[str], None] | None = print) -> None:
        self.answers = list(answers or [])
        self.log = log

    def say(self, text: str) -> None:
        if self.log:
            self.log(text)

    def ask(self, question: str, choices: dict[str, str]) -> str:
        answer = self.answers.pop(0) if self.answers else next(iter(choices))
        if answer not in choices:
            raise ValueError(f"scripted answer {answer!r} to {question!r} is not one of {list(choices)}")
        return answer


def ask_with_device_released(device: Device, operator: Operator, question: str, choices: dict[str, str]) -> str:
    """Ask the operator with the device released (a keyboard device gives the terminal back)."""
    device.disconnect()
    try:
        return operator.ask(question, choices)
    finally:
        device.connect()


@dataclass
class EpisodeResult:
    path: Path | None
    outcome: str  # success | failure | unlabelled | discarded | aborted
    steps: int
    cadence: dict
    dropped_frames: int = 0


class Station:
    def __init__(
        self,
        config: StationConfig,
        out: Path,
        robot: Robot,
        cameras: list[Camera],
        device: Device,
        operator: Operator | None = None,
        writer_config: WriterConfig | None = None,
    ) -> None:
        self.config = config
        self.out = Path(out)
        self.robot = robot
        self.cameras = cameras
        self.device = device
        self.operator = operator or TerminalOperator()
        self.writer_config = writer_config or WriterConfig()
        self.recorder = EpisodeRecorder(self.out, self.writer_config)
        self.loop = self._make_loop()
        self.saved = 0

    # ------------------------------------------------------------------ dataset folder
    def prepare(self, resume: bool) -> int:
        """Create or resume the dataset folder; returns the number of episodes already there."""
        station_file = self.out / STATION_FILE
        existing = self.recorder.existing()
        if station_file.exists() or existing:
            if not resume:
                raise FileExistsError(
                    f"{self.out}: a dataset is already here; pass --resume to add episodes to it "
                    "or choose another --out"
                )
            self._check_compatible(station_file)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / EPISODES_DIR).mkdir(exist_ok=True)
        self._save_station()
        return len(existing)

    def _check_compatible(self, station_file: Path) -> None:
        if not station_file.exists():
            return
        try:
            old = json.loads(station_file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{station_file}: unreadable station config ({e}); fix or remove it") from None
        for key in ("control_hz", "cameras", "robot"):
            if key in old and old[key] != asdict(self.config)[key]:
                raise ValueError(
                    f"{station_file}: field {key!r} is {old[key]!r} in this dataset but "
                    f"{asdict(self.config)[key]!r} now; resume with the same setting or record into "
                    "a new folder"
                )

    def _save_station(self) -> None:
        write_text_atomic(self.out / STATION_FILE, json.dumps(asdict(self.config), indent=1))

    # ------------------------------------------------------------------ session
    def run(self, episodes: int, resume: bool = False) -> list[EpisodeResult]:
        """Record until `episodes` more episodes are saved, or the operator quits."""
        already = self.prepare(resume)
        self.operator.say(f"recording into {self.out} ({already} episodes already there)")
        results: list[EpisodeResult] = []
        self.robot.connect()
        for cam in self.cameras:
            cam.connect()
            cam.read()  # warm-up: first frames pay for device/renderer set-up, not the first step
        self.device.connect()
        try:
            while self.saved < episodes:
                result = self.record_episode(already + len(results))
                results.append(result)
                self.operator.say(
                    f"episode {len(results)}: {result.outcome}, {result.steps} steps"
                    + (f" -> {result.path.name}" if result.path else "")
                    + "; "
                    + format_report(result.cadence)
                )
                if result.outcome == "quit":
                    break
                if result.path is not None:
                    self.saved += 1
                    catalog.update(self.out)
                    self._maybe_scene_check()
        finally:
            self._safe_stop()
            self.device.disconnect()
            for cam in self.cameras:
                cam.disconnect()
        return results

    def _maybe_scene_check(self) -> None:
        n = self.config.scene_check_every
        if n and self.saved % n == 0:
            if self._ask("has the scene changed?", {"n": "no", "y": "yes"}) == "y":
                self.config.scene = _next_scene(self.config.scene)
                self._save_station()
                self.operator.say(f"new scene id: {self.config.scene}")

    def _safe_stop(self) -> None:
        """Stop the robot; a robot that cannot be reached any more must not hide the original error."""
        try:
            self.robot.stop()
        except RobotError as e:
            self.operator.say(f"could not stop the robot: {e}")

    def _make_loop(self) -> ControlLoop:
        if self.config.realtime:
            return ControlLoop(self.config.control_hz)
        return ControlLoop(self.config.control_hz, sleep=lambda s: None)

    def _ask(self, question: str, choices: dict[str, str]) -> str:
        return ask_with_device_released(self.device, self.operator, question, choices)

    def _language(self) -> str:
        if self.config.instruction:
            return self.config.instruction
        instruction = getattr(self.robot, "instruction", None)
        return instruction() if callable(instruction) else (self.config.task or "")

    # ------------------------------------------------------------------ one episode
    def record_episode(self, index: int) -> EpisodeResult:
        cfg = self.config
        self.robot.home(noise=cfg.reset_noise)
        language = self._language()
        self.operator.say(f"reset done; task: {language!r}; press start")
        if not self._wait_for_start():
            return EpisodeResult(None, "quit", 0, {})
        writer = self.recorder.open(index, self._meta(language), [c.spec() for c in self.cameras])
        self.loop.reset_stats()
        max_steps = max(1, int(round(cfg.max_seconds * cfg.control_hz)))
        outcome, dropped, steps = "unlabelled", 0, 0
        try:
            while steps < max_steps:
                events, n_dropped = self._step(writer)
                dropped += n_dropped
                steps += 1
                ended = self._outcome(events)
                if ended:
                    outcome = ended
                    break
        except (RobotError, DeviceError, ValueError) as e:  # robot link lost, device lost or NaN/inf
            self._safe_stop()
            saved = self.recorder.abort(f"{type(e).__name__}: {e}", self.loop.report())
            self.operator.say(
                f"episode aborted after {steps} steps: {e}; recorded steps kept in "
                f"{saved if saved else '(nothing recorded)'}"
            )
            raise
        self.robot.stop()
        report = self.loop.report()
        writer.set_cadence(report)
        if outcome == "discarded":
            self.recorder.discard()
            return EpisodeResult(None, outcome, steps, report, dropped)
        if outcome in ("unlabelled", "quit"):
            label = self.recorder.ask_label(self._ask)
            if label == "discarded":
                return EpisodeResult(None, "discarded" if outcome != "quit" else "quit", steps, report, dropped)
            final = self.recorder.finish(label, "operator", dropped_frames=dropped)
            outcome = outcome if outcome == "quit" else label
        else:
            source = "detector" if self.device.name == "expert" else "operator"
            final = self.recorder.finish(outcome, source, dropped_frames=dropped)
        return EpisodeResult(final, outcome, steps, report, dropped)

    def _wait_for_start(self) -> bool:
        """Hold the robot still while polling the device for 'start' (or 'quit')."""
        hold = self._make_loop()
        while True:
            hold.begin()
            cmd = self.device.read().validated(self.device.name)
            if "quit" in cmd.events:
                return False
            if "start" in cmd.events:
                return True
            hold.end()

    def _step(self, writer: EpisodeWriter) -> tuple[set[str], int]:
        loop = self.loop
        loop.begin()
        frames = {c.name: c.read() for c in self.cameras}
        state = self.robot.state()
        loop.mark("observe_end")
        cmd: DeviceCommand = self.device.read().validated(self.device.name)
        loop.mark("policy_end")
        twist = cmd.twist if cmd.enabled else np.zeros(6)
        forms = self.robot.apply(np.append(twist, cmd.gripper), "cartesian_velocity")
        loop.mark("action_sent")
        times = dict(loop.times)
        times["step_end"] = time.monotonic_ns()
        writer.add_step(
            state=state,
            action=forms,
            images={n: f.image for n, f in frames.items()},
            camera_times={n: (f.capture_ns, f.receive_ns) for n, f in frames.items()},
            control_times=times,
            is_terminal="success" in cmd.events,
            intervention=not cmd.enabled,
            reward=1.0 if "success" in cmd.events else 0.0,
        )
        loop.end()
        return cmd.events, sum(1 for f in frames.values() if f.dropped)

    @staticmethod
    def _outcome(events: set[str]) -> str | None:
        for event, outcome in (
            ("discard", "discarded"),
            ("success", "success"),
            ("failure", "failure"),
            ("quit", "quit"),
        ):
            if event in events:
                return outcome
        return None

    def _meta(self, language: str) -> EpisodeMeta:
        cfg, info = self.config, self.robot.info()
        return EpisodeMeta(
            lab=cfg.lab,
            household=cfg.household,
            scene_id=cfg.scene,
            operator=cfg.operator,
            robot_type=str(info.get("robot_type", self.robot.name)),
            robot_serial=str(info.get("robot_serial", "")),
            control_hz=cfg.control_hz,
            action_space="cartesian_velocity",
            teleop_device=self.device.name,
            teleop_params=getattr(self.device, "params", lambda: {})(),
            task=cfg.task,
            language=[language] if language else [],
            language_source="operator" if cfg.instruction else "task",
            env=info.get("env"),
            extra={"station": asdict(cfg)},
        )


def _next_scene(scene: str) -> str:
    """scene_3 -> scene_4; anything else gets a numeric suffix."""
    head, _, tail = scene.rpartition("_")
    return f"{head}_{int(tail) + 1}" if head and tail.isdigit() else f"{scene}_1"
