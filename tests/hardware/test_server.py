"""Robot server + RemoteRobot: round trips, the heartbeat watchdog, a killed server, bad requests, tokens."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from robot_server import sim_server_fixture, start_server_process  # noqa: E402 (tests/ is on sys.path)

from robolearn.data.schema import ACTION_FIELDS, STATE_FIELDS
from robolearn.hardware.robots import protocol as P
from robolearn.hardware.robots.base import Robot, RobotError
from robolearn.hardware.robots.remote import RemoteRobot
from robolearn.hardware.robots.server import TOKEN_ENV, RobotServer, ServerConfig


class SpyRobot(Robot):
    """Records every call; stop() times are host monotonic seconds."""

    name = "spy"
    control_hz = 20.0  # watchdog timeout 0.1 s

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stops: list[float] = []
        self.fail_next: Exception | None = None

    def state(self) -> dict[str, np.ndarray]:
        self.calls.append("state")
        return {f.path.split("/")[-1]: np.zeros(f.shape) for f in STATE_FIELDS}

    def apply(self, action: np.ndarray, space: str) -> dict[str, np.ndarray]:
        self.calls.append("apply")
        if self.fail_next is not None:
            err, self.fail_next = self.fail_next, None
            raise err
        return {f.path.split("/")[-1]: np.zeros(f.shape) for f in ACTION_FIELDS}

    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        self.calls.append(f"home({noise},{seed})")

    def stop(self) -> None:
        self.stops.append(time.monotonic())


@contextlib.contextmanager
def serving(robot: Robot, **cfg: Any) -> Iterator[RobotServer]:
    server = RobotServer(robot, ServerConfig(**{"port": 0, **cfg})).serve_in_thread()
    try:
        yield server
    finally:
        server.shutdown()


class RawClient:
    """A bare REQ socket for sending hand-made (bad) requests."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.session = ""

    def send_bytes(self, payload: bytes, timeout_s: float = 3.0) -> P.Reply:
        self.sock.send(payload)
        assert self.sock.poll(int(timeout_s * 1000)), "server did not reply"
        return P.decode_reply(self.sock.recv())

    def send(self, msg: dict[str, Any]) -> P.Reply:
        return self.send_bytes(msgpack.packb(msg))

    def hello(self, token: str = "", client: str = "raw") -> P.Reply:
        r = self.send({"cmd": "hello", "seq": 1, "token": token, "protocol": P.PROTOCOL_VERSION, "client": client})
        if r.ok:
            self.session = r.result["session"]
        return r

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


@contextlib.contextmanager
def raw_client(address: str) -> Iterator[RawClient]:
    c = RawClient(address)
    try:
        yield c
    finally:
        c.close()


sim_server = sim_server_fixture()


# --- round trips --------------------------------------------------------------------------------------------
def test_round_trip_with_the_sim_robot(sim_server: str) -> None:
    with RemoteRobot(sim_server, timeout_s=3.0) as arm:
        info = arm.info()
        assert info["robot_type"] == "robolearn_sim_arm7" and arm.control_hz == 15.0
        state = arm.state()
        assert {k: v.shape for k, v in state.items()} == {f.path.split("/")[-1]: f.shape for f in STATE_FIELDS}
        forms = arm.apply(np.array([0.5, 0, 0, 0, 0, 0, 1.0]), "cartesian_velocity")
        assert {k: v.shape for k, v in forms.items()} == {f.path.split("/")[-1]: f.shape for f in ACTION_FIELDS}
        assert forms["cartesian_velocity"][0] == pytest.approx(0.5) and forms["gripper_position"] == 1.0
        for _ in range(5):
            arm.apply([0.5, 0, 0, 0, 0, 0], "cartesian_velocity")
        moved = arm.state()["ee_position"]
        assert moved[0] > state["ee_position"][0] + 0.01  # the arm moved along +x
        arm.stop()
        arm.home(noise=0.0, seed=3)
        home_q = arm.state()["joint_positions"]
        arm.home(noise=0.2, seed=3)
        noisy_q = arm.state()["joint_positions"]
        arm.home(noise=0.2, seed=3)
        assert np.abs(noisy_q - home_q).max() > 0.01  # home honours noise ...
        assert np.allclose(arm.state()["joint_positions"], noisy_q)  # ... and seed
        arm.apply(arm.state()["joint_positions"], "joint_position")


def test_bad_requests_get_error_replies_and_the_server_keeps_serving(sim_server: str) -> None:
    with RemoteRobot(sim_server, timeout_s=3.0) as arm, raw_client(sim_server) as raw:
        cases = {
            b"\xc1\x00 not msgpack": "not a msgpack document",
            msgpack.packb([1, 2, 3]): "expected a map",
            msgpack.packb({"cmd": "dance", "seq": 2}): "unknown command 'dance'",
            msgpack.packb({"cmd": "state", "seq": True, "session": ""}): "'seq' must be an integer",
            msgpack.packb({"cmd": "state", "seq": 3, "session": "", "x": 1}): "unexpected field(s) ['x']",
            msgpack.packb({"cmd": "home", "seq": 4, "session": "", "noise": "big", "seed": None}): "'noise' must be",
            msgpack.packb({"cmd": "state", "seq": 5, "session": "made-up"}): "unknown or expired session",
            msgpack.packb({"cmd": "stop", "seq": 6, "session": "", "pad": "x" * 70_000}): "exceeds the limit of 65536",
            msgpack.packb(msgpack.ExtType(5, b"x")): "not a msgpack document",
        }
        for payload, expected in cases.items():
            reply = raw.send_bytes(payload)
            assert not reply.ok and expected in reply.error, (payload[:40], reply)
            assert reply.kind in ("protocol", "auth")
            assert arm.state()["joint_positions"].shape == (7,)  # still serving
        bad_actions = [
            (np.zeros(3), "cartesian_velocity", "must have 6 values"),
            (np.zeros((2, 7)), "cartesian_velocity", "flat list"),
            (np.full(6, np.nan), "cartesian_velocity", "NaN or inf"),
            (np.array([0, 0, np.inf, 0, 0, 0, 0]), "joint_velocity", "NaN or inf"),
            (np.zeros(7), "teleport", "does not take 'teleport'"),
        ]
        for action, space, expected in bad_actions:
            with pytest.raises(ValueError, match=expected):
                arm.apply(action, space)
        with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
            arm.home(noise=float("nan"))
        arm.apply(np.zeros(6), "cartesian_velocity")  # the session survived every error


def test_driver_errors_are_reported_and_the_server_keeps_serving() -> None:
    spy = SpyRobot()
    with serving(spy) as server, RemoteRobot(server.address, timeout_s=2.0) as arm:
        spy.fail_next = RobotError("joint 3 over torque")
        with pytest.raises(RobotError, match="joint 3 over torque"):
            arm.apply(np.zeros(6), "cartesian_velocity")
        spy.fail_next = ZeroDivisionError("driver bug")
        with pytest.raises(RobotError, match="internal.*ZeroDivisionError: driver bug"):
            arm.apply(np.zeros(6), "cartesian_velocity")
        arm.apply(np.zeros(6), "cartesian_velocity")
        arm.home(0.1, 7)
        assert spy.calls[-1] == "home(0.1,7)"


# --- heartbeat watchdog ---------------------------------------------------------------------------------------
def test_silent_client_gets_the_robot_stopped_within_two_periods_once_per_silence() -> None:
    spy = SpyRobot()
    with serving(spy) as server, raw_client(server.address) as raw:
        assert server.heartbeat_timeout_s == pytest.approx(2 / spy.control_hz)
        assert raw.hello().ok
        last = time.monotonic()
        time.sleep(0.6)  # six timeouts of silence
        assert len(spy.stops) == 1, "one stop per silence"
        delay = spy.stops[0] - last
        assert 0.08 <= delay <= server.heartbeat_timeout_s + 0.1, delay  # 0.1 s = two periods, plus a margin
        assert raw.send({"cmd": "heartbeat", "seq": 2, "session": raw.session}).ok
        last = time.monotonic()
        time.sleep(0.4)
        assert len(spy.stops) == 2 and spy.stops[1] - last <= server.heartbeat_timeout_s + 0.1
        assert server.silence_stops == 2


def test_heartbeats_keep_an_idle_client_alive_and_close_ends_the_session() -> None:
    spy = SpyRobot()
    with serving(spy) as server:
        arm = RemoteRobot(server.address, timeout_s=2.0)
        arm.connect()
        time.sleep(0.6)  # idle, but heartbeats flow
        assert spy.stops == [] and server.silence_stops == 0
        arm.disconnect()
        assert len(spy.stops) == 1  # close stops the robot
        time.sleep(0.3)
        assert len(spy.stops) == 1 and server.silence_stops == 0  # no session, no watchdog
        arm.disconnect()  # idempotent


def test_second_client_is_refused_while_the_first_is_alive() -> None:
    spy = SpyRobot()
    with serving(spy) as server:
        first = RemoteRobot(server.address, timeout_s=2.0, client_id="operator-a")
        first.connect()
        second = RemoteRobot(server.address, timeout_s=2.0, client_id="operator-b")
        with pytest.raises(RobotError, match="in use by client 'operator-a'"):
            second.connect()
        assert not second.connected
        with pytest.raises(RobotError, match="not connected"):
            second.state()
        first.disconnect()
        second.connect()
        second.state()
        with pytest.raises(RobotError, match="in use by client 'operator-b'"):
            first.connect()  # a refused reconnect leaves the client disconnected, not half-connected
        assert not first.connected
        second.disconnect()


# --- server gone ------------------------------------------------------------------------------------------------
def test_killed_server_makes_the_client_raise_quickly_and_keep_raising() -> None:
    proc, address = start_server_process("--robot", "sim")
    try:
        arm = RemoteRobot(address, timeout_s=2.0)
        arm.connect()
        for _ in range(5):
            arm.apply(np.zeros(6), "cartesian_velocity")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        t0 = time.monotonic()
        with pytest.raises(RobotError, match=f"robot server at {address}"):
            for _ in range(100):  # the heartbeat thread or the next call notices
                arm.apply(np.zeros(6), "cartesian_velocity")
        assert time.monotonic() - t0 < arm.timeout_s + 0.5
        t0 = time.monotonic()
        for call in (arm.state, arm.stop, lambda: arm.home(0.0)):
            with pytest.raises(RobotError, match="call connect\\(\\) to reconnect"):
                call()
        assert time.monotonic() - t0 < 0.5  # later calls raise at once
        arm.disconnect()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_unresponsive_server_times_out_with_a_clear_message() -> None:
    ctx = zmq.Context()
    mute = ctx.socket(zmq.ROUTER)  # accepts connections, never answers
    port = mute.bind_to_random_port("tcp://127.0.0.1")
    try:
        arm = RemoteRobot(f"tcp://127.0.0.1:{port}", timeout_s=0.3)
        t0 = time.monotonic()
        with pytest.raises(RobotError, match=f"tcp://127.0.0.1:{port} did not answer hello within 0.3 s"):
            arm.connect()
        assert time.monotonic() - t0 < 1.5
        arm.disconnect()
    finally:
        mute.close(linger=0)
        ctx.term()


def test_nothing_listening_fails_fast() -> None:
    probe = zmq.Context()
    s = probe.socket(zmq.ROUTER)
    port = s.bind_to_random_port("tcp://127.0.0.1")
    s.close(linger=0)
    probe.term()
    arm = RemoteRobot(f"tcp://127.0.0.1:{port}", timeout_s=2.0)
    t0 = time.monotonic()
    with pytest.raises(RobotError, match="robot server at"):
        arm.connect()
    assert time.monotonic() - t0 < 2.5
    arm.disconnect()


def test_client_reconnects_to_a_restarted_server() -> None:
    spy = SpyRobot()
    with serving(spy) as server:
        address, port = server.address, int(server.address.rsplit(":", 1)[1])
        arm = RemoteRobot(address, timeout_s=1.0)
        arm.connect()
        arm.state()
    with pytest.raises(RobotError, match=f"robot server at {address}"):
        for _ in range(50):
            arm.state()
            time.sleep(0.02)
    with serving(spy, port=port):
        arm.connect()
        assert arm.state()["ee_position"].shape == (3,)
        arm.disconnect()


# --- tokens and binding ---------------------------------------------------------------------------------------
def test_wrong_token_is_refused_without_touching_the_robot() -> None:
    spy = SpyRobot()
    with serving(spy, token="correct-horse") as server:
        arm = RemoteRobot(server.address, token="wrong-token", timeout_s=2.0)
        with pytest.raises(RobotError, match="wrong token"):
            arm.connect()
        with raw_client(server.address) as raw:
            reply = raw.hello(token="")
            assert not reply.ok and reply.kind == "auth"
            reply = raw.send(
                {"cmd": "apply", "seq": 2, "session": "", "action": [0.0] * 6, "space": "cartesian_velocity"}
            )
            assert not reply.ok and reply.kind == "auth"
        assert spy.calls == []
        good = RemoteRobot(server.address, token="correct-horse", timeout_s=2.0)
        good.connect()
        good.state()
        good.disconnect()


def test_exposed_bind_requires_a_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ValueError, match="without a token"):
        ServerConfig(bind="0.0.0.0")
    with pytest.raises(ValueError, match="at least 8 characters"):
        ServerConfig(bind="0.0.0.0", token="short")
    from robolearn.cli import main

    assert main(["robot-server", "--robot", "sim", "--bind", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    assert ServerConfig(bind="0.0.0.0").token == "from-the-environment"
    spy = SpyRobot()
    with serving(spy, bind="0.0.0.0") as server:
        port = server.address.rsplit(":", 1)[1]
        arm = RemoteRobot(f"tcp://127.0.0.1:{port}", timeout_s=2.0)  # token from the environment too
        arm.connect()
        arm.disconnect()


def test_cli_rejects_bad_robot_choices(capsys: pytest.CaptureFixture) -> None:
    from robolearn.cli import main

    assert main(["robot-server", "--robot", "simm"]) == 2
    err = capsys.readouterr().err
    assert "unknown robot 'simm'" in err and "Did you mean sim" in err
    assert main(["robot-server", "--robot", "remote", "--task", "open-drawer"]) == 2
    assert "--task applies to the 'sim' robot" in capsys.readouterr().err


# --- protocol details --------------------------------------------------------------------------------------------
def test_protocol_round_trips_numpy_and_rejects_what_it_cannot_send() -> None:
    state = {"a": np.arange(3.0), "g": np.float64(0.5), "m": np.eye(2)}
    wire = msgpack.unpackb(P.pack(state))
    assert wire == {"a": [0.0, 1.0, 2.0], "g": 0.5, "m": [[1.0, 0.0], [0.0, 1.0]]}
    back = P.arrays_from_wire(wire, "state")
    assert back["m"].shape == (2, 2) and back["g"].shape == ()
    with pytest.raises(TypeError, match="cannot send a object"):
        P.pack({"x": object()})
    req = P.decode_request(P.encode_request("apply", 9, "s", action=[0.0] * 7, space="joint_position"))
    assert (req.cmd, req.seq, req.session, req.args["space"]) == ("apply", 9, "s", "joint_position")
    with pytest.raises(P.ProtocolError, match="missing field 'space'"):
        P.decode_request(msgpack.packb({"cmd": "apply", "seq": 1, "session": "", "action": []}))
    with pytest.raises(P.ProtocolError, match="exceeds the limit of 1024 bytes"):
        P.decode_request(b"\x00" * 2000, max_bytes=1024)


def test_remote_robot_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        RemoteRobot("localhost:5555")
    with pytest.raises(ValueError, match="timeout_s"):
        RemoteRobot(timeout_s=0)
    arm = RemoteRobot()
    with pytest.raises(RobotError, match="not connected"):
        arm.state()
    arm.stop()  # a no-op before connect()
    arm.disconnect()
