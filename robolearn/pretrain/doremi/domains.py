"""Domains of a pretraining mixture: each clip source split into groups by a key (`--domains-by`), and the
domain-weights file that `robolearn pretrain reweight` writes and `robolearn pretrain --domain-weights` reads.

Keys:
    source        one domain per source (the default; a source's name is its table name)
    template      SSv2 template (prepared shards); the instruction for robolearn episodes
    <attr>        robolearn episodes (--episodes): an episode attribute, e.g. lab, household, scene_id, task;
                  prepared shards: a field of the index's per-clip `extra` JSON (e.g. camera, episode)

A domain is a `DomainSource`: the clips of one source with one key value, itself a ClipSource, so the existing
data-locked mixture (`plan_epoch` with weights) samples domains exactly as it samples sources.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.pretrain.sampling import ClipTable
from robolearn.utils import write_text_atomic

WEIGHTS_FORMAT = "robolearn.domain-weights/1"


class DomainWeightsError(ValueError):
    """A domain-weights file that is missing, malformed or does not match the data (the message names it)."""


class DomainSource:
    """The clips `idx` of `base` (a ClipSource) as a ClipSource named `name`."""

    def __init__(self, base: Any, idx: np.ndarray, name: str):
        self.base, self.idx, self.name = base, np.asarray(idx, np.int64), name
        t = base.table
        self.table = ClipTable(
            name,
            [t.ids[i] for i in self.idx],
            [t.captions[i] for i in self.idx],
            t.n_frames[self.idx],
            t.split[self.idx],
            t.input_ids[self.idx],
            t.attention_mask[self.idx],
            t.cls_token_id,
            t.pad_token_id,
        )

    def __len__(self) -> int:
        return len(self.idx)

    def read_frames(self, clip: int, frames: Sequence[int]) -> list[np.ndarray]:
        return self.base.read_frames(int(self.idx[clip]), frames)


def _episode_attr(paths: Sequence[str], key: str) -> list[str]:
    from robolearn.data.reader import Episode

    cache: dict[str, str] = {}
    out = []
    for p in paths:
        if p not in cache:
            with Episode(p) as ep:
                if key not in ep.attrs:
                    raise ValueError(
                        f"{p}: attrs/{key}: missing; --domains-by {key} needs it on every episode "
                        f"(this episode has {sorted(ep.attrs)[:12]}...)"
                    )
                cache[p] = str(ep.attrs[key])
        out.append(cache[p])
    return out


def _shard_extra(source: Any, key: str) -> list[str]:
    import h5py

    path = Path(source.folder) / "index.h5"
    with h5py.File(path, "r") as f:
        extras = [json.loads(x.decode() if isinstance(x, bytes) else x) for x in f["clips/extra"][()]]
    if any(key not in e for e in extras):
        raise ValueError(
            f"{path}: clips/extra has no {key!r} for some clips; prepared shards support --domains-by source, "
            f"template or one of {sorted(set().union(*extras)) if extras else []}"
        )
    return [str(e[key]) for e in extras]


def domain_labels(source: Any, by: str) -> list[str]:
    """One label per clip of `source` under key `by`."""
    n = len(source.table)
    if by == "source":
        return [source.table.name] * n
    if hasattr(source, "clips"):  # EpisodeSource
        if by == "template":
            return [c.caption for c in source.clips]
        return _episode_attr([c.path for c in source.clips], by)
    if hasattr(source, "templates"):  # ShardSource
        if by == "template":
            return list(source.templates)
        return _shard_extra(source, by)
    if hasattr(source, "domains"):  # any source that labels its own clips: {key: [label per clip]}
        if by in source.domains:
            return list(source.domains[by])
    raise ValueError(f"source {source.table.name!r} cannot be split by {by!r}; use --domains-by source")


def split_domains(sources: Sequence[Any], by: str = "source") -> list[DomainSource]:
    """Every (source, label) group as a DomainSource, in source order then label order. Names are
    `<source>` for by=source, else `<source>:<label>`; a repeated source name gets `#2`, `#3`..."""
    out, seen = [], {}
    for src in sources:
        base = src.table.name
        seen[base] = seen.get(base, 0) + 1
        sname = base if seen[base] == 1 else f"{base}#{seen[base]}"
        labels = np.array(domain_labels(src, by), dtype=object)
        for lab in sorted(set(labels.tolist())):
            idx = np.flatnonzero(labels == lab)
            out.append(DomainSource(src, idx, sname if by == "source" else f"{sname}:{lab}"))
    return out


def write_weights(path: Path, weights: dict[str, float], by: str, extra: dict[str, Any] | None = None) -> Path:
    doc = {"format": WEIGHTS_FORMAT, "domains_by": by, "weights": weights, **(extra or {})}
    return write_text_atomic(Path(path), json.dumps(doc, indent=1) + "\n")


def read_weights(path: Path) -> tuple[str, dict[str, float]]:
    """(domains_by, {domain: weight}) from a domain-weights JSON; a clear error naming the field otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DomainWeightsError(f"{path}: no domain-weights file (robolearn pretrain reweight writes one)") from None
    except json.JSONDecodeError as e:
        raise DomainWeightsError(f"{path}: not valid JSON ({e}); expected a domain-weights file") from None
    if not isinstance(doc, dict) or doc.get("format") != WEIGHTS_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DomainWeightsError(f"{path}: format is {got!r}, expected {WEIGHTS_FORMAT!r}")
    by, w = doc.get("domains_by"), doc.get("weights")
    if not isinstance(by, str) or not by:
        raise DomainWeightsError(f"{path}: domains_by must be a non-empty string (e.g. 'source'), got {by!r}")
    if not isinstance(w, dict) or not w:
        raise DomainWeightsError(f"{path}: weights must be a non-empty object {{domain: weight}}, got {w!r:.80}")
    bad = {k: v for k, v in w.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0}
    if bad or sum(w.values()) <= 0:
        raise DomainWeightsError(f"{path}: weights must be numbers >= 0, not all 0; bad: {dict(list(bad.items())[:5])}")
    return by, {k: float(v) for k, v in w.items()}


def weighted_domains(sources: Sequence[Any], path: Path) -> list[tuple[DomainSource, float]]:
    """The sources split as the weights file says, each domain paired with its weight; the file must name
    exactly the domains the data has."""
    by, weights = read_weights(path)
    domains = split_domains(sources, by)
    names = [d.name for d in domains]
    missing = [n for n in names if n not in weights]
    unknown = [n for n in weights if n not in names]
    if missing or unknown:
        raise DomainWeightsError(
            f"{path}: weights do not match the data's domains (--domains-by {by}): no weight for {missing[:10]}, "
            f"not in the data {unknown[:10]}; rerun `robolearn pretrain reweight` on this data"
        )
    return [(d, weights[d.name]) for d in domains]
