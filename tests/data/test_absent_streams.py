"""Schema 1.2 absent streams: the writer accepts episodes without some state fields / action forms / cameras,
they are not stored and are listed in `absent_streams`; reader, validate, stats and the loader respect it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from robolearn.data.errors import EpisodeError
from robolearn.data.loader import EpisodeDataset, LoaderConfig
from robolearn.data.migrate import migrate
from robolearn.data.reader import Episode
from robolearn.data.schema import CameraSpec
from robolearn.data.stats import compute_stats
from robolearn.data.validate import validate_episode
from robolearn.data.writer import EpisodeMeta, EpisodeWriter
from tests.data.corruptions import as_schema_1_0

ABSENT = {
    "action/joint_position": "not recorded by the source",
    "action/joint_velocity": "not recorded by the source",
    "observation/robot_state/joint_velocities": "not recorded by the source",
    "cameras/wrist": "video missing",
}


def write_partial_episode(path, steps: int = 6, absent=None):
    absent = ABSENT if absent is None else absent
    cams = [CameraSpec("front", 16, 16)]
    meta = EpisodeMeta(action_space="cartesian_velocity", task="t")
    with EpisodeWriter(path, meta, cams, absent=absent) as w:
        for t in range(steps):
            w.add_step(
                state={
                    "joint_positions": np.full(7, t * 0.1),
                    "ee_position": [0.1, 0.2, 0.3],
                    "ee_quaternion": [1.0, 0, 0, 0],
                    "gripper_position": 0.5,
                },
                action={
                    "cartesian_velocity": np.full(6, 0.1),
                    "cartesian_position": [0, 0, 0, 1, 0, 0, 0],
                    "gripper_position": 1.0,
                },
                images={"front": np.full((16, 16, 3), 10 * t, np.uint8)},
            )
    return path


def test_absent_streams_are_not_stored_and_listed(tmp_path):
    p = write_partial_episode(tmp_path / "a.h5")
    with h5py.File(p) as f:
        assert f.attrs["schema_version"] == "1.2"
        for key in ABSENT:
            assert key not in f
        assert "action/cartesian_velocity" in f
    with Episode(p) as ep:
        assert ep.absent == ABSENT
        assert not ep.has("action/joint_position") and ep.has("action/cartesian_velocity")
        assert not ep.has("cameras/wrist") and ep.has("cameras/front")
        assert "observation/robot_state/joint_velocities" not in ep.present_streams
        assert "cameras/front" in ep.present_streams
        assert ep.action().shape == (6, 6)
        with pytest.raises(EpisodeError, match=r"a\.h5.*action/joint_velocity.*absent"):
            ep.action("joint_velocity")
        with pytest.raises(EpisodeError, match=r"cameras/wrist.*absent.*video missing"):
            ep.frame("wrist", 0)
        assert "action/joint_position" not in ep.lowdim()
    assert [x for x in validate_episode(p) if x.severity != "note"] == []


def test_writer_refuses_inconsistent_absent_declarations(tmp_path):
    with pytest.raises(EpisodeError, match="commanded action form"):
        write_partial_episode(tmp_path / "b.h5", absent={"action/cartesian_velocity": "x"})
    with pytest.raises(EpisodeError, match="not a stream that can be absent"):
        write_partial_episode(tmp_path / "c.h5", absent={"reward": "x"})
    with pytest.raises(EpisodeError, match="registered camera"):
        write_partial_episode(tmp_path / "d.h5", absent={"cameras/front": "x"})
    with pytest.raises(EpisodeError, match="declared absent.*in the action dict"):  # given though absent
        write_partial_episode(tmp_path / "e.h5", absent={**ABSENT, "action/cartesian_position": "x"})
    with pytest.raises(EpisodeError, match="joint_velocities.*missing from state"):  # absent, not declared
        write_partial_episode(tmp_path / "f.h5", absent={})


def test_validate_flags_stored_absent_stream_and_missing_attr(tmp_path):
    p = write_partial_episode(tmp_path / "a.h5")
    with h5py.File(p, "r+") as f:
        f.create_dataset("action/joint_position", data=np.zeros((6, 7)))
    errs = [(x.field, x.message) for x in validate_episode(p) if x.severity == "error"]
    assert any(fld == "action/joint_position" and "listed in" in m for fld, m in errs)
    q = write_partial_episode(tmp_path / "b.h5", absent={k: v for k, v in ABSENT.items() if "cameras" not in k})
    with h5py.File(q, "r+") as f:
        del f.attrs["absent_streams"]
    errs = [x.field for x in validate_episode(q) if x.severity == "error"]
    assert "attrs/absent_streams" in errs


def test_loader_refuses_absent_key_naming_file_and_key(tmp_path):
    p = write_partial_episode(tmp_path / "a.h5")
    ok = EpisodeDataset(
        [p], LoaderConfig(cameras=["front"], proprio_keys=["joint_positions", "ee_position"], image_size=(16, 16))
    )
    assert len(ok) == 6
    with pytest.raises(EpisodeError, match=r"a\.h5.*observation/robot_state/joint_velocities.*absent"):
        EpisodeDataset([p], LoaderConfig(cameras=["front"], image_size=(16, 16)))  # default proprio: every state field
    with pytest.raises(EpisodeError, match=r"a\.h5.*cameras/wrist.*absent"):
        EpisodeDataset([p], LoaderConfig(cameras=["wrist"], proprio_keys=["joint_positions"], image_size=(16, 16)))
    with pytest.raises(EpisodeError, match=r"a\.h5.*action/joint_velocity.*absent"):
        EpisodeDataset(
            [p],
            LoaderConfig(
                cameras=["front"], proprio_keys=["joint_positions"], action_keys=["joint_velocity"], image_size=(16, 16)
            ),
        )


def test_stats_skip_absent_default_keys(tmp_path):
    p = write_partial_episode(tmp_path / "a.h5")
    st = compute_stats([p])
    assert "action/joint_position" not in st["stats"] and st["stats"]["action/cartesian_velocity"]["count"] == 6
    with pytest.raises(EpisodeError, match="absent"):
        compute_stats([p], keys=["action/joint_position"])


def test_migrate_1_1_to_1_2_adds_empty_absent_streams(small_dataset, tmp_path):
    src = sorted(small_dataset.glob("*.h5"))[0]
    old = as_schema_1_0(src, tmp_path / "ds" / "old.h5")
    rep = migrate(tmp_path / "ds")
    assert rep.upgraded[0]["steps"] == ["1.1", "1.2"] and not rep.problems
    with Episode(old) as ep:
        assert ep.attrs["schema_version"] == "1.2" and ep.absent == {}
    assert validate_episode(old) == []
