"""Dataset statistics: exact moments, histogram quantiles within their stated error, the JSON file, the CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from robolearn.cli import main
from robolearn.data.errors import EpisodeError
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.stats import QUANTILES, compute_stats, key_stats, load_stats, resolve_key, save_stats


def _all(paths, key) -> np.ndarray:
    out = []
    for p in paths:
        with Episode(p) as ep:
            x = ep.array(key)
            out.append(x.reshape(x.shape[0], -1))
    return np.concatenate(out)


def test_stats_match_numpy(small_dataset):
    paths = list_episodes(small_dataset)
    bins = 256
    st = compute_stats(paths, bins=bins)
    assert st["num_episodes"] == 6 and st["num_steps"] == 120
    assert "observation/robot_state/joint_positions" in st["stats"] and "action/gripper_position" in st["stats"]
    for key in (
        "observation/robot_state/joint_positions",
        "action/cartesian_velocity",
        "observation/robot_state/gripper_position",
        "observation/robot_state/ee_quaternion",
    ):
        x = _all(paths, key)
        s = st["stats"][key]
        assert s["count"] == len(x) and len(s["mean"]) == x.shape[1]
        np.testing.assert_allclose(s["mean"], x.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(s["std"], x.std(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(s["min"], x.min(0))
        np.testing.assert_array_equal(s["max"], x.max(0))
        width = (x.max(0) - x.min(0)) / bins
        for name, q in QUANTILES.items():
            err = np.abs(np.asarray(s[name]) - np.quantile(x, q, axis=0))
            assert np.all(err <= width + 1e-12), (key, name, err, width)


def test_order_independent_and_short_keys(small_dataset):
    paths = list_episodes(small_dataset)
    a = compute_stats(paths, keys=["joint_positions", "action/gripper_position"])
    b = compute_stats(paths[::-1], keys=["observation/robot_state/joint_positions", "action/gripper_position"])
    assert list(a["stats"]) == ["observation/robot_state/joint_positions", "action/gripper_position"]
    for k in a["stats"]:
        for name in ("mean", "std", "min", "max", "q50"):
            np.testing.assert_allclose(a["stats"][k][name], b["stats"][k][name], rtol=1e-12)
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_key("gripper_position")
    with pytest.raises(ValueError, match="unknown"):
        resolve_key("elbow_torque")


def test_save_load_and_key_stats(small_dataset, tmp_path):
    paths = list_episodes(small_dataset)
    st = compute_stats(paths, keys=["cartesian_velocity"], root=small_dataset)
    out = save_stats(st, tmp_path / "s" / "stats.json")
    back = load_stats(tmp_path / "s")
    assert back == json.loads(out.read_text())
    assert [e["path"] for e in back["episodes"]] == [p.name for p in paths]
    with Episode(paths[0]) as ep:
        assert back["episodes"][0]["uuid"] == ep.attrs["uuid"] and back["episodes"][0]["num_steps"] == 20
    assert back["config"]["keys"] == ["action/cartesian_velocity"] and "histogram" in back["config"]["method"]
    ks = key_stats(back, "cartesian_velocity")
    assert ks["mean"].shape == (6,) and ks["count"] == 120
    with pytest.raises(KeyError, match="no statistics"):
        key_stats(back, "joint_positions")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="robolearn.stats"):
        load_stats(tmp_path / "bad.json")


def test_non_finite_raises_or_skips(dataset_copy):
    paths = list_episodes(dataset_copy)
    with h5py.File(paths[2], "r+") as f:
        f["observation/robot_state/ee_position"][4, 1] = np.inf
    with pytest.raises(EpisodeError) as ei:
        compute_stats(paths)
    assert paths[2].name in str(ei.value) and ei.value.field == "observation/robot_state/ee_position"
    assert "step 4" in str(ei.value)
    st = compute_stats(paths, skip_bad=True)
    assert st["num_episodes"] == 5 and st["skipped"][0]["path"].endswith(paths[2].name)


def test_cli_writes_stats_json(dataset_copy, tmp_path, capsys):
    assert main(["data", "stats", str(dataset_copy)]) == 0
    st = load_stats(dataset_copy / "stats.json")
    assert st["num_episodes"] == 6 and len(st["stats"]) == 10
    assert "joint_positions" in capsys.readouterr().out
    out = tmp_path / "only.json"
    assert (
        main(["data", "stats", str(dataset_copy), "--out", str(out), "--keys", "cartesian_velocity", "--bins", "128"])
        == 0
    )
    st = load_stats(out)
    assert list(st["stats"]) == ["action/cartesian_velocity"] and st["config"]["bins"] == 128


def test_cli_where_and_bad_episode(dataset_copy, capsys):
    from robolearn.data import catalog

    if hasattr(catalog, "select_paths"):
        assert main(["data", "stats", str(dataset_copy), "--where", "household=house_1"]) == 0
        st = load_stats(dataset_copy / "stats.json")
        assert 0 < st["num_episodes"] < 6 and st["config"]["where"] == ["household=house_1"]
    (dataset_copy / "zz_broken.h5").write_bytes(b"not hdf5" * 100)
    assert main(["data", "stats", str(dataset_copy)]) == 1
    assert "zz_broken.h5" in capsys.readouterr().out
    assert main(["data", "stats", str(dataset_copy), "--skip-bad"]) == 0
    assert "skipped" in capsys.readouterr().out


def test_zero_step_episode_is_counted_not_fatal(dataset_copy):
    from robolearn.data.schema import CameraSpec
    from robolearn.data.writer import EpisodeMeta, EpisodeWriter

    paths = list_episodes(dataset_copy)
    with EpisodeWriter(dataset_copy / "empty.h5", EpisodeMeta(), [CameraSpec("wrist", 32, 32)]):
        pass  # closed with 0 steps: a valid (if useless) episode
    st = compute_stats(paths + [dataset_copy / "empty.h5"])
    ref = compute_stats(paths)
    assert st["num_episodes"] == len(paths) + 1 and not st["skipped"]
    assert st["stats"] == ref["stats"]
    with pytest.raises(ValueError, match="no steps"):
        compute_stats([dataset_copy / "empty.h5"])


def test_stats_out_never_replaces_an_episode(dataset_copy, capsys):
    ep = list_episodes(dataset_copy)[0]
    before = ep.read_bytes()
    assert main(["data", "stats", str(dataset_copy), "--out", str(ep)]) == 1
    assert "refusing" in capsys.readouterr().out
    assert ep.read_bytes() == before
