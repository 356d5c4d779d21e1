"""Wire protocol between `RobotServer` and `RemoteRobot`: one msgpack map per ZeroMQ message (never pickle).

Requests (client -> server), protocol version 1. Every request is a map with `cmd` (str) and `seq` (int, echoed
in the reply); every command except `hello` also carries `session` (str, returned by `hello`):

    hello      token: str, protocol: int, client: str   -> {session, protocol, info, heartbeat_timeout_s, server}
    state                                               -> {joint_positions: [7 floats], ..., gripper_position: float}
    apply      action: [floats], space: str             -> {cartesian_velocity: [6], ..., gripper_position: float}
    home       noise: float >= 0, seed: int | nil       -> nil
    stop                                                -> nil
    heartbeat                                           -> nil
    close                                               -> nil   (stops the robot, ends the session)

Replies (server -> client): `{seq, ok: true, result}` or `{seq, ok: false, kind, error}` where `error` is a
human-readable message and `kind` one of ERROR_KINDS. `seq` is -1 when the request could not be decoded.

Arrays travel as (nested) lists of floats, scalars as floats (e.g. gripper_position); the receiver turns
them back into float64 numpy arrays. Every message is checked before use: its size against a limit (before
decoding), its type (a map), its command (known), its fields (exactly the documented ones, each of the
documented type) and, for `apply`, the action's length for its space and its finiteness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from robolearn.data.schema import ACTION_FIELDS

PROTOCOL_VERSION = 1
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
MAX_ACTION_VALUES = 64
MAX_ID_CHARS = 128

# Arm action sizes per space (gripper value optional, last), from the episode schema.
ACTION_DIMS: dict[str, int] = {f.path.split("/")[-1]: f.shape[0] for f in ACTION_FIELDS if "gripper" not in f.path}

# protocol: malformed/oversized/unknown request; auth: token or session refused; busy: another client holds
# the robot; value: bad action/argument (ValueError); robot: the robot failed (RobotError); internal: a bug.
ERROR_KINDS = ("protocol", "auth", "busy", "value", "robot", "internal")

_NUMBER = (int, float)
# Fields of each command (besides cmd, seq, session) and their allowed types.
COMMANDS: dict[str, dict[str, tuple[type, ...]]] = {
    "hello": {"token": (str,), "protocol": (int,), "client": (str,)},
    "state": {},
    "apply": {"action": (list,), "space": (str,)},
    "home": {"noise": _NUMBER, "seed": (int, type(None))},
    "stop": {},
    "heartbeat": {},
    "close": {},
}


class ProtocolError(ValueError):
    """A message broke the protocol; `kind` is one of ERROR_KINDS and the text says what was expected."""

    def __init__(self, message: str, kind: str = "protocol") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class Request:
    cmd: str
    seq: int
    session: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    seq: int
    ok: bool
    result: Any = None
    kind: str = ""
    error: str = ""


def pack(obj: Any) -> bytes:
    return msgpack.packb(to_wire(obj), use_bin_type=True)


def unpack(payload: bytes, max_bytes: int) -> Any:
    """Decode one message, refusing it before decoding when it exceeds `max_bytes`."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        return msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=max_bytes,
            max_bin_len=max_bytes,
            max_array_len=max_bytes,
            max_map_len=max_bytes,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises several types (ValueError, ExtraData, FormatError, StackError ...)
        raise ProtocolError(f"malformed message: not a msgpack document ({type(e).__name__}: {e})") from None


def to_wire(obj: Any) -> Any:
    """numpy arrays/scalars -> lists/floats, tuples -> lists, recursively; other types must be msgpack-native."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    raise TypeError(f"cannot send a {type(obj).__name__} over the robot protocol")


def encode_request(cmd: str, seq: int, session: str = "", **args: Any) -> bytes:
    msg: dict[str, Any] = {"cmd": cmd, "seq": seq, **args}
    if cmd != "hello":
        msg["session"] = session
    return pack(msg)


def decode_request(payload: bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Request:
    """Parse and type-check a request; ProtocolError says what is wrong."""
    msg = unpack(payload, max_bytes)
    if not isinstance(msg, dict):
        raise ProtocolError(f"malformed message: expected a map with 'cmd', got a {type(msg).__name__}")
    seq = msg.get("seq")
    if not _is_int(seq):
        raise ProtocolError(f"malformed message: 'seq' must be an integer, got {seq!r}")
    cmd = msg.get("cmd")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; expected one of {sorted(COMMANDS)}")
    spec = COMMANDS[cmd]
    allowed = {"cmd", "seq", *spec, *(() if cmd == "hello" else ("session",))}
    extra = sorted(set(msg) - allowed)
    if extra:
        raise ProtocolError(f"{cmd}: unexpected field(s) {extra}; expected {sorted(allowed)}")
    session = msg.get("session", "")
    if cmd != "hello" and not isinstance(session, str):
        raise ProtocolError(f"{cmd}: 'session' must be a string, got {type(session).__name__}")
    args = {}
    for name, types in spec.items():
        if name not in msg:
            raise ProtocolError(f"{cmd}: missing field {name!r}")
        value = msg[name]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join("nil" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError(f"{cmd}: field {name!r} must be {want}, got {type(value).__name__}")
        args[name] = value
    return Request(cmd, int(seq), session, args)


def check_action(action: list[Any], space: str) -> np.ndarray:
    """The action as float64, or ValueError naming the space, the expected length and the problem."""
    if space not in ACTION_DIMS:
        raise ValueError(f"unknown action space {space!r}; expected one of {tuple(ACTION_DIMS)}")
    n = ACTION_DIMS[space]
    if not all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in action):
        raise ValueError(
            f"action for {space!r} must be a flat list of {n} (+1 gripper) numbers, got {str(action)[:200]}"
        )
    if len(action) not in (n, n + 1):
        raise ValueError(f"action for {space!r} must have {n} values (+1 optional gripper), got {len(action)}")
    a = np.asarray(action, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action for {space!r} contains NaN or inf: {a.tolist()}")
    return a


def check_home(noise: float, seed: int | None) -> None:
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"home noise must be a finite number >= 0 [rad], got {noise}")


def ok_reply(seq: int, result: Any = None) -> bytes:
    return pack({"seq": seq, "ok": True, "result": result})


def error_reply(seq: int, kind: str, message: str) -> bytes:
    assert kind in ERROR_KINDS, kind
    return pack({"seq": seq, "ok": False, "kind": kind, "error": message})


def decode_reply(payload: bytes, max_bytes: int = 16 * DEFAULT_MAX_MESSAGE_BYTES) -> Reply:
    msg = unpack(payload, max_bytes)
    if not isinstance(msg, dict) or not isinstance(msg.get("ok"), bool) or not _is_int(msg.get("seq")):
        raise ProtocolError(f"malformed reply: expected a map with 'seq' and 'ok', got {str(msg)[:200]}")
    if msg["ok"]:
        return Reply(msg["seq"], True, msg.get("result"))
    kind = msg.get("kind") if msg.get("kind") in ERROR_KINDS else "internal"
    return Reply(msg["seq"], False, kind=kind, error=str(msg.get("error", "")))


def arrays_from_wire(result: Any, what: str) -> dict[str, np.ndarray]:
    """A {name: list|float} map from the wire as {name: float64 array}; ProtocolError if it is not one."""
    if not isinstance(result, dict):
        raise ProtocolError(f"malformed {what} reply: expected a map of arrays, got {type(result).__name__}")
    try:
        return {str(k): np.asarray(v, dtype=np.float64) for k, v in result.items()}
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"malformed {what} reply: {e}") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
