"""`generate_corpus`: make N clips in the Something-Something-v2 layout, in parallel, resumably.

    OUT/videos/<id>.webm                 VP8, cfg.fps, height cfg.size
    OUT/labels/train.json, validation.json   [{"id", "label", "template", "placeholders"}]
    OUT/labels/meta.json                 per clip: the checked outcome, attempts, scene, camera, objects
    OUT/corpus.json                      config, versions, counts, per-template counts, hash
    OUT/meta/<id>.json                   per-clip record (the resume state)

Clip i (id str(i + 1)) is a pure function of (cfg.seed, i): its template comes from a seeded balanced cycle
over the templates, its scene, objects, camera and light from the clip's own generator. A clip whose checked
outcome does not match its caption is drawn again (attempt 1, 2, ...); after max_attempts it is left out and
listed in corpus.json. Resuming skips every clip with a record (and its video), then re-derives the labels.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing as mp
import os
import platform
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from robolearn import __version__
from robolearn.lineage import write_card
from robolearn.pretrain.corpus.config import CorpusConfig, CorpusError, CorpusReport
from robolearn.utils import write_text_atomic

FORMAT = "robolearn.pretrain.corpus"
VERSION = 1
_CYCLE_SALT = 0x7E3A1


def clip_id(index: int) -> str:
    return str(index + 1)


def template_of(index: int, templates: list[str], seed: int) -> str:
    """Balanced: every block of len(templates) consecutive clips holds each template once, in a seeded order."""
    n = len(templates)
    perm = np.random.default_rng([_CYCLE_SALT, seed, index // n]).permutation(n)
    return templates[int(perm[index % n])]


def is_val(index: int, fraction: float) -> bool:
    """Interleaved split: exactly floor(N * fraction) of the first N clips, for every N."""
    f = round(fraction * 1_000_000)
    return (index + 1) * f // 1_000_000 > index * f // 1_000_000


def _paths(out: Path, cid: str) -> tuple[Path, Path]:
    return out / "videos" / f"{cid}.webm", out / "meta" / f"{cid}.json"


def _read_meta(out: Path, cid: str, content_hash: str) -> dict | None:
    """The clip's record when it is finished for this content (a failed clip has no video)."""
    video, meta = _paths(out, cid)
    try:
        rec = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if rec.get("content") != content_hash:
        return None
    if rec.get("status") == "ok" and not video.is_file():
        return None
    return rec


def _make(job: tuple[dict, str, int]) -> dict:
    """Worker: make clip `index` (drawing again while its check fails), write its video and record."""
    from robolearn.pretrain.corpus.clip import make_clip
    from robolearn.pretrain.corpus.video import write_webm

    content, out_s, index = job
    out, cid = Path(out_s), clip_id(index)
    template = template_of(index, content["templates"], content["seed"])
    scenes = [(int(s[1:4]), int(s[6:9])) for s in content["scenes"]]
    rejected = []
    rec: dict = {"id": cid, "template": template, "content": content["hash"]}
    for attempt in range(content["max_attempts"]):
        try:
            r = make_clip(
                content["seed"], index, attempt, template, scenes, content["size"], content["frames"], content["fps"]
            )
        except Exception as e:  # noqa: BLE001 (one bad draw must not stop a long run; it is recorded)
            rejected.append({"attempt": attempt, "error": f"{type(e).__name__}: {str(e)[:200]}"})
            continue
        if not r.outcome.get("ok"):
            rejected.append({"attempt": attempt, "label": r.label, "outcome": r.outcome})
            continue
        video, _ = _paths(out, cid)
        write_webm(video, r.frames, content["fps"], content["quality"])
        rec.update(
            status="ok",
            label=r.label,
            placeholders=r.placeholders,
            attempt=attempt,
            outcome=r.outcome,
            frames=len(r.frames),
            sha256=hashlib.sha256(video.read_bytes()).hexdigest(),
            **r.info,
        )
        break
    else:
        rec["status"] = "failed"
    rec["rejected"] = rejected
    write_text_atomic(_paths(out, cid)[1], json.dumps(rec, indent=1), fsync=False)
    return rec


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    fd = os.open(out / ".corpus.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CorpusError(
                f"{out}: another corpus run is writing this folder; wait for it or use another --out"
            ) from None
        yield
    finally:
        os.close(fd)


def _check_resume(out: Path, cfg: CorpusConfig) -> None:
    path = out / "corpus.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())["content"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorpusError(f"{path}: unreadable corpus record ({e}); remove it or use another --out") from None
    new = cfg.content()
    diff = [k for k in new if old.get(k) != new[k]]
    if diff:
        raise CorpusError(
            f"{path}: this folder was made with other {', '.join(diff)} "
            f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); resuming needs the same values or another --out"
        )


def _versions() -> dict:
    import av
    import mujoco

    return {
        "robolearn": __version__,
        "mujoco": mujoco.__version__,
        "av": av.__version__,
        "python": platform.python_version(),
    }


def _corpus_json(cfg: CorpusConfig, extra: dict) -> str:
    return json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "config": cfg.to_json(),
            "seed": cfg.seed,
            "content": cfg.content(),
            "content_hash": cfg.content_hash(),
            "versions": _versions(),
            **extra,
        },
        indent=1,
    )


def generate_corpus(cfg: CorpusConfig, progress: bool = False) -> CorpusReport:
    """Make (or finish) the corpus in cfg.out; returns what is there and what this run did."""
    from tqdm import tqdm

    cfg.validate()
    out = Path(cfg.out)  # type: ignore[arg-type]
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    with _lock(out):
        _check_resume(out, cfg)
        chash = cfg.content_hash()
        if not (out / "corpus.json").is_file():
            write_text_atomic(out / "corpus.json", _corpus_json(cfg, {"status": "in progress"}))
        content = {**cfg.content(), "hash": chash}
        records: dict[int, dict] = {}
        todo = []
        for i in range(cfg.clips):
            rec = _read_meta(out, clip_id(i), chash)
            if rec is None:
                todo.append(i)
            else:
                records[i] = rec
        skipped = len(records)
        jobs = [(content, str(out), i) for i in todo]
        bar = tqdm(total=len(jobs), disable=not progress, unit="clip", desc="corpus")
        try:
            if cfg.workers == 0:
                results: Iterator[dict] = map(_make, jobs)
                for i, rec in zip(todo, results):
                    records[i] = rec
                    bar.update()
            else:
                with mp.get_context("spawn").Pool(cfg.workers) as pool:
                    for rec in pool.imap_unordered(_make, jobs):
                        records[int(rec["id"]) - 1] = rec
                        bar.update()
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
        return _finish(cfg, out, records, len(todo), skipped, seconds)


def _finish(cfg: CorpusConfig, out: Path, records: dict[int, dict], generated: int, skipped: int, seconds: float):
    train, val, meta, failed = [], [], {}, []
    digest = hashlib.sha256()
    for i in sorted(records):
        rec = records[i]
        if rec["status"] != "ok":
            failed.append(rec["id"])
            continue
        entry = {
            "id": rec["id"],
            "label": rec["label"],
            "template": rec["template"],
            "placeholders": rec["placeholders"],
        }
        (val if is_val(i, cfg.val_fraction) else train).append(entry)
        meta[rec["id"]] = {k: v for k, v in rec.items() if k not in ("id", "label", "placeholders", "content")}
        digest.update(json.dumps([rec["id"], rec["label"], rec["sha256"]]).encode())
    labels = out / "labels"
    write_text_atomic(labels / "train.json", json.dumps(train, indent=1))
    write_text_atomic(labels / "validation.json", json.dumps(val, indent=1))
    write_text_atomic(labels / "meta.json", json.dumps(meta, indent=1))
    counts = Counter(records[i]["template"] for i in records if records[i]["status"] == "ok")
    attempts = Counter(records[i].get("attempt", -1) + 1 for i in records if records[i]["status"] == "ok")
    rate = generated / seconds * 60 if generated and seconds > 0 else 0.0
    report = CorpusReport(
        out=out,
        clips=len(train) + len(val),
        train=len(train),
        val=len(val),
        generated=generated,
        skipped_done=skipped,
        failed=failed,
        seconds=round(seconds, 2),
        clips_per_minute=round(rate, 1),
        template_counts={t: counts.get(t, 0) for t in cfg.template_list()},
        hash=digest.hexdigest(),
    )
    extra = {
        "status": "complete",
        "counts": {
            "requested": cfg.clips,
            "clips": report.clips,
            "train": report.train,
            "val": report.val,
            "failed": len(failed),
        },
        "templates": report.template_counts,
        "scenes": dict(sorted(Counter(records[i]["scene"] for i in records if records[i]["status"] == "ok").items())),
        "attempts_needed": {str(k): v for k, v in sorted(attempts.items())},
        "failed": [
            {
                "id": records[int(c) - 1]["id"],
                "template": records[int(c) - 1]["template"],
                "rejected": records[int(c) - 1]["rejected"],
            }
            for c in failed
        ],
        "last_run": {
            "generated": generated,
            "skipped_done": skipped,
            "seconds": report.seconds,
            "clips_per_minute": report.clips_per_minute,
            "workers": cfg.workers,
        },
        "hash": report.hash,
    }
    write_text_atomic(out / "corpus.json", _corpus_json(cfg, extra))
    _card(cfg, out, report)
    return report


def _card(cfg: CorpusConfig, out: Path, report: CorpusReport) -> None:
    """The corpus's lineage card: made from the simulator alone (no inputs), its id hashing the videos and the
    label files that `pretrain prepare` reads (so `OUT/videos` and `OUT/labels/train.json` resolve to it)."""
    figures = {"clips": report.clips, "train": report.train, "val": report.val, "failed": len(report.failed)}
    figures |= {"clips_per_minute": report.clips_per_minute, "hash": report.hash}
    write_card(out, "clip-corpus", [], cfg.to_json(), figures, ["videos/*.webm", "labels/*.json"])
