"""`RolloutSession`: pre-flight checks, then recorded episodes with operator takeover."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.collection.recorder import EPISODES_DIR, EpisodeRecorder
from robolearn.collection.station import Operator, ask_with_device_released
from robolearn.data import catalog, schema
from robolearn.data.writer import EpisodeMeta, WriterConfig
from robolearn.eval.real.build import _jsonable, policy_config_dict
from robolearn.eval.real.config import RolloutConfig, RolloutEpisode, RolloutError, RolloutReport
from robolearn.eval.real.takeover import Takeover, _Interrupts
from robolearn.hardware.cameras.base import Camera, Frame
from robolearn.hardware.devices.base import Device
from robolearn.hardware.loop import ControlLoop, format_report
from robolearn.hardware.robots.base import Robot
from robolearn.utils import write_text_atomic

ROLLOUT_FILE = "rollout.json"
REPORTS_DIR = "reports"
TAKEOVER_SPACE = "cartesian_velocity"  # what a takeover device commands
DEFAULT_PROPRIO = ("joint_positions", "ee_position", "ee_quaternion", "gripper_position")
SUCCESS_MODES = ("ask", "auto", "none")
STATE_SIZES = {f.path.rsplit("/", 1)[-1]: int(np.prod(f.shape)) if f.shape else 1 for f in schema.STATE_FIELDS}
ACTION_SIZES = {
    f.path.rsplit("/", 1)[-1]: int(np.prod(f.shape)) for f in schema.ACTION_FIELDS if "gripper" not in f.path
}


# ---------------------------------------------------------------------------------------------------- session
class RolloutSession:
    """One rollout session: pre-flight checks, then episodes until `config.episodes` are saved, the operator
    quits or something fails. The caller owns the robot (closed by `rollout()` when it built it)."""

    def __init__(
        self,
        config: RolloutConfig,
        policy: Any,
        robot: Robot,
        cameras: list[Camera],
        device: Device,
        operator: Operator,
        policy_info: dict[str, Any] | None = None,
        writer_config: WriterConfig | None = None,
    ) -> None:
        if config.success not in SUCCESS_MODES:
            raise RolloutError(f"--success must be one of {SUCCESS_MODES}, got {config.success!r}")
        if config.unattended and config.success == "ask":
            raise RolloutError("--unattended has nobody to ask for labels: use --success auto (sim) or none")
        if config.episodes < 1:
            raise RolloutError(f"--episodes must be >= 1, got {config.episodes}")
        if config.max_steps < 0 or not config.max_seconds > 0:
            raise RolloutError(
                f"--max-steps must be >= 0 and --max-seconds > 0, got {config.max_steps}, {config.max_seconds}"
            )
        self.config = config
        self.policy = policy
        self.robot = robot
        self.cameras = list(cameras)
        self.device = device
        self.operator = operator
        self.policy_info = policy_info or {
            "path": config.policy or type(policy).__name__,
            "config": policy_config_dict(policy),
        }
        self.writer_config = writer_config or WriterConfig()
        self.out = Path(config.out)
        self.recorder = EpisodeRecorder(self.out, self.writer_config)
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
            raise RolloutError(
                f"the policy needs camera(s) {missing} but this rollout has {names}; name the "
                f"cameras like the policy's training data (--cameras NAME=SOURCE, e.g. "
                f"{missing[0]}=0)"
            )
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
            raise RolloutError(
                f"--success auto needs a robot that reports task success (the local sim robot, "
                f"--robot sim:TASK); {self.robot.name!r} does not: use --success ask"
            )

    def expected_action_dim(self) -> int:
        return ACTION_SIZES[self.action_space] + 1

    def check_robot(self) -> None:
        """After connect (the robot's spaces and rate are known then)."""
        spaces = list(getattr(self.robot, "action_spaces", ()))
        if self.action_space not in spaces:
            raise RolloutError(
                f"the policy commands {self.action_space!r} actions but robot "
                f"{self.robot.info().get('robot_type', self.robot.name)!r} takes {spaces}"
            )
        dim = getattr(self.policy.config, "action_dim", None)
        if dim is not None and int(dim) != self.expected_action_dim():
            raise RolloutError(
                f"the policy's action has {dim} values but the robot's {self.action_space} action "
                f"has {self.expected_action_dim()} ({ACTION_SIZES[self.action_space]} + gripper)"
            )
        hz = float(self.config.control_hz or self.robot.control_hz)
        if not hz > 0:
            raise RolloutError(f"control rate must be > 0 Hz, got {hz}")
        if self.config.control_hz and abs(self.config.control_hz - float(self.robot.control_hz)) > 1e-6:
            self.operator.say(
                f"warning: running at {self.config.control_hz:g} Hz but the robot's control rate is "
                f"{float(self.robot.control_hz):g} Hz"
            )
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
                raise RolloutError(
                    f"camera(s) {sorted(waiting)} delivered no frame within "
                    f"{self.config.camera_timeout_s:g} s; check the sources (`robolearn collect` "
                    "with the same --cameras shows them)"
                )
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
        return {
            "images": {c: self._last[c] for c in self.policy.config.cameras},
            "proprio": proprio.astype(np.float32),
            "language": language,
        }

    def policy_action(self, obs: dict[str, Any]) -> np.ndarray:
        try:
            a = self.runner.act(obs)
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise RolloutError(f"the policy failed on this robot's observation: {type(e).__name__}: {e}") from None
        a = np.asarray(a, dtype=np.float64)
        if a.shape != (self.expected_action_dim(),):
            raise RolloutError(
                f"the policy returned an action of shape {tuple(np.shape(a))}, but the robot's "
                f"{self.action_space} action has {self.expected_action_dim()} values "
                f"({ACTION_SIZES[self.action_space]} + gripper)"
            )
        if not np.all(np.isfinite(a)):
            raise RolloutError(f"the policy returned a non-finite action {a.tolist()}; nothing was sent")
        return a

    def preflight(self) -> np.ndarray:
        """Every check before the robot moves; returns the policy's action on the live observation."""
        self.check_config()
        self.device.connect()  # a missing device fails here, before the robot is touched
        self._device_started = True
        self.robot.connect()
        self.task = self.config.task or str((self.robot.info().get("env") or {}).get("task", ""))
        self.check_robot()
        for cam in self.cameras:
            cam.connect()
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
        existing = self.recorder.existing()
        doc = self._folder_doc()
        if path.exists() or existing:
            if not self.config.resume:
                raise FileExistsError(
                    f"{self.out}: rollouts are already recorded here; pass --resume to add "
                    "episodes (same policy, rate and cameras) or choose another --out"
                )
            if path.exists():
                try:
                    old = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError) as e:
                    raise RolloutError(f"{path}: unreadable ({e}); fix or remove it") from None
                for key in ("policy_path", "control_hz", "cameras", "action_space"):
                    if key in old and old[key] != doc[key]:
                        raise RolloutError(
                            f"{path}: {key} is {old[key]!r} in this folder but {doc[key]!r} now; "
                            "resume with the same setting or record into a new folder"
                        )
        (self.out / EPISODES_DIR).mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(doc, indent=1))
        return len(existing)

    def _folder_doc(self) -> dict[str, Any]:
        return {
            "policy_path": self.policy_info["path"],
            "policy": self.policy_info,
            "robot": self.config.robot,
            "robot_info": _jsonable(self.robot.info()),
            "control_hz": self.control_hz,
            "cameras": [c.name for c in self.cameras],
            "action_space": self.action_space,
            "takeover_device": self.device.name,
            "config": _jsonable(asdict(self.config)),
        }

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
            self.operator.say(
                f"pre-flight ok: cameras {[c.name for c in self.cameras]}, {self.action_space} at "
                f"{self.control_hz:g} Hz; the policy's first action would be "
                f"{np.round(action, 3).tolist()}"
            )
            if cfg.dry_run:
                return rep
            already = self.prepare_folder()
            help_text = getattr(self.device, "help_text", None)
            if callable(help_text):
                self.operator.say(help_text())
            self.operator.say(
                f"rolling out {self.policy_info['path']} into {self.out} ({already} episodes already "
                "there); takeover: move the device (or 'pause' to latch), quit/Ctrl-C aborts"
            )
            index = already
            while self._saved < cfg.episodes:
                ep = self.episode(index)
                rep.episodes.append(ep)
                index += 1
                self.operator.say(
                    f"episode {index - 1}: {ep.outcome}, {ep.steps} steps, "
                    f"{ep.intervention_steps} intervention steps"
                    + (f" -> {ep.path.name}" if ep.path else "")
                    + "; "
                    + format_report(ep.cadence)
                )
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
                    self.device.disconnect()
                except Exception as e:  # noqa: BLE001 (report, keep shutting down)
                    self.operator.say(f"could not close the takeover device: {e}")
            for cam in self.cameras:
                try:
                    cam.disconnect()
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
        writer = self.recorder.open(index, self._meta(language), [c.spec() for c in self.cameras])
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
                writer.add_step(
                    state=state,
                    action=forms,
                    images={n: f.image for n, f in frames.items()},
                    camera_times={n: (f.capture_ns, f.receive_ns) for n, f in frames.items()},
                    control_times=times,
                    is_terminal=success,
                    reward=1.0 if success else 0.0,
                    intervention=operator_drives,
                )
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
            self._finish_aborted(ep, why)
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
        writer.update_extra(
            dropped_frames=ep.dropped_frames, intervention_steps=ep.intervention_steps, takeovers=ep.takeovers
        )
        try:
            return self._label(ep, ended, label_source)
        except KeyboardInterrupt as e:  # Ctrl-C at the label prompt: keep the episode, unlabelled
            why = f"{str(e) or self.interrupts.reason or 'KeyboardInterrupt'} at the label prompt"
            ep.outcome, ep.aborted, rep.aborted = "aborted", why, why
            ep.path = self.recorder.abort(why, ep.cadence)
            return ep

    def _label(self, ep: RolloutEpisode, ended: str | None, label_source: str) -> RolloutEpisode:
        """Label (device event, detector, operator prompt or none) and close or discard the episode."""
        cfg = self.config
        if ended == "discarded":
            self.recorder.discard()
            ep.outcome = "discarded"
            return ep
        if ended is None and cfg.success == "auto":
            ended, label_source = "failure", "detector"  # time limit without the detector firing
        if ended is None and cfg.success == "ask":
            ended = self.recorder.ask_label(self._ask)
            if ended == "discarded":
                ep.outcome = "discarded"
                return ep
        ended = ended or "unlabelled"
        ep.outcome = ended
        ep.label_source = label_source if ended in ("success", "failure") else "unknown"
        ep.path = self.recorder.finish(ended, label_source)
        return ep

    def _check_interrupt(self) -> None:
        """A signal whose KeyboardInterrupt was swallowed (raised inside a callback that ignores exceptions)
        still ends the session at the next check."""
        if self.interrupts.reason:
            raise KeyboardInterrupt(self.interrupts.reason)

    def _finish_aborted(self, ep: RolloutEpisode, why: str) -> None:
        """Close the aborted episode with what was recorded (success unknown, extra.aborted); never lose it."""
        loop = self.loop
        assert loop is not None
        ep.cadence = loop.report()
        self._book_timing()
        ep.outcome = "aborted"
        try:
            ep.path = self.recorder.abort(
                why,
                ep.cadence,
                dropped_frames=ep.dropped_frames,
                intervention_steps=ep.intervention_steps,
                takeovers=ep.takeovers,
            )
        except Exception as e:  # noqa: BLE001 (a failing disk: the .partial file stays for `data repair`)
            self.operator.say(f"could not close the aborted episode ({e}); run `robolearn data repair {self.out}`")
        self.operator.say(
            f"episode aborted after {ep.steps} steps ({why}); robot stopped; recorded steps kept in "
            f"{ep.path if ep.path else '(nothing recorded)'}"
        )

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
            lab=cfg.lab,
            household=cfg.household,
            scene_id=cfg.scene,
            operator=cfg.operator,
            robot_type=str(info.get("robot_type", self.robot.name)),
            robot_serial=str(info.get("robot_serial", "")),
            control_hz=self.control_hz,
            action_space=self.action_space,
            teleop_device="policy",
            teleop_params=_jsonable(
                {
                    "policy": self.policy_info["path"],
                    "takeover_device": self.device.name,
                    "takeover_params": takeover_params,
                    "takeover_action_space": TAKEOVER_SPACE,
                }
            ),
            task=self.task,
            language=[language] if language else [],
            language_source="operator" if cfg.instruction else "task",
            env=_jsonable(info.get("env")),
            extra={
                "rollout": {
                    "policy": self.policy_info,
                    "robot": cfg.robot,
                    "takeover_device": self.device.name,
                    "takeover_action_space": TAKEOVER_SPACE,
                    "success_mode": cfg.success,
                    "realtime": cfg.realtime,
                    "max_steps": cfg.max_steps,
                    "proprio_keys": self.proprio_keys,
                }
            },
        )
