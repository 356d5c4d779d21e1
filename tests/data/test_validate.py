"""`validate_episode` / `validate_dataset` / `robolearn data validate`: one test per kind of bad input, each
asserting that the problem names the file and the field; a clean dataset passes; --quarantine moves files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from corruptions import CORRUPTIONS, Broken, bad_json_attr, missing_dataset, not_hdf5, truncated

from robolearn import cli
from robolearn.data import schema
from robolearn.data.checksum import set_content_crc
from robolearn.data.quarantine import QUARANTINE_DIR, QUARANTINE_LOG
from robolearn.data.reader import list_episodes
from robolearn.data.validate import validate_dataset, validate_episode


@pytest.fixture
def run_cli(monkeypatch):
    """`robolearn ...` through the real CLI entry point."""
    return cli.main


@pytest.fixture
def good(small_dataset) -> Path:
    return list_episodes(small_dataset)[0]


def errors(problems):
    return [p for p in problems if p.severity == "error"]


def assert_names(broken: Broken, problems) -> None:
    errs = errors(problems)
    assert errs, f"{broken.what}: no error reported"
    assert all(p.path == str(broken.path) for p in errs)
    assert any(p.field == broken.field for p in errs), (broken.field, [str(p) for p in errs])


def test_clean_dataset_has_no_problems(small_dataset):
    report = validate_dataset(small_dataset)
    assert len(report.checked) == 6 and report.problems == [] and report.ok


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_is_reported_with_file_and_field(name, good, tmp_path):
    fn, kw = CORRUPTIONS[name]
    broken = fn(good, tmp_path / f"{name}.h5", **kw)
    assert_names(broken, validate_episode(broken.path))


def test_truncated_file_is_a_problem_not_a_traceback(good, tmp_path):
    for frac in (0.02, 0.4, 0.9):
        broken = truncated(good, tmp_path / f"t{frac}.h5", fraction=frac)
        assert_names(broken, validate_episode(broken.path))


def test_messages_say_what_was_expected_and_found(good, tmp_path):
    def message(name: str, **kw) -> str:
        fn, base = CORRUPTIONS[name]
        broken = fn(good, tmp_path / f"{name}.h5", **{**base, **kw})
        return " ".join(p.message for p in errors(validate_episode(broken.path)) if p.field == broken.field)

    assert "unknown schema version '9.9'" in message("unknown_schema_version") and "['1.0', '1.1', '1.2']" in message(
        "unknown_schema_version"
    )
    assert "expected float64, found float32" in message("wrong_dtype")
    assert "expected 20 rows (num_steps), found 19" in message("mismatched_length")
    assert "NaN/Inf at step 3" in message("nan_action")
    assert "NaN/Inf at step 5" in message("inf_state")
    assert "norm 1.5 at step 2" in message("non_unit_quaternion")
    assert "step back at step 4" in message("non_monotonic_timestamps")
    assert "orthonormal" in message("bad_extrinsics")
    assert "missing" in message("missing_dataset")
    assert "JSON" in message("bad_json_attr")
    assert "at step 6" in message("byte_index_out_of_range")
    assert "first at step 7" in message("undecodable_frame")


def test_more_attribute_and_registry_checks(good, tmp_path):
    p = tmp_path / "e.h5"
    shutil.copyfile(good, p)
    with h5py.File(p, "r+") as f:
        f.attrs["success"] = np.int64(7)
        f.attrs["control_hz"] = "fast"
        f.attrs["complete"] = np.int64(1)
        cams = json.loads(f.attrs["cameras"])
        cams[0]["intrinsics"] = [[1, 0, 0], [0, 1, 0]]
        ext = np.eye(4)
        ext[3] = [0, 0, 1, 1]
        cams[1]["extrinsics"] = ext.tolist()
        f.attrs["cameras"] = json.dumps(cams)
        f["is_first"][4] = True
        f["language/active"][2] = 9
    fields = {p.field: p.message for p in errors(validate_episode(p))}
    assert "expected 1, 0 or -1" in fields["attrs/success"]
    assert "expected type float" in fields["attrs/control_hz"]
    assert "expected type bool" in fields["attrs/complete"]
    assert "expected shape (3, 3)" in fields[f"attrs/cameras[{cams[0]['name']}].intrinsics"]
    assert "last row [0, 0, 0, 1]" in fields[f"attrs/cameras[{cams[1]['name']}].extrinsics"]
    assert "True only at step 0, found True at step 4" in fields["is_first"]
    assert "[0, 1)" in fields["language/active"]


def test_dropped_frame_markers_and_overlaps(good, tmp_path):
    p = tmp_path / "e.h5"
    shutil.copyfile(good, p)
    with h5py.File(p, "r+") as f:
        cam = json.loads(f.attrs["cameras"])[0]["name"]
        g = f"cameras/{cam}/rgb"
        f[f"cameras/{cam}/dropped"][1] = True  # marked dropped but has bytes
        f[f"{g}/index"][3] = f[f"{g}/index"][2]  # two steps share one frame's bytes
    fields = {p.field: p.message for p in errors(validate_episode(p))}
    assert "overlap" in fields[f"{g}/index"] or "dropped" in fields[f"{g}/index"]
    msgs = " ".join(p.message for p in errors(validate_episode(p)))
    assert "non-overlapping" in msgs and "dropped" in msgs


def test_incomplete_episode_is_a_warning(good, tmp_path):
    p = tmp_path / "e.h5"
    shutil.copyfile(good, p)
    with h5py.File(p, "r+") as f:
        f.attrs["complete"] = False
        set_content_crc(f)  # an edit made the robolearn way (edit.edit_atomically) keeps the content CRC right
    problems = validate_episode(p)
    assert [(x.severity, x.field) for x in problems] == [("warning", "attrs/complete")]


def test_sample_frames_checks_fewer_frames(good, tmp_path):
    fn, kw = CORRUPTIONS["undecodable_frame"]
    broken = fn(good, tmp_path / "e.h5", **kw)  # frame 7 of 20 is bad
    assert errors(validate_episode(broken.path))
    sampled = errors(validate_episode(broken.path, sample_frames=2))  # only frames 0 and 19 decoded ...
    assert [p.message for p in sampled if "decode" in p.message] == []
    assert ["CRC32 mismatch" in p.message and "first at step 7" in p.message for p in sampled] == [True]  # all CRCed


def test_dataset_report_and_partials(dataset_copy):
    bad = missing_dataset(list_episodes(dataset_copy)[1], dataset_copy / "sub" / "broken.h5")
    junk = not_hdf5(None, dataset_copy / "junk.h5")
    (dataset_copy / ("pending" + schema.TMP_SUFFIX)).write_bytes(b"")
    report = validate_dataset(dataset_copy)
    assert len(report.checked) == 8
    assert report.bad_files == sorted([str(bad.path), str(junk.path)])
    assert any(
        p.severity == "warning" and p.path.endswith(schema.TMP_SUFFIX) and "repair" in p.message
        for p in report.problems
    )
    assert not report.quarantined and bad.path.exists()


def test_quarantine_moves_bad_files_keeping_relative_paths(dataset_copy):
    bad = bad_json_attr(list_episodes(dataset_copy)[1], dataset_copy / "sub" / "broken.h5")
    junk = not_hdf5(None, dataset_copy / "junk.h5")
    good = list_episodes(dataset_copy)
    report = validate_dataset(dataset_copy, quarantine=True)
    q = dataset_copy / QUARANTINE_DIR
    assert report.quarantined == {str(bad.path): str(q / "sub" / "broken.h5"), str(junk.path): str(q / "junk.h5")}
    assert not bad.path.exists() and (q / "sub" / "broken.h5").exists() and (q / "junk.h5").exists()
    log = (q / QUARANTINE_LOG).read_text().splitlines()
    assert len(log) == 2 and any("sub/broken.h5" in line and "attrs/teleop_params" in line for line in log)
    # the rest of the dataset is untouched and now clean; quarantined files are not listed any more
    assert list_episodes(dataset_copy) == [p for p in good if p not in (bad.path, junk.path)]
    assert validate_dataset(dataset_copy).ok
    # a second bad file with the same name does not overwrite the first quarantined copy
    again = not_hdf5(None, dataset_copy / "junk.h5")
    report2 = validate_dataset(dataset_copy, quarantine=True)
    assert report2.quarantined == {str(again.path): str(q / "junk.h5.1")}
    assert (q / "junk.h5").exists() and (q / "junk.h5.1").exists()


def test_cli_clean_dataset_exit_0(small_dataset, run_cli, capsys):
    assert run_cli(["data", "validate", str(small_dataset)]) == 0
    out = capsys.readouterr().out
    assert "checked 6 episodes: 0 errors" in out


def test_cli_errors_json_and_quarantine(dataset_copy, run_cli, capsys):
    broken = truncated(list_episodes(dataset_copy)[0], dataset_copy / "cut.h5")
    assert run_cli(["data", "validate", str(dataset_copy), "--json", "--sample-frames", "3"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] >= 1 and report["bad_files"] == [str(broken.path)]
    assert all(p["path"] == str(broken.path) and p["field"] == "file" for p in report["problems"])
    assert run_cli(["data", "validate", str(dataset_copy), "--quarantine"]) == 1
    out = capsys.readouterr().out
    assert f"ERROR   {broken.path}: file:" in out and "1 quarantined" in out
    assert run_cli(["data", "validate", str(dataset_copy)]) == 0


def test_single_file_and_missing_path(good, tmp_path, run_cli, capsys):
    assert run_cli(["data", "validate", str(good)]) == 0
    assert run_cli(["data", "validate", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().out
