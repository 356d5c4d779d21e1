"""`robolearn rollout` (robolearn.eval.real): policies on a robot served by `robolearn robot-server` (the sim
arm in a subprocess), recorded as episodes; takeover, abort, pre-flight refusals, the CLI with a real policy."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from robot_server import sim_server_fixture  # noqa: E402 (tests/ is on sys.path)

from robolearn.collection.station import AutoOperator
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.schema import CameraSpec
from robolearn.data.validate import validate_dataset
from robolearn.eval.real import NullDevice, RolloutConfig, RolloutError, Takeover, parse_robot_uri, rollout
from robolearn.hardware.cameras.base import Camera, Frame
from robolearn.hardware.devices.base import Device, DeviceCommand
from robolearn.hardware.robots.base import Robot, RobotError
from robolearn.hardware.robots.remote import RemoteRobot

ACTION = np.array([0.2, -0.1, 0.05, 0.0, 0.0, 0.1, 1.0], np.float32)  # the fake policy's constant action
TWIST = np.array([0.0, 0.5, 0.0, 0.0, 0.0, -0.3])  # the scripted operator's takeover command
W, H = 32, 24


# --- the robot server (as tests/hardware/test_server.py starts it) -------------------------------------------
sim_server = sim_server_fixture("--task", "press-button")


# --- fakes ------------------------------------------------------------------------------------------------------
@dataclass
class FakeConfig:
    cameras: list[str] = field(default_factory=lambda: ["wrist"])
    image_size: int = 64
    action_space: str = "cartesian_velocity"


class FakeRunner:
    def __init__(self, action: np.ndarray) -> None:
        self.action = action
        self.acts = 0
        self.resets: list[int] = []  # act count at each reset
        self.observations: list[dict[str, Any]] = []

    def reset(self) -> None:
        self.resets.append(self.acts)

    def act(self, obs: dict[str, Any]) -> np.ndarray:
        self.acts += 1
        self.observations.append(obs)
        return self.action.copy()


class FakePolicy:
    """Duck-typed like robolearn.policies.Policy: .config (cameras, image_size, action_space) and .runner()."""

    def __init__(self, cameras: tuple[str, ...] = ("wrist",), action: np.ndarray = ACTION, **config: Any) -> None:
        self.config = FakeConfig(cameras=list(cameras))
        for k, v in config.items():
            setattr(self.config, k, v)
        self.action = action
        self.runners: list[FakeRunner] = []

    def runner(self) -> FakeRunner:
        self.runners.append(FakeRunner(self.action))
        return self.runners[-1]


class StaticCamera(Camera):
    """A camera whose frame i is filled with i % 251 (so recorded frames can be told apart)."""

    def __init__(self, name: str) -> None:
        self.name, self.n = name, 0

    def connect(self) -> None:
        pass

    def read(self) -> Frame:
        self.n += 1
        now = time.monotonic_ns()
        return Frame(np.full((H, W, 3), self.n % 251, np.uint8), now, now)

    def spec(self) -> CameraSpec:
        return CameraSpec(name=self.name, width=W, height=H, role="exterior")


class ScriptedOperator(Device):
    """Per episode (reads counted from the device's connect()): `twist` on reads in `takeover`, `events` on the
    reads named in `events_at`, a SIGINT to this process on read `sigint_at`."""

    name = "scripted"

    def __init__(
        self, takeover: range = range(0), events_at: dict[int, set[str]] | None = None, sigint_at: int | None = None
    ) -> None:
        self.takeover, self.events_at, self.sigint_at = takeover, events_at or {}, sigint_at
        self.n = -1

    def connect(self) -> None:
        self.n = -1

    def read(self) -> DeviceCommand:
        self.n += 1
        if self.n == self.sigint_at:
            os.kill(os.getpid(), signal.SIGINT)
        twist = TWIST if self.n in self.takeover else np.zeros(6)
        return DeviceCommand(twist, 0.0, True, set(self.events_at.get(self.n, set())))


class SpyRobot(Robot):
    """Wraps a robot and records which methods were called."""

    def __init__(self, inner: Robot) -> None:
        self.inner, self.calls = inner, []
        self.name = inner.name

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)

    @property
    def action_spaces(self):  # type: ignore[override]
        return self.inner.action_spaces

    @property
    def control_hz(self):  # type: ignore[override]
        return self.inner.control_hz

    def connect(self) -> None:
        self.calls.append("connect")
        self.inner.connect()

    def state(self):
        self.calls.append("state")
        return self.inner.state()

    def apply(self, action, space):
        self.calls.append("apply")
        return self.inner.apply(action, space)

    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        self.calls.append("home")
        self.inner.home(noise, seed)

    def stop(self) -> None:
        self.calls.append("stop")
        self.inner.stop()

    def disconnect(self) -> None:
        self.inner.disconnect()

    def info(self):
        return self.inner.info()


def _config(address: str, out: Path, **kw: Any) -> RolloutConfig:
    base = dict(
        robot=address,
        policy="ckpt/fake-policy",
        out=out,
        task="press-button",
        episodes=1,
        max_steps=20,
        realtime=False,
        takeover_device="none",
        success="none",
    )
    return RolloutConfig(**{**base, **kw})


def _run(
    address: str,
    out: Path,
    policy: Any = None,
    device: Device | None = None,
    answers: list[str] | None = None,
    robot: Robot | None = None,
    **kw: Any,
):
    return rollout(
        _config(address, out, **kw),
        policy=policy or FakePolicy(),
        robot=robot,
        cameras=[StaticCamera("wrist")],
        device=device or NullDevice(),
        operator=AutoOperator(answers, log=None),
    )


# --- tests ------------------------------------------------------------------------------------------------------
def test_two_rollouts_are_recorded_as_valid_episodes(sim_server: str, tmp_path: Path) -> None:
    policy = FakePolicy()
    report = _run(
        sim_server, tmp_path / "ro", policy=policy, episodes=2, success="ask", answers=["s", "y", "s", "n"]
    )  # start, success, start, failure
    assert report.error == "" and report.aborted == ""
    assert [e.outcome for e in report.episodes] == ["success", "failure"]
    paths = list_episodes(tmp_path / "ro")
    assert len(paths) == 2 and [e.path for e in report.episodes] == paths
    check = validate_dataset(tmp_path / "ro")
    assert check.ok and not check.warnings, check.problems
    for path, label in zip(paths, (1, 0)):
        with Episode(path) as ep:
            assert ep.num_steps == 20 and ep.complete
            assert ep.attrs["success"] == label and ep.attrs["label_source"] == "operator"
            assert ep.attrs["teleop_device"] == "policy" and ep.attrs["action_space"] == "cartesian_velocity"
            policy_twist = np.tile(ACTION[:6].astype(np.float64), (20, 1))
            np.testing.assert_array_equal(ep.action("cartesian_velocity"), policy_twist)
            np.testing.assert_array_equal(ep.action("gripper_position"), np.full(20, float(ACTION[6])))
            assert not ep.array("intervention").any()
            rollout_meta = ep.attrs["extra"]["rollout"]
            assert rollout_meta["policy"]["path"] == "ckpt/fake-policy"
            assert rollout_meta["policy"]["config"]["cameras"] == ["wrist"]
            assert ep.attrs["teleop_params"]["policy"] == "ckpt/fake-policy"
            assert ep.attrs["task"] == "press-button" and ep.language == ["press-button"]
            assert ep.attrs["robot_type"] == "robolearn_sim_arm7"
            ee = ep.state("ee_position")
            assert ee[-1][0] > ee[0][0] + 0.01  # +x twist: the served arm really moved
            assert ep.attrs["cadence"]["steps"] == 20
    # The policy saw the robot state and the camera frames as the interface says.
    obs = policy.runners[-1].observations[-1]
    assert obs["proprio"].dtype == np.float32 and obs["proprio"].shape == (15,)
    assert obs["images"]["wrist"].shape == (H, W, 3) and obs["language"] == "press-button"
    assert report.successes == 1 and report.total_steps == 40 and report.intervention_fraction == 0.0
    assert report.mean_hz and report.mean_hz > 15 and report.p99_step_ms is not None  # not real time: faster
    assert "2 episodes saved" in report.summary() and "interventions: 0 of 40 steps" in report.summary()
    assert json.loads((tmp_path / "ro" / "rollout.json").read_text())["policy_path"] == "ckpt/fake-policy"
    assert list((tmp_path / "ro" / "reports").glob("rollout_*.json"))
    with pytest.raises(FileExistsError, match="--resume"):
        _run(sim_server, tmp_path / "ro")


def test_takeover_steps_are_interventions_with_the_devices_actions(sim_server: str, tmp_path: Path) -> None:
    policy = FakePolicy()
    report = _run(sim_server, tmp_path / "ro", policy=policy, device=ScriptedOperator(takeover=range(5, 10)))
    (path,) = list_episodes(tmp_path / "ro")
    with Episode(path) as ep:
        steps = np.arange(ep.num_steps)
        taken = (steps >= 5) & (steps <= 9)
        np.testing.assert_array_equal(ep.array("intervention"), taken)
        twist = ep.action("cartesian_velocity")
        np.testing.assert_array_equal(twist[taken], np.tile(TWIST, (5, 1)))
        np.testing.assert_array_equal(twist[~taken], np.tile(ACTION[:6].astype(np.float64), (15, 1)))
        # the operator did not touch the gripper: it stays where the policy put it
        np.testing.assert_array_equal(ep.action("gripper_position"), np.full(20, float(ACTION[6])))
        assert ep.attrs["extra"]["intervention_steps"] == 5 and ep.attrs["extra"]["takeovers"] == 1
    runner = policy.runners[-1]
    assert runner.acts == 15 + 1  # 15 policy steps + the pre-flight step
    assert runner.resets[-1] == 1 + 5  # handed back after step 9: the ensembling state was reset
    assert report.intervention_steps == 5 and report.intervention_fraction == pytest.approx(0.25)
    assert "5 of 20 steps (25.0%) in 1 takeover(s)" in report.summary()


def test_takeover_rules() -> None:
    t = Takeover()
    cmd = lambda twist=0.0, gripper=0.0, enabled=True, events=(): DeviceCommand(  # noqa: E731
        np.array([twist, 0, 0, 0, 0, 0]), gripper, enabled, set(events)
    )
    assert not t.update(cmd())
    assert not t.update(cmd(twist=0.5, enabled=False))  # dead-man released: no takeover
    assert t.update(cmd(twist=0.5)) and t.action(cmd(twist=0.5), 0.7)[-1] == 0.7  # gripper kept
    assert t.update(cmd(gripper=1.0)) and t.action(cmd(gripper=1.0), 0.7)[-1] == 1.0  # operator closed it
    assert not t.update(cmd(gripper=1.0))  # idle: handed back
    held = cmd(gripper=1.0)
    assert t.update(cmd(gripper=1.0, events={"pause"})) and t.update(held) and t.update(held)  # latched
    np.testing.assert_array_equal(t.action(held, 0.3), [0, 0, 0, 0, 0, 0, 0.3])  # holds still, gripper kept
    assert not t.update(cmd(gripper=1.0, events={"pause"})) and t.segments == 2
    slow = Takeover(release_steps=2)
    assert slow.update(cmd(twist=1.0)) and slow.update(cmd()) and slow.update(cmd()) and not slow.update(cmd())


def test_quit_mid_episode_keeps_the_partial_episode_marked(sim_server: str, tmp_path: Path) -> None:
    robot = SpyRobot(RemoteRobot(sim_server, timeout_s=3.0))
    try:
        report = _run(
            sim_server, tmp_path / "ro", robot=robot, episodes=3, device=ScriptedOperator(events_at={7: {"quit"}})
        )
    finally:
        robot.disconnect()
    assert "operator quit" in report.aborted and not report.error and len(report.episodes) == 1
    ep_report = report.episodes[0]
    assert ep_report.outcome == "aborted" and ep_report.steps == 7
    assert robot.calls[-1] == "stop" and robot.calls.count("apply") == 7  # no action on the quit step
    (path,) = list_episodes(tmp_path / "ro")
    with Episode(path) as ep:
        assert ep.complete and ep.num_steps == 7 and ep.attrs["success"] == -1
        assert "operator quit" in ep.attrs["extra"]["aborted"] and ep.attrs["extra"]["aborted_at"]
        assert ep.frame("wrist", 6).shape == (H, W, 3)
    assert validate_dataset(tmp_path / "ro").ok


def test_sigint_mid_episode_stops_after_the_step_and_keeps_the_data(sim_server: str, tmp_path: Path) -> None:
    before = signal.getsignal(signal.SIGINT)
    report = _run(sim_server, tmp_path / "ro", episodes=2, device=ScriptedOperator(sigint_at=4))
    assert report.aborted == "SIGINT" and len(report.episodes) == 1 and report.episodes[0].steps == 5
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    (path,) = list_episodes(tmp_path / "ro")
    with Episode(path) as ep:
        assert ep.num_steps == 5 and ep.attrs["extra"]["aborted"] == "SIGINT" and ep.attrs["success"] == -1
    assert "aborted: SIGINT" in report.summary()


class FailingRobot(SpyRobot):
    def apply(self, action, space):
        if self.calls.count("apply") == 5:
            raise RobotError("robot server at tcp://x did not answer apply within 1 s")
        return super().apply(action, space)


class InterruptedOperator(AutoOperator):
    def ask(self, question: str, choices: dict[str, str]) -> str:
        if question.startswith("label"):
            raise KeyboardInterrupt("SIGINT")
        return super().ask(question, choices)


def test_robot_failure_and_ctrl_c_at_the_label_prompt_keep_the_episode(sim_server: str, tmp_path: Path) -> None:
    robot = FailingRobot(RemoteRobot(sim_server, timeout_s=3.0))
    try:
        report = _run(sim_server, tmp_path / "a", robot=robot, episodes=2)
    finally:
        robot.disconnect()
    assert "did not answer" in report.error and not report.aborted and len(report.episodes) == 1
    assert robot.calls[-1] == "stop"
    with Episode(report.episodes[0].path) as ep:
        assert ep.num_steps == 5 and "did not answer" in ep.attrs["extra"]["aborted"] and ep.attrs["success"] == -1
    report = rollout(
        _config(sim_server, tmp_path / "b", success="ask", episodes=2),
        policy=FakePolicy(),
        cameras=[StaticCamera("wrist")],
        device=NullDevice(),
        operator=InterruptedOperator(log=None),
    )
    assert report.aborted == "SIGINT at the label prompt" and len(report.episodes) == 1
    with Episode(report.episodes[0].path) as ep:
        assert ep.num_steps == 20 and ep.complete and ep.attrs["success"] == -1
    assert validate_dataset(tmp_path / "b").ok


@pytest.mark.parametrize(
    "policy, match",
    [
        (
            FakePolicy(cameras=("exterior_1", "wrist")),
            r"needs camera\(s\) \['exterior_1'\] but this rollout has \['wrist'\]",
        ),
        (FakePolicy(action_dim=8), "8 values but the robot's cartesian_velocity action has 7"),
        (FakePolicy(action=ACTION[:6]), r"shape \(6,\), but the robot's cartesian_velocity action has 7"),
        (FakePolicy(action=np.full(7, np.nan, np.float32)), "non-finite action"),
    ],
)
def test_mismatched_policy_is_refused_before_the_robot_moves(
    sim_server: str, tmp_path: Path, policy: FakePolicy, match: str
) -> None:
    robot = SpyRobot(RemoteRobot(sim_server, timeout_s=3.0))
    try:
        with pytest.raises(RolloutError, match=match):
            _run(sim_server, tmp_path / "ro", policy=policy, robot=robot)
    finally:
        robot.disconnect()
    assert "apply" not in robot.calls and "home" not in robot.calls
    assert not list_episodes(tmp_path) and not (tmp_path / "ro").exists()


def test_robot_uris_and_success_auto(tmp_path: Path) -> None:
    assert parse_robot_uri("tcp://10.0.0.2:5555", token="secret-token") == (
        "remote",
        {"address": "tcp://10.0.0.2:5555", "token": "secret-token"},
    )
    assert parse_robot_uri("sim:open-drawer") == ("sim", {"task": "open-drawer"})
    assert parse_robot_uri("echoarm", options={"serial": "x"}) == ("echoarm", {"serial": "x"})
    for bad in ("udp://x:1", "echoarm:3", ""):
        with pytest.raises(RolloutError):
            parse_robot_uri(bad)
    # The local sim robot reports task success: --success auto labels with the detector (the constant policy
    # never presses the button, so the time limit ends it as a failure).
    cfg = RolloutConfig(
        robot="sim:press-button",
        policy="ckpt/fake",
        out=tmp_path / "auto",
        max_steps=10,
        realtime=False,
        takeover_device="none",
        success="auto",
        unattended=True,
        camera_width=W,
        camera_height=H,
    )
    report = rollout(cfg, policy=FakePolicy(), operator=AutoOperator(log=None))
    (ep_report,) = report.episodes
    with Episode(ep_report.path) as ep:
        assert ep.attrs["success"] == 0 and ep.attrs["label_source"] == "detector" and ep.num_steps == 10
        assert ep.camera("wrist").width == W and ep.attrs["env"]["task"] == "press-button"
        assert ep.language and ep.language[0] != "press-button"  # the sim task's own instruction
    with pytest.raises(RolloutError, match="--success auto needs a robot that reports task success"):
        rollout(
            _config("tcp://127.0.0.1:1", tmp_path / "x", success="auto"),
            policy=FakePolicy(),
            robot=RemoteRobot("tcp://127.0.0.1:1"),
            cameras=[StaticCamera("wrist")],
            device=NullDevice(),
            operator=AutoOperator(log=None),
        )


def test_cli_rolls_out_a_real_tiny_policy(sim_server: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import cv2

    import robolearn.eval.real  # noqa: F401  (registers `rollout` until robolearn.cli lists the module)
    from robolearn.cli import main
    from robolearn.policies import PolicyConfig, build_policy, save_policy

    ckpt = save_policy(
        build_policy(PolicyConfig(encoder="scratch-cnn", cameras=["wrist"], image_size=64)), tmp_path / "policy"
    )
    video = tmp_path / "wrist.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(60):
        writer.write(np.full((48, 64, 3), (4 * i) % 255, np.uint8))
    writer.release()
    out = tmp_path / "ro"
    args = [
        "rollout",
        "--robot",
        sim_server,
        "--policy",
        str(ckpt),
        "--cameras",
        f"wrist={video}",
        "--camera-options",
        '{"loop_file": true, "fps": 60}',
        "--camera-width",
        "64",
        "--camera-height",
        "48",
        "--max-steps",
        "12",
        "--episodes",
        "2",
        "--no-realtime",
        "--takeover-device",
        "none",
        "--success",
        "none",
        "--unattended",
        "--task",
        "press-button",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 episodes saved" in printed and "interventions: 0 of 24 steps (0.0%)" in printed
    assert "p99 loop time" in printed
    paths = list_episodes(out)
    assert len(paths) == 2 and validate_dataset(out).ok
    with Episode(paths[0]) as ep:
        policy_meta = ep.attrs["extra"]["rollout"]["policy"]
        assert policy_meta["path"] == str(Path(ckpt).resolve()) and policy_meta["config"]["encoder"] == "scratch-cnn"
        assert ep.num_steps == 12 and ep.attrs["success"] == -1 and np.isfinite(ep.action()).all()
    assert (out / "rollout.config.json").exists()
    # the policy's camera missing from --cameras: refused with the camera named, exit code 2
    assert main([*args[:5], "--cameras", f"exterior_1={video}", *args[7:-1], str(tmp_path / "other")]) == 2
    assert "needs camera(s) ['wrist']" in capsys.readouterr().err
