"""Done marks: a stage's result is kept in <out>/stages/<name>.json with the settings it ran with, so a rerun
skips finished stages, redoes the interrupted one, and refuses (or, with overwrite, redoes) a finished stage
whose settings changed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robolearn.suite.study.config import StudyError
from robolearn.utils import write_text_atomic


class Stages:
    def __init__(self, out: Path, overwrite: bool = False, log: Callable[[str], None] = print) -> None:
        self.folder, self.overwrite, self.log = Path(out) / "stages", overwrite, log
        self.seconds: dict[str, float] = {}

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def done(self, name: str) -> dict[str, Any] | None:
        p = self.path(name)
        if not p.is_file():
            return None
        try:
            mark = json.loads(p.read_text())
        except ValueError as e:
            raise StudyError(f"{p}: unreadable done mark ({e}); delete it to redo stage {name!r}") from e
        return mark if mark.get("status") == "done" else None

    def run(self, name: str, key: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """fn()'s result, or the saved one when the stage finished before with the same `key`."""
        key = json.loads(json.dumps(key, default=str))
        mark = self.done(name)
        if mark is not None:
            if mark.get("key") == key:
                self.log(f"[study] {name}: done before ({mark['seconds']:.0f} s), skipped")
                self.seconds[name] = mark["seconds"]
                return mark["result"]
            if not self.overwrite:
                diff = ", ".join(
                    f"{k}: {mark['key'].get(k)!r} -> {key.get(k)!r}"
                    for k in sorted(set(mark["key"]) | set(key))
                    if mark["key"].get(k) != key.get(k)
                )
                raise StudyError(
                    f"{self.path(name)}: stage {name!r} was run with other settings ({diff}); pass --overwrite "
                    "to redo it, or use another --out"
                )
        self.log(f"[study] {name} ...")
        t = time.perf_counter()
        result = fn()
        seconds = round(time.perf_counter() - t, 1)
        self.seconds[name] = seconds
        self.folder.mkdir(parents=True, exist_ok=True)
        mark = {"status": "done", "key": key, "seconds": seconds, "result": result}
        write_text_atomic(self.path(name), json.dumps(mark, indent=1, default=str))
        self.log(f"[study] {name}: {seconds:.0f} s")
        return result
