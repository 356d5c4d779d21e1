"""`prepare` on a small Something-Something-v2 layout: shards, index, resume, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import simplejpeg
from clipdata import CLIPS, CROP, LONG_CAPTION_ID, TRAIN_IDS, VAL_IDS, run_prepare, write_webm

from robolearn.pretrain.shards import INDEX_NAME, PrepareError, ShardSource, read_shard_tables
from robolearn.pretrain.ssv2 import read_labels, scaled_center_crop

N_FRAMES = {c[0]: c[1] for c in CLIPS}


def shard_files(out: Path) -> list[Path]:
    return sorted(out.glob("shard_*.h5"))


def test_prepare_writes_shards_and_index(prepared):
    report = json.loads((prepared / "report.json").read_text())
    assert report["clips_in_index"] == 8 and report["train"] == 6 and report["val"] == 2
    assert report["this_run"]["written"] == 8 and report["failed"] == []
    shards = shard_files(prepared)
    assert len(shards) >= 3  # 30 frames per shard, ~103 frames
    assert not list(prepared.glob("*.partial"))
    seen = {}
    for p in shards:
        sc = read_shard_tables(p)
        assert sc.attrs["size"] == CROP and sc.attrs["encoding"] == "jpeg"
        for cid, n in zip(sc.ids, sc.n_frames):
            seen[cid] = int(n)
    assert seen == {i: N_FRAMES[i] for i in TRAIN_IDS + VAL_IDS[:2]}  # first 2 validation clips only
    with h5py.File(prepared / INDEX_NAME, "r") as f:
        ids = [s.decode() for s in f["clips/id"][()]]
        assert ids == VAL_IDS[:2] + TRAIN_IDS  # validation first, then train, in label order
        assert f["clips/split"][()].tolist() == [1, 1] + [0] * 6
        assert f["clips/input_ids"].shape == (8, 20) and f["clips/attention_mask"].shape == (8, 20)
        assert f["clips/input_ids"][:, 0].tolist() == [101] * 8
        assert f.attrs["truncated"] == 1
        templates = [s.decode() for s in f["clips/template"][()]]
        assert templates[2] == "Pushing [something] from left to right"
        assert json.loads(f["clips/placeholders"][4]) == ["a pen", "a box"]
    assert report["truncated_captions"] == 1 and report["truncated_ids"] == [LONG_CAPTION_ID]


def test_frames_are_centre_crops_of_the_video(prepared, ssv2_raw):
    import av

    src = ShardSource(prepared)
    c = src.table.ids.index("102")  # 80x48 -> scale to short side 32 -> 53x32 -> centre 32x32
    with av.open(str(ssv2_raw / "videos" / "102.webm")) as ct:
        first = next(ct.decode(video=0)).to_ndarray(format="rgb24")
    want = scaled_center_crop(first, CROP)
    got = src.read_frames(c, [0])[0]
    assert got.shape == (CROP, CROP, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 6  # JPEG error only
    assert len(src.read_frames(c, range(N_FRAMES["102"]))) == N_FRAMES["102"]
    with pytest.raises(IndexError, match="out of range"):
        src.read_frames(c, [N_FRAMES["102"]])


def test_scaled_center_crop_keeps_aspect():
    img = np.zeros((40, 100, 3), np.uint8)
    img[:, 45:55] = 255  # a centred bar stays centred and keeps its width ratio
    out = scaled_center_crop(img, 20)
    assert out.shape == (20, 20, 3)
    assert out[:, 10].min() > 200 and out[:, 0].max() < 30
    assert scaled_center_crop(np.zeros((30, 20, 3), np.uint8), 40).shape == (40, 40, 3)  # upscales the short side


def test_resume_skips_done_clips_and_redoes_partial_shards(ssv2_raw, lm_dir, tmp_path, monkeypatch):
    import robolearn.pretrain.ssv2 as ssv2

    decoded: list[str] = []
    real_decode = ssv2.decode_video

    def counting_decode(path, *a, **kw):
        decoded.append(Path(path).stem)
        return real_decode(path, *a, **kw)

    monkeypatch.setattr(ssv2, "decode_video", counting_decode)  # workers=0: decoding runs in this process
    out = tmp_path / "out"

    class Crash(Exception):
        pass

    def crash_after_two(name, stats):
        if len(stats.new_shards) == 2:
            raise Crash

    with pytest.raises(Crash):
        run_prepare(ssv2_raw, out, lm_dir, on_shard=crash_after_two)
    done = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in shard_files(out)}
    assert len(done) == 2 and not (out / INDEX_NAME).exists()
    in_done = sum(len(read_shard_tables(out / n).ids) for n in done)
    (out / "shard_00002.h5.partial").write_bytes(b"half-written shard from a crash")  # what a crash leaves
    first_run = set(decoded)
    decoded.clear()

    rep = run_prepare(ssv2_raw, out, lm_dir)
    done_ids = {i for n in done for i in read_shard_tables(out / n).ids}
    assert len(decoded) == 8 - in_done and not set(decoded) & done_ids  # finished clips are not decoded again
    assert first_run - done_ids <= set(decoded)  # clips of the lost partial shard are
    run = rep["this_run"]
    assert run["skipped_done"] == in_done and run["to_do"] == 8 - in_done  # only the rest is decoded
    assert run["removed_partial"] == ["shard_00002.h5.partial"]
    assert rep["clips_in_index"] == 8
    for name, (mtime, ino) in done.items():  # finished shards are never rewritten
        st = (out / name).stat()
        assert (st.st_mtime_ns, st.st_ino) == (mtime, ino)

    decoded.clear()
    again = run_prepare(ssv2_raw, out, lm_dir)
    assert decoded == [] and again["this_run"]["to_do"] == 0 and again["this_run"]["new_shards"] == []
    assert again["clips_in_index"] == 8


def test_damaged_finished_shard_is_redone(ssv2_raw, lm_dir, tmp_path):
    out = tmp_path / "out"
    run_prepare(ssv2_raw, out, lm_dir)
    victim = shard_files(out)[1]
    lost = len(read_shard_tables(victim).ids)
    victim.write_bytes(victim.read_bytes()[:300])  # truncated copy
    rep = run_prepare(ssv2_raw, out, lm_dir)
    assert rep["this_run"]["to_do"] == lost and victim.name in rep["this_run"]["removed_partial"]
    assert rep["clips_in_index"] == 8
    src = ShardSource(out)
    for c in range(len(src)):  # every clip readable again
        assert len(src.read_frames(c, [0, int(src.table.n_frames[c]) - 1])) == 2


def test_corrupt_clip_is_skipped_and_reported(ssv2_copy, lm_dir, tmp_path):
    (ssv2_copy / "videos" / "103.webm").write_bytes(os.urandom(2000))
    good = (ssv2_copy / "videos" / "101.webm").read_bytes()
    (ssv2_copy / "videos" / "104.webm").write_bytes(good[:120])  # cut inside the header
    out = tmp_path / "out"
    rep = run_prepare(ssv2_copy, out, lm_dir)
    failed = {f["id"]: f["error"] for f in rep["failed"]}
    assert set(failed) == {"103", "104"} and all(failed.values())
    assert rep["clips_in_index"] == 6 and rep["this_run"]["failed"] == 2
    saved = json.loads((out / "report.json").read_text())
    assert {f["id"] for f in saved["failed"]} == {"103", "104"}
    src = ShardSource(out)
    assert "103" not in src.table.ids and "101" in src.table.ids
    # a re-run does not retry known failures; --retry-failed does, and picks up fixed files
    assert run_prepare(ssv2_copy, out, lm_dir)["this_run"]["to_do"] == 0
    write_webm(ssv2_copy / "videos" / "103.webm", 16, 48, 48)
    rep = run_prepare(ssv2_copy, out, lm_dir, retry_failed=True)
    assert rep["this_run"]["to_do"] == 2 and [f["id"] for f in rep["failed"]] == ["104"]
    assert rep["clips_in_index"] == 7


def test_all_clips_corrupt_gives_an_empty_index_and_a_report(ssv2_copy, lm_dir, tmp_path):
    from robolearn.pretrain.datasets import StateDataset

    for p in (ssv2_copy / "videos").glob("*.webm"):
        p.write_bytes(b"not a video")
    rep = run_prepare(ssv2_copy, tmp_path / "out", lm_dir)
    assert rep["clips_in_index"] == 0 and len(rep["failed"]) == 8
    src = ShardSource(tmp_path / "out")
    assert len(src) == 0
    with pytest.raises(ValueError, match="no train clips"):
        StateDataset(src)


def test_parallel_workers_give_the_same_index(prepared, ssv2_raw, lm_dir, tmp_path):
    out = tmp_path / "par"
    rep = run_prepare(ssv2_raw, out, lm_dir, workers=2)
    assert rep["clips_in_index"] == 8 and rep["this_run"]["clips_per_s"] > 0
    a, b = ShardSource(prepared), ShardSource(out)
    assert a.table.ids == b.table.ids
    assert np.array_equal(a.table.n_frames, b.table.n_frames)
    assert np.array_equal(a.table.input_ids, b.table.input_ids)
    for c in range(len(a)):
        assert a.read_jpeg(c, 3) == b.read_jpeg(c, 3)


def test_a_worker_process_dying_only_fails_its_clip(ssv2_raw, tmp_path):
    from clipdata import dying_worker

    from robolearn.pretrain.shards import DIED, write_shards
    from robolearn.pretrain.ssv2 import ssv2_tasks

    tasks, _, _, _ = ssv2_tasks(ssv2_raw / "videos", ssv2_raw / "train.json", None)
    stats = write_shards(tmp_path / "out", tasks, dying_worker, {"source": "ssv2", "size": CROP}, workers=2)
    assert stats.written == 5 and stats.failed == 1
    tables = [read_shard_tables(p) for p in shard_files(tmp_path / "out")]
    assert sorted(i for t in tables for i in t.ids) == ["101", "102", "103", "105", "106"]
    assert {k: v[1] for t in tables for k, v in t.failed.items()} == {"104": DIED}


def test_missing_label_fields_name_file_and_entry(ssv2_copy, lm_dir, tmp_path):
    labels = json.loads((ssv2_copy / "train.json").read_text())
    del labels[2]["template"]
    (ssv2_copy / "train.json").write_text(json.dumps(labels))
    with pytest.raises(PrepareError, match=r"train\.json: entry 2 \(id '103'\): missing field 'template'"):
        run_prepare(ssv2_copy, tmp_path / "out", lm_dir)
    labels[2] = {"id": "103", "template": "x", "placeholders": []}
    (ssv2_copy / "train.json").write_text(json.dumps(labels))
    with pytest.raises(PrepareError, match="entry 2.*missing field 'label'"):
        read_labels(ssv2_copy / "train.json")
    labels[2] = {"id": "103", "label": "x", "template": "x", "placeholders": "a cup"}
    (ssv2_copy / "train.json").write_text(json.dumps(labels))
    with pytest.raises(PrepareError, match="entry 2.*'placeholders' must be a list of strings"):
        read_labels(ssv2_copy / "train.json")
    (ssv2_copy / "train.json").write_text("{not json")
    with pytest.raises(PrepareError, match="not valid JSON"):
        read_labels(ssv2_copy / "train.json")
    (ssv2_copy / "train.json").write_text(json.dumps({"id": "1"}))
    with pytest.raises(PrepareError, match="expected a JSON list"):
        read_labels(ssv2_copy / "train.json")


def test_empty_or_missing_source_errors(ssv2_copy, lm_dir, tmp_path):
    empty = tmp_path / "empty_videos"
    empty.mkdir()
    from robolearn.pretrain.ssv2 import prepare_ssv2

    with pytest.raises(PrepareError, match="empty source: no \\*\\.webm files"):
        prepare_ssv2(empty, ssv2_copy / "train.json", None, tmp_path / "o1", tokenizer=str(lm_dir), size=CROP)
    with pytest.raises(PrepareError, match="does not exist"):
        prepare_ssv2(tmp_path / "nope", ssv2_copy / "train.json", None, tmp_path / "o2", tokenizer=str(lm_dir))
    (ssv2_copy / "train.json").write_text("[]")
    with pytest.raises(PrepareError, match="empty source: no labelled clips"):
        prepare_ssv2(ssv2_copy / "videos", ssv2_copy / "train.json", None, tmp_path / "o3", tokenizer=str(lm_dir))
    with pytest.raises(PrepareError, match="cannot load tokenizer"):
        prepare_ssv2(
            ssv2_copy / "videos",
            ssv2_copy / "train.json",
            None,
            tmp_path / "o4",
            tokenizer=str(tmp_path / "no-such-tokenizer"),
        )


def test_missing_videos_are_reported_not_fatal(ssv2_copy, lm_dir, tmp_path):
    (ssv2_copy / "videos" / "106.webm").unlink()
    rep = run_prepare(ssv2_copy, tmp_path / "out", lm_dir)
    assert rep["missing_videos"] == 1 and rep["missing_video_ids"] == ["106"] and rep["clips_in_index"] == 7


def test_concurrent_run_on_the_same_folder_is_refused(ssv2_raw, lm_dir, tmp_path):
    from robolearn.pretrain.shards import output_lock

    out = tmp_path / "out"
    with output_lock(out):  # as if another prepare were running
        with pytest.raises(PrepareError, match=f"another prepare run \\(pid {os.getpid()}\\) is writing"):
            run_prepare(ssv2_raw, out, lm_dir)
    assert run_prepare(ssv2_raw, out, lm_dir)["clips_in_index"] == 8  # free again


def test_resume_with_another_crop_size_is_refused(ssv2_raw, lm_dir, tmp_path):
    out = tmp_path / "out"
    run_prepare(ssv2_raw, out, lm_dir, limit=2, val_clips=0)
    with pytest.raises(PrepareError, match="size=32.*asks for 48"):
        run_prepare(ssv2_raw, out, lm_dir, size=48)


def test_cli_prepare(ssv2_raw, lm_dir, tmp_path, capsys):
    import robolearn.pretrain.commands  # noqa: F401 (registers `pretrain prepare`)
    from robolearn.cli import main

    out = tmp_path / "cli"
    args = [
        "pretrain",
        "prepare",
        "--source",
        "ssv2",
        "--videos",
        str(ssv2_raw / "videos"),
        "--labels",
        str(ssv2_raw / "train.json"),
        "--validation",
        str(ssv2_raw / "validation.json"),
        "--out",
        str(out),
        "--tokenizer",
        str(lm_dir),
        "--size",
        str(CROP),
        "--val-clips",
        "1",
        "--limit",
        "3",
        "--max-lang-len",
        "8",
        "--frames-per-shard",
        "1000",
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    assert "4 clips" in printed.out and "(3 train, 1 val)" in printed.out
    assert (out / "prepare.config.json").is_file() and len(shard_files(out)) == 1
    assert ShardSource(out).table.max_lang_len == 8
    assert main(["pretrain", "prepare", "--source", "ssv2", "--out", str(out)]) == 2
    assert "needs --videos" in capsys.readouterr().err


def test_jpeg_store_is_plain_bytes(prepared):
    """Frames are ordinary JPEG files back to back: readable without robolearn."""
    p = shard_files(prepared)[0]
    with h5py.File(p, "r") as f:
        off, n = f["frames/index"][0]
        buf = f["frames/data"][off : off + n].tobytes()
        assert f["clips/first"][0] == 0
    assert simplejpeg.decode_jpeg(buf).shape == (CROP, CROP, 3)


def test_an_empty_caption_is_skipped_and_reported(ssv2_copy, lm_dir, tmp_path):
    from robolearn.pretrain.ssv2 import prepare_ssv2

    labels = json.loads((ssv2_copy / "train.json").read_text())
    labels[1]["label"], labels[1]["template"] = "  ", ""
    (ssv2_copy / "train.json").write_text(json.dumps(labels))
    rep = run_prepare(ssv2_copy, tmp_path / "out", lm_dir)
    assert rep["empty_captions"] == 1 and rep["empty_caption_ids"] == [str(labels[1]["id"])]
    assert rep["clips_in_index"] == 7 and str(labels[1]["id"]) not in ShardSource(tmp_path / "out").table.ids
    for e in labels:
        e["label"] = ""
    (ssv2_copy / "train.json").write_text(json.dumps(labels))
    with pytest.raises(PrepareError, match=r"train\.json: every one of the \d+ labelled clips has an empty 'label'"):
        prepare_ssv2(ssv2_copy / "videos", ssv2_copy / "train.json", None, tmp_path / "o2", tokenizer=str(lm_dir))
