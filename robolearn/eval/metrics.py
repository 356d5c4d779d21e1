"""Evaluation numbers: episode records -> success rates with Wilson 95% intervals, by task, seed, household,
scene and seen/held-out scenes; `results.json` and `episodes.jsonl` of an eval run folder.

An episode record (one per rolled-out episode, written by `robolearn eval`):

    {"task": str, "seed": int, "episode": int, "household": int|None, "scene": int|None,
     "seen": bool|None, "success": bool, "steps": int, "steps_to_success": int|None, "return": float,
     "video": "videos/x.mp4"|None}

`seen` is True when the episode's scene was in the policy's training data, False for a held-out scene and None
when unknown (Meta-World, or a policy that records no training scenes). See docs/evaluation.md for what each
number of a Summary means.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robolearn.utils import write_text_atomic

RESULTS_FILE = "results.json"
EPISODES_FILE = "episodes.jsonl"

# field -> (accepted types, may be None); the optional ones default to None when absent
REQUIRED_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "task": ((str,), False),
    "seed": ((numbers.Integral,), False),
    "episode": ((numbers.Integral,), False),
    "success": ((bool, numbers.Integral), False),
    "steps": ((numbers.Integral,), False),
    "return": ((numbers.Real,), False),
}
OPTIONAL_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "household": ((numbers.Integral,), True),
    "scene": ((numbers.Integral,), True),
    "seen": ((bool, numbers.Integral), True),
    "steps_to_success": ((numbers.Integral,), True),
    "video": ((str,), True),
}
META_DEFAULT_POLICY = {"path": "", "name": "", "encoder": "", "head": "", "train_data": None, "train_episodes": None}


class ResultsError(ValueError):
    """A results.json (or an episode record) that is missing a field or has a wrong one."""


# ----------------------------------------------------------------------------------------------- records


def _plain(value: Any, kind: tuple[type, ...]) -> Any:
    """numpy scalars and friends -> plain Python values (so records always serialise as JSON)."""
    if value is None:
        return None
    if bool in kind and numbers.Integral in kind:
        return bool(value)
    if numbers.Integral in kind:
        return int(value)
    if numbers.Real in kind:
        return float(value)
    return value


def validate_episode(record: Any, index: int) -> dict[str, Any]:
    """Check one episode record; returns a normalised copy (plain Python types, optional fields filled with None).
    A missing or mistyped field -> ValueError naming the episode index and the field."""
    if not isinstance(record, dict):
        raise ValueError(f"episode {index}: expected a dict (JSON object), got {type(record).__name__}")
    out: dict[str, Any] = {}
    for name, (kind, nullable) in {**REQUIRED_FIELDS, **OPTIONAL_FIELDS}.items():
        if name not in record:
            if name in REQUIRED_FIELDS:
                raise ValueError(f"episode {index}: missing field {name!r}")
            out[name] = None
            continue
        value = record[name]
        if value is None and nullable:
            out[name] = None
            continue
        ok = isinstance(value, kind) or (hasattr(value, "item") and isinstance(value.item(), kind))
        if ok and hasattr(value, "item") and not isinstance(value, (str, bool, int, float)):
            value = value.item()  # numpy scalar
        if (
            not ok
            or (bool in kind and isinstance(value, numbers.Integral) and value not in (0, 1, True, False))
            or (numbers.Real in kind and not math.isfinite(float(value)))
        ):
            raise ValueError(
                f"episode {index}: field {name!r} has a bad value {value!r} "
                f"(expected {'/'.join(k.__name__ for k in kind)}{' or null' if nullable else ''})"
            )
        out[name] = _plain(value, kind)
    if not out["task"]:
        raise ValueError(f"episode {index}: field 'task' is empty")
    for name, value in record.items():  # keep extra fields the rollout recorded
        out.setdefault(name, value)
    return out


def validate_episodes(episodes: Iterable[Any]) -> list[dict[str, Any]]:
    return [validate_episode(r, i) for i, r in enumerate(episodes)]


# ----------------------------------------------------------------------------------------------- summaries


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a success rate (95% at the default z = 1.96; see docs/evaluation.md); n = 0 ->
    (0, 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _rate(eps: list[dict[str, Any]], ci: bool = True) -> dict[str, Any]:
    n = len(eps)
    k = sum(1 for e in eps if e["success"])
    out: dict[str, Any] = {"episodes": n, "successes": k, "success_rate": k / n if n else 0.0}
    if ci:
        out["ci95"] = list(wilson_interval(k, n, z=1.96))
    return out


def _int_key(key: str) -> tuple[int, Any]:
    try:
        return 0, int(key)
    except ValueError:
        return 1, key


def _median(values: list[float]) -> float:
    s = sorted(values)
    m = len(s) // 2
    return float(s[m]) if len(s) % 2 else (s[m - 1] + s[m]) / 2.0


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """One Summary over `episodes` (validated first): success rate with its Wilson 95% interval, steps to
    success, per seed / household / scene breakdowns, seen vs held-out scenes and the per-seed mean and std."""
    eps = validate_episodes(episodes)
    if not eps:
        raise ValueError("summarize: no episodes")
    out = _rate(eps)
    steps = [float(e["steps_to_success"]) for e in eps if e["success"] and e["steps_to_success"] is not None]
    out["steps_to_success"] = {
        "mean": sum(steps) / len(steps) if steps else None,
        "median": _median(steps) if steps else None,
    }
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {"seed": {}, "household": {}, "scene": {}}
    for e in eps:
        groups["seed"].setdefault(str(e["seed"]), []).append(e)
        if e["household"] is not None:
            groups["household"].setdefault(str(e["household"]), []).append(e)
            if e["scene"] is not None:
                groups["scene"].setdefault(f"{e['household']}/{e['scene']}", []).append(e)
    out["by_seed"] = {k: _rate(groups["seed"][k], ci=False) for k in sorted(groups["seed"], key=_int_key)}
    out["by_household"] = {k: _rate(groups["household"][k]) for k in sorted(groups["household"], key=_int_key)}
    by_scene = {}
    for key in sorted(groups["scene"], key=lambda k: tuple(_int_key(p) for p in k.split("/"))):
        g = groups["scene"][key]
        flags = {e["seen"] for e in g}
        by_scene[key] = {**_rate(g), "seen": flags.pop() if len(flags) == 1 else None}
    out["by_scene"] = by_scene
    seen = [e for e in eps if e["seen"] is True]
    held = [e for e in eps if e["seen"] is False]
    out["seen"] = _rate(seen) if seen else None
    out["heldout"] = _rate(held) if held else None
    rates = [v["success_rate"] for v in out["by_seed"].values()]
    mean = sum(rates) / len(rates)
    out["seed_mean"] = mean
    out["seed_std"] = math.sqrt(sum((r - mean) ** 2 for r in rates) / len(rates))  # population std (ddof=0)
    return out


def summarize_run(episodes: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """The whole results.json: `meta` (suite, policy, versions, created, any extra keys) + a Summary per task
    (in order of first appearance) + the overall Summary + the validated episode records."""
    eps = validate_episodes(episodes)
    if not eps:
        raise ValueError("summarize_run: no episodes")
    if not isinstance(meta, dict):
        raise ValueError("summarize_run: meta must be a dict")
    policy = {**META_DEFAULT_POLICY, **(meta.get("policy") or {})}
    out: dict[str, Any] = {
        "robolearn_version": meta.get("robolearn_version") or _robolearn_version(),
        "mujoco_version": meta.get("mujoco_version") or _mujoco_version(),
        "suite": meta.get("suite") or "household",
        "created": meta.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
        "policy": policy,
    }
    for k, v in meta.items():
        out.setdefault(k, v)
    tasks: dict[str, list[dict[str, Any]]] = {}
    for e in eps:
        tasks.setdefault(e["task"], []).append(e)
    out["tasks"] = {t: summarize(g) for t, g in tasks.items()}
    out["overall"] = summarize(eps)
    out["episodes"] = eps
    return out


def _robolearn_version() -> str:
    from robolearn import __version__

    return __version__


def _mujoco_version() -> str:
    try:
        import mujoco

        return str(mujoco.__version__)
    except Exception:  # noqa: BLE001 (a version string is informative only)
        return "unknown"


# ----------------------------------------------------------------------------------------------- files


def write_results(run_dir: str | Path, results: dict[str, Any]) -> Path:
    """Write RUN/episodes.jsonl then RUN/results.json, each atomically (temp file + os.replace); a crash
    leaves the old or the new file, never half of one. Returns the results.json path."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(e, default=_json_default) + "\n" for e in results.get("episodes", []))
    write_text_atomic(run_dir / EPISODES_FILE, lines)
    path = run_dir / RESULTS_FILE
    write_text_atomic(path, json.dumps(results, indent=1, default=_json_default) + "\n")
    return path


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


SUMMARY_FIELDS = ("episodes", "successes", "success_rate", "ci95")


def _check_summary(s: Any, where: str, path: Path) -> None:
    if not isinstance(s, dict):
        raise ResultsError(f"{path}: field {where!r} must be an object")
    for f in SUMMARY_FIELDS:
        if f not in s:
            raise ResultsError(f"{path}: missing field '{where}.{f}'")
    if not isinstance(s["episodes"], int) or not isinstance(s["successes"], int):
        raise ResultsError(f"{path}: field '{where}.episodes'/'{where}.successes' must be integers")
    if not isinstance(s["success_rate"], (int, float)) or not 0.0 <= s["success_rate"] <= 1.0:
        raise ResultsError(
            f"{path}: field '{where}.success_rate' must be a number in [0, 1], got {s['success_rate']!r}"
        )
    ci = s["ci95"]
    if not (isinstance(ci, list) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci)):
        raise ResultsError(f"{path}: field '{where}.ci95' must be [lo, hi], got {ci!r}")


def load_results(path: str | Path) -> dict[str, Any]:
    """Read and check a results.json (or a run folder holding one). A missing file, bad JSON or a missing /
    malformed field -> ResultsError (a ValueError) naming the file and the field."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise ResultsError(f"{path}: no such file (an eval run folder holds results.json)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON ({e})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object at the top level")
    for f in ("suite", "policy", "tasks", "overall", "episodes"):
        if f not in data:
            raise ResultsError(f"{path}: missing field {f!r}")
    if not isinstance(data["policy"], dict):
        raise ResultsError(f"{path}: field 'policy' must be an object")
    for f in ("name", "encoder"):
        if f not in data["policy"]:
            raise ResultsError(f"{path}: missing field 'policy.{f}'")
    if not isinstance(data["tasks"], dict) or not data["tasks"]:
        raise ResultsError(f"{path}: field 'tasks' must be a non-empty object (task -> summary)")
    for t, s in data["tasks"].items():
        _check_summary(s, f"tasks.{t}", path)
    _check_summary(data["overall"], "overall", path)
    if not isinstance(data["episodes"], list):
        raise ResultsError(f"{path}: field 'episodes' must be a list")
    try:
        data["episodes"] = validate_episodes(data["episodes"])
    except ValueError as e:
        raise ResultsError(f"{path}: field 'episodes': {e}") from None
    return data
