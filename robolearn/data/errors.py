"""Errors of the data stage (writer, reader, catalog, dataset tools). Every message names the file, the field
and what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# What h5py, numpy and the decoders raise on damaged files (bad checksums, truncated blocks, absurd declared
# shapes, garbage bytes). Readers turn these into EpisodeError naming the file and the field.
H5_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    RuntimeError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OverflowError,
    MemoryError,
)


@dataclass
class Problem:
    """One validation finding."""

    path: str
    field: str
    message: str
    severity: str = "error"  # error | warning | note (a remark that needs no action, e.g. no checksums)

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.message}"


class EpisodeError(Exception):
    """An episode file cannot be used as asked. `problems` lists what is wrong."""

    def __init__(self, path: str | Path, field: str, message: str, problems: list[Problem] | None = None):
        self.path, self.field = str(path), field
        self.problems = problems or [Problem(str(path), field, message)]
        super().__init__(f"{path}: {field}: {message}")

    def __reduce__(self):  # picklable (worker processes raise it): rebuild from the fields, not str(self)
        return (self.__class__, (self.path, self.field, self.problems[0].message, self.problems))


class EpisodeWriteError(EpisodeError):
    """Writing failed (disk full, file-size limit, I/O error). Data flushed before the failure stays
    salvageable with `robolearn data repair`."""


class SchemaVersionError(EpisodeError):
    """The file declares a schema version this robolearn does not know."""
