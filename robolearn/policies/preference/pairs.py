"""Preference pairs for DPO, mined from episode files.

A pair is (preferred segment, rejected segment) from the same scene (household + scene_id) and the same
instruction (or, with `match="task"`, the same task id). Two sources:

- outcome pairs: a window of a successful episode (success=1, no intervention) is preferred to a window of
  a failed one (success=0, no intervention) in the same group, aligned by progress: each rejected window
  is paired with the preferred window whose start is closest in episode progress (start / length);
- correction pairs: in an episode with operator takeovers (`intervention` steps), the operator's first
  `segment` steps of each takeover are preferred to the policy's `segment` steps just before it (same
  episode, so same scene and instruction; its success label is not used).

Episodes with success unknown (-1) and no intervention give nothing. A segment is a window of
`segment` steps (shorter when the episode or the takeover is); windows start every `stride` steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MATCHES = ("instruction", "task")


class PairMiningError(ValueError):
    """No usable preference pairs (the message says what the episodes hold and what a pair needs)."""


@dataclass(frozen=True)
class Segment:
    """Steps [start, start + length) of one episode file."""

    path: Path
    start: int
    length: int


@dataclass(frozen=True)
class Pair:
    preferred: Segment
    rejected: Segment
    kind: str  # "outcome" | "correction"
    group: tuple[str, str, str]  # (household, scene_id, instruction or task)


@dataclass
class EpisodeFacts:
    """What pair mining reads from one episode: its group, outcome, length and intervention flags."""

    path: Path
    group: tuple[str, str, str]
    success: int
    num_steps: int
    intervention: np.ndarray


@dataclass
class MiningReport:
    """Counts of what the episodes held (the no-pair error and the run's metadata show them)."""

    episodes: int = 0
    successes: int = 0
    failures: int = 0
    unknown: int = 0
    with_interventions: int = 0
    groups: int = 0
    groups_with_both: int = 0
    outcome_pairs: int = 0
    correction_pairs: int = 0
    skipped_short: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d.pop("notes")
        return d


def read_facts(path: Path, match: str = "instruction") -> EpisodeFacts:
    """An episode's group key, success label, length and intervention flags (EpisodeError if unreadable)."""
    from robolearn.data.reader import Episode

    if match not in MATCHES:
        raise ValueError(f"match must be one of {MATCHES}, got {match!r}")
    with Episode(path) as ep:
        a = ep.attrs
        if match == "instruction":
            texts = ep.instructions()
            active = ep.array("language/active") if ep.num_steps else np.zeros(1, np.int64)
            i = int(active[0]) if len(active) else 0
            what = texts[i] if 0 <= i < len(texts) else str(a.get("task", ""))
        else:
            what = str(a.get("task", ""))
        success = a.get("success", -1)
        inter = ep.array("intervention").astype(bool) if ep.num_steps else np.zeros(0, bool)
        return EpisodeFacts(
            Path(path),
            (str(a.get("household", "")), str(a.get("scene_id", "")), what),
            int(success) if isinstance(success, (int, np.integer)) and not isinstance(success, bool) else -1,
            int(ep.num_steps),
            inter,
        )


def _windows(path: Path, n: int, segment: int, stride: int) -> list[Segment]:
    length = min(segment, n)
    return [Segment(path, s, length) for s in range(0, n - length + 1, stride)]


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of every run of True."""
    d = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def correction_pairs(f: EpisodeFacts, segment: int) -> list[Pair]:
    """The operator's takeover steps preferred to the policy's steps just before each takeover."""
    pairs = []
    for a, b in _runs(f.intervention):
        if a == 0:
            continue  # nothing of the policy's before it
        before = max(0, a - segment)
        if f.intervention[before:a].any():  # the previous takeover: keep the policy's own steps only
            before = a - int(np.flatnonzero(f.intervention[:a][::-1])[0])
        n = min(a - before, b - a, segment)
        pairs.append(Pair(Segment(f.path, a, n), Segment(f.path, a - n, n), "correction", f.group))
    return pairs


def mine_pairs(
    paths: list[Path],
    segment: int = 8,
    stride: int = 4,
    match: str = "instruction",
    max_pairs: int = 0,
    min_length: int = 2,
    seed: int = 0,
) -> tuple[list[Pair], MiningReport]:
    """Preference pairs from episode files (see the module doc); PairMiningError when there are none."""
    if segment < 1 or stride < 1:
        raise ValueError(f"segment and stride must be >= 1, got segment={segment}, stride={stride}")
    rep = MiningReport()
    facts = [read_facts(Path(p), match) for p in paths]
    rep.episodes = len(facts)
    groups: dict[tuple[str, str, str], dict[str, list[EpisodeFacts]]] = {}
    pairs: list[Pair] = []
    for f in facts:
        if f.intervention.any():
            rep.with_interventions += 1
            pairs += [p for p in correction_pairs(f, segment) if p.preferred.length >= min_length]
            continue
        label = {1: "win", 0: "lose"}.get(f.success)
        rep.successes += f.success == 1
        rep.failures += f.success == 0
        rep.unknown += label is None
        if label is None:
            continue
        if f.num_steps < min_length:
            rep.skipped_short += 1
            continue
        groups.setdefault(f.group, {"win": [], "lose": []})[label].append(f)
    rep.correction_pairs = len(pairs)
    rep.groups = len(groups)
    for key, g in sorted(groups.items()):
        if not (g["win"] and g["lose"]):
            continue
        rep.groups_with_both += 1
        wins = [(w.start / f.num_steps, w) for f in g["win"] for w in _windows(f.path, f.num_steps, segment, stride)]
        for f in g["lose"]:
            for w in _windows(f.path, f.num_steps, segment, stride):
                progress = w.start / f.num_steps
                best = min(abs(p - progress) for p, _ in wins)
                near = [s for p, s in wins if abs(p - progress) == best]
                win = near[(w.start // stride) % len(near)]
                n = min(win.length, w.length)
                pairs.append(Pair(Segment(win.path, win.start, n), Segment(w.path, w.start, n), "outcome", key))
    rep.outcome_pairs = len(pairs) - rep.correction_pairs
    if not pairs:
        raise PairMiningError(_no_pairs_message(rep, match, paths))
    if max_pairs and len(pairs) > max_pairs:
        pairs = random.Random(seed).sample(pairs, max_pairs)
    return pairs, rep


def _no_pairs_message(rep: MiningReport, match: str, paths: list[Path]) -> str:
    where = str(Path(paths[0]).parent) if paths else "(no episodes)"
    return (
        f"no preference pairs in {rep.episodes} episode(s) under {where}: {rep.successes} successful, "
        f"{rep.failures} failed, {rep.unknown} unlabelled, {rep.with_interventions} with operator takeovers; "
        f"{rep.groups_with_both} of {rep.groups} (scene, {match}) group(s) hold both a success and a failure. "
        "A pair needs a successful and a failed episode (field attrs/success = 1 and 0) in the same scene "
        f"and {match}, or an episode with intervention steps after policy steps. Record failures with "
        "`robolearn eval --save-episodes` or `robolearn rollout`, or try --dpo.match task"
    )
