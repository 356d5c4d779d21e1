"""robomimic export: the layout robomimic's SequenceDataset reads, with the values of the episodes."""

import json

import h5py
import numpy as np
import pytest

from robolearn.cli import main
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.robomimic import export_robomimic


def test_export_layout_and_values(small_dataset, tmp_path):
    paths = list_episodes(small_dataset)
    out = export_robomimic(paths, tmp_path / "rm.hdf5", split={"train": paths[:4], "valid": paths[4:]}, next_obs=True)
    with h5py.File(out) as f, Episode(paths[1]) as ep:
        assert sorted(f["data"].keys(), key=lambda k: int(k[5:])) == [f"demo_{i}" for i in range(len(paths))]
        assert f["data"].attrs["total"] == sum(f[f"data/demo_{i}"].attrs["num_samples"] for i in range(len(paths)))
        g = f["data/demo_1"]
        T = ep.num_steps
        assert g.attrs["num_samples"] == T
        np.testing.assert_array_equal(g["obs/robot0_eef_quat"][:, 3], ep.state("ee_quaternion")[:, 0])  # w last
        np.testing.assert_array_equal(g["obs/robot0_joint_pos"], ep.state("joint_positions"))
        assert g["obs/wrist_image"].shape == (T, 32, 32, 3) and g["obs/wrist_image"].dtype == np.uint8
        np.testing.assert_array_equal(g["obs/wrist_image"][3], ep.frame("wrist", 3))
        np.testing.assert_array_equal(g["next_obs/robot0_eef_pos"][0], ep.state("ee_position")[1])
        act = g["actions"][()]
        assert act.dtype == np.float32 and act.shape == (T, 7)
        np.testing.assert_allclose(act[:, :6], ep.action(), rtol=1e-6)
        assert set(np.unique(act[:, 6])) <= {-1.0, 1.0}
        assert g["dones"][-1] == 1 and g["dones"][:-1].sum() == 0
        meta = json.loads(g.attrs["ep_meta"])
        assert meta["uuid"] == ep.attrs["uuid"] and meta["lang"] == ep.language[0]
        assert [n.decode() for n in f["mask/train"]] == ["demo_0", "demo_1", "demo_2", "demo_3"]
        n_success = sum(Episode(p).attrs["success"] == 1 for p in paths)
        assert len(f["mask/success"]) == n_success


def test_export_refuses_overwrite_and_cli(small_dataset, tmp_path):
    out = tmp_path / "rm.hdf5"
    assert main(["data", "export-robomimic", str(small_dataset), "--out", str(out), "--no-images"]) == 0
    with h5py.File(out) as f:
        assert "wrist_image" not in f["data/demo_0/obs"]
    with pytest.raises(FileExistsError):
        export_robomimic(list_episodes(small_dataset), out)


def test_zero_step_episode_is_left_out_and_failures_leave_no_temp(small_dataset, tmp_path, capsys):
    from robolearn.data.schema import CameraSpec
    from robolearn.data.writer import EpisodeMeta, EpisodeWriter

    src = tmp_path / "src"
    src.mkdir()
    paths = list_episodes(small_dataset)[:2]
    for p in paths:
        (src / p.name).hardlink_to(p)
    with EpisodeWriter(src / "a_empty.h5", EpisodeMeta(), [CameraSpec("wrist", 32, 32), CameraSpec("ext", 32, 32)]):
        pass
    out = tmp_path / "rm.hdf5"
    assert main(["data", "export-robomimic", str(src), "--out", str(out)]) == 0
    assert "1 episodes without steps left out" in capsys.readouterr().out
    with h5py.File(out) as f:
        assert sorted(f["data"].keys()) == ["demo_0", "demo_1"]
        assert f["data"].attrs["total"] == sum(Episode(p).num_steps for p in paths)
    bad = tmp_path / "bad.hdf5"
    with pytest.raises(ValueError, match="no episode with at least one step"):
        export_robomimic([src / "a_empty.h5"], bad)
    assert not bad.exists() and not (tmp_path / "bad.hdf5.tmp").exists()
    assert main(["data", "export-robomimic", str(src), "--out", str(out)]) == 1  # exists: message, no traceback
