"""Serve a `Robot` over the network (ZeroMQ + msgpack, see protocol.py) so a station on another machine can
drive it through `RemoteRobot`.

Socket choice: ROUTER. A REP socket forces strict recv/send alternation per peer and hides who sent what;
ROUTER sees every peer's identity, replies to each request explicitly, and lets one loop serve the client's
command socket and its separate heartbeat socket (and refuse strangers) without any state machine to
wedge. Clients use REQ (or DEALER with an empty delimiter frame); the reply goes back with the same envelope.

Safety:
- Binds 127.0.0.1 by default. Any other address requires a shared token (>= 8 characters), checked in
  `hello` before the robot is touched. The token travels in clear text: expose the server only on a
  trusted network (or tunnel it, e.g. `ssh -L`).
- One client holds the robot at a time (a session from `hello`); another client may take over only once the
  holder has been silent for `takeover_after_s` (default max(1 s, 5 heartbeat timeouts); by then the robot is
  stopped). Longer than the watchdog on purpose: a flood that delays the holder's requests for a moment gets
  the robot stopped, not handed to the flooder.
- Heartbeat watchdog: when the session's client sends nothing (no request, no heartbeat) for longer than
  `heartbeat_timeout_s` (default two control periods, 2 / control_hz) the server calls `robot.stop()`, once
  per silence, and logs it.
- Vanished client: a socket monitor reports each closed TCP connection; when one of the session's connections
  (known by the source fd of its requests) closes without `close`, the robot is stopped at once.
- A refused request from the session's client (bad action, garbage on its connection, a driver error) stops
  the robot as well: a client that sends nonsense mid-episode gets a held robot, not its last velocity.
- Every bad request gets an error reply; nothing a client sends can stop the server. Limits: a request over
  `max_message_bytes` gets an error reply; a frame over 16x is refused by ZeroMQ (ZMQ_MAXMSGSIZE) when
  its size header arrives, before it is buffered, and its peer is dropped without a reply. ZeroMQ caps each
  frame, not the number of frames of one multipart message, so a local peer can still make the server buffer
  many frames (requests with more than one payload frame are refused once read).
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from robolearn import __version__
from robolearn.config import opt
from robolearn.hardware.robots import protocol as P
from robolearn.hardware.robots.base import Robot, RobotError
from robolearn.utils import is_loopback

log = logging.getLogger(__name__)

TOKEN_ENV = "ROBOLEARN_ROBOT_TOKEN"
MIN_TOKEN_CHARS = 8
_POLL_S = 0.05  # longest wait between checks of the stop flag / watchdog


@dataclass
class ServerConfig:
    bind: str = opt("127.0.0.1", help="address to listen on; anything but loopback requires --token")
    port: int = opt(5555, help="TCP port (0: pick a free one)")
    token: str = opt("", help=f"shared secret clients must present (default: ${TOKEN_ENV})")
    max_message_bytes: int = opt(P.DEFAULT_MAX_MESSAGE_BYTES, help="largest request accepted, in bytes")
    heartbeat_timeout_s: float = opt(0.0, help="stop the robot after this much client silence (0: two control periods)")
    takeover_after_s: float = opt(
        0.0,
        help="let another client take the robot after this much silence of the "
        "holder (0: max(1 s, 5 heartbeat timeouts))",
    )

    def __post_init__(self) -> None:
        if not self.token:
            self.token = os.environ.get(TOKEN_ENV, "")
        if not self.bind:
            raise ValueError("bind must be an address such as 127.0.0.1")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if not 1024 <= self.max_message_bytes <= 16 * 1024 * 1024:
            raise ValueError(f"max_message_bytes must be in 1 KiB..16 MiB, got {self.max_message_bytes}")
        if not self.heartbeat_timeout_s >= 0:
            raise ValueError(f"heartbeat_timeout_s must be >= 0, got {self.heartbeat_timeout_s}")
        if not self.takeover_after_s >= 0:
            raise ValueError(f"takeover_after_s must be >= 0, got {self.takeover_after_s}")
        if not is_loopback(self.bind) and not self.token:
            raise ValueError(
                f"refusing to serve the robot on {self.bind!r} without a token: pass --token (or set "
                f"${TOKEN_ENV}) so that only clients with it can move the robot, or bind 127.0.0.1"
            )
        if self.token and len(self.token) < MIN_TOKEN_CHARS:
            raise ValueError(f"token must be at least {MIN_TOKEN_CHARS} characters, got {len(self.token)}")

    def endpoint(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"tcp://{host}:{self.port or '*'}"


@dataclass
class _Session:
    id: str
    client: str
    last_seen: float
    stopped_for_silence: bool = False
    fds: set[int] = field(default_factory=set)  # source fds of the client's connections (ZMQ_SRCFD)


class RobotServer:
    """Serve `robot` to one client at a time. `start()` binds; `serve_forever()` (or `serve_in_thread()`) runs
    the loop until `shutdown()`. The caller owns the robot (the server connects and stops it, never closes)."""

    def __init__(self, robot: Robot, config: ServerConfig | None = None) -> None:
        self.robot = robot
        self.config = config or ServerConfig()
        hz = float(robot.control_hz)
        if not hz > 0:
            raise ValueError(f"robot {robot.name!r} has control_hz {hz}; expected > 0")
        self.heartbeat_timeout_s = self.config.heartbeat_timeout_s or 2.0 / hz
        self.takeover_after_s = max(
            self.config.takeover_after_s or max(1.0, 5 * self.heartbeat_timeout_s), self.heartbeat_timeout_s
        )
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._poller: zmq.Poller | None = None
        self._session: _Session | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serving = False
        self.address = ""
        self.silence_stops = 0  # how many times the watchdog stopped the robot
        self.disconnect_stops = 0  # ... a session connection closed without `close`
        self.error_stops = 0  # ... the session's client sent a request that was refused

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> str:
        """Connect the robot and bind; returns the endpoint (with the real port when port was 0)."""
        if self._sock is not None:
            return self.address
        self.robot.connect()
        ctx = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        # transport-level cap far above the protocol limit: bigger frames drop the peer (no reply) so a client
        # cannot make the server buffer unbounded data; up to it, oversized requests get an error reply
        sock.setsockopt(zmq.MAXMSGSIZE, 16 * self.config.max_message_bytes)
        if ":" in self.config.bind:
            sock.setsockopt(zmq.IPV6, 1)
        try:
            sock.bind(self.config.endpoint())
        except zmq.ZMQError as e:
            sock.close()
            ctx.term()
            raise RobotError(f"robot server cannot listen on {self.config.endpoint()}: {e}") from None
        self._ctx, self._sock = ctx, sock
        self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info(
            "serving %s at %s (heartbeat timeout %.3f s, token %s)",
            self.robot.name,
            self.address,
            self.heartbeat_timeout_s,
            "required" if self.config.token else "not required",
        )
        return self.address

    def serve_forever(self) -> None:
        """Handle requests until `shutdown()` (or KeyboardInterrupt); then stop the robot and close the socket."""
        self.start()
        self._serving = True
        try:
            while not self._stop.is_set():
                self._serve_once()
        except KeyboardInterrupt:
            log.info("interrupted")
        finally:
            self._serving = False
            self._close()

    def serve_in_thread(self) -> RobotServer:
        self.start()
        self._thread = threading.Thread(target=self.serve_forever, name="robot-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving (from any thread; from a signal handler it only asks the loop to end)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
            self._thread = None
        if not self._serving:
            self._close()

    def __enter__(self) -> RobotServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _close(self) -> None:
        if self._sock is None:
            return
        self._safe_stop("server shutting down")
        try:
            self._sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self._monitor.close(linger=0)
        self._sock.close(linger=0)
        self._ctx.term()
        self._sock = self._ctx = self._monitor = self._poller = None
        self._session = None
        log.info("robot server at %s closed", self.address)

    # --- loop --------------------------------------------------------------------------------------------
    def _serve_once(self) -> None:
        wait = _POLL_S
        s = self._session
        if s is not None and not s.stopped_for_silence:
            wait = max(0.0, min(wait, s.last_seen + self.heartbeat_timeout_s - time.monotonic()) + 1e-3)
        ready = dict(self._poller.poll(int(wait * 1000) + 1))
        if self._monitor in ready:
            self._drain_monitor()
        if self._sock in ready:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                frames = []
            if len(frames) >= 2:  # [identity, (empty delimiter,) payload]
                self._reply(frames)
        self._check_watchdog()

    def _reply(self, frames: list[zmq.Frame]) -> None:
        delimited = len(frames) >= 3 and not frames[1].bytes
        envelope = [frames[0].bytes, b""] if delimited else [frames[0].bytes]
        fd = _source_fd(frames[-1])
        if len(frames) != len(envelope) + 1:
            message = (
                f"malformed message: expected one payload frame after the envelope, got "
                f"{len(frames) - len(envelope)}; use a REQ socket, or DEALER with an empty delimiter frame"
            )
            self._hold_after_error(None, fd, message)
            reply = P.error_reply(-1, "protocol", message)
        else:
            reply = self.handle(frames[-1].bytes, fd)
        try:
            self._sock.send_multipart([*envelope, reply], zmq.NOBLOCK)
        except zmq.ZMQError as e:  # the peer went away or is not reading: nothing to do
            log.debug("reply dropped: %s", e)

    def _drain_monitor(self) -> None:
        while self._monitor.poll(0):
            try:
                event = recv_monitor_message(self._monitor)
            except (zmq.ZMQError, ValueError, IndexError):
                continue
            s, fd = self._session, int(event.get("value", -1))
            if event["event"] == zmq.EVENT_DISCONNECTED and s is not None and fd in s.fds:
                s.fds.discard(fd)
                self.disconnect_stops += 1
                s.stopped_for_silence = True  # already stopped for this silence
                log.warning("client %s closed a connection without `close`: stopping the robot", s.client)
                self._safe_stop("client connection closed")

    def _check_watchdog(self) -> None:
        s = self._session
        if s is None or s.stopped_for_silence:
            return
        silent = time.monotonic() - s.last_seen
        if silent > self.heartbeat_timeout_s:
            s.stopped_for_silence = True
            self.silence_stops += 1
            log.warning(
                "client %s silent for %.3f s (> %.3f s): stopping the robot", s.client, silent, self.heartbeat_timeout_s
            )
            self._safe_stop("heartbeat watchdog")

    def _safe_stop(self, why: str) -> None:
        try:
            self.robot.stop()
        except Exception as e:  # a failing stop must not take the server down; say so loudly
            log.error("robot.stop() failed (%s): %s: %s", why, type(e).__name__, e)

    # --- requests ------------------------------------------------------------------------------------------
    def handle(self, payload: bytes, fd: int = -1) -> bytes:
        """One request's reply bytes (`fd`: the source fd of the connection it came on, -1 if unknown); never
        raises. A refused request from the session's client stops the robot."""
        seq = -1
        session: _Session | None = None
        try:
            req = P.decode_request(payload, self.config.max_message_bytes)
            seq = req.seq
            if req.cmd == "hello":
                return P.ok_reply(seq, self._hello(req, fd))
            session = self._authorise(req, fd)
            try:
                return P.ok_reply(seq, self._dispatch(req))
            finally:
                session.last_seen = time.monotonic()  # the client waited for us, it was not silent
        except P.ProtocolError as e:
            kind, message = e.kind, str(e)
        except ValueError as e:
            kind, message = "value", str(e)
        except RobotError as e:
            kind, message = "robot", str(e)
        except Exception as e:  # a driver bug: report it, keep serving
            log.exception("internal error handling a request")
            kind, message = "internal", f"{type(e).__name__}: {e}"
        self._hold_after_error(session, fd, message)
        return P.error_reply(seq, kind, message)

    def _hold_after_error(self, session: _Session | None, fd: int, message: str) -> None:
        """Stop the robot when the refused request came from the session's client (by session or connection)."""
        s = self._session
        if s is None or not (session is s or (fd >= 0 and fd in s.fds)):
            return
        self.error_stops += 1
        log.warning("refused a request from client %s mid-session (%s): stopping the robot", s.client, message[:200])
        self._safe_stop("refused request")

    def _hello(self, req: P.Request, fd: int = -1) -> dict[str, Any]:
        a = req.args
        if self.config.token and not hmac.compare_digest(a["token"].encode(), self.config.token.encode()):
            log.warning(
                "refused hello from client %r: %s token", a["client"][: P.MAX_ID_CHARS], "wrong" if a["token"] else "no"
            )
            what = "wrong token" if a["token"] else "missing token (empty)"
            raise P.ProtocolError(
                f"{what}: this robot server requires the shared token it was started with "
                f"(client: --token or ${TOKEN_ENV})",
                "auth",
            )
        if a["protocol"] != P.PROTOCOL_VERSION:
            raise P.ProtocolError(
                f"client speaks robot protocol {a['protocol']}, this server speaks "
                f"{P.PROTOCOL_VERSION}; install matching robolearn versions"
            )
        client = a["client"]
        if not client or len(client) > P.MAX_ID_CHARS:
            raise P.ProtocolError(f"client id must be 1..{P.MAX_ID_CHARS} characters")
        now = time.monotonic()
        s = self._session
        if s is not None and s.client != client and now - s.last_seen <= self.takeover_after_s:
            raise P.ProtocolError(
                f"robot is in use by client {s.client!r} (heard {now - s.last_seen:.3f} s ago); it "
                f"can be taken over once that client is silent for {self.takeover_after_s:.3f} s",
                "busy",
            )
        if s is not None and s.client != client:
            log.warning("client %r takes over the robot from silent client %r", client, s.client)
        self._session = _Session(secrets.token_hex(16), client, time.monotonic(), fds={fd} if fd >= 0 else set())
        log.info("client %r connected", client)
        return {
            "session": self._session.id,
            "protocol": P.PROTOCOL_VERSION,
            "info": self.robot.info(),
            "heartbeat_timeout_s": self.heartbeat_timeout_s,
            "server": f"robolearn {__version__}",
        }

    def _authorise(self, req: P.Request, fd: int = -1) -> _Session:
        s = self._session
        if s is None or not hmac.compare_digest(req.session.encode(), s.id.encode()):
            raise P.ProtocolError(
                f"{req.cmd}: unknown or expired session; send hello first (another client may "
                f"have taken over, or the server restarted)",
                "auth",
            )
        s.last_seen = time.monotonic()
        s.stopped_for_silence = False
        if fd >= 0:
            s.fds.add(fd)
        return s

    def _dispatch(self, req: P.Request) -> Any:
        a = req.args
        if req.cmd == "heartbeat":
            return None
        if req.cmd == "state":
            return self.robot.state()
        if req.cmd == "apply":
            if a["space"] not in self.robot.action_spaces:
                raise ValueError(
                    f"robot {self.robot.name!r} does not take {a['space']!r} actions; it takes "
                    f"{list(self.robot.action_spaces)}"
                )
            return self.robot.apply(P.check_action(a["action"], a["space"]), a["space"])
        if req.cmd == "home":
            P.check_home(float(a["noise"]), a["seed"])
            self.robot.home(noise=float(a["noise"]), seed=a["seed"])
            return None
        if req.cmd == "stop":
            self.robot.stop()
            return None
        if req.cmd == "close":
            log.info("client %r closed its session", self._session.client)
            self._session = None
            self.robot.stop()
            return None
        raise P.ProtocolError(f"unknown command {req.cmd!r}")  # unreachable: decode_request checks


def _source_fd(frame: zmq.Frame) -> int:
    """The fd of the TCP connection a frame arrived on (ZMQ_SRCFD), -1 when libzmq does not say."""
    try:
        return int(frame.get(zmq.SRCFD))
    except (zmq.ZMQError, AttributeError, TypeError, ValueError):
        return -1
