"""The episode-file sequence shared by every recording session (the teleop station, real-robot rollouts).

recorder = EpisodeRecorder(out, writer_config)
writer = recorder.open(index, meta, [cam.spec() for cam in cameras])   # out/episodes/ep_<index>_<time>.h5
... writer.add_step(...) per step ...
# then exactly one of:
recorder.abort(why, cadence)          # fault: steps kept, success unknown, extra.aborted (nothing: no file)
recorder.discard()                    # the operator discarded it (re-record)
outcome = recorder.ask_label(ask)     # prompt y/n/u/x; "discarded" has already discarded the file
recorder.finish(success, source)      # label and close: the episode is complete under its final name
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robolearn.data import schema
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig, utc_now

EPISODES_DIR = "episodes"
# The operator's label prompt: answer -> outcome ("unlabelled": success unknown; "discarded": file dropped).
LABEL_CHOICES = {"y": "success", "n": "failure", "u": "unknown", "x": "discard"}
_LABEL_OUTCOMES = {"y": "success", "n": "failure", "u": "unlabelled", "x": "discarded"}
_SUCCESS = {"success": True, "failure": False}


class EpisodeRecorder:
    """Owns the one EpisodeWriter of the episode being recorded in `out`/episodes: opens it under a fresh
    name, and ends it exactly once: aborted (what was recorded is kept, success unknown), discarded, or
    labelled and closed. `writer` is None between episodes."""

    def __init__(self, out: Path, writer_config: WriterConfig | None = None) -> None:
        self.out = Path(out)
        self.writer_config = writer_config or WriterConfig()
        self.writer: EpisodeWriter | None = None

    @property
    def folder(self) -> Path:
        return self.out / EPISODES_DIR

    def existing(self) -> list[Path]:
        """Episodes already in the folder (complete ones, sorted)."""
        return sorted(self.folder.glob(f"*{schema.EPISODE_SUFFIX}")) if self.out.exists() else []

    def open(self, index: int, meta: EpisodeMeta, cameras: list[CameraSpec]) -> EpisodeWriter:
        """Start episode `index`: a new crash-safe writer at episodes/ep_<index>_<local time><suffix>."""
        path = self.folder / f"ep_{index:06d}_{time.strftime('%Y%m%dT%H%M%S')}{schema.EPISODE_SUFFIX}"
        self.writer = EpisodeWriter(path, meta, cameras, self.writer_config)
        return self.writer

    def _take(self) -> EpisodeWriter:
        writer, self.writer = self.writer, None
        if writer is None:
            raise RuntimeError("no episode is being recorded")
        return writer

    def abort(self, why: str, cadence: dict[str, Any], **extra: Any) -> Path | None:
        """End a faulted episode: extra.aborted/aborted_at (+ `extra`), the cadence report, success unknown;
        the recorded steps are kept (the final path), an episode without steps is discarded (None)."""
        writer = self._take()
        writer.update_extra(aborted=why, aborted_at=utc_now(), **extra)
        writer.set_cadence(cadence)
        writer.set_outcome(None, "unknown")
        if writer.steps_recorded > 0:
            return writer.close()
        writer.discard()
        return None

    def discard(self) -> None:
        """Drop the episode (the operator discarded it, to re-record)."""
        self._take().discard()

    def ask_label(self, ask: Callable[[str, dict[str, str]], str]) -> str:
        """Ask the operator for the label: "success", "failure", "unlabelled" or "discarded" (the episode is
        then already discarded)."""
        outcome = _LABEL_OUTCOMES[ask("label the episode", LABEL_CHOICES)]
        if outcome == "discarded":
            self.discard()
        return outcome

    def finish(self, outcome: str | bool | None, source: str, **extra: Any) -> Path:
        """Label (True/"success", False/"failure", anything else: unknown) from `source`, merge `extra`, close;
        returns the complete episode's path."""
        writer = self._take()
        success = _SUCCESS.get(outcome) if isinstance(outcome, str) else outcome
        writer.set_outcome(success, source)
        if extra:
            writer.update_extra(**extra)
        return writer.close()
