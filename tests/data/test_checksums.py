"""Checksums and bounded reads (schema 1.1, issue 16): what the outside probe found, one test each, plus the
1.0 -> 1.1 migration and the loader's frame CRC check."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from corruptions import (
    MORE_CORRUPTIONS,
    as_schema_1_0,
    exponent_flip,
    garbage_frame,
    huge_attribute,
    huge_declared_rows,
    huge_num_steps,
    out_of_range_action,
    unknown_filter,
)

from robolearn import cli
from robolearn.data import schema
from robolearn.data.checksum import content_crc32
from robolearn.data.errors import EpisodeError
from robolearn.data.info import info
from robolearn.data.loader import EpisodeDataset, LoaderConfig
from robolearn.data.migrate import migrate
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.relabel import relabel
from robolearn.data.validate import validate_episode


@pytest.fixture
def good(small_dataset):
    return list_episodes(small_dataset)[0]


def errors(path, **kw):
    return [p for p in validate_episode(path, **kw) if p.severity == "error"]


def test_written_files_carry_every_checksum(good):
    with h5py.File(good) as f:
        assert f.attrs["schema_version"] == schema.SCHEMA_VERSION == "1.2"
        assert int(f.attrs[schema.CONTENT_CRC_ATTR]) == content_crc32(f)
        for fld in schema.STEP_FIELDS:
            assert f[fld.path].fletcher32, fld.path
        assert f["cameras/wrist/rgb/index"].fletcher32 and f["cameras/wrist/rgb/crc32"].shape == (20,)
        assert not f["cameras/wrist/rgb/data"]._filters  # frames stay readable with one pread
    assert validate_episode(good) == []


@pytest.mark.parametrize("name", sorted(MORE_CORRUPTIONS))
def test_each_new_corruption_is_an_error_naming_the_file(name, good, tmp_path):
    fn, kw = MORE_CORRUPTIONS[name]
    broken = fn(good, tmp_path / f"{name}.h5", **kw)
    errs = errors(broken.path)
    assert errs and all(p.path == str(broken.path) for p in errs), (broken.what, errs)


def test_huge_declared_shapes_are_named_errors_not_allocations(good, tmp_path, capsys):
    rows = huge_declared_rows(good, tmp_path / "rows.h5")
    steps = huge_num_steps(good, tmp_path / "steps.h5")
    assert any(
        p.field == "action/cartesian_velocity" and "declares 2147483648 rows" in p.message for p in errors(rows.path)
    )
    msgs = {p.field: p.message for p in errors(steps.path)}
    assert "2147483648 steps" in msgs["attrs/num_steps"] and "a file of" in msgs["attrs/num_steps"]
    with pytest.raises(EpisodeError, match="attrs/num_steps"):
        info(steps.path)
    with pytest.raises(EpisodeError, match="attrs/num_steps"):
        EpisodeDataset([steps.path])
    assert cli.main(["data", "info", str(steps.path)]) == 1
    assert cli.main(["data", "validate", str(steps.path)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "MemoryError" not in out.out + out.err


def test_silent_corruption_is_detected(good, tmp_path):
    flip = exponent_flip(good, tmp_path / "flip.h5")
    assert any("checksum mismatch" in p.message and p.field == flip.field for p in errors(flip.path))
    with Episode(flip.path) as ep, pytest.raises(EpisodeError, match="checksum mismatch"):
        ep.action("cartesian_velocity")
    with pytest.raises(EpisodeError, match="checksum"):
        EpisodeDataset([flip.path])[0]
    big = out_of_range_action(good, tmp_path / "big.h5")
    assert any("expected values in [-1, 1]" in p.message and "1e+300 at step 2" in p.message for p in errors(big.path))
    flt = unknown_filter(good, tmp_path / "filter.h5")
    assert any("filter 32999" in p.message and p.field == flt.field for p in errors(flt.path))
    attr = huge_attribute(good, tmp_path / "attr.h5")
    assert any(p.field == "attrs/extra" and "at most 1048576" in p.message for p in errors(attr.path))


def test_frame_crc_is_checked_by_reader_loader_and_validate(good, tmp_path):
    broken = garbage_frame(good, tmp_path / "g.h5", step=2)
    assert any("CRC32 mismatch" in p.message for p in errors(broken.path, sample_frames=1))
    with Episode(broken.path) as ep, pytest.raises(EpisodeError, match=r"rgb\[2\].*CRC32 mismatch"):
        ep.frame("wrist", 2)
    ds = EpisodeDataset([broken.path])
    with pytest.raises(EpisodeError, match="CRC32 mismatch"):
        ds[2]
    ds[5]  # the other frames still load
    off = EpisodeDataset([broken.path], LoaderConfig(verify_checksums=False))
    with pytest.raises(EpisodeError, match="cannot decode"):
        off[2]  # random bytes still fail to decode; only the CRC check is off


def test_schema_1_0_files_validate_with_a_note_and_migrate_to_checksums(good, tmp_path):
    old = as_schema_1_0(good, tmp_path / "ds" / "old.h5")
    problems = validate_episode(old)
    assert [(p.severity, p.field) for p in problems] == [("note", "file")] and "no checksums" in problems[0].message
    with Episode(old) as ep:
        frames_before, action_before = ep.frames("wrist"), ep.action()
    rep = migrate(tmp_path / "ds")
    assert [(u["from"], u["to"]) for u in rep.upgraded] == [("1.0", "1.2")] and not rep.problems
    assert validate_episode(old) == []
    with h5py.File(old) as f:
        assert f["action/cartesian_velocity"].fletcher32 and "crc32" in f["cameras/wrist/rgb"]
        assert f["action/cartesian_velocity"].attrs["units"] == "normalised"
    with Episode(old) as ep:
        assert np.array_equal(ep.frames("wrist"), frames_before) and np.array_equal(ep.action(), action_before)
    assert migrate(tmp_path / "ds").current == [str(old)]


def test_edits_keep_the_content_crc_and_refuse_corrupted_attributes(good, tmp_path):
    p = tmp_path / "e.h5"
    shutil.copyfile(good, p)
    relabel([p], success=False, who="tester")
    assert validate_episode(p) == []
    with h5py.File(p, "r+") as f:
        f.attrs["task"] = "edited with h5py"  # not through robolearn: the content CRC no longer matches
    assert [e.field for e in errors(p)] == [f"attrs/{schema.CONTENT_CRC_ATTR}"]
    with pytest.raises(EpisodeError, match="refusing to edit"):
        relabel([p], success=True, who="tester")
