"""`robolearn pretrain` (train an encoder; the Python API is robolearn.pretrain.run), `robolearn pretrain
prepare` (decode a clip source into sharded HDF5 frames plus a tokenised language index) and `robolearn pretrain
reweight` (DoReMi domain weights; robolearn.pretrain.doremi.reweight)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from robolearn.config import command, opt, save_config
from robolearn.encoders.files import CheckpointError
from robolearn.pretrain.corpus.config import CorpusConfig, CorpusError
from robolearn.pretrain.doremi.domains import DomainWeightsError
from robolearn.pretrain.doremi.reweight import ReweightCommand
from robolearn.pretrain.run import PretrainCommand, pretrain
from robolearn.pretrain.sampling import MIN_FRAMES
from robolearn.pretrain.shards import PrepareError
from robolearn.utils import one_line


@dataclass
class PrepareCommand:
    source: Literal["ssv2", "episodes"] = opt(
        "ssv2", help="ssv2: Something-Something-v2 layout; episodes: robolearn episode files"
    )
    out: Path | None = opt(None, help="output folder (shards, index.h5, report.json); re-runs resume here")
    videos: Path | None = opt(None, help="[ssv2] folder of <id>.webm clips")
    labels: Path | None = opt(None, help="[ssv2] train labels JSON (id, label, template, placeholders)")
    validation: Path | None = opt(None, help="[ssv2] validation labels JSON; its first --val-clips entries")
    val_clips: int = opt(1000, help="[ssv2] validation clips: the first N of --validation")
    limit: int | None = opt(None, help="[ssv2] only the first N training clips (trials)")
    ext: str = opt("webm", help="[ssv2] video file extension")
    episodes: Path | None = opt(None, help="[episodes] dataset folder")
    camera: list[str] = opt(default_factory=list, help="[episodes] camera name(s); default: each episode's first")
    where: list[str] = opt(default_factory=list, help="[episodes] catalog filters, e.g. task~drawer success=1")
    val_fraction: float = opt(0.0, help="[episodes] share of episodes (by uuid) for validation")
    split: str | None = opt(None, help="[episodes] use this catalog split's val episodes (robolearn data split)")
    frame_stride: int = opt(1, help="[episodes] keep every k-th step")
    min_frames: int = opt(MIN_FRAMES, help="[episodes] shortest instruction run kept as a clip")
    tokenizer: str = opt("distilbert-base-uncased", help="HF tokenizer: local folder or hub id")
    max_lang_len: int = opt(20, help="tokens per caption (padded / truncated; truncations are counted)")
    size: int = opt(240, help="frames are scaled (short side) and centre-cropped to size x size")
    quality: int = opt(90, help="JPEG quality")
    workers: int = opt(0, help="decoding processes (0: in this process)")
    frames_per_shard: int = opt(8192, help="frames per shard file (whole clips per shard)")
    retry_failed: bool = opt(False, help="decode again the clips earlier runs could not decode")


def _progress(done: int, total: int) -> None:
    if done == total or done % 200 == 0:
        print(f"\r{done}/{total} clips", end="\n" if done == total else "", file=sys.stderr, flush=True)


@command("pretrain", "prepare")
def prepare(cfg: PrepareCommand) -> int:
    """Decode clips (SSv2 webm or our episodes) into sharded HDF5 + a tokenised index (parallel, resumable)."""
    from robolearn.pretrain.episodes_source import prepare_episodes
    from robolearn.pretrain.ssv2 import prepare_ssv2

    try:
        if cfg.out is None:
            raise PrepareError("--out is required (the output folder)")
        common = dict(
            tokenizer=cfg.tokenizer,
            max_lang_len=cfg.max_lang_len,
            workers=cfg.workers,
            frames_per_shard=cfg.frames_per_shard,
            size=cfg.size,
            quality=cfg.quality,
            retry_failed=cfg.retry_failed,
            progress=_progress,
        )
        if cfg.source == "ssv2":
            if cfg.videos is None or cfg.labels is None:
                raise PrepareError(
                    "--source ssv2 needs --videos DIR and --labels train.json (and usually "
                    "--validation validation.json)"
                )
            report = prepare_ssv2(
                cfg.videos,
                cfg.labels,
                cfg.validation,
                cfg.out,
                val_clips=cfg.val_clips,
                limit=cfg.limit,
                ext=cfg.ext,
                config=cfg,
                **common,
            )
        elif cfg.source == "episodes":
            if cfg.episodes is None:
                raise PrepareError("--source episodes needs --episodes DIR")
            report = prepare_episodes(
                cfg.episodes,
                cfg.out,
                camera=cfg.camera or None,
                where=cfg.where or None,
                val_fraction=cfg.val_fraction,
                split_name=cfg.split,
                frame_stride=cfg.frame_stride,
                min_frames=cfg.min_frames,
                config=cfg,
                **common,
            )
        else:
            raise PrepareError(f"unknown --source {cfg.source!r}; expected ssv2 or episodes")
    except (PrepareError, FileNotFoundError) as e:
        print(f"robolearn pretrain prepare: {e}", file=sys.stderr)
        return 2
    save_config(cfg, cfg.out, "prepare")  # the shards' lineage card was written by prepare_* (config: cfg)
    run = report["this_run"]
    print(
        f"{report['clips_in_index']} clips in {cfg.out}/index.h5 ({report['train']} train, {report['val']} val); "
        f"this run: {run['written']} written, {run['skipped_done']} already done, {run['failed']} failed, "
        f"{run['seconds']:.1f} s ({run['clips_per_s'] or 0} clips/s)"
    )
    if report["failed"]:
        print(
            f"{len(report['failed'])} clips could not be decoded (listed in {cfg.out}/report.json); first: "
            f"{report['failed'][0]['id']}: {report['failed'][0]['error']}",
            file=sys.stderr,
        )
    if report.get("empty_captions"):
        print(
            f"{report['empty_captions']} clips skipped: empty 'label' (caption) in the labels file (ids in "
            f"{cfg.out}/report.json); first: {report['empty_caption_ids'][0]}",
            file=sys.stderr,
        )
    if report["clips_in_index"] == 0:
        print(f"robolearn pretrain prepare: no usable clips in {cfg.out} (see report.json)", file=sys.stderr)
        return 1
    if report["truncated_captions"]:
        print(
            f"{report['truncated_captions']} captions were longer than {cfg.max_lang_len} tokens and truncated",
            file=sys.stderr,
        )
    return 0


@command("pretrain", "corpus")
def corpus(cfg: CorpusConfig) -> int:
    """Generate a human-style clip corpus in the Something-Something-v2 layout (parallel, resumable)."""
    from robolearn.pretrain.corpus import generate_corpus

    try:
        report = generate_corpus(cfg, progress=True)
    except CorpusError as e:
        print(f"robolearn pretrain corpus: {e}", file=sys.stderr)
        return 2
    save_config(cfg, cfg.out, "corpus")
    print(
        f"{report.clips} clips in {cfg.out} ({report.train} train, {report.val} val); this run: {report.generated} "
        f"made, {report.skipped_done} already done, {len(report.failed)} failed every check; {report.seconds:.1f} s "
        f"({report.clips_per_minute} clips/min)"
    )
    if report.failed:
        print(f"clips left out (see corpus.json): {', '.join(report.failed[:20])}", file=sys.stderr)
    return 0 if report.clips else 1


@command("pretrain", "reweight")
def reweight_cmd(cfg: ReweightCommand) -> int:
    """DoReMi: domain weights for the pretraining mixture from a reference and a group-DRO proxy model."""
    from robolearn.pretrain.doremi.reweight import reweight

    try:
        reweight(cfg)
    except (ValueError, FileNotFoundError, KeyError, PrepareError) as e:
        print(f"robolearn pretrain reweight: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


@command("pretrain", "")
def pretrain_cmd(cfg: PretrainCommand) -> int:
    """Pretrain an encoder (one process, or one process per device under torchrun)."""
    try:
        return pretrain(cfg)
    except CheckpointError as e:  # a checkpoint in --run-dir that resume refuses
        print(f"robolearn pretrain: {one_line(e)}", file=sys.stderr)
        return 2
    except DomainWeightsError as e:  # a bad --domain-weights file
        print(f"robolearn pretrain: {one_line(e)}", file=sys.stderr)
        return 2
