"""Wire protocol between `RobotServer` and `RemoteRobot`: one msgpack map per ZeroMQ message (never pickle).

Requests (client -> server), protocol version 1. Every request is a map with `cmd` (str) and `seq` (int, echoed
in the reply); every command except `hello` also carries `session` (str, returned by `hello`):

    hello      token: str, protocol: int, client: str   -> {session, protocol, info, heartbeat_timeout_s, server}
    state                                               -> {joint_positions: [7 floats], ..., gripper_position: float}
    apply      action: [floats], space: str             -> {cartesian_velocity: [6], ..., gripper_position: float}
    home       noise: float in [0, 1], seed: int | nil  -> nil
    stop                                                -> nil
    heartbeat                                           -> nil
    close                                               -> nil   (stops the robot, ends the session)

Replies (server -> client): `{seq, ok: true, result}` or `{seq, ok: false, kind, error}` where `error` is a
human-readable message and `kind` one of ERROR_KINDS. `seq` is -1 when the request could not be decoded.

Arrays travel as (nested) lists of floats, scalars as floats (e.g. gripper_position); the receiver turns
them back into float64 numpy arrays. Every message is checked before use: its size against a limit (before
decoding), its type (a map), its command (known), its fields (exactly the documented ones, each of the
documented type) and, for `apply`, the action's length for its space, its finiteness and its range
(ACTION_BOUNDS: values up to the bound go to the robot, which clips them to its own limits; beyond it the action
is refused as a unit or scale mistake, never applied).
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
MAX_ID_CHARS = 128
MAX_DEPTH = 1024  # msgpack's nesting limit (StackError beyond it)
MAX_HOME_NOISE = 1.0  # rad, per joint
MAX_SEED = 2**63 - 1

# Largest |value| accepted per action space (arm values; gripper separately). Up to the bound the robot clips to
# its limits (cartesian_velocity to [-1, 1], joints to their ranges and speed limit); beyond it the sender has
# the units or the scale wrong. cartesian_position: xyz [m], then a wxyz quaternion whose norm must lie in
# QUAT_NORM_RANGE (the robot normalises it).
ACTION_BOUNDS: dict[str, float] = {
    "cartesian_velocity": 2.0,
    "cartesian_position": 5.0,
    "joint_position": 2 * math.pi,
    "joint_velocity": 10.0,
}
QUAT_NORM_RANGE = (0.1, 2.0)
GRIPPER_RANGE = (-1.0, 2.0)  # the robot clips to 0 (open) .. 1 (closed)

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
        if isinstance(e, msgpack.StackError):
            raise ProtocolError(
                f"malformed message: nested deeper than {MAX_DEPTH} levels; a request is a flat map "
                f"of scalars and one flat list"
            ) from None
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
    bad_keys = [k for k in msg if not isinstance(k, str)]
    if bad_keys:
        raise ProtocolError(f"malformed message: field names must be strings, got {_brief(bad_keys)}")
    seq = msg.get("seq")
    if not _is_int(seq):
        got = "no 'seq' field" if "seq" not in msg else f"got {_brief(seq)}"
        raise ProtocolError(f"malformed message: 'seq' must be an integer (echoed in the reply), {got}")
    cmd = msg.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        what = "no 'cmd' field" if "cmd" not in msg else f"unknown command {_brief(cmd)}"
        raise ProtocolError(f"{what}; expected 'cmd' to be one of {sorted(COMMANDS)}")
    spec = COMMANDS[cmd]
    allowed = {"cmd", "seq", *spec, *(() if cmd == "hello" else ("session",))}
    extra = sorted(set(msg) - allowed)
    if extra:
        shown = f"{extra[:8]}" if len(extra) <= 8 else f"{extra[:8]} (+{len(extra) - 8} more)"
        raise ProtocolError(f"{cmd}: unexpected field(s) {shown[:200]}; expected {sorted(allowed)}")
    session = msg.get("session", "")
    if cmd != "hello" and not isinstance(session, str):
        raise ProtocolError(f"{cmd}: 'session' must be a string, got {type(session).__name__}")
    args = {}
    for name, types in spec.items():
        want = " or ".join("nil" if t is type(None) else t.__name__ for t in types)
        if name not in msg:
            raise ProtocolError(f"{cmd}: missing field {name!r} ({want})")
        value = msg[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ProtocolError(f"{cmd}: field {name!r} must be {want}, got {type(value).__name__}")
        args[name] = value
    return Request(cmd, int(seq), session, args)


def check_action(action: list[Any], space: str) -> np.ndarray:
    """The action as float64, or ValueError naming the space, the expected length/range and the problem."""
    if space not in ACTION_DIMS:
        raise ValueError(f"unknown action space {_brief(space)}; expected one of {tuple(ACTION_DIMS)}")
    n = ACTION_DIMS[space]
    for i, v in enumerate(action):
        if not isinstance(v, _NUMBER) or isinstance(v, bool):
            raise ValueError(
                f"action for {space!r} must be a flat list of {n} (+1 gripper) numbers; value {i} is "
                f"a {type(v).__name__}: {_brief(v)}"
            )
    if len(action) not in (n, n + 1):
        raise ValueError(f"action for {space!r} must have {n} values (+1 optional gripper), got {len(action)}")
    a = np.asarray(action, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action for {space!r} contains NaN or inf: {a.tolist()}")
    bound = ACTION_BOUNDS[space]
    arm = a[:3] if space == "cartesian_position" else a[:n]
    if np.any(np.abs(arm) > bound):
        unit = {
            "cartesian_velocity": " (normalised, the robot clips to [-1, 1])",
            "cartesian_position": " m",
            "joint_position": " rad",
            "joint_velocity": " rad/s",
        }[space]
        raise ValueError(
            f"action for {space!r} is out of range: |value| must be <= {bound:g}{unit}, got "
            f"{arm.tolist()}; refused, not applied"
        )
    if space == "cartesian_position":
        norm = float(np.linalg.norm(a[3:7]))
        lo, hi = QUAT_NORM_RANGE
        if not lo <= norm <= hi:
            raise ValueError(
                f"action for 'cartesian_position': quaternion (wxyz, values 3..6) must have a norm in "
                f"[{lo:g}, {hi:g}] (it is normalised), got norm {norm:g}; refused, not applied"
            )
    if a.shape[0] == n + 1 and not GRIPPER_RANGE[0] <= a[n] <= GRIPPER_RANGE[1]:
        raise ValueError(
            f"action for {space!r}: gripper value (last) must be in [{GRIPPER_RANGE[0]:g}, "
            f"{GRIPPER_RANGE[1]:g}] (0 open .. 1 closed, clipped), got {a[n]:g}; refused, not applied"
        )
    return a


def check_home(noise: float, seed: int | None) -> None:
    if not math.isfinite(noise) or not 0 <= noise <= MAX_HOME_NOISE:
        raise ValueError(f"home noise must be a finite number >= 0 and <= {MAX_HOME_NOISE:g} rad, got {noise}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ValueError(f"home seed must be nil or an integer in [0, 2**63 - 1], got {seed}")


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


def _brief(v: Any, limit: int = 80) -> str:
    """A short repr that never recurses into deep nesting (a hostile message may nest ~1000 levels)."""
    if isinstance(v, (list, dict)):
        return f"a {type(v).__name__} of {len(v)}"
    r = repr(v)
    return r if len(r) <= limit else r[:limit] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
