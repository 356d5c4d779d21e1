"""`RemoteRobot`: a `Robot` whose calls go to a `robolearn robot-server` (protocol.py) over ZeroMQ.

Nothing here waits forever: every request has a receive timeout (`timeout_s`; `home_timeout_s` for home,
which may move a real arm for seconds). A background thread sends heartbeats at 2.5x the control rate
while connected and idle, so the server's watchdog (which stops the robot after two silent control periods)
stays quiet while this process is alive. When the server does not answer (killed, unreachable, wrong
port) the call raises RobotError: at once when the connection drops or is refused while a request waits
(a ZeroMQ socket monitor reports it), else after the timeout ("robot server at tcp://... did not answer
... within X s"); from then on
every call raises the same error until `connect()` succeeds again, so the station can mark the episode.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from robolearn.hardware.robots import protocol as P
from robolearn.hardware.robots.base import Robot, RobotError

TOKEN_ENV = "ROBOLEARN_ROBOT_TOKEN"
HEARTBEAT_RATE = 2.5  # heartbeats per control period


# monitor events that mean a request in flight will never be answered
_LINK_LOST = zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED


@dataclass
class _Link:
    """A REQ socket and its monitor (which reports connection drops and refusals)."""

    sock: zmq.Socket
    monitor: zmq.Socket

    def drain_events(self) -> bool:
        """Consume pending monitor events; True if any said the link was lost."""
        lost = False
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            lost = lost or bool(event["event"] & _LINK_LOST)
        return lost

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)
        self.sock.close(linger=0)


class RemoteRobot(Robot):
    name = "remote"

    def __init__(
        self,
        address: str = "tcp://127.0.0.1:5555",
        token: str | None = None,
        timeout_s: float = 1.0,
        home_timeout_s: float = 30.0,
        client_id: str | None = None,
    ) -> None:
        if not address.startswith("tcp://"):
            raise ValueError(f"robot server address must look like tcp://HOST:PORT, got {address!r}")
        for what, t in (("timeout_s", timeout_s), ("home_timeout_s", home_timeout_s)):
            if not 0 < t <= 3600:
                raise ValueError(f"{what} must be in (0, 3600] seconds, got {t}")
        self.address = address
        self.token = token or os.environ.get(TOKEN_ENV, "")
        self.timeout_s = float(timeout_s)
        self.home_timeout_s = float(home_timeout_s)
        self.client_id = client_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._ctx: zmq.Context | None = None
        self._sock: _Link | None = None
        self._lock = threading.Lock()  # one request at a time on the command socket
        self._seq = 0
        self._session = ""
        self._info: dict[str, Any] = {}
        self._failure = ""  # set once the link failed; every call raises it until connect() succeeds
        self._in_flight = False
        self._last_sent = 0.0
        self._hb_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self.heartbeat_timeout_s = 0.0  # the server's watchdog timeout (from hello)

    # --- link ---------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return bool(self._session) and not self._failure

    @property
    def is_connected(self) -> bool:
        return self.connected

    def connect(self) -> None:
        """Say hello (again, after a failure) and start heartbeats. RobotError if the server does not answer
        or refuses (wrong token, protocol mismatch, robot held by another client)."""
        if self.connected:
            return
        self._teardown()
        self._ctx = zmq.Context()
        self._failure, self._session = "", ""
        reply = self._request(
            "hello", self.timeout_s, token=self.token, protocol=P.PROTOCOL_VERSION, client=self.client_id
        )
        try:
            self._session = str(reply["session"])
            self._info = dict(reply["info"])
            self.control_hz = float(self._info["control_hz"])
            self.action_spaces = tuple(self._info["action_spaces"])
            self.heartbeat_timeout_s = float(reply["heartbeat_timeout_s"])
            if not (self.control_hz > 0 and self.heartbeat_timeout_s > 0):
                raise ValueError(f"control_hz {self.control_hz}, heartbeat_timeout_s {self.heartbeat_timeout_s}")
        except (KeyError, TypeError, ValueError) as e:
            self._fail(f"robot server at {self.address} sent a malformed hello reply ({e})")
            raise RobotError(self._failure) from None
        self._hb_stop.clear()
        self._hb_thread = threading.Thread(
            target=self._heartbeat_loop, args=(self._new_socket(),), name="remote-robot-heartbeat", daemon=True
        )
        self._hb_thread.start()

    def disconnect(self) -> None:
        """End the session (the server stops the robot) and release the sockets; never raises."""
        if self._ctx is None:
            return
        if self.connected:
            try:
                self._request("close", min(self.timeout_s, 0.5))
            except (RobotError, ValueError):
                pass
        self._teardown()
        self._session = ""

    def _teardown(self) -> None:
        self._hb_stop.set()
        if self._hb_thread is not None:
            self._hb_thread.join(timeout=self.timeout_s + 1.0)
            self._hb_thread = None
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            if self._ctx is not None:
                self._ctx.destroy(linger=0)
                self._ctx = None

    def _new_socket(self) -> _Link:
        s = self._ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDTIMEO, int(self.timeout_s * 1000))
        s.setsockopt(zmq.RCVTIMEO, int(self.timeout_s * 1000))
        monitor = s.get_monitor_socket(_LINK_LOST)
        s.connect(self.address)
        return _Link(s, monitor)

    def _fail(self, message: str) -> None:
        if not self._failure:
            self._failure = message

    def _check_link(self) -> None:
        if self._failure:
            raise RobotError(f"{self._failure} [link down; call connect() to reconnect]")
        if not self._session:
            raise RobotError(f"remote robot at {self.address} is not connected: call connect() first")

    # --- requests -----------------------------------------------------------------------------------------
    def _request(self, cmd: str, timeout_s: float, **args: Any) -> Any:
        """Send one request and wait for its reply; maps error replies to ValueError / RobotError."""
        with self._lock:
            if self._ctx is None:
                raise RobotError(f"remote robot at {self.address} is closed: call connect() first")
            if self._sock is None:
                self._sock = self._new_socket()
            self._seq += 1
            seq = self._seq
            self._in_flight = True
            try:
                payload = self._exchange(self._sock, P.encode_request(cmd, seq, self._session, **args), cmd, timeout_s)
            except RobotError:
                self._sock.close()  # a REQ socket that missed its reply cannot send again
                self._sock = None
                raise
            finally:
                self._in_flight = False
                self._last_sent = time.monotonic()
        return self._result(payload, cmd, seq)

    def _exchange(self, link: _Link, request: bytes, cmd: str, timeout_s: float) -> bytes:
        """Send and wait for the reply; fails at once if the connection drops or is refused meanwhile."""
        deadline = time.monotonic() + timeout_s
        try:
            link.drain_events()  # a drop before this request is not this request's failure
            link.sock.send(request)
            poller = zmq.Poller()
            poller.register(link.sock, zmq.POLLIN)
            poller.register(link.monitor, zmq.POLLIN)
            while (left := deadline - time.monotonic()) > 0:
                ready = dict(poller.poll(max(1, int(left * 1000))))
                if link.sock in ready:
                    return link.sock.recv()
                if link.monitor in ready and link.drain_events():
                    self._fail(
                        f"robot server at {self.address} closed or refused the connection while "
                        f"answering {cmd} (is `robolearn robot-server` running there?)"
                    )
                    raise RobotError(self._failure)
        except zmq.ZMQError as e:
            self._fail(f"robot server at {self.address}: {cmd} failed ({e})")
            raise RobotError(self._failure) from None
        self._fail(
            f"robot server at {self.address} did not answer {cmd} within {timeout_s:g} s (is "
            f"`robolearn robot-server` running there and reachable?)"
        )
        raise RobotError(self._failure)

    def _result(self, payload: bytes, cmd: str, seq: int) -> Any:
        try:
            reply = P.decode_reply(payload)
        except P.ProtocolError as e:
            self._fail(f"robot server at {self.address}: {e}")
            raise RobotError(self._failure) from None
        if reply.ok:
            if reply.seq != seq:
                self._fail(f"robot server at {self.address} answered request {reply.seq}, expected {seq}")
                raise RobotError(self._failure)
            return reply.result
        if reply.kind == "value":
            raise ValueError(f"robot server rejected {cmd}: {reply.error}")
        if reply.kind == "auth":
            self._fail(f"robot server at {self.address} refused {cmd}: {reply.error}")
            raise RobotError(self._failure)
        raise RobotError(f"robot server at {self.address}: {cmd} failed ({reply.kind}): {reply.error}")

    def _call(self, cmd: str, timeout_s: float | None = None, **args: Any) -> Any:
        self._check_link()
        return self._request(cmd, timeout_s or self.timeout_s, **args)

    def _heartbeat_loop(self, sock: _Link) -> None:
        # >= 2.5 beats per control period, and >= 5 per server watchdog timeout (if configured shorter)
        period = min(1.0 / (HEARTBEAT_RATE * self.control_hz), self.heartbeat_timeout_s / 5)
        seq = 0
        try:
            while not self._hb_stop.wait(period):
                if self._failure:
                    return
                if self._in_flight or time.monotonic() - self._last_sent < period:
                    continue  # a request in flight or just answered already shows we are alive
                seq += 1
                try:
                    payload = self._exchange(
                        sock, P.encode_request("heartbeat", seq, self._session), "heartbeat", self.timeout_s
                    )
                    self._result(payload, "heartbeat", seq)
                except (RobotError, ValueError):
                    return  # _fail() recorded why; the next call raises it
        finally:
            sock.close()

    # --- Robot ----------------------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        return self._arrays(self._call("state"), "state")

    def apply(self, action: np.ndarray, space: str) -> dict[str, np.ndarray]:
        a = np.asarray(action, dtype=np.float64)  # shape is checked by the server, against the robot's spaces
        return self._arrays(self._call("apply", action=a.tolist(), space=str(space)), "apply")

    def home(self, noise: float = 0.0, seed: int | None = None) -> None:
        self._call("home", self.home_timeout_s, noise=float(noise), seed=None if seed is None else int(seed))

    def stop(self) -> None:
        """Stop the robot. A no-op when not connected; RobotError when the link is down (the server's watchdog
        stops the robot by itself after `heartbeat_timeout_s` of silence)."""
        if self._session:
            self._call("stop")

    def info(self) -> dict[str, Any]:
        """The served robot's info (from hello); before connect(), this client's."""
        return dict(self._info) if self._info else super().info()

    def _arrays(self, result: Any, what: str) -> dict[str, np.ndarray]:
        try:
            return P.arrays_from_wire(result, what)
        except P.ProtocolError as e:
            raise RobotError(f"robot server at {self.address}: {e}") from None
