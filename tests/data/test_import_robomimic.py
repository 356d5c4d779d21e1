"""`robolearn data import robomimic`: a robosuite-style file written here from robomimic's documented layout
(compressed datasets, no next_obs, demo_10 after demo_9, filter keys), a round trip through our own export,
and bad input (no `data`, NaN actions, strict)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from robolearn.data.catalog import read_split
from robolearn.data.interop.robomimic_import import import_robomimic
from robolearn.data.interop.runner import ImportFailed
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.robomimic import export_robomimic
from robolearn.data.synthetic import SyntheticConfig, make_dataset
from robolearn.data.validate import validate_episode

ENV_ARGS = {
    "env_name": "Lift",
    "type": 1,
    "env_kwargs": {
        "robots": ["Panda"],
        "control_freq": 20,
        "controller_configs": {"type": "OSC_POSE", "control_delta": True, "output_max": [0.05] * 3 + [0.5] * 3},
    },
}


def write_robosuite_file(path: Path, demos: int = 11, steps: int = 5, nan_demo: str | None = None) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        data.attrs["total"] = demos * steps
        for i in range(demos):
            g = data.create_group(f"demo_{i}")
            g.attrs["num_samples"] = steps
            act = np.concatenate(
                [rng.uniform(-1, 1, (steps, 6)), np.where(np.arange(steps) > 2, 1.0, -1.0)[:, None]], 1
            )
            if f"demo_{i}" == nan_demo:
                act[3, 2] = np.nan
            g.create_dataset("actions", data=act, compression="gzip")
            g.create_dataset("states", data=rng.normal(size=(steps, 32)))
            g.create_dataset("rewards", data=(np.arange(steps) == steps - 1).astype(np.float64))
            g.create_dataset("dones", data=(np.arange(steps) == steps - 1).astype(np.int64))
            q = rng.normal(size=(steps, 4))
            g.create_dataset(
                "obs/robot0_eef_quat", data=q / np.linalg.norm(q, axis=1, keepdims=True), compression="lzf"
            )
            g.create_dataset("obs/robot0_eef_pos", data=np.full((steps, 3), float(i)))
            g.create_dataset("obs/robot0_joint_pos", data=rng.normal(size=(steps, 7)))
            g.create_dataset("obs/robot0_gripper_qpos", data=np.full((steps, 2), 0.02))
            g.create_dataset("obs/object", data=rng.normal(size=(steps, 10)))
            img = np.full((steps, 8, 8, 3), i, np.uint8)
            g.create_dataset("obs/agentview_image", data=img, compression="gzip")
            g.create_dataset("obs/robot0_eye_in_hand_image", data=img + 100, compression="gzip")
        f.create_dataset("mask/train", data=np.array([f"demo_{i}" for i in range(demos - 2)], dtype="S"))
        f.create_dataset("mask/valid", data=np.array([f"demo_{i}" for i in range(demos - 2, demos)], dtype="S"))
        f.create_dataset("mask/20_percent", data=np.array([b"demo_10", b"demo_2"]))
    return path


def test_robosuite_file_maps_documented_fields(tmp_path):
    src = write_robosuite_file(tmp_path / "lift.hdf5")
    rep = import_robomimic(src, tmp_path / "out")
    assert len(rep.imported) == 11 and not rep.skipped
    files = list_episodes(tmp_path / "out")
    assert [p.name for p in files][:2] == ["demo_000000.h5", "demo_000001.h5"] and len(files) == 11
    with Episode(tmp_path / "out/lift/demo_000010.h5") as ep, h5py.File(src) as f:
        g = f["data/demo_10"]
        assert ep.attrs["extra"]["source"]["demo"] == "demo_10"  # demo_10 sorted after demo_9
        np.testing.assert_allclose(ep.action(), g["actions"][:, :6])
        np.testing.assert_allclose(ep.action("gripper_position"), (g["actions"][:, 6] + 1) / 2)
        np.testing.assert_allclose(ep.state("ee_quaternion"), g["obs/robot0_eef_quat"][:][:, [3, 0, 1, 2]])
        assert ep.attrs["action_space"] == "cartesian_velocity" and ep.attrs["control_hz"] == 20.0
        assert set(ep.absent) >= {
            "observation/robot_state/gripper_position",
            "observation/robot_state/joint_velocities",
        }
        assert "action/joint_position" in ep.absent
        assert ep.camera("robot0_eye_in_hand").role == "wrist" and ep.camera_names == [
            "agentview",
            "robot0_eye_in_hand",
        ]
        assert (ep.frames("agentview") == 10).all() and (ep.frames("robot0_eye_in_hand") == 110).all()  # PNG: lossless
        assert ep.attrs["extra"]["source"]["unmapped_obs"] == ["robot0_gripper_qpos", "object"][::-1]
        assert ep.array("is_terminal")[-1] and ep.array("reward")[-1] == 1
        assert ep.attrs["robot_type"] == "Panda" and ep.attrs["task"] == "Lift"
    assert [x for x in validate_episode(files[0]) if x.severity != "note"] == []
    out = tmp_path / "out"
    assert [p.name for p in read_split(out, "robomimic", "val")] == ["demo_000009.h5", "demo_000010.h5"]
    assert len(read_split(out, "robomimic", "train")) == 9
    assert [p.name for p in read_split(out, "robomimic_20_percent", "train")] == ["demo_000002.h5", "demo_000010.h5"]
    again = import_robomimic(src, out, workers=1)  # resumable: nothing imported twice
    assert not again.imported and len(again.already_done) == 11
    assert json.loads((out / "import_report_robomimic.json").read_text())["already_done"] == again.already_done


def test_round_trip_through_our_robomimic_export(tmp_path):
    paths = make_dataset(tmp_path / "ds", SyntheticConfig(num_episodes=2, steps=8, size=16))
    exp = export_robomimic(paths, tmp_path / "x.hdf5", compress=True)
    import_robomimic(exp, tmp_path / "out")
    for p, q in zip(paths, list_episodes(tmp_path / "out")):
        with Episode(p) as a, Episode(q) as b:
            assert b.num_steps == a.num_steps and b.attrs["uuid"] == a.attrs["uuid"]
            for k in ("lab", "household", "scene_id", "operator", "task", "success"):
                assert b.attrs[k] == a.attrs[k], k
            np.testing.assert_allclose(b.action(), a.action(), atol=1e-6)  # the export stores float32
            np.testing.assert_allclose(b.action("gripper_position"), a.action("gripper_position"), atol=1e-6)
            for k in ("ee_position", "ee_quaternion", "joint_positions", "joint_velocities", "gripper_position"):
                np.testing.assert_allclose(b.state(k), a.state(k), atol=1e-12)
            assert (b.frames("wrist") == a.frames("wrist")).all()  # decoded once, then stored losslessly


def test_file_without_data_is_refused_naming_file_and_field(tmp_path):
    src = tmp_path / "empty.hdf5"
    with h5py.File(src, "w") as f:
        f.create_group("mask")
    with pytest.raises(ImportFailed, match=r"empty\.hdf5: data: missing"):
        import_robomimic(src, tmp_path / "out")
    rep = json.loads((tmp_path / "out/import_report_robomimic.json").read_text())
    assert rep["skipped"][0]["field"] == "data"


def test_nan_actions_skip_the_demo_and_strict_stops(tmp_path):
    src = write_robosuite_file(tmp_path / "lift.hdf5", demos=4, nan_demo="demo_2")
    out = tmp_path / "out"
    rep = import_robomimic(src, out)
    assert [s["key"] for s in rep.skipped] == ["demo_2"] and "non-finite" in rep.skipped[0]["error"]
    assert rep.skipped[0]["field"] == "data/demo_2/actions" and rep.skipped[0]["file"] == str(src)
    assert len(rep.imported) == 3 and not list(out.rglob("*.partial"))
    before = {p: p.read_bytes() for p in list_episodes(out)}
    with pytest.raises(ImportFailed, match="demo_2"):
        import_robomimic(src, out, strict=True)
    assert {p: p.read_bytes() for p in list_episodes(out)} == before  # nothing already imported damaged
    with pytest.raises(ImportFailed, match="strict.*demo_2"):
        import_robomimic(src, tmp_path / "out2", strict=True)
    assert len(list_episodes(tmp_path / "out2")) == 2  # demo_0, demo_1 done before it stopped
