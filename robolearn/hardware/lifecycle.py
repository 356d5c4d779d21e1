"""The one lifecycle of robots, cameras and devices: `connect()` opens the link (idempotent), `disconnect()`
releases it (idempotent), `is_connected` says which, and `with thing:` connects and disconnects around a
block (LeRobot's vocabulary).

Subclasses implement `connect()` / `disconnect()`; the base wraps every implementation (in
`__init_subclass__`) so `is_connected` follows the calls without each class tracking it (a class may
override `is_connected` with the hardware's own state). The bases used other names before
(Camera.start/stop, Device.start/close, Robot.close); each base lists them in `_RENAMED`. A plugin class
that still implements only an old name keeps working: its method serves the new name, with a
DeprecationWarning when the class is defined. Calling an old name on any instance warns and calls the new
one.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

_STATE = "_lifecycle_connected"


class Connectable:
    """Base of Robot, Camera and Device: connect / disconnect / is_connected / context manager."""

    _RENAMED: ClassVar[dict[str, str]] = {}  # deprecated method name -> its new name

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for old, new in ({} if "_RENAMED" in vars(cls) else cls._RENAMED).items():
            if old in vars(cls) and not _defined_below_base(cls, new):
                warnings.warn(
                    f"{cls.__module__}.{cls.__qualname__} implements {old}(), the old name of {new}(); "
                    f"rename it to {new}() (see docs/robot-drivers.md)",
                    DeprecationWarning,
                    stacklevel=3,
                )
                setattr(cls, new, _forward(new, old))
        for name, state in (("connect", True), ("disconnect", False)):
            fn = vars(cls).get(name)
            if fn is not None and not getattr(fn, "_tracks_connection", False):
                setattr(cls, name, _tracking(fn, state))

    def connect(self) -> None:
        """Open the link to the hardware (idempotent)."""

    def disconnect(self) -> None:
        """Release the hardware (idempotent)."""

    @property
    def is_connected(self) -> bool:
        """True between connect() and disconnect()."""
        return bool(getattr(self, _STATE, False))

    def __enter__(self) -> Any:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def _renamed(self, old: str) -> None:
        """Body of a deprecated alias `old()` on a base class."""
        new = type(self)._RENAMED[old]
        if getattr(getattr(type(self), new), "_forwards_to", None) == old:
            # an old-style subclass calling super().<old>(): what the base's <old>() used to do
            getattr(_base(type(self)), new)(self)
            return
        warnings.warn(f"{type(self).__name__}.{old}() is deprecated; call {new}()", DeprecationWarning, stacklevel=3)
        getattr(self, new)()


def _base(cls: type) -> type:
    """The class that declares `_RENAMED` (Robot, Camera or Device)."""
    return next(c for c in cls.__mro__ if "_RENAMED" in vars(c))


def _defined_below_base(cls: type, name: str) -> bool:
    base = _base(cls)
    return any(name in vars(c) for c in cls.__mro__[: cls.__mro__.index(base)])


def _forward(new: str, old: str) -> Callable[[Any], None]:
    def method(self: Any) -> None:
        getattr(self, old)()

    method.__name__ = method.__qualname__ = new
    method._forwards_to = old  # type: ignore[attr-defined]
    return method


def _tracking(fn: Callable[..., Any], state: bool) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = fn(self, *args, **kwargs)
        setattr(self, _STATE, state)
        return out

    method._tracks_connection = True  # type: ignore[attr-defined]
    return method
