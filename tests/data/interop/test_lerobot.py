"""LeRobot v3.0 export and import without lerobot: layout, round trip, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robolearn.cli import main
from robolearn.data.errors import EpisodeError
from robolearn.data.interop.lerobot import ImportConfig, LeRobotFormatError, export_lerobot, import_lerobot
from robolearn.data.interop.lerobot.importer import REPORT
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.synthetic import SyntheticConfig, make_dataset
from robolearn.data.validate import validate_dataset

STEPS = 10


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rl_src")
    make_dataset(root, SyntheticConfig(num_episodes=3, steps=STEPS, size=32))
    return root


@pytest.fixture(scope="module")
def exported(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lr") / "ds"
    rep = export_lerobot(list_episodes(source), out)
    assert rep == {"episodes": 3, "frames": 3 * STEPS, "skipped": []}
    return out


@pytest.fixture
def lr_copy(exported, copy_tree) -> Path:
    return copy_tree(exported, "lr_copy")


def test_export_layout(exported):
    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 15
    assert (info["total_episodes"], info["total_frames"]) == (3, 3 * STEPS)
    assert info["features"]["observation.images.wrist"]["dtype"] == "video"
    assert info["features"]["action"]["names"][:2] == ["cartesian_velocity.0", "cartesian_velocity.1"]
    eps = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == [STEPS] * 3
    assert [e["dataset_from_index"] for e in eps] == [0, STEPS, 2 * STEPS]
    key = "videos/observation.images.wrist"
    assert [e[f"{key}/from_timestamp"] for e in eps] == pytest.approx([0, STEPS / 15, 2 * STEPS / 15])
    data = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    assert data.num_rows == 3 * STEPS and data.column("index").to_pylist() == list(range(3 * STEPS))
    assert pa.types.is_fixed_size_list(data.schema.field("action").type)
    tasks = pq.read_table(exported / "meta/tasks.parquet")  # LeRobot reads it with pandas: `task` is the index
    assert json.loads(tasks.schema.metadata[b"pandas"])["index_columns"] == ["task"]
    assert tasks.column("task_index").to_pylist() == list(range(tasks.num_rows))
    stats = json.loads((exported / "meta/stats.json").read_text())
    assert stats["action"]["count"] == [3 * STEPS] and len(stats["observation.images.wrist"]["mean"]) == 3


def test_export_refuses_existing_out(source, exported):
    with pytest.raises(FileExistsError):
        export_lerobot(list_episodes(source), exported)


def test_round_trip(source, exported, tmp_path):
    rep = import_lerobot(exported, tmp_path / "back", ImportConfig(workers=2))
    assert rep.imported == [0, 1, 2] and rep.skipped == [] and rep.not_carried == []
    assert [str(p) for p in validate_dataset(tmp_path / "back").problems if p.severity == "error"] == []
    for a, b in zip(list_episodes(source), list_episodes(tmp_path / "back"), strict=True):
        with Episode(a) as x, Episode(b) as y:
            assert x.num_steps == y.num_steps == STEPS
            for key in ("uuid", "lab", "household", "scene_id", "operator", "robot_type", "task", "success"):
                assert x.attrs[key] == y.attrs[key], key
            assert x.attrs["action_space"] == y.attrs["action_space"] and x.language == y.language
            assert x.instructions() == y.instructions()
            assert y.attrs["extra"]["lerobot"]["original"]["start_time"] == x.attrs["start_time"]
            for form in ("cartesian_velocity", "cartesian_position", "joint_position", "gripper_position"):
                np.testing.assert_allclose(y.action(form), x.action(form), atol=1e-6)  # float32 in LeRobot
            np.testing.assert_allclose(y.state("ee_quaternion"), x.state("ee_quaternion"), atol=1e-6)
            for sig in ("reward", "is_last", "is_terminal", "language/active"):
                np.testing.assert_array_equal(y.array(sig), x.array(sig))
            assert [c.intrinsics for c in y.cameras] == [c.intrinsics for c in x.cameras]
            for cam in x.camera_names:  # lossy video: within codec tolerance
                diff = np.abs(x.frames(cam).astype(int) - y.frames(cam).astype(int))
                assert diff.mean() < 8, (cam, diff.mean())


def test_resume_skips_done_and_redoes_partial(exported, tmp_path):
    out = tmp_path / "out"
    import_lerobot(exported, out)
    done = out / "lerobot_000000.h5"
    before = done.read_bytes()
    (out / "lerobot_000001.h5").unlink()
    (out / "lerobot_000001.h5.partial").write_bytes(b"killed mid-write")
    rep = import_lerobot(exported, out)
    assert rep.already_done == [0, 2] and rep.imported == [1]
    assert done.read_bytes() == before and not (out / "lerobot_000001.h5.partial").exists()
    assert json.loads((out / REPORT).read_text())["imported"] == [1]


def test_unknown_version(lr_copy, tmp_path):
    info = json.loads((lr_copy / "meta/info.json").read_text())
    (lr_copy / "meta/info.json").write_text(json.dumps(info | {"codebase_version": "v2.1"}))
    with pytest.raises(LeRobotFormatError, match=r"info.json: codebase_version: 'v2.1' is not supported.*v3.0"):
        import_lerobot(lr_copy, tmp_path / "out")


def _edit_data(root: Path, fn) -> Path:
    path = root / "data/chunk-000/file-000.parquet"
    pq.write_table(fn(pq.read_table(path)), path)
    return path


def _nan_action(t: pa.Table) -> pa.Table:
    col = "action.cartesian_velocity"
    v = np.asarray(t.column(col).to_pylist(), np.float32)
    v[STEPS + 3, 2] = np.nan  # episode 1, frame 3
    arr = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
    return t.set_column(t.column_names.index(col), col, arr)


def test_nan_action_skips_that_episode_only(lr_copy, tmp_path):
    path = _edit_data(lr_copy, _nan_action)
    out = tmp_path / "out"
    rep = import_lerobot(lr_copy, out)
    assert rep.imported == [0, 2]
    (s,) = rep.skipped
    assert (s["episode"], s["file"], s["field"]) == (1, str(path), "action.cartesian_velocity")
    assert "frame 3: NaN" in s["error"]
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".h5") == ["lerobot_000000.h5", "lerobot_000002.h5"]
    with pytest.raises(LeRobotFormatError, match="action.cartesian_velocity: episode 1"):
        import_lerobot(lr_copy, tmp_path / "strict", ImportConfig(strict=True))


def test_frame_count_mismatch(lr_copy, tmp_path):
    _edit_data(lr_copy, lambda t: t.filter(pa.compute.not_equal(t.column("index"), 5)))  # a row of episode 0
    rep = import_lerobot(lr_copy, tmp_path / "out")
    assert rep.imported == [1, 2] and rep.skipped[0]["field"] == "episode_index"
    assert "9 rows, meta/episodes says length 10" in rep.skipped[0]["error"]


def test_missing_and_truncated_mp4(lr_copy, tmp_path):
    wrist = lr_copy / "videos/observation.images.wrist/chunk-000/file-000.mp4"
    ext = lr_copy / "videos/observation.images.exterior_1/chunk-000/file-000.mp4"
    wrist.unlink()
    rep = import_lerobot(lr_copy, tmp_path / "a")
    assert rep.imported == [] and {s["field"] for s in rep.skipped} == {"videos/observation.images.wrist"}
    assert "missing MP4" in rep.skipped[0]["error"] and rep.skipped[0]["file"] == str(wrist)
    data = ext.read_bytes()
    wrist.write_bytes(data)  # back, then cut the other camera's file
    ext.write_bytes(data[: len(data) // 2])
    rep = import_lerobot(lr_copy, tmp_path / "b")
    assert rep.skipped and all(s["file"] == str(ext) for s in rep.skipped)
    assert len(rep.imported) + len(rep.skipped) == 3


def test_corrupt_parquet_keeps_what_was_imported(exported, lr_copy, tmp_path):
    out = tmp_path / "out"
    import_lerobot(exported, out, ImportConfig(episodes=[0]))
    before = (out / "lerobot_000000.h5").read_bytes()
    path = lr_copy / "data/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[:200])
    rep = import_lerobot(lr_copy, out)
    assert rep.already_done == [0] and [s["episode"] for s in rep.skipped] == [1, 2]
    assert "corrupt or unreadable parquet" in rep.skipped[0]["error"] and rep.skipped[0]["file"] == str(path)
    assert (out / "lerobot_000000.h5").read_bytes() == before
    (lr_copy / "meta/episodes/chunk-000/file-000.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(LeRobotFormatError, match=r"meta/episodes/chunk-000/file-000.parquet: file: corrupt"):
        import_lerobot(lr_copy, out)


def test_cli(source, tmp_path, capsys):
    dst = tmp_path / "lr"
    assert main(["data", "export-lerobot", str(source), "--out", str(dst)]) == 0
    assert main(["data", "import", "lerobot", str(dst), "--out", str(tmp_path / "back"), "--workers", "1"]) == 0
    assert "imported 3 episodes" in capsys.readouterr().out
    assert main(["data", "import", "lerobot", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")]) == 1
    assert "meta/info.json: file: missing" in capsys.readouterr().out
    assert main(["data", "import", "rlds", str(dst)]) == 1
    assert "unknown import kind 'rlds'" in capsys.readouterr().out


def test_unmapped_streams_are_absent_not_zero(lr_copy, tmp_path):
    info_path = lr_copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    for k in ("action.joint_velocity", "observation.state.ee_position", "observation.images.exterior_1"):
        del info["features"][k]  # as if the source never recorded them
    info["features"]["observation.extra_sensor"] = {"dtype": "float32", "shape": [2], "names": None}
    info_path.write_text(json.dumps(info))
    rep = import_lerobot(lr_copy, tmp_path / "out", ImportConfig(episodes=[0]))
    assert rep.imported == [0] and rep.not_carried == ["observation.extra_sensor"]
    with Episode(tmp_path / "out/lerobot_000000.h5") as ep:
        assert {"action/joint_velocity", "observation/robot_state/ee_position"} <= set(ep.absent)
        assert ep.camera_names == ["wrist"]
        with pytest.raises(EpisodeError, match="joint_velocity"):
            ep.action("joint_velocity")
        assert ep.action("joint_position").shape == (STEPS, 7)


def test_generic_vector_needs_a_map(source, lr_copy, tmp_path):
    info_path = lr_copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    generic = ("action.", "observation.state.")
    info["features"] = {k: v for k, v in info["features"].items() if not k.startswith(generic)}
    info_path.write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match="no feature maps to a robolearn action form"):
        import_lerobot(lr_copy, tmp_path / "a")
    with pytest.raises(LeRobotFormatError, match=r"--map action: the keys \['cartesian_velocity'\] hold 6 values"):
        import_lerobot(lr_copy, tmp_path / "b", ImportConfig(map=["action=cartesian_velocity"]))
    with pytest.raises(LeRobotFormatError, match="'grip' is not a action key"):
        import_lerobot(lr_copy, tmp_path / "b", ImportConfig(map=["action=cartesian_velocity,grip"]))
    rep = import_lerobot(lr_copy, tmp_path / "c", ImportConfig(map=["action=cartesian_velocity,gripper_position"]))
    assert rep.imported == [0, 1, 2] and rep.not_carried == ["observation.state"]
    with Episode(tmp_path / "c/lerobot_000001.h5") as ep, Episode(list_episodes(source)[1]) as orig:
        np.testing.assert_allclose(ep.action("cartesian_velocity"), orig.action("cartesian_velocity"), atol=1e-6)
        assert set(ep.absent) >= {f"observation/robot_state/{k}" for k in ("joint_positions", "gripper_position")}


def test_missing_episodes_column(lr_copy, tmp_path):
    path = lr_copy / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(path)
    pq.write_table(t.drop_columns(["videos/observation.images.wrist/from_timestamp"]), path)
    rep = import_lerobot(lr_copy, tmp_path / "out")
    assert rep.imported == [] and len(rep.skipped) == 3
    assert rep.skipped[0]["field"] == "videos/observation.images.wrist/from_timestamp"
    assert "missing from the episodes table" in rep.skipped[0]["error"]
