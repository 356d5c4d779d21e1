"""`repair_dataset` / `robolearn data repair`: salvaging `.partial` files of writers that died.

A crashed writer is simulated by copying the `.partial` file of a live writer after a flush (the bytes on
disk are what a crash would leave; the real SIGKILL tests are in test_crash.py)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from robolearn import cli
from robolearn.data import schema
from robolearn.data.quarantine import QUARANTINE_DIR, QUARANTINE_LOG
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.repair import repair_dataset
from robolearn.data.schema import CameraSpec
from robolearn.data.validate import validate_episode
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig

CAMS = [CameraSpec("wrist", 32, 32, role="wrist"), CameraSpec("ext", 32, 32, encoding="png", depth=True)]
META = EpisodeMeta(lab="lab_r", operator="ada", task="open the drawer", language=["open the drawer"])
PARTIAL = "ep" + schema.TMP_SUFFIX


@pytest.fixture
def run_cli(monkeypatch):
    """`robolearn ...` through the real CLI entry point."""
    return cli.main


def add(w: EpisodeWriter, t: int) -> None:
    img = np.full((32, 32, 3), t * 7 % 256, np.uint8)
    img[t % 32] = 255
    w.add_step(
        {
            "joint_positions": np.full(7, t, float),
            "joint_velocities": np.zeros(7),
            "ee_position": [t, 0, 1],
            "ee_quaternion": [1, 0, 0, 0],
            "gripper_position": 0.0,
        },
        {
            "cartesian_velocity": np.zeros(6),
            "cartesian_position": [t, 0, 1, 1, 0, 0, 0],
            "joint_position": np.full(7, t + 1.0),
            "joint_velocity": np.zeros(7),
            "gripper_position": 1.0,
        },
        images={"wrist": None if t == 3 else img, "ext": img},
        depth={"ext": np.full((32, 32), 500 + t, np.uint16)},
        camera_times={"wrist": (0, 0) if t == 3 else (t * 10 + 1, t * 10 + 2), "ext": (t * 10 + 1, t * 10 + 3)},
    )


def crashed_partial(folder: Path, flushed: int, unflushed: int = 0, name: str = PARTIAL) -> Path:
    """What a writer killed after `flushed` flushed steps (and `unflushed` buffered ones) leaves on disk."""
    w = EpisodeWriter(
        folder / "live" / "ep.h5", META, CAMS, WriterConfig(flush_interval_s=600, background_flush=False, min_free_mb=0)
    )
    for t in range(flushed):
        add(w, t)
    w.flush()
    for t in range(flushed, flushed + unflushed):
        add(w, t)
    dst = folder / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(w.tmp_path, dst)  # the file as the disk holds it at this instant
    w.discard()
    shutil.rmtree(folder / "live")
    return dst


def closed_episode(path: Path, steps: int = 6) -> Path:
    with EpisodeWriter(path, META, CAMS, WriterConfig(min_free_mb=0)) as w:
        for t in range(steps):
            add(w, t)
        w.set_outcome(True)
    return path


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def errors(path: Path) -> list[str]:
    return [str(p) for p in validate_episode(path) if p.severity == "error"]


def test_salvages_flushed_steps_and_keeps_the_original(tmp_path):
    ds = tmp_path / "ds"
    done = closed_episode(ds / "done.h5")
    before = sha(done)
    partial = crashed_partial(ds, flushed=12, unflushed=3)
    [r] = repair_dataset(ds, min_age_s=0)
    assert (r.action, r.salvaged_steps, r.steps_on_disk, r.output) == ("salvaged", 12, 12, ds / "ep.h5")
    assert not partial.exists() and (ds / QUARANTINE_DIR / PARTIAL).exists()
    assert "salvaged 12 of 12 steps into ep.h5" in (ds / QUARANTINE_DIR / QUARANTINE_LOG).read_text()
    assert sha(done) == before and errors(ds / "ep.h5") == []
    with Episode(ds / "ep.h5") as ep:
        assert ep.num_steps == 12 and not ep.complete
        assert ep.attrs["task"] == "open the drawer" and ep.attrs["lab"] == "lab_r"
        assert ep.instructions() == ["open the drawer"] and ep.attrs["cameras"][1]["depth"]
        assert ep.attrs["label_source"] == "unknown" and ep.attrs["end_time"] == ""
        rep = json.loads(ep._f.attrs["repair"])
        assert (rep["original_steps_on_disk"], rep["salvaged_steps"], rep["source"]) == (12, 12, PARTIAL)
        assert rep["time"] and rep["reason"]
        np.testing.assert_array_equal(ep.state("joint_positions")[:, 0], np.arange(12))
        assert ep.array("is_last").tolist() == [False] * 11 + [True]
        assert ep.array("is_first").tolist() == [True] + [False] * 11
        assert ep.camera_field("wrist", "dropped").tolist() == [t == 3 for t in range(12)]
        assert ep.frame("ext", 11)[11, 0].tolist() == [255, 255, 255]
        assert ep.depth("ext", 10)[0, 0] == 510
    assert list_episodes(ds) == [done, ds / "ep.h5"]


def test_dry_run_changes_nothing(tmp_path, run_cli, capsys):
    partial = crashed_partial(tmp_path, flushed=5)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    [r] = repair_dataset(tmp_path, dry_run=True, min_age_s=0)
    assert (r.action, r.salvaged_steps) == ("would-salvage", 5)
    assert run_cli(["data", "repair", str(tmp_path), "--dry-run", "--min-age-s", "0"]) == 0
    out = capsys.readouterr().out
    assert f"would-salvage    {partial}: 5 of 5 steps" in out
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_nothing_salvageable_is_quarantined(tmp_path, run_cli, capsys):
    empty = crashed_partial(tmp_path, flushed=0, unflushed=4)
    junk = tmp_path / "sub" / ("junk" + schema.TMP_SUFFIX)
    junk.parent.mkdir()
    junk.write_bytes(b"\0" * 5000)
    assert run_cli(["data", "repair", str(tmp_path), "--min-age-s", "0"]) == 1
    out = capsys.readouterr().out
    assert f"quarantined      {empty}" in out and "no committed steps" in out
    assert f"quarantined      {junk}" in out and "cannot open" in out
    assert (tmp_path / QUARANTINE_DIR / PARTIAL).exists()
    assert (tmp_path / QUARANTINE_DIR / "sub" / junk.name).exists()
    assert list_episodes(tmp_path) == [] and repair_dataset(tmp_path, min_age_s=0) == []
    log = (tmp_path / QUARANTINE_DIR / QUARANTINE_LOG).read_text()
    assert "nothing salvaged: no committed steps" in log and "nothing salvaged: cannot open" in log


def test_cuts_rows_whose_frames_are_past_the_data_or_missing(tmp_path):
    # A writer stopped by an exception closes its file cleanly (complete=False): editable with h5py.
    with pytest.raises(RuntimeError):
        with EpisodeWriter(tmp_path / "ep.h5", META, CAMS, WriterConfig(min_free_mb=0)) as w:
            for t in range(10):
                add(w, t)
            raise RuntimeError("loop died")
    partial = tmp_path / PARTIAL
    with h5py.File(partial, "r+") as f:
        f["cameras/ext/depth/index"][8] = [f["cameras/ext/depth/data"].shape[0] - 4, 100]  # past the data
        for t in (1, 6, 7):  # bytes that never reached the disk (6, 7: the tail once cut at 8) or damage (1)
            off, n = f["cameras/wrist/rgb/index"][t]
            f["cameras/wrist/rgb/data"][off : off + n] = 0
    [r] = repair_dataset(tmp_path, min_age_s=0)
    assert (r.action, r.salvaged_steps, r.steps_on_disk) == ("salvaged", 6, 10)
    assert "cameras/wrist/rgb: frame of step 6" in r.reason
    # a bad frame followed by good ones is damage, not a crash tail: kept, and reported by validate
    crc_err, err = errors(tmp_path / "ep.h5")
    assert crc_err.startswith(f"{tmp_path / 'ep.h5'}: cameras/wrist/rgb/data: CRC32 mismatch: the bytes of 1 frames")
    assert err.startswith(
        f"{tmp_path / 'ep.h5'}: cameras/wrist/rgb/data: 1 of 5 checked frames bad; first at "
        "step 1: cannot decode jpeg frame"
    )
    assert r.problems == 2


def test_cut_at_uncommitted_marker_and_short_streams(tmp_path):
    with pytest.raises(RuntimeError):
        with EpisodeWriter(tmp_path / "ep.h5", META, CAMS, WriterConfig(min_free_mb=0)) as w:
            for t in range(10):
                add(w, t)
            raise RuntimeError("loop died")
    with h5py.File(tmp_path / PARTIAL, "r+") as f:
        f["timestamp/control/step_end_ns"][7] = 0
        f["cameras/ext/receive_ns"].resize((9,))
    [r] = repair_dataset(tmp_path, dry_run=True, min_age_s=0)
    assert r.salvaged_steps == 7 and "step_end_ns is 0 from step 7" in r.reason
    with h5py.File(tmp_path / PARTIAL, "r+") as f:
        f["cameras/ext/receive_ns"].resize((5,))
    [r] = repair_dataset(tmp_path, min_age_s=0)
    assert r.salvaged_steps == 5 and "cameras/ext/receive_ns has only 5 rows" in r.reason
    assert errors(tmp_path / "ep.h5") == []


def test_partial_that_may_still_be_recording_is_skipped(tmp_path):
    recent = crashed_partial(tmp_path, flushed=3)
    [r] = repair_dataset(tmp_path)  # default min_age_s: modified just now
    assert r.action == "skipped" and "may still be recording" in r.line() and recent.exists()
    w = EpisodeWriter(tmp_path / "live.h5", META, CAMS, WriterConfig(min_free_mb=0))
    try:
        add(w, 0)
        w.flush()
        results = {x.partial.name: x for x in repair_dataset(tmp_path, min_age_s=0)}
        assert results["live" + schema.TMP_SUFFIX].action == "skipped"
        assert "held open" in results["live" + schema.TMP_SUFFIX].reason
        assert results[PARTIAL].action == "salvaged"
    finally:
        w.close()
    assert errors(tmp_path / "live.h5") == []


def test_complete_and_salvaged_files_are_left_alone(tmp_path):
    done = closed_episode(tmp_path / "a.h5")
    crashed_partial(tmp_path, flushed=4)
    repair_dataset(tmp_path, min_age_s=0)
    hashes = {p: sha(p) for p in list_episodes(tmp_path)}
    assert set(hashes) == {done, tmp_path / "ep.h5"}
    assert repair_dataset(tmp_path, min_age_s=0) == []
    assert {p: sha(p) for p in list_episodes(tmp_path)} == hashes


def test_killed_between_link_and_unlink_of_publish(tmp_path):
    done = closed_episode(tmp_path / "ep.h5")
    before = sha(done)
    os.link(done, tmp_path / PARTIAL)  # publish() had linked the final name but not yet unlinked the partial
    [r] = repair_dataset(tmp_path, min_age_s=0)
    assert r.action == "unlinked" and not (tmp_path / PARTIAL).exists()
    assert sha(done) == before and errors(done) == []


def test_killed_after_close_before_rename(tmp_path):
    done = closed_episode(tmp_path / "x.h5")
    before = sha(done)
    done.rename(tmp_path / PARTIAL)  # close() finished writing; the rename never happened
    [r] = repair_dataset(tmp_path, min_age_s=0)
    assert (r.action, r.output) == ("published", tmp_path / "ep.h5")
    assert sha(tmp_path / "ep.h5") == before and not (tmp_path / PARTIAL).exists()
    with Episode(tmp_path / "ep.h5") as ep:
        assert ep.complete and ep.attrs["success"] == 1


def test_never_overwrites_an_existing_episode(tmp_path):
    other = closed_episode(tmp_path / "ep.h5")
    before = sha(other)
    crashed_partial(tmp_path, flushed=4)
    [r] = repair_dataset(tmp_path, min_age_s=0)
    assert r.action == "salvaged" and r.output == tmp_path / "ep.salvaged.h5"
    assert sha(other) == before and errors(r.output) == []
    # a second crash with the same name while the first is still in quarantine: both originals are kept
    crashed_partial(tmp_path, flushed=2)
    [r2] = repair_dataset(tmp_path, min_age_s=0)
    assert r2.output == tmp_path / "ep.salvaged-2.h5"
    assert r2.quarantined_to == tmp_path / QUARANTINE_DIR / (PARTIAL + ".1")
    assert (tmp_path / QUARANTINE_DIR / PARTIAL).exists()


def test_cli_salvage_prints_one_line_per_file(tmp_path, run_cli, capsys):
    crashed_partial(tmp_path, flushed=3, name="a" + schema.TMP_SUFFIX)
    crashed_partial(tmp_path, flushed=2, name="sub/b" + schema.TMP_SUFFIX)
    assert run_cli(["data", "repair", str(tmp_path), "--min-age-s", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("salvaged") and lines[1].startswith("salvaged")
    assert "2 unfinished episodes: 2 salvaged, 0 not salvageable, 0 skipped" in lines[2]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in list_episodes(tmp_path)) == ["a.h5", "sub/b.h5"]
    assert run_cli(["data", "repair", str(tmp_path / "nope")]) == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_partial_fails_fast_instead_of_retrying_for_minutes(tmp_path, fraction):
    # SWMR readers retry a block with a bad checksum 100 times with growing sleeps by default; a truncated
    # copy would take minutes per dataset read. Repair and validate bound the attempts.
    partial = crashed_partial(tmp_path, flushed=30)
    data = partial.read_bytes()
    partial.write_bytes(data[: int(len(data) * fraction)])
    assert validate_episode(partial)  # returns (problems), does not hang
    [r] = repair_dataset(tmp_path, min_age_s=0)
    assert r.action in ("salvaged", "quarantined"), r.line()
    assert not partial.exists()
    if r.action == "salvaged":
        assert errors(r.output) == [] and r.salvaged_steps <= 30
