"""Hostile-client probes of the robot server (loopback, seeded, bounded), kept as tests.

Each probe family sends what an attacker or a broken client could send: random bytes, truncated msgpack,
valid msgpack of the wrong shape, unknown commands, bad actions, oversized messages, floods, vanishing
clients, bad tokens, a second client. After each probe the server must still answer a well-formed request,
every bad request must get an error reply that says what was wrong (never kind "internal", which means a
traceback), no bad action may reach the robot, and the robot must hold within one control period when the
session's client vanishes or sends garbage. docs/reliability.md (robot server) tabulates the cases.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from robot_server import start_server_process  # noqa: E402 (tests/ is on sys.path)

from robolearn.data.schema import ACTION_FIELDS, STATE_FIELDS
from robolearn.hardware.robots import protocol as P
from robolearn.hardware.robots.base import Robot
from robolearn.hardware.robots.server import RobotServer, ServerConfig
from robolearn.hardware.robots.sim import SimRobot

MAX_ERROR_CHARS = 600  # an error message says what was wrong in a line or two, never echoes the payload


class RecordingSim(SimRobot):
    """The sim arm, recording stop() times (host monotonic seconds), applied actions and home calls."""

    def __init__(self) -> None:
        super().__init__()
        self.stops: list[float] = []
        self.applied: list[tuple[list[float], str]] = []
        self.homes = 0

    def stop(self) -> None:
        self.stops.append(time.monotonic())
        super().stop()

    def apply(self, action: np.ndarray, space: str) -> dict[str, np.ndarray]:
        self.applied.append((np.asarray(action).tolist(), space))
        return super().apply(action, space)

    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        self.homes += 1
        super().home(noise, seed)

    def holding(self) -> bool:
        """The arm's commanded state is 'hold where you are' (SimArm.hold()): no velocity target."""
        arm = self.sim.arm
        return arm._last_space == "" and arm._pose_target is None


class Spy(Robot):
    name = "spy"
    control_hz = 20.0

    def __init__(self) -> None:
        self.calls: list[str] = []

    def state(self) -> dict[str, np.ndarray]:
        self.calls.append("state")
        return {f.path.split("/")[-1]: np.zeros(f.shape) for f in STATE_FIELDS}

    def apply(self, action: np.ndarray, space: str) -> dict[str, np.ndarray]:
        self.calls.append("apply")
        return {f.path.split("/")[-1]: np.zeros(f.shape) for f in ACTION_FIELDS}

    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        self.calls.append("home")

    def stop(self) -> None:
        self.calls.append("stop")


class Client:
    """A DEALER socket speaking the REQ envelope (empty delimiter), free to send without waiting."""

    def __init__(self, address: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.session = ""
        self.seq = 100

    def send_bytes(self, payload: bytes) -> None:
        self.sock.send_multipart([b"", payload])

    def recv(self, timeout_s: float = 3.0) -> P.Reply | None:
        if not self.sock.poll(int(timeout_s * 1000)):
            return None
        frames = self.sock.recv_multipart()
        assert frames[0] == b"" and len(frames) == 2, frames[:3]
        return P.decode_reply(frames[1])

    def ask_bytes(self, payload: bytes, timeout_s: float = 3.0) -> P.Reply:
        self.send_bytes(payload)
        reply = self.recv(timeout_s)
        assert reply is not None, f"server did not answer {payload[:60]!r}"
        return reply

    def ask(self, cmd: str, **fields: Any) -> P.Reply:
        self.seq += 1
        msg = {"cmd": cmd, "seq": self.seq, **({} if cmd == "hello" else {"session": self.session}), **fields}
        reply = self.ask_bytes(msgpack.packb(msg))
        assert reply.seq == self.seq
        return reply

    def hello(self, client: str = "probe", token: str = "") -> P.Reply:
        reply = self.ask("hello", token=token, protocol=P.PROTOCOL_VERSION, client=client)
        if reply.ok:
            self.session = reply.result["session"]
        return reply

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()


@contextlib.contextmanager
def client(address: str) -> Iterator[Client]:
    c = Client(address)
    try:
        yield c
    finally:
        c.close()


@contextlib.contextmanager
def holder(address: str, name: str = "holder") -> Iterator[Client]:
    """A client holding the robot; says close at the end."""
    with client(address) as c:
        assert c.hello(name).ok
        yield c
        c.ask("close")


def assert_error(reply: P.Reply, kinds: tuple[str, ...], *expected: str) -> None:
    assert not reply.ok, reply
    assert reply.kind in kinds, reply
    assert len(reply.error) <= MAX_ERROR_CHARS, reply.error[:200]
    for text in expected:
        assert text in reply.error, (text, reply.error)


def assert_serving(address: str) -> None:
    """The server answers a well-formed session (hello, state, close)."""
    with client(address) as c:
        r = c.hello(f"check-{time.monotonic_ns()}")
        assert r.ok, r
        assert np.asarray(c.ask("state").result["joint_positions"]).shape == (7,)
        assert c.ask("close").ok


@pytest.fixture(scope="module")
def sim_served() -> Iterator[tuple[RobotServer, RecordingSim]]:
    robot = RecordingSim()
    server = RobotServer(robot, ServerConfig(port=0, takeover_after_s=0.3)).serve_in_thread()
    try:
        yield server, robot
    finally:
        server.shutdown()
        robot.disconnect()


@pytest.fixture()
def served(
    sim_served: tuple[RobotServer, RecordingSim], caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[RobotServer, RecordingSim]]:
    """The module's sim server; after the test it still serves, and it logged no traceback."""
    server, _ = sim_served
    with caplog.at_level(logging.WARNING, logger="robolearn.hardware.robots.server"):
        yield sim_served
    assert server._thread is not None and server._thread.is_alive(), "server thread died"
    time.sleep(server.takeover_after_s + 0.02)  # any session a probe left behind may now be taken over
    assert_serving(server.address)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [r.getMessage() for r in tracebacks]


def nested_list(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"  # [[[...[nil]...]]]


# --- random and truncated bytes -------------------------------------------------------------------------------
def test_random_bytes_get_protocol_errors(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    rng = np.random.default_rng(0)
    payloads = [b"", b"\x00", b"\xc1", b"\xff" * 100] + [rng.bytes(int(n)) for n in rng.integers(1, 3000, 300)]
    applied = len(robot.applied)
    with client(server.address) as c:
        for payload in payloads:
            assert_error(c.ask_bytes(payload), ("protocol",), "malformed message")
    assert len(robot.applied) == applied


def test_random_bytes_on_the_tcp_port_do_not_disturb_the_server(served: tuple[RobotServer, RecordingSim]) -> None:
    server, _ = served
    port = int(server.address.rsplit(":", 1)[1])
    rng = np.random.default_rng(1)
    for size in (1, 10, 10_000):  # not ZMTP at all: ZeroMQ drops the connection
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(rng.bytes(size))
    stalled = socket.create_connection(("127.0.0.1", port), timeout=2)  # a half ZMTP greeting, then nothing
    try:
        stalled.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f\x03")
        assert_serving(server.address)
    finally:
        stalled.close()


def test_truncated_and_padded_msgpack_get_protocol_errors(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    valid = [
        P.encode_request("hello", 1, token="t" * 8, protocol=1, client="x"),
        P.encode_request("apply", 2, "s" * 32, action=[0.1] * 7, space="cartesian_velocity"),
        P.encode_request("home", 3, "s" * 32, noise=0.1, seed=4),
    ]
    with client(server.address) as c:
        for payload in valid:
            for n in range(len(payload)):
                assert_error(c.ask_bytes(payload[:n]), ("protocol",), "malformed message")
            assert_error(c.ask_bytes(payload + b"\x00"), ("protocol",), "malformed message", "ExtraData")
    assert robot.homes == 0


# --- valid msgpack, wrong shape -----------------------------------------------------------------------------------
WRONG_SHAPES: list[tuple[Any, str]] = [
    ([1, 2, 3], "expected a map with 'cmd', got a list"),
    (42, "expected a map with 'cmd', got a int"),
    ("state", "expected a map with 'cmd', got a str"),
    (None, "expected a map with 'cmd', got a NoneType"),
    ({}, "'seq' must be an integer (echoed in the reply), no 'seq' field"),
    ({"seq": 1}, "no 'cmd' field; expected 'cmd' to be one of"),
    ({"cmd": ["state"], "seq": 1}, "unknown command a list of 1"),
    ({"cmd": {"state": 1}, "seq": 1}, "unknown command a dict of 1"),
    ({"cmd": 7, "seq": 1}, "unknown command 7"),
    ({"cmd": "state", "seq": 1.5, "session": ""}, "'seq' must be an integer"),
    ({"cmd": "state", "seq": "1", "session": ""}, "'seq' must be an integer"),
    ({"cmd": "state", "seq": [1], "session": ""}, "'seq' must be an integer"),
    ({b"cmd": "state", "seq": 1}, "field names must be strings"),
    ({"cmd": "state", "seq": 1, "session": "", b"x": 1, "y": 2}, "field names must be strings"),
    ({"cmd": "hello", "seq": 1, "protocol": 1, "client": "x"}, "hello: missing field 'token' (str)"),
    ({"cmd": "hello", "seq": 1, "token": 5, "protocol": 1, "client": "x"}, "field 'token' must be str, got int"),
    ({"cmd": "hello", "seq": 1, "token": "", "protocol": True, "client": "x"}, "'protocol' must be int, got bool"),
    ({"cmd": "hello", "seq": 1, "token": "", "protocol": 99, "client": "x"}, "speaks robot protocol 99"),
    ({"cmd": "hello", "seq": 1, "token": "", "protocol": 1, "client": ""}, "client id must be 1..128 characters"),
    ({"cmd": "hello", "seq": 1, "token": "", "protocol": 1, "client": "x" * 200}, "client id must be 1..128"),
    ({"cmd": "hello", "seq": 1, "token": "", "protocol": 1, "client": ["x"]}, "'client' must be str, got list"),
    (
        {"cmd": "apply", "seq": 1, "session": "", "action": {"x": 1}, "space": "joint_position"},
        "field 'action' must be list, got dict",
    ),
    ({"cmd": "apply", "seq": 1, "session": "", "action": [0.0] * 7}, "apply: missing field 'space' (str)"),
    ({"cmd": "home", "seq": 1, "session": "", "noise": 0.0, "seed": "7"}, "'seed' must be int or nil, got str"),
    ({"cmd": "state", "seq": 1, "session": 5}, "'session' must be a string, got int"),
    ({"cmd": "state", "seq": 1, "session": "", **{f"f{i}": i for i in range(1000)}}, "(+992 more)"),
    ({"cmd": "state", "seq": 1, "session": "", "k" * 5000: 1}, "unexpected field(s)"),
]


def test_wrong_shapes_get_errors_naming_what_was_expected(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    applied = len(robot.applied)
    with client(server.address) as c:
        for msg, expected in WRONG_SHAPES:
            assert_error(c.ask_bytes(msgpack.packb(msg)), ("protocol",), expected)
    assert len(robot.applied) == applied


def test_depth_bombs_get_errors(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    with client(server.address) as c:
        assert_error(c.ask_bytes(nested_list(1000)), ("protocol",), "expected a map")
        for depth in (1025, 60_000):
            assert_error(c.ask_bytes(nested_list(depth)), ("protocol",), "nested deeper than 1024 levels")
        assert_error(c.ask_bytes(nested_list(100_000)), ("protocol",), "exceeds the limit of 65536 bytes")
        assert_error(c.ask_bytes(b"\x81\xa1k" * 1000 + b"\xc0"), ("protocol",), "no 'seq' field")  # {"k": {"k": ..
        assert_error(c.ask_bytes(b"\x81\xa1k" * 2000 + b"\xc0"), ("protocol",), "nested deeper")
        assert c.hello("bomber").ok
        head = msgpack.packb({"cmd": "apply", "seq": 9, "session": c.session, "space": "cartesian_velocity"})
        bomb = bytes([head[0] + 1]) + head[1:] + msgpack.packb("action") + nested_list(1000)  # one more field
        stops = len(robot.stops)
        assert_error(
            c.ask_bytes(bomb), ("value",), "must be a flat list of 6 (+1 gripper) numbers", "value 0 is a list"
        )
        assert len(robot.stops) == stops + 1  # the session's client sent nonsense: the robot holds
        assert c.ask("close").ok


def test_unknown_commands_list_the_known_ones(served: tuple[RobotServer, RecordingSim]) -> None:
    server, _ = served
    with client(server.address) as c:
        for cmd in ("dance", "", "HELLO", "state ", "apply\x00", "__class__", "x" * 10_000, "sta\u0301te"):
            reply = c.ask_bytes(msgpack.packb({"cmd": cmd, "seq": 1, "session": ""}))
            assert_error(reply, ("protocol",), "unknown command", "expected 'cmd' to be one of ['apply', 'close'")


# --- bad actions --------------------------------------------------------------------------------------------------
BAD_ACTIONS: list[tuple[Any, str, str]] = [
    ([float("nan")] * 6, "cartesian_velocity", "contains NaN or inf"),
    ([0, 0, float("inf"), 0, 0, 0], "cartesian_velocity", "contains NaN or inf"),
    ([0.0] * 6 + [float("-inf")], "cartesian_velocity", "contains NaN or inf"),
    ([float("nan")] * 7, "joint_position", "contains NaN or inf"),
    ([1e308] * 6, "cartesian_velocity", "out of range: |value| must be <= 2 (normalised"),
    ([0, 0, 0, 0, 0, -1e20], "cartesian_velocity", "out of range"),
    ([2.5, 0, 0, 0, 0, 0], "cartesian_velocity", "out of range"),
    ([0.0] * 6 + [5.0], "cartesian_velocity", "gripper value (last) must be in [-1, 2]"),
    ([100.0, 0, 0, 1, 0, 0, 0], "cartesian_position", "|value| must be <= 5 m"),
    ([0.5, 0, 0.5, 0, 0, 0, 0], "cartesian_position", "quaternion (wxyz, values 3..6) must have a norm in"),
    ([0.5, 0, 0.5, 1e3, 0, 0, 0], "cartesian_position", "got norm 1000"),
    ([10.0] + [0.0] * 6, "joint_position", "|value| must be <= 6.28319 rad"),
    ([50.0] + [0.0] * 6, "joint_velocity", "|value| must be <= 10 rad/s"),
    ([], "cartesian_velocity", "must have 6 values (+1 optional gripper), got 0"),
    ([0.0] * 5, "cartesian_velocity", "got 5"),
    ([0.0] * 8, "cartesian_velocity", "got 8"),
    ([0.0] * 6, "joint_position", "must have 7 values"),
    ([0.0] * 5000, "joint_velocity", "got 5000"),
    ([[0.0] * 6], "cartesian_velocity", "value 0 is a list"),
    (["0"] * 6, "cartesian_velocity", "value 0 is a str: '0'"),
    ([0.0, None, 0, 0, 0, 0], "cartesian_velocity", "value 1 is a NoneType"),
    ([True] * 6, "cartesian_velocity", "value 0 is a bool"),
    ([0.0] * 6, "teleport", "does not take 'teleport' actions; it takes ['cartesian_velocity'"),
    ([0.0] * 6, "", "does not take '' actions"),
]


def test_bad_actions_are_refused_never_applied_and_the_robot_holds(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    with holder(server.address) as c:
        moving = c.ask("apply", action=[0.5, 0, 0, 0, 0, 0], space="cartesian_velocity")
        assert moving.ok and not robot.holding()
        applied = len(robot.applied)
        for action, space, expected in BAD_ACTIONS:
            stops = len(robot.stops)
            reply = c.ask("apply", action=action, space=space)
            assert_error(reply, ("value",), expected)
            assert len(robot.stops) == stops + 1 and robot.holding(), (action, space)  # held before the reply
            assert c.ask("apply", action=[0.5, 0, 0, 0, 0, 0], space="cartesian_velocity").ok  # the session lives
        assert all(np.all(np.isfinite(a)) for a, _ in robot.applied)
        assert len(robot.applied) == applied + len(BAD_ACTIONS)  # only the good ones reached the robot
        over = c.ask("apply", action=[1.5, -1.5, 0, 0, 0, 0, 1.2], space="cartesian_velocity")
        assert over.ok  # within the bound: the robot clips it to its range
        assert over.result["cartesian_velocity"][:2] == [1.0, -1.0] and over.result["gripper_position"] == 1.0
        assert np.all(np.isfinite(robot.sim.data.qpos))


def test_bad_home_arguments_are_refused(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    with holder(server.address) as c:
        homes = robot.homes
        for noise, seed, expected in [
            (float("nan"), None, "noise must be a finite number >= 0 and <= 1 rad"),
            (float("inf"), None, "noise"),
            (-0.1, None, "noise"),
            (1.5, None, "noise"),
            (1e9, 3, "noise"),
            (0.0, -1, "seed must be nil or an integer in [0, 2**63 - 1]"),
            (0.0, 2**64 - 1, "seed must be nil"),
        ]:
            assert_error(c.ask("home", noise=noise, seed=seed), ("value",), expected)
        assert robot.homes == homes
        assert c.ask("home", noise=0.0, seed=2**63 - 1).ok


# --- sizes ----------------------------------------------------------------------------------------------------------
def padded_stop(size: int) -> bytes:
    """A stop request of exactly `size` bytes (an extra 'pad' field)."""
    n = size
    payload = msgpack.packb({"cmd": "stop", "seq": 1, "session": "", "pad": "x" * n})
    while len(payload) != size:  # str headers grow at 32 / 256 / 65536 chars: adjust by the difference
        n += size - len(payload)
        payload = msgpack.packb({"cmd": "stop", "seq": 1, "session": "", "pad": "x" * n})
    return payload


def test_message_size_limits(served: tuple[RobotServer, RecordingSim]) -> None:
    server, _ = served
    limit = server.config.max_message_bytes
    with client(server.address) as c:
        assert_error(c.ask_bytes(padded_stop(limit)), ("protocol",), "unexpected field(s) ['pad']")  # decoded
        assert_error(
            c.ask_bytes(padded_stop(limit + 1)),
            ("protocol",),
            f"message of {limit + 1} bytes exceeds the limit of {limit} bytes",
        )
        assert_error(c.ask_bytes(b"\x00" * (4 * limit)), ("protocol",), "exceeds the limit")
    with client(server.address) as c:  # over ZMQ_MAXMSGSIZE (16x): ZeroMQ drops the connection, no reply
        c.send_bytes(b"\x00" * (16 * limit + 1))
        assert c.recv(timeout_s=0.5) is None
    assert_serving(server.address)


def _peak_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_50mb_message_is_refused_without_being_buffered() -> None:
    proc, address = start_server_process("--robot", "sim")
    try:
        assert_serving(address)
        before = _peak_rss_kb(proc.pid)
        blob = b"\x00" * (50 * 1024 * 1024)
        with client(address) as c:
            c.send_bytes(blob)
            assert c.recv(timeout_s=1.0) is None  # dropped by ZeroMQ at the size header
        del blob
        assert_serving(address)
        grown_mb = (_peak_rss_kb(proc.pid) - before) / 1024
        assert grown_mb < 10, f"server peak memory grew by {grown_mb:.1f} MB for a 50 MB message"
        assert proc.poll() is None
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_multipart_requests_are_refused(served: tuple[RobotServer, RecordingSim]) -> None:
    server, _ = served
    with client(server.address) as c:
        for frames in ([b"", b"a", b"b"], [b"", *([b"x" * 10] * 50)]):
            c.sock.send_multipart(frames)
            assert_error(c.recv(), ("protocol",), "expected one payload frame after the envelope")
        c.sock.send_multipart([b"nodelimiter", b"b"])  # answered on its envelope (no delimiter)
        assert c.sock.poll(3000)
        assert_error(P.decode_reply(c.sock.recv()), ("protocol",), "expected one payload frame")
        c.sock.send(msgpack.packb([1]))  # a DEALER without the delimiter: answered on its own envelope
        assert c.sock.poll(3000)
        assert_error(P.decode_reply(c.sock.recv()), ("protocol",), "expected a map")


# --- floods ----------------------------------------------------------------------------------------------------------
def test_request_floods_from_several_clients_are_all_answered() -> None:
    spy = Spy()  # its own server: the default takeover delay (1 s), which a flood must not outlast
    server = RobotServer(spy, ServerConfig(port=0)).serve_in_thread()
    per_client, n_clients = 1000, 4
    junk = [
        b"\xc1",
        msgpack.packb({"cmd": "state", "seq": 1, "session": "guess"}),
        msgpack.packb({"cmd": "dance", "seq": 1}),
        msgpack.packb({"cmd": "hello", "seq": 1, "token": "", "protocol": 1, "client": "flooder"}),
    ]
    answered = [0] * n_clients
    kinds: set[str] = set()

    def flood(i: int) -> None:
        with client(server.address) as c:
            for k in range(per_client):
                c.send_bytes(junk[k % len(junk)])
            while answered[i] < per_client and (r := c.recv(timeout_s=10.0)) is not None:
                answered[i] += 1
                kinds.add(r.kind)

    t0 = time.monotonic()
    try:
        with holder(server.address) as h:
            threads = [threading.Thread(target=flood, args=(i,)) for i in range(n_clients)]
            for t in threads:
                t.start()
            worst = 0.0
            for _ in range(20):  # the holder keeps its session and is served during the flood
                t1 = time.monotonic()
                assert h.ask("apply", action=[0.1, 0, 0, 0, 0, 0], space="cartesian_velocity").ok
                worst = max(worst, time.monotonic() - t1)
            while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 30:  # heartbeats, as RemoteRobot
                assert h.ask("heartbeat").ok
                time.sleep(0.02)
            assert h.ask("state").ok
        assert answered == [per_client] * n_clients, answered
        assert kinds == {"protocol", "auth", "busy"}  # never "internal"; every flooder hello was refused
        assert server.error_stops == 0 and server.disconnect_stops == 0  # strangers' junk does not stop the robot
        assert worst < server.takeover_after_s, f"holder waited {worst:.2f} s during the flood"
        assert time.monotonic() - t0 < 30
        assert_serving(server.address)
    finally:
        server.shutdown()


# --- vanishing clients and garbage mid-episode --------------------------------------------------------------------
def test_client_vanishing_mid_episode_gets_the_robot_held_within_a_control_period(
    served: tuple[RobotServer, RecordingSim],
) -> None:
    server, robot = served
    period = 1.0 / robot.control_hz
    for _ in range(3):
        c = Client(server.address)
        assert c.hello("vanisher").ok
        for _ in range(3):
            assert c.ask("apply", action=[0.5, 0, 0, 0, 0, 0], space="cartesian_velocity").ok
        assert not robot.holding()
        stops = len(robot.stops)
        t0 = time.monotonic()
        c.close()  # no close request: the socket just goes away
        while len(robot.stops) == stops and time.monotonic() - t0 < 1.0:
            time.sleep(0.002)
        assert len(robot.stops) > stops and robot.holding()
        assert robot.stops[stops] - t0 <= period, f"held after {robot.stops[stops] - t0:.3f} s > {period:.3f} s"
        time.sleep(server.takeover_after_s + 0.02)  # the next one may take over
    assert server.disconnect_stops >= 3


KILLED_CLIENT = """
import sys, time
import numpy as np
from robolearn.hardware.robots.remote import RemoteRobot
arm = RemoteRobot(sys.argv[1], timeout_s=3.0, client_id="killed")
arm.connect()
while True:
    arm.apply(np.array([0.5, 0, 0, 0, 0, 0]), "cartesian_velocity")
    print("applied", flush=True)
    time.sleep(0.02)
"""


def test_killed_remote_robot_process_gets_the_robot_held(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_CLIENT, server.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):
            assert proc.stdout.readline().strip() == "applied", proc.stderr.read() if proc.poll() else ""
        stops = len(robot.stops)
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        while len(robot.stops) == stops and time.monotonic() - t0 < 1.0:
            time.sleep(0.002)
        assert len(robot.stops) > stops and robot.holding()
        assert robot.stops[stops] - t0 <= 1.0 / robot.control_hz + 0.05  # + the kernel's time to reap it
    finally:
        if proc.poll() is None:
            proc.kill()


def test_garbage_from_the_holder_mid_episode_holds_the_robot(served: tuple[RobotServer, RecordingSim]) -> None:
    server, robot = served
    rng = np.random.default_rng(2)
    garbage = [
        b"\xc1",
        rng.bytes(50),
        msgpack.packb([0.5] * 6),
        msgpack.packb({"cmd": "apply", "seq": 1}),
        msgpack.packb({"cmd": "fly", "seq": 1, "session": ""}),
    ]
    with holder(server.address) as c:
        for payload in garbage:
            assert c.ask("apply", action=[0.5, 0, 0, 0, 0, 0], space="cartesian_velocity").ok
            assert not robot.holding()
            stops = len(robot.stops)
            assert_error(c.ask_bytes(payload), ("protocol", "auth"))
            assert len(robot.stops) == stops + 1 and robot.holding()  # before the error reply came back
        with client(server.address) as stranger:  # a stranger's garbage does not stop the holder's robot
            assert c.ask("apply", action=[0.5, 0, 0, 0, 0, 0], space="cartesian_velocity").ok
            stops = len(robot.stops)
            for payload in garbage:
                stranger.ask_bytes(payload)
            assert len(robot.stops) == stops and not robot.holding()


# --- tokens and ownership -------------------------------------------------------------------------------------------
def test_missing_and_wrong_tokens_never_touch_the_robot() -> None:
    spy = Spy()
    server = RobotServer(spy, ServerConfig(port=0, token="correct-horse")).serve_in_thread()
    try:
        with client(server.address) as c:
            hello = {"cmd": "hello", "seq": 1, "protocol": P.PROTOCOL_VERSION, "client": "x"}
            assert_error(c.ask_bytes(msgpack.packb(hello)), ("protocol",), "missing field 'token'")
            for token, expected in [
                ("", "missing token (empty)"),
                ("wrong-horse", "wrong token"),
                ("Correct-horse", "wrong token"),
                ("correct-horse\x00", "wrong token"),
                ("correct-hors", "wrong token"),
                ("x" * 10_000, "wrong token"),
            ]:
                assert_error(c.hello(token=token), ("auth",), expected, "requires the shared token")
            assert_error(
                c.ask_bytes(msgpack.packb({**hello, "token": b"correct-horse"})),
                ("protocol",),
                "'token' must be str, got bytes",
            )
            for cmd, fields in [
                ("state", {}),
                ("apply", {"action": [0.0] * 6, "space": "cartesian_velocity"}),
                ("stop", {}),
                ("close", {}),
                ("home", {"noise": 0.0, "seed": None}),
            ]:
                for session in ("", "0" * 32, "guess"):
                    c.session = session
                    assert_error(c.ask(cmd, **fields), ("auth",), "unknown or expired session; send hello first")
            assert spy.calls == []
            assert c.hello(token="correct-horse").ok and c.ask("state").ok and spy.calls == ["state"]
    finally:
        server.shutdown()


def test_second_client_cannot_take_or_stop_the_robot_while_the_first_holds_it(
    served: tuple[RobotServer, RecordingSim],
) -> None:
    server, robot = served
    with holder(server.address, "operator-a") as a, client(server.address) as b:
        assert a.ask("apply", action=[0.5, 0, 0, 0, 0, 0], space="cartesian_velocity").ok
        stops = len(robot.stops)
        assert_error(
            b.hello("operator-b"),
            ("busy",),
            "robot is in use by client 'operator-a'",
            "can be taken over once that client is silent for",
        )
        for cmd in ("stop", "close", "state"):
            b.session = "0" * 32
            assert_error(b.ask(cmd), ("auth",), "unknown or expired session")
        assert len(robot.stops) == stops and not robot.holding()
        assert a.ask("state").ok  # the holder's session survived
        t0 = time.monotonic()
        while not robot.holding() and time.monotonic() - t0 < 1.0:  # a silent holder: the robot is stopped ...
            time.sleep(0.002)
        assert robot.holding()
        assert_error(b.hello("operator-b"), ("busy",), "in use by client 'operator-a'")  # ... but not yet free
        time.sleep(server.takeover_after_s)
        assert b.hello("operator-b").ok
        assert_error(a.ask("state"), ("auth",), "unknown or expired session")
        assert b.ask("close").ok
