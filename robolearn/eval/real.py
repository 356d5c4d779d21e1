"""`robolearn rollout`: run a trained policy on a robot (real or sim) and record every rollout as an episode.

    robolearn rollout --robot tcp://10.0.0.5:5555 --token $TOKEN --policy runs/bc/policy \
        --cameras exterior_1=0 wrist=2 --task put-in-bin --episodes 10 --out data/rollouts/bc
    robolearn rollout --robot sim:press-button --policy runs/bc --success auto --no-realtime --out /tmp/r

The rollout uses the collection station's parts unchanged: the same `Robot` API (sim, `robolearn
robot-server` clients, plugins), the same cameras, the same `ControlLoop` (fixed rate, per-phase
timestamps, cadence report) and the same crash-safe `EpisodeWriter` (same schema as demonstrations: what the
robot returned as applied, frames, timestamps). Nothing in the station had to change: the policy is not
forced into a `Device`; this module composes the pieces itself (`RolloutSession`).

Per step: observe (every camera's newest frame; a dropped frame is recorded as dropped and the policy sees
the camera's last frame) -> read the takeover device -> policy (or the operator, see below) -> send ->
record. The policy gets `{"images": {camera: HxWx3 uint8 as captured}, "proprio": float32 (joint_positions,
ee_position, ee_quaternion wxyz, gripper_position by default: the policy's `proprio_keys`), "language": str}`
and returns one action (its `action_space` form + the gripper target).

Operator takeover: while the takeover device gives a non-zero twist (dead-man held, where the device has
one) or its gripper value changes, or after the "pause" event (keyboard `p`) until it is pressed again, the
device's command is sent instead of the policy's (as cartesian velocity + gripper) and the step's
`intervention` flag is set. The gripper stays where the policy left it until the operator changes it.
Releasing hands control back, and the policy's runner is reset (temporal-ensembling chunks predicted
before the takeover are stale).

Abort (device "quit" - keyboard q/Esc -, Ctrl-C / SIGINT, SIGTERM): the current step completes, the robot is
stopped, the open episode is closed with what was recorded (success unknown, `extra.aborted` = why), and the
session ends cleanly. A second Ctrl-C interrupts at once (the robot is still stopped). A robot, device or
policy failure mid-episode does the same and is reported in `RolloutReport.error`.

Before anything moves the session checks: the policy's cameras exist, the robot takes the policy's action
space with the policy's action size, the proprio the policy expects can be built from the robot state, every
camera delivers frames, and one policy step on the live observation gives a finite action of the right size
(`--dry-run` stops there).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.collection.cameras.base import Camera, Frame
from robolearn.collection.devices.base import Device, DeviceCommand, DeviceError
from robolearn.collection.loop import ControlLoop, format_report
from robolearn.collection.robots.base import Robot, RobotError
from robolearn.collection.station import AutoOperator, Operator, TerminalOperator, ask_with_device_released
from robolearn.config import command, opt, save_config
from robolearn.data import catalog, schema
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig, utc_now, write_text_atomic

ROLLOUT_FILE = "rollout.json"
EPISODES_DIR = "episodes"
REPORTS_DIR = "reports"
TAKEOVER_SPACE = "cartesian_velocity"  # what a takeover device commands
DEFAULT_PROPRIO = ("joint_positions", "ee_position", "ee_quaternion", "gripper_position")
SUCCESS_MODES = ("ask", "auto", "none")
STATE_SIZES = {f.path.rsplit("/", 1)[-1]: int(np.prod(f.shape)) if f.shape else 1 for f in schema.STATE_FIELDS}
ACTION_SIZES = {f.path.rsplit("/", 1)[-1]: int(np.prod(f.shape)) for f in schema.ACTION_FIELDS
                if "gripper" not in f.path}


class RolloutError(ValueError):
    """The rollout cannot start (configuration, policy/robot/camera mismatch); nothing was moved."""


@dataclass
class RolloutConfig:
    """`robolearn rollout` flags; also the Python API's input (`rollout(config)`)."""

    robot: str = opt("sim", help="robot URI: tcp://HOST:PORT (a `robolearn robot-server`), sim or sim:TASK (the "
                                 "local MuJoCo arm), or an installed robot plugin name")
    policy: str = opt("", help="policy checkpoint folder (or training run folder)")
    out: Path = opt(Path("data/rollouts"), help="dataset folder (episodes/, rollout.json, catalog, reports/)")
    task: str = opt("", help="task name recorded with the episodes (sim: the scene's task; default: the "
                             "policy's first training task)")
    instruction: str = opt("", help="language instruction given to the policy and recorded (default: the sim "
                                    "task's, else the task name)")
    episodes: int = opt(1, help="episodes to save in this session")
    max_steps: int = opt(0, help="steps per episode (0: max_seconds x control rate)")
    max_seconds: float = opt(60.0, help="episode time limit when --max-steps is 0 [s]")
    takeover_device: str = opt("keyboard", help="keyboard | spacemouse | gamepad | none | a device plugin "
                                                "('a+b' combines devices)")
    device_options: dict[str, Any] = opt(default_factory=dict, help="takeover device options, e.g. "
                                                                    "'{\"linear_gain\": 0.3}'")
    cameras: list[str] = opt(default_factory=list, help="NAME=SOURCE (OpenCV device index, /dev/videoN, file, "
                                                        "URL) or, for the sim robot, NAME; default (sim): the "
                                                        "policy's cameras")
    camera_width: int = opt(0, help="stored image width (0: the policy's training frame size, else 320)")
    camera_height: int = opt(0, help="stored image height (0: the policy's training frame size, else 180)")
    camera_options: dict[str, Any] = opt(default_factory=dict, help="extra OpenCV camera options for every "
                                                                    "NAME=SOURCE camera, e.g. '{\"fps\": 30}'")
    calibration: str = opt("", help="calibration.json from `robolearn calibrate` (OpenCV cameras)")
    camera_timeout_s: float = opt(10.0, help="fail when a camera delivers no frame within this time at start")
    control_hz: float = opt(0.0, help="control rate [Hz] (0: the robot's)")
    realtime: bool = opt(True, help="pace the loop in real time; --no-realtime runs a sim as fast as it can")
    success: str = opt("ask", help="ask: the operator labels each episode; auto: the sim task's success "
                                   "detector ends and labels it; none: leave unlabelled")
    token: str = opt("", help="robot server token (tcp:// robots; default $ROBOLEARN_ROBOT_TOKEN)")
    robot_options: dict[str, Any] = opt(default_factory=dict, help="options for the robot's class (JSON)")
    home: bool = opt(True, help="home the robot before every episode")
    reset_noise: float = opt(0.0, help="random joint noise at home [rad]")
    takeover_release_s: float = opt(0.0, help="hand control back only after the device has been idle this "
                                              "long (0: at once)")
    policy_device: str = opt("cpu", help="torch device for the policy: cpu | cuda")
    lab: str = opt("lab", help="lab name")
    household: str = opt("household_0", help="household / building id")
    scene: str = opt("scene_0", help="scene id")
    operator: str = opt("operator", help="operator name (the person supervising the rollouts)")
    resume: bool = opt(False, help="add episodes to an existing rollout folder (same policy, rate, cameras)")
    unattended: bool = opt(False, help="no prompts: episodes start without confirmation and are labelled by "
                                       "--success auto or none (sim / scripted evaluation; never on a real arm "
                                       "without someone at the stop button)")
    dry_run: bool = opt(False, help="run every check and one policy step on the live observation, then stop "
                                    "without moving the robot")


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
        return {"out": str(self.out), "policy": self.policy, "aborted": self.aborted, "error": self.error,
                "episodes": [{**asdict(e), "path": str(e.path) if e.path else None} for e in self.episodes],
                "saved": len(self.saved), "successes": self.successes, "failures": self.failures,
                "steps": self.total_steps, "intervention_steps": self.intervention_steps,
                "intervention_fraction": self.intervention_fraction, "mean_hz": self.mean_hz,
                "target_hz": self.target_hz, "p99_step_ms": self.p99_step_ms, "p99_period_ms": self.p99_period_ms,
                "overruns": self.overruns, "dry_run_action": self.dry_run_action}

    def summary(self) -> str:
        saved = self.saved
        unknown = len(saved) - self.successes - self.failures
        lines = [f"rollouts: {len(saved)} episodes saved in {self.out} ({self.successes} success, "
                 f"{self.failures} failure, {unknown} unlabelled/aborted), "
                 f"{sum(e.outcome == 'discarded' for e in self.episodes)} discarded"]
        labelled = self.successes + self.failures
        if labelled:
            lines[0] += f"; success rate {self.successes / labelled:.2f} over {labelled} labelled"
        takeovers = sum(e.takeovers for e in saved)
        lines.append(f"interventions: {self.intervention_steps} of {self.total_steps} steps "
                     f"({100 * self.intervention_fraction:.1f}%) in {takeovers} takeover(s)")
        if self.step_ms:
            hz = f"{self.mean_hz:.2f}" if self.mean_hz else "-"
            p99p = f"{self.p99_period_ms:.1f}" if self.p99_period_ms is not None else "-"
            lines.append(f"loop: mean {hz}/{self.target_hz:g} Hz, p99 loop time {self.p99_step_ms:.1f} ms "
                         f"(step start to end), p99 period {p99p} ms, {self.overruns} overruns")
        if self.aborted:
            lines.append(f"aborted: {self.aborted}")
        if self.error:
            lines.append(f"error: {self.error}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- parts
class NullDevice(Device):
    """`--takeover-device none`: never takes over (abort with Ctrl-C)."""

    name = "none"

    def read(self) -> DeviceCommand:
        return DeviceCommand()


class Takeover:
    """Decides per step who drives: the operator (device) or the policy.

    The operator drives while the device gives a non-zero twist (only when `enabled`: a released dead-man
    switch is no takeover), on a step where its gripper value changes, and from one "pause" event to the next
    (a latched takeover: a zero twist then holds the robot still). With `release_steps` > 0 control goes back
    only after that many idle steps. The gripper follows the operator only once the operator changed it;
    until then it stays at the last gripper target sent (the policy's)."""

    def __init__(self, release_steps: int = 0) -> None:
        self.release_steps = max(0, int(release_steps))
        self.reset()

    def reset(self) -> None:
        self.active = self.latched = False
        self._idle = 0
        self._last_gripper: float | None = None
        self.gripper_override: float | None = None
        self.segments = 0

    def update(self, cmd: DeviceCommand) -> bool:
        """True when the operator drives this step."""
        if "pause" in cmd.events:
            self.latched = not self.latched
        moving = cmd.enabled and bool(np.any(np.asarray(cmd.twist) != 0.0))
        gripper_changed = self._last_gripper is not None and cmd.gripper != self._last_gripper
        self._last_gripper = cmd.gripper
        if gripper_changed:
            self.gripper_override = float(cmd.gripper)
        wants = self.latched or moving or gripper_changed
        if wants:
            self._idle = 0
        elif self.active:
            self._idle += 1
            wants = self._idle <= self.release_steps
        if wants and not self.active:
            self.segments += 1
        if not wants:
            self.gripper_override = None
        self.active = wants
        return wants

    def action(self, cmd: DeviceCommand, gripper_now: float) -> np.ndarray:
        twist = np.asarray(cmd.twist, dtype=np.float64) if cmd.enabled else np.zeros(6)
        gripper = self.gripper_override if self.gripper_override is not None else gripper_now
        return np.append(twist, gripper)


class _Interrupts:
    """SIGINT/SIGTERM while recording: remembered, the loop stops after the current step; a second one, or one
    outside recording (a prompt, homing), raises KeyboardInterrupt at once. Main thread only."""

    def __init__(self) -> None:
        self.reason = ""
        self.recording = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        name = signal.Signals(signum).name
        first = not self.reason
        if first:
            self.reason = name
        if not self.recording or not first:
            raise KeyboardInterrupt(name)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def policy_config_dict(policy: Any) -> dict[str, Any]:
    cfg = policy.config
    if hasattr(cfg, "to_dict"):
        d = cfg.to_dict()
    elif dataclasses.is_dataclass(cfg):
        d = asdict(cfg)
    else:
        d = {k: v for k, v in vars(cfg).items() if not k.startswith("_")}
    return _jsonable(d)


def parse_robot_uri(uri: str, token: str = "", options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """A robot URI -> (registry name, options): tcp://HOST:PORT -> remote, sim[:TASK] -> sim, NAME -> plugin."""
    options = dict(options or {})
    uri = uri.strip()
    if not uri:
        raise RolloutError("--robot is empty: give tcp://HOST:PORT, sim[:TASK] or a robot plugin name")
    if uri.startswith("tcp://"):
        return "remote", {"address": uri, **({"token": token} if token else {}), **options}
    if "://" in uri:
        raise RolloutError(f"--robot {uri!r}: unknown scheme; use tcp://HOST:PORT for a `robolearn robot-server`")
    name, _, arg = uri.partition(":")
    if name == "sim" and arg:
        options.setdefault("task", arg)
    elif arg:
        raise RolloutError(f"--robot {uri!r}: only sim takes an argument (sim:TASK); plugins take "
                           "--robot-options JSON")
    if name == "remote" and token:
        options.setdefault("token", token)
    return name, options


def _default_frame_size(cfg: RolloutConfig, policy: Any) -> tuple[int, int]:
    """(width, height) of stored camera frames."""
    hw = list(getattr(policy.config, "train_image_size", []) or [])
    w = cfg.camera_width or (int(hw[1]) if len(hw) == 2 else 320)
    h = cfg.camera_height or (int(hw[0]) if len(hw) == 2 else 180)
    return w, h


def build_robot(cfg: RolloutConfig, policy: Any) -> Robot:
    from robolearn.collection.robots.registry import make_robot

    name, options = parse_robot_uri(cfg.robot, cfg.token, cfg.robot_options)
    if name == "sim":
        tasks = list(getattr(policy.config, "train_tasks", []) or [])
        options.setdefault("task", cfg.task or (tasks[0] if tasks else "put-in-bin"))
        if cfg.control_hz:
            options.setdefault("control_hz", cfg.control_hz)
    try:
        return make_robot(name, **options)
    except (TypeError, ValueError) as e:
        raise RolloutError(f"--robot {cfg.robot}: {e}") from None


def build_cameras(cfg: RolloutConfig, robot: Robot, policy: Any) -> list[Camera]:
    """--cameras entries: NAME=SOURCE (OpenCV) or NAME (a sim robot's scene camera)."""
    from robolearn.collection.cameras.registry import make_camera

    specs = list(cfg.cameras)
    is_sim = hasattr(robot, "sim") and hasattr(robot, "env")
    if not specs:
        if not is_sim:
            raise RolloutError(f"give --cameras NAME=SOURCE for the policy's cameras {list(policy.config.cameras)} "
                               "(e.g. --cameras exterior_1=0 wrist=2: OpenCV device index, /dev/videoN, file or "
                               "URL); the robot server serves no cameras")
        specs = list(policy.config.cameras)
    width, height = _default_frame_size(cfg, policy)
    cams: list[Camera] = []
    for spec in specs:
        name, sep, source = spec.partition("=")
        name, source = name.strip(), source.strip()
        if not name or (sep and not source):
            raise RolloutError(f"--cameras {spec!r}: expected NAME=SOURCE or NAME")
        try:
            if sep:
                cams.append(make_camera("opencv", source=source, name=name, width=width, height=height,
                                        calibration=cfg.calibration, **cfg.camera_options))
            elif is_sim:
                cams.append(make_camera("sim", robot=robot, camera=name, width=width, height=height))
            else:
                raise RolloutError(f"--cameras {spec!r}: camera {name!r} needs a source (NAME=SOURCE: device index, "
                                   "/dev/videoN, file or URL); bare names are sim scene cameras")
        except (TypeError, ValueError) as e:
            if isinstance(e, RolloutError):
                raise
            raise RolloutError(f"--cameras {spec!r}: {e}") from None
    names = [c.name for c in cams]
    if len(set(names)) != len(names):
        raise RolloutError(f"--cameras: duplicate camera names {names}")
    return cams


def build_device(cfg: RolloutConfig) -> Device:
    if cfg.takeover_device in ("none", ""):
        return NullDevice()
    from robolearn.collection.devices.registry import make_device

    try:
        return make_device(cfg.takeover_device, **cfg.device_options)
    except (TypeError, ValueError) as e:
        raise RolloutError(f"--takeover-device {cfg.takeover_device}: {e}") from None


def load_policy_from(cfg: RolloutConfig) -> tuple[Any, dict[str, Any]]:
    """The policy and what identifies it in the episodes (path, config, training metadata)."""
    from robolearn.policies import load_policy, read_policy_config
    from robolearn.policies.checkpoint import resolve_policy_dir

    if not cfg.policy:
        raise RolloutError("--policy: give a policy checkpoint folder (or a training run folder)")
    policy = load_policy(cfg.policy, device=cfg.policy_device)  # PolicyCheckpointError (a ValueError) if bad
    doc = read_policy_config(cfg.policy)
    path = resolve_policy_dir(cfg.policy).resolve()
    return policy, {"path": str(path), "config": policy_config_dict(policy), "meta": _jsonable(doc.get("meta", {})),
                    "format_version": doc.get("version"), "robolearn_version": doc.get("robolearn_version")}


# ---------------------------------------------------------------------------------------------------- session
class RolloutSession:
    """One rollout session: pre-flight checks, then episodes until `config.episodes` are saved, the operator
    quits or something fails. The caller owns the robot (closed by `rollout()` when it built it)."""

    def __init__(self, config: RolloutConfig, policy: Any, robot: Robot, cameras: list[Camera], device: Device,
                 operator: Operator, policy_info: dict[str, Any] | None = None,
                 writer_config: WriterConfig | None = None) -> None:
        if config.success not in SUCCESS_MODES:
            raise RolloutError(f"--success must be one of {SUCCESS_MODES}, got {config.success!r}")
        if config.unattended and config.success == "ask":
            raise RolloutError("--unattended has nobody to ask for labels: use --success auto (sim) or none")
        if config.episodes < 1:
            raise RolloutError(f"--episodes must be >= 1, got {config.episodes}")
        if config.max_steps < 0 or not config.max_seconds > 0:
            raise RolloutError(f"--max-steps must be >= 0 and --max-seconds > 0, got {config.max_steps}, "
                               f"{config.max_seconds}")
        self.config = config
        self.policy = policy
        self.robot = robot
        self.cameras = list(cameras)
        self.device = device
        self.operator = operator
        self.policy_info = policy_info or {"path": config.policy or type(policy).__name__,
                                           "config": policy_config_dict(policy)}
        self.writer_config = writer_config or WriterConfig()
        self.out = Path(config.out)
        pcfg = policy.config
        self.action_space = str(getattr(pcfg, "action_space", "cartesian_velocity"))
        self.proprio_keys = list(getattr(pcfg, "proprio_keys", None) or DEFAULT_PROPRIO)
        self.interrupts = _Interrupts()
        self.runner: Any = None
        self.loop: ControlLoop | None = None
        self.control_hz = 0.0
        self.takeover = Takeover()
        self._last: dict[str, np.ndarray] = {}  # each camera's newest frame (the policy's input when dropped)
        self._work: list[float] = []  # this episode's step times (step start to end) [ms]
        self._saved = 0
        self._device_started = False
        self.task = config.task
        self.report = RolloutReport(self.out, self.policy_info["path"])

    # ------------------------------------------------------------------ checks (nothing moves)
    def check_config(self) -> None:
        """Checks that need no connection: the policy's cameras, action space and proprio keys."""
        names = [c.name for c in self.cameras]
        missing = [c for c in self.policy.config.cameras if c not in names]
        if missing:
            raise RolloutError(f"the policy needs camera(s) {missing} but this rollout has {names}; name the "
                               f"cameras like the policy's training data (--cameras NAME=SOURCE, e.g. "
                               f"{missing[0]}=0)")
        if self.action_space not in ACTION_SIZES:
            raise RolloutError(f"the policy's action space {self.action_space!r} is none of {tuple(ACTION_SIZES)}")
        unknown = [k for k in self.proprio_keys if k not in STATE_SIZES]
        if unknown:
            raise RolloutError(f"the policy's proprio keys {unknown} are not robot state fields {list(STATE_SIZES)}")
        want = getattr(self.policy.config, "proprio_dim", None)
        have = sum(STATE_SIZES[k] for k in self.proprio_keys)
        if want is not None and int(want) not in (0, have):
            raise RolloutError(f"the policy expects {want} proprio values but its keys {self.proprio_keys} give {have}")
        if self.config.success == "auto" and not callable(getattr(self.robot, "task_success", None)):
            raise RolloutError(f"--success auto needs a robot that reports task success (the local sim robot, "
                               f"--robot sim:TASK); {self.robot.name!r} does not: use --success ask")

    def expected_action_dim(self) -> int:
        return ACTION_SIZES[self.action_space] + 1

    def check_robot(self) -> None:
        """After connect (the robot's spaces and rate are known then)."""
        spaces = list(getattr(self.robot, "action_spaces", ()))
        if self.action_space not in spaces:
            raise RolloutError(f"the policy commands {self.action_space!r} actions but robot "
                               f"{self.robot.info().get('robot_type', self.robot.name)!r} takes {spaces}")
        dim = getattr(self.policy.config, "action_dim", None)
        if dim is not None and int(dim) != self.expected_action_dim():
            raise RolloutError(f"the policy's action has {dim} values but the robot's {self.action_space} action "
                               f"has {self.expected_action_dim()} ({ACTION_SIZES[self.action_space]} + gripper)")
        hz = float(self.config.control_hz or self.robot.control_hz)
        if not hz > 0:
            raise RolloutError(f"control rate must be > 0 Hz, got {hz}")
        if self.config.control_hz and abs(self.config.control_hz - float(self.robot.control_hz)) > 1e-6:
            self.operator.say(f"warning: running at {self.config.control_hz:g} Hz but the robot's control rate is "
                              f"{float(self.robot.control_hz):g} Hz")
        self.control_hz = hz
        sleep = time.sleep if self.config.realtime else (lambda s: None)
        self.loop = ControlLoop(hz, sleep=sleep)
        self.takeover = Takeover(int(round(self.config.takeover_release_s * hz)))

    def warm_up_cameras(self) -> None:
        """Every camera must deliver a frame within camera_timeout_s (the policy cannot act on nothing)."""
        deadline = time.monotonic() + self.config.camera_timeout_s
        waiting = {c.name: c for c in self.cameras}
        while waiting:
            for name, cam in list(waiting.items()):
                frame = cam.read()
                if not frame.dropped and frame.image is not None:
                    self._last[name] = frame.image
                    del waiting[name]
            if waiting and time.monotonic() > deadline:
                raise RolloutError(f"camera(s) {sorted(waiting)} delivered no frame within "
                                   f"{self.config.camera_timeout_s:g} s; check the sources (`robolearn collect` "
                                   "with the same --cameras shows them)")
            if waiting:
                time.sleep(0.01)

    def remember(self, frames: dict[str, Frame]) -> None:
        """Keep each camera's newest frame: a dropped frame is recorded as dropped, the policy sees the last one."""
        for name, f in frames.items():
            if not f.dropped and f.image is not None:
                self._last[name] = f.image

    def observation(self, frames: dict[str, Frame], state: dict[str, np.ndarray], language: str) -> dict[str, Any]:
        self.remember(frames)
        proprio = np.concatenate([np.asarray(state[k], dtype=np.float64).reshape(-1) for k in self.proprio_keys])
        return {"images": {c: self._last[c] for c in self.policy.config.cameras}, "proprio": proprio.astype(np.float32),
                "language": language}

    def policy_action(self, obs: dict[str, Any]) -> np.ndarray:
        try:
            a = self.runner.act(obs)
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise RolloutError(f"the policy failed on this robot's observation: {type(e).__name__}: {e}") from None
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (self.expected_action_dim(),):
            raise RolloutError(f"the policy returned an action of shape {tuple(np.shape(a))}, but the robot's "
                               f"{self.action_space} action has {self.expected_action_dim()} values "
                               f"({ACTION_SIZES[self.action_space]} + gripper)")
        if not np.all(np.isfinite(a)):
            raise RolloutError(f"the policy returned a non-finite action {a.tolist()}; nothing was sent")
        return a

    def preflight(self) -> np.ndarray:
        """Every check before the robot moves; returns the policy's action on the live observation."""
        self.check_config()
        self.device.start()  # a missing device fails here, before the robot is touched
        self._device_started = True
        self.robot.connect()
        self.task = self.config.task or str((self.robot.info().get("env") or {}).get("task", ""))
        self.check_robot()
        for cam in self.cameras:
            cam.start()
        self.warm_up_cameras()
        self.runner = self.policy.runner()
        self.runner.reset()
        frames = {c.name: c.read() for c in self.cameras}
        action = self.policy_action(self.observation(frames, self.robot.state(), self.language()))
        self.runner.reset()
        return action

    # ------------------------------------------------------------------ dataset folder
    def prepare_folder(self) -> int:
        path = self.out / ROLLOUT_FILE
        existing = sorted((self.out / EPISODES_DIR).glob(f"*{schema.EPISODE_SUFFIX}")) if self.out.exists() else []
        doc = self._folder_doc()
        if path.exists() or existing:
            if not self.config.resume:
                raise FileExistsError(f"{self.out}: rollouts are already recorded here; pass --resume to add "
                                      "episodes (same policy, rate and cameras) or choose another --out")
            if path.exists():
                try:
                    old = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError) as e:
                    raise RolloutError(f"{path}: unreadable ({e}); fix or remove it") from None
                for key in ("policy_path", "control_hz", "cameras", "action_space"):
                    if key in old and old[key] != doc[key]:
                        raise RolloutError(f"{path}: {key} is {old[key]!r} in this folder but {doc[key]!r} now; "
                                           "resume with the same setting or record into a new folder")
        (self.out / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(doc, indent=1))
        return len(existing)

    def _folder_doc(self) -> dict[str, Any]:
        return {"policy_path": self.policy_info["path"], "policy": self.policy_info, "robot": self.config.robot,
                "robot_info": _jsonable(self.robot.info()), "control_hz": self.control_hz,
                "cameras": [c.name for c in self.cameras], "action_space": self.action_space,
                "takeover_device": self.device.name, "config": _jsonable(asdict(self.config))}

    # ------------------------------------------------------------------ session
    def language(self) -> str:
        if self.config.instruction:
            return self.config.instruction
        instruction = getattr(self.robot, "instruction", None)
        if callable(instruction):
            return str(instruction())
        return self.task

    def run(self) -> RolloutReport:
        cfg, rep = self.config, self.report
        self.interrupts.install()
        try:
            action = self.preflight()
            rep.dry_run_action = action.tolist()
            rep.target_hz = self.control_hz
            self.operator.say(f"pre-flight ok: cameras {[c.name for c in self.cameras]}, {self.action_space} at "
                              f"{self.control_hz:g} Hz; the policy's first action would be "
                              f"{np.round(action, 3).tolist()}")
            if cfg.dry_run:
                return rep
            already = self.prepare_folder()
            help_text = getattr(self.device, "help_text", None)
            if callable(help_text):
                self.operator.say(help_text())
            self.operator.say(f"rolling out {self.policy_info['path']} into {self.out} ({already} episodes already "
                              "there); takeover: move the device (or 'pause' to latch), quit/Ctrl-C aborts")
            index = already
            while self._saved < cfg.episodes:
                ep = self.episode(index)
                rep.episodes.append(ep)
                index += 1
                self.operator.say(f"episode {index - 1}: {ep.outcome}, {ep.steps} steps, "
                                  f"{ep.intervention_steps} intervention steps"
                                  + (f" -> {ep.path.name}" if ep.path else "") + "; " + format_report(ep.cadence))
                if ep.path is not None:
                    self._saved += 1
                    catalog.update(self.out)
                if ep.aborted or rep.error:
                    break
        except KeyboardInterrupt as e:
            rep.aborted = rep.aborted or str(e) or self.interrupts.reason or "KeyboardInterrupt"
            self.operator.say(f"interrupted ({rep.aborted}); robot stopped, recorded episodes kept")
        finally:
            self.interrupts.recording = False
            self._safe_stop()
            if self._device_started:
                self._device_started = False
                try:
                    self.device.close()
                except Exception as e:  # noqa: BLE001 (report, keep shutting down)
                    self.operator.say(f"could not close the takeover device: {e}")
            for cam in self.cameras:
                try:
                    cam.stop()
                except Exception as e:  # noqa: BLE001
                    self.operator.say(f"could not stop camera {cam.name}: {e}")
            self.interrupts.restore()
        if rep.episodes:
            self._write_report()
        return rep

    def _write_report(self) -> None:
        folder = self.out / REPORTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        name = f"rollout_{time.strftime('%Y%m%dT%H%M%S')}.json"
        write_text_atomic(folder / name, json.dumps(self.report.to_dict(), indent=1, default=str))

    def _safe_stop(self) -> None:
        """Stop the robot; an unreachable robot must not hide the original problem (the server's watchdog
        stops a robot whose client went silent)."""
        try:
            self.robot.stop()
        except Exception as e:  # noqa: BLE001
            self.operator.say(f"could not stop the robot: {e}")

    def _ask(self, question: str, choices: dict[str, str]) -> str:
        return ask_with_device_released(self.device, self.operator, question, choices)

    # ------------------------------------------------------------------ one episode
    def episode(self, index: int) -> RolloutEpisode:
        cfg, rep = self.config, self.report
        self._check_interrupt()
        if cfg.home:
            self.operator.say("homing the robot")
            self.robot.home(noise=cfg.reset_noise)
            self._check_interrupt()
        language = self.language()
        self.operator.say(f"episode {index}: task {self.task or '-'!r}, instruction {language!r}")
        if self._ask("start the policy?", {"s": "start", "q": "quit"}) == "q":
            rep.aborted = "operator quit before the episode"
            return RolloutEpisode(None, "quit", 0, aborted=rep.aborted)
        self._check_interrupt()
        path = self.out / EPISODES_DIR / f"ep_{index:06d}_{time.strftime('%Y%m%dT%H%M%S')}{schema.EPISODE_SUFFIX}"
        writer = EpisodeWriter(path, self._meta(language), [c.spec() for c in self.cameras], self.writer_config)
        loop = self.loop
        assert loop is not None
        loop.reset_stats()
        self.runner.reset()
        self.takeover.reset()
        max_steps = cfg.max_steps or max(1, int(round(cfg.max_seconds * self.control_hz)))
        gripper = float(np.asarray(self.robot.state()["gripper_position"]).reshape(-1)[0])
        ep = RolloutEpisode(None, "unlabelled", 0)
        self._work = []
        ended: str | None = None
        label_source = "operator"
        self.interrupts.recording = True
        try:
            while ep.steps < max_steps:
                if self.interrupts.reason:
                    raise KeyboardInterrupt(self.interrupts.reason)
                loop.begin()
                frames = {c.name: c.read() for c in self.cameras}
                state = self.robot.state()
                loop.mark("observe_end")
                cmd = self.device.read().validated(self.device.name)
                if "quit" in cmd.events:
                    raise KeyboardInterrupt(f"operator quit ({self.device.name})")
                was_active = self.takeover.active
                operator_drives = self.takeover.update(cmd)
                if operator_drives:
                    self.remember(frames)
                    action, space = self.takeover.action(cmd, gripper), TAKEOVER_SPACE
                else:
                    if was_active:  # handed back: chunks predicted before the takeover are stale
                        self.runner.reset()
                    action = self.policy_action(self.observation(frames, state, language))
                    space = self.action_space
                loop.mark("policy_end")
                forms = self.robot.apply(action, space)
                loop.mark("action_sent")
                gripper = float(np.asarray(forms["gripper_position"]).reshape(-1)[0])
                success = False
                if "success" in cmd.events:
                    ended, success = "success", True
                elif "failure" in cmd.events:
                    ended = "failure"
                elif "discard" in cmd.events:
                    ended = "discarded"
                elif cfg.success == "auto" and self.robot.task_success():  # type: ignore[attr-defined]
                    ended, success, label_source = "success", True, "detector"
                times = dict(loop.times)
                times["step_end"] = time.monotonic_ns()
                writer.add_step(state=state, action=forms, images={n: f.image for n, f in frames.items()},
                                camera_times={n: (f.capture_ns, f.receive_ns) for n, f in frames.items()},
                                control_times=times, is_terminal=success, reward=1.0 if success else 0.0,
                                intervention=operator_drives)
                done = loop.end()
                self._work.append((done["step_end"] - done["step_start"]) / 1e6)
                ep.steps += 1
                ep.intervention_steps += int(operator_drives)
                ep.dropped_frames += sum(1 for f in frames.values() if f.dropped)
                if ended:
                    break
        except BaseException as e:
            self.interrupts.recording = False
            self._safe_stop()
            abort = isinstance(e, KeyboardInterrupt)
            why = (str(e) or self.interrupts.reason or "KeyboardInterrupt") if abort else f"{type(e).__name__}: {e}"
            ep.aborted = why
            ep.takeovers = self.takeover.segments
            self._finish_aborted(writer, ep, why)
            if abort:
                rep.aborted = why
            elif isinstance(e, Exception):
                rep.error = why
            else:
                raise  # SystemExit and the like: the data is kept, let it through
            return ep
        self.interrupts.recording = False
        self._safe_stop()
        ep.takeovers = self.takeover.segments
        ep.cadence = loop.report()
        self._book_timing()
        writer.set_cadence(ep.cadence)
        writer.update_extra(dropped_frames=ep.dropped_frames, intervention_steps=ep.intervention_steps,
                            takeovers=ep.takeovers)
        try:
            return self._label(writer, ep, ended, label_source)
        except KeyboardInterrupt as e:  # Ctrl-C at the label prompt: keep the episode, unlabelled
            why = f"{str(e) or self.interrupts.reason or 'KeyboardInterrupt'} at the label prompt"
            writer.update_extra(aborted=why, aborted_at=utc_now())
            writer.set_outcome(None, "unknown")
            ep.outcome, ep.aborted, rep.aborted = "aborted", why, why
            ep.path = writer.close()
            return ep

    def _label(self, writer: EpisodeWriter, ep: RolloutEpisode, ended: str | None, label_source: str
               ) -> RolloutEpisode:
        """Label (device event, detector, operator prompt or none) and close or discard the episode."""
        cfg = self.config
        if ended == "discarded":
            writer.discard()
            ep.outcome = "discarded"
            return ep
        if ended is None and cfg.success == "auto":
            ended, label_source = "failure", "detector"  # time limit without the detector firing
        if ended is None and cfg.success == "ask":
            label = self._ask("label the episode", {"y": "success", "n": "failure", "u": "unknown", "x": "discard"})
            if label == "x":
                writer.discard()
                ep.outcome = "discarded"
                return ep
            ended = {"y": "success", "n": "failure", "u": "unlabelled"}[label]
        ended = ended or "unlabelled"
        writer.set_outcome({"success": True, "failure": False}.get(ended), label_source)
        ep.outcome = ended
        ep.label_source = label_source if ended in ("success", "failure") else "unknown"
        ep.path = writer.close()
        return ep

    def _check_interrupt(self) -> None:
        """A signal whose KeyboardInterrupt was swallowed (raised inside a callback that ignores exceptions)
        still ends the session at the next check."""
        if self.interrupts.reason:
            raise KeyboardInterrupt(self.interrupts.reason)

    def _finish_aborted(self, writer: EpisodeWriter, ep: RolloutEpisode, why: str) -> None:
        """Close the aborted episode with what was recorded (success unknown, extra.aborted); never lose it."""
        loop = self.loop
        assert loop is not None
        ep.cadence = loop.report()
        self._book_timing()
        ep.outcome = "aborted"
        try:
            writer.update_extra(aborted=why, aborted_at=utc_now(), dropped_frames=ep.dropped_frames,
                                intervention_steps=ep.intervention_steps, takeovers=ep.takeovers)
            writer.set_cadence(ep.cadence)
            writer.set_outcome(None, "unknown")
            if writer.steps_recorded > 0:
                ep.path = writer.close()
            else:
                writer.discard()
        except Exception as e:  # noqa: BLE001 (a failing disk: the .partial file stays for `data repair`)
            self.operator.say(f"could not close the aborted episode ({e}); run `robolearn data repair {self.out}`")
        self.operator.say(f"episode aborted after {ep.steps} steps ({why}); robot stopped; recorded steps kept in "
                          f"{ep.path if ep.path else '(nothing recorded)'}")

    def _book_timing(self) -> None:
        loop = self.loop
        assert loop is not None
        self.report.periods_ms += loop.periods_ms().tolist()
        self.report.step_ms += self._work
        self.report.overruns += loop.overruns

    def _meta(self, language: str) -> EpisodeMeta:
        cfg, info = self.config, self.robot.info()
        takeover_params = getattr(self.device, "params", lambda: {})()
        return EpisodeMeta(
            lab=cfg.lab, household=cfg.household, scene_id=cfg.scene, operator=cfg.operator,
            robot_type=str(info.get("robot_type", self.robot.name)), robot_serial=str(info.get("robot_serial", "")),
            control_hz=self.control_hz, action_space=self.action_space, teleop_device="policy",
            teleop_params=_jsonable({"policy": self.policy_info["path"], "takeover_device": self.device.name,
                                     "takeover_params": takeover_params, "takeover_action_space": TAKEOVER_SPACE}),
            task=self.task, language=[language] if language else [],
            language_source="operator" if cfg.instruction else "task", env=_jsonable(info.get("env")),
            extra={"rollout": {"policy": self.policy_info, "robot": cfg.robot, "takeover_device": self.device.name,
                               "takeover_action_space": TAKEOVER_SPACE, "success_mode": cfg.success,
                               "realtime": cfg.realtime, "max_steps": cfg.max_steps,
                               "proprio_keys": self.proprio_keys}})


# ---------------------------------------------------------------------------------------------------- API + CLI
def rollout(config: RolloutConfig, *, policy: Any = None, robot: Robot | None = None,
            cameras: list[Camera] | None = None, device: Device | None = None, operator: Operator | None = None,
            writer_config: WriterConfig | None = None) -> RolloutReport:
    """Run the rollouts `config` describes. Any part given here replaces the one the config would build (a
    policy object with `.config` and `.runner()`, a Robot, Cameras, a takeover Device, an Operator).

    Raises RolloutError (a ValueError) for a configuration the robot, cameras and policy do not fit, before
    anything moves; FileExistsError for a used --out without --resume. Faults during the episodes (robot
    link lost, device failure, a policy error) end the session with the data kept; they are returned in
    `report.error`, aborts (quit, Ctrl-C, SIGTERM) in `report.aborted`."""
    policy_info = None
    if policy is None:
        policy, policy_info = load_policy_from(config)
    elif config.policy:
        policy_info = {"path": config.policy, "config": policy_config_dict(policy)}
    own_robot = robot is None
    robot = robot if robot is not None else build_robot(config, policy)
    try:
        cameras = cameras if cameras is not None else build_cameras(config, robot, policy)
        device = device if device is not None else build_device(config)
        operator = operator or (AutoOperator(log=print) if config.unattended else TerminalOperator())
        session = RolloutSession(config, policy, robot, cameras, device, operator, policy_info, writer_config)
        session.check_config()  # cameras, spaces: refuse before connecting to anything
        return session.run()
    finally:
        if own_robot:
            robot.close()


@command("rollout", "")
def rollout_cmd(cfg: RolloutConfig) -> int:
    """Run a policy on a robot (real or sim) with operator takeover; every rollout is recorded as an episode."""
    try:
        report = rollout(cfg)
    except KeyboardInterrupt:
        print("robolearn rollout: interrupted before the robot moved", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, DeviceError) as e:
        print(f"robolearn rollout: {e}", file=sys.stderr)
        return 2
    except RobotError as e:
        print(f"robolearn rollout: {e}", file=sys.stderr)
        return 1
    if cfg.dry_run and not report.aborted:
        print("dry run ok: every check passed; nothing moved")
        return 0
    if report.episodes:
        save_config(cfg, cfg.out, "rollout")
    print(report.summary())
    if report.error:
        return 1
    if report.aborted.split(" ")[0] in ("SIGINT", "SIGTERM", "KeyboardInterrupt"):
        return 130
    return 0


__all__ = ["NullDevice", "RolloutConfig", "RolloutEpisode", "RolloutError", "RolloutReport", "RolloutSession",
           "Takeover", "build_cameras", "build_device", "build_robot", "parse_robot_uri", "rollout"]
