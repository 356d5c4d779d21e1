"""`robolearn data import droid`: a DROID raw tree written here from DROID's public code (droid_fixture.py):
metadata, camera roles, frame/row alignment despite the MP4's declared rate, Euler wrap, idle steps, stereo
and SVO files, and bad input (missing / truncated MP4, a video one frame short, frame count mismatch, NaN)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from robolearn.cli import main
from robolearn.data.interop.droid import import_droid
from robolearn.data.interop.runner import ImportFailed
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.validate import validate_episode
from tests.data.droid_fixture import SERIALS, expected_quat, level, write_episode, write_tree

STEPS = 12


@pytest.fixture(scope="module")
def droid_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("droid")
    write_tree(root, STEPS)
    return root


def test_tree_imports_with_metadata_alignment_and_poses(droid_tree, tmp_path):
    out = tmp_path / "out"
    assert main(["data", "import", "droid", str(droid_tree), "--out", str(out)]) == 0
    files = list_episodes(out)
    assert [p.parent.parent.name for p in files] == ["failure", "success", "success"]
    for p in files:
        assert [x for x in validate_episode(p) if x.severity != "note"] == [], p
    src = droid_tree / "IPRL/success/2023-07-07/Fri_Jul__7_09:42:23_2023"
    with Episode(files[1]) as ep, h5py.File(src / "trajectory.h5") as f:
        a = ep.attrs
        assert (a["lab"], a["household"], a["scene_id"], a["operator"], a["success"]) == (
            "IPRL",
            "Gates",
            "3",
            "Alice",
            1,
        )
        assert a["uuid"].startswith("IPRL+alice01+") and a["task"] == "put the marker in the cup"
        assert a["control_hz"] == 15.0 and a["action_space"] == "cartesian_velocity" and ep.num_steps == STEPS
        assert ep.camera_names == ["wrist", "exterior_1", "exterior_2"]
        assert [c.serial for c in ep.cameras] == list(SERIALS.values())
        assert ep.camera("wrist").mounted_on == "tool" and ep.camera("exterior_1").mounted_on == "world"
        for i, cam in enumerate(ep.camera_names):  # frame t belongs to row t (60 fps declared, 15 Hz control)
            means = [ep.frame(cam, t).mean() for t in range(STEPS)]
            assert np.abs(np.array(means) - [level(t, i) for t in range(STEPS)]).max() < 4.5, cam
        cart = f["observation/robot_state/cartesian_position"][()]
        q = ep.state("ee_quaternion")
        assert (np.abs(cart[:, 5]) > 3).all() and np.sign(cart[:, 5]).min() < 0 < np.sign(cart[:, 5]).max()  # wraps
        assert (np.sum(q[1:] * q[:-1], axis=1) > 0.99).all()  # ... but the quaternion does not jump
        np.testing.assert_allclose(np.abs(np.sum(q * expected_quat(cart), axis=1)), 1.0, atol=1e-9)
        np.testing.assert_allclose(ep.action("joint_velocity"), f["action/joint_velocity"][()])
        ctl = f["observation/timestamp/control/step_start"][()]
        np.testing.assert_array_equal(ep.array("timestamp/control/step_start_ns"), np.round(ctl * 1e6).astype(np.int64))
        ext = f[f"observation/timestamp/cameras/{SERIALS['ext1']}_estimated_capture"][()]
        np.testing.assert_array_equal(ep.camera_field("exterior_1", "capture_ns"), np.round(ext * 1e6).astype(np.int64))
        src_meta = a["extra"]["source"]
        assert src_meta["idle_steps"] == [0, 1] and src_meta["cameras"]["wrist"]["stereo_mp4"] is True
        assert src_meta["cameras"]["wrist"]["svo"] is False
        np.testing.assert_allclose(ep.camera("exterior_1").intrinsics[0][0], 500.0)
    rep = json.loads((out / "import_report_droid.json").read_text())
    assert len(rep["imported"]) == 3 and rep["skipped"] == []
    assert main(["data", "import", "droid", str(droid_tree), "--out", str(out)]) == 0  # resumable
    assert len(json.loads((out / "import_report_droid.json").read_text())["already_done"]) == 3


def test_drop_idle_resize_and_stereo_fallback(tmp_path):
    ep = write_episode(tmp_path / "src" / "Fri_Jul__7_09:42:23_2023", STEPS)
    (ep / f"recordings/MP4/{SERIALS['ext2']}.mp4").unlink()  # only the side-by-side stereo file is left
    rep = import_droid(tmp_path / "src", tmp_path / "out", drop_idle=True, image_size=(12, 16))
    assert any("left half" in w for w in rep.imported[0]["warnings"])
    with Episode(list_episodes(tmp_path / "out")[0]) as e:
        assert e.num_steps == STEPS - 2 and e.attrs["extra"]["source"]["dropped_idle_steps"] == [0, 1]
        assert e.frame("exterior_2", 0).shape == (12, 16, 3)
        assert abs(e.frame("exterior_2", 0).mean() - level(2, 2)) < 4.5  # left eye, first kept step (2)
        np.testing.assert_allclose(e.camera("exterior_1").intrinsics[0][0], 500.0 * 16 / 32)


def _bad(tmp_path, name, **kw):
    return write_episode(tmp_path / "src" / name, STEPS, **kw)


def test_bad_input_is_skipped_and_reported(tmp_path):
    _bad(tmp_path, "a_good")
    miss = _bad(tmp_path, "b_missing", stereo=False)
    (miss / f"recordings/MP4/{SERIALS['ext1']}.mp4").unlink()
    trunc = _bad(tmp_path, "c_truncated", stereo=False)
    mp4 = trunc / f"recordings/MP4/{SERIALS['wrist']}.mp4"
    mp4.write_bytes(mp4.read_bytes()[:200])
    _bad(tmp_path, "d_one_short", frames={"ext2": STEPS - 1})
    _bad(tmp_path, "e_mismatch", frames={"wrist": STEPS - 4})
    nan = _bad(tmp_path, "f_nan")
    with h5py.File(nan / "trajectory.h5", "r+") as f:
        f["action/joint_velocity"][3, 1] = np.nan
    out = tmp_path / "out"
    rep = import_droid(tmp_path / "src", out, workers=2)
    skipped = {s["key"]: s for s in rep.skipped}
    assert sorted(skipped) == ["b_missing", "c_truncated", "e_mismatch", "f_nan"]
    assert (
        skipped["b_missing"]["file"].endswith(f"{SERIALS['ext1']}.mp4") and "missing" in skipped["b_missing"]["error"]
    )
    assert skipped["c_truncated"]["field"] == "video" and skipped["c_truncated"]["file"] == str(mp4)
    assert "frame count mismatch" in skipped["e_mismatch"]["error"]
    assert skipped["f_nan"]["field"] == "action/joint_velocity" and "non-finite" in skipped["f_nan"]["error"]
    assert sorted(r["key"] for r in rep.imported) == ["a_good", "d_one_short"]
    assert not list(out.rglob("*.partial"))
    with Episode(out / "d_one_short.h5") as ep:  # the missing last frame is a dropped frame, rows kept
        assert ep.num_steps == STEPS and ep.camera_field("exterior_2", "dropped").tolist() == [False] * (STEPS - 1) + [
            True
        ]
    assert [x for x in validate_episode(out / "d_one_short.h5") if x.severity == "error"] == []
    before = {p: p.read_bytes() for p in list_episodes(out)}
    with pytest.raises(ImportFailed, match="b_missing"):
        import_droid(tmp_path / "src", out, strict=True)
    assert {p: p.read_bytes() for p in list_episodes(out)} == before  # nothing already imported damaged
    rep2 = import_droid(miss, tmp_path / "out2", allow_missing_cameras=True)  # or: import it, camera absent
    with Episode(tmp_path / "out2" / "b_missing.h5") as ep:
        assert "cameras/exterior_1" in ep.absent and not ep.has("cameras/exterior_1")
    assert not rep2.skipped
    shutil.rmtree(tmp_path / "src")
