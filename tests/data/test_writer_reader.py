"""EpisodeWriter / Episode round trip, crash-safe naming, and the errors bad calls get."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from robolearn.data import schema
from robolearn.data.errors import EpisodeError
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.schema import CameraSpec
from robolearn.data.writer import EpisodeMeta, EpisodeWriter, WriterConfig


def _state(t: float) -> dict:
    return {
        "joint_positions": np.full(7, t),
        "joint_velocities": np.full(7, -t),
        "ee_position": [t, 0, 1],
        "ee_quaternion": [1, 0, 0, 0],
        "gripper_position": t / 10,
    }


def _action(t: float) -> dict:
    return {
        "cartesian_velocity": np.full(6, 0.1),
        "cartesian_position": [t, 0, 1, 1, 0, 0, 0],
        "joint_position": np.full(7, t + 1),
        "joint_velocity": np.zeros(7),
        "gripper_position": 1.0,
    }


def _img(t: int, h: int = 24, w: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 8 + t) % 256, (yy * 10) % 256, np.full_like(xx, 128)], -1).astype(np.uint8)


CAMS = [
    CameraSpec("wrist", 32, 24, role="wrist", intrinsics=np.eye(3).tolist(), extrinsics=np.eye(4).tolist()),
    CameraSpec("ext", 32, 24, encoding="png", depth=True),
]
META = EpisodeMeta(
    lab="lab_x",
    household="h1",
    scene_id="s1",
    operator="ada",
    robot_type="sim",
    task="open drawer",
    language=["open the drawer", "pull the drawer open"],
    teleop_params={"gain": 0.5},
)


def write(path, steps=10, drop=(), cfg=None):
    with EpisodeWriter(path, META, CAMS, cfg) as w:
        for t in range(steps):
            imgs = {"wrist": None if t in drop else _img(t), "ext": _img(t)}
            w.add_step(
                _state(t),
                _action(t),
                images=imgs,
                depth={"ext": np.full((24, 32), 1000 + t, np.uint16)},
                camera_times={"wrist": (t * 10 + 1, t * 10 + 2), "ext": (t * 10 + 1, t * 10 + 3)},
                reward=float(t == steps - 1),
                is_terminal=t == steps - 1,
            )
        w.set_outcome(True)
        w.set_cadence({"achieved_hz": 14.9})
    return path


def test_round_trip(tmp_path):
    p = write(tmp_path / "ep.h5", steps=10, drop=(0, 4))
    assert not (tmp_path / ("ep" + schema.TMP_SUFFIX)).exists()
    with Episode(p) as e:
        assert e.num_steps == 10 and e.complete
        assert e.attrs["success"] == 1 and e.attrs["label_source"] == "operator"
        assert e.attrs["teleop_params"] == {"gain": 0.5} and e.attrs["cadence"] == {"achieved_hz": 14.9}
        assert e.language == ["open the drawer", "pull the drawer open"]
        assert e.instructions() == ["open the drawer", "pull the drawer open"]
        assert e.camera_names == ["wrist", "ext"] and e.cameras[0].intrinsics == np.eye(3).tolist()
        np.testing.assert_array_equal(e.state("joint_positions")[:, 0], np.arange(10))
        np.testing.assert_array_equal(e.action()[:, 0], np.full(10, 0.1))  # commanded: cartesian_velocity
        np.testing.assert_array_equal(e.action("joint_position")[:, 0], np.arange(10) + 1)
        assert e.array("is_first").tolist() == [True] + [False] * 9
        assert e.array("is_last").tolist() == [False] * 9 + [True]
        assert e.array("reward")[-1] == 1 and e.array("discount").tolist() == [1.0] * 10
        # PNG is lossless; JPEG close
        np.testing.assert_array_equal(e.frame("ext", 3), _img(3))
        assert np.abs(e.frame("wrist", 3).astype(int) - _img(3)).mean() < 6
        # dropped frames: marker set, frame repeats the last present one (black before any)
        assert e.camera_field("wrist", "dropped").tolist() == [t in (0, 4) for t in range(10)]
        assert e.frame("wrist", 0).max() == 0
        np.testing.assert_array_equal(e.frame("wrist", 4), e.frame("wrist", 3))
        assert e.camera_field("wrist", "capture_ns")[2] == 21 and e.camera_field("ext", "receive_ns")[2] == 23
        assert e.depth("ext", 5)[0, 0] == 1005
        ts = e.array("timestamp/control/step_end_ns")
        assert (ts > 0).all() and (np.diff(ts) >= 0).all()
    with h5py.File(p) as f:
        assert f[schema.STATE_FIELDS[3].path].attrs["convention"] == "quat_wxyz"
        assert f["action"].attrs["commanded"] == "cartesian_velocity"


def test_frames_are_read_via_chunk_addresses_and_match_h5py(tmp_path):
    p = write(tmp_path / "ep.h5", steps=6)
    with Episode(p) as e:
        s = e.stream("wrist")
        assert s._chunks is not None  # pread path active
        for t in range(6):
            off, n = s.index[t]
            assert s.raw(t) == e._f["cameras/wrist/rgb/data"][off : off + n].tobytes()


def test_never_overwrites_and_refuses_pending_partial(tmp_path):
    p = write(tmp_path / "ep.h5", steps=2)
    with pytest.raises(FileExistsError):
        EpisodeWriter(p, META, CAMS)
    w = EpisodeWriter(tmp_path / "b.h5", META, CAMS)
    w.add_step(
        _state(0), _action(0), images={"wrist": _img(0), "ext": _img(0)}, depth={"ext": np.zeros((24, 32), np.uint16)}
    )
    w.flush()
    # an unfinished episode is invisible to dataset listing and cannot be opened as complete
    assert list_episodes(tmp_path) == [p]
    with pytest.raises(FileExistsError):
        EpisodeWriter(tmp_path / "b.h5", META, CAMS)
    w.discard()
    assert not (tmp_path / ("b" + schema.TMP_SUFFIX)).exists()


def test_flush_interval_puts_steps_on_disk(tmp_path):
    w = EpisodeWriter(tmp_path / "e.h5", META, CAMS, WriterConfig(flush_interval_s=0.0, background_flush=False))
    for t in range(3):
        w.add_step(
            _state(t),
            _action(t),
            images={"wrist": _img(t), "ext": _img(t)},
            depth={"ext": np.zeros((24, 32), np.uint16)},
        )
    assert w.num_steps == 3  # each step flushed immediately
    with Episode(w.tmp_path, swmr=True) as e:
        assert e.num_steps == 3 and not e.complete
    w.close()


def test_background_flush_when_loop_pauses(tmp_path):
    import time

    w = EpisodeWriter(tmp_path / "e.h5", META, CAMS, WriterConfig(flush_interval_s=0.1))
    w.add_step(
        _state(0), _action(0), images={"wrist": _img(0), "ext": _img(0)}, depth={"ext": np.zeros((24, 32), np.uint16)}
    )
    deadline = time.monotonic() + 5
    while w.num_steps == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert w.num_steps == 1
    w.close()


def test_exception_inside_with_keeps_partial(tmp_path):
    with pytest.raises(RuntimeError):
        with EpisodeWriter(tmp_path / "e.h5", META, CAMS) as w:
            for t in range(4):
                w.add_step(
                    _state(t),
                    _action(t),
                    images={"wrist": _img(t), "ext": _img(t)},
                    depth={"ext": np.zeros((24, 32), np.uint16)},
                )
            raise RuntimeError("operator loop crashed")
    assert not (tmp_path / "e.h5").exists()
    partial = tmp_path / ("e" + schema.TMP_SUFFIX)
    with Episode(partial, swmr=True) as e:
        assert e.num_steps == 4 and not e.complete


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"state": {"joint_positions": np.zeros(6)}}, "joint_positions"),
        ({"state": {"ee_quaternion": None}}, "ee_quaternion"),
        ({"action": {"joint_velocity": np.zeros(3)}}, "joint_velocity"),
        ({"images": {"nope": _img(0)}}, "images/nope"),
        ({"images": {"wrist": np.zeros((10, 10, 3), np.uint8)}}, "cameras/wrist/rgb"),
        ({"images": {"wrist": _img(0).astype(np.float32)}}, "cameras/wrist/rgb"),
        ({"depth": {"ext": np.zeros((10, 10), np.uint16)}}, "cameras/ext/depth"),
        ({"depth": {"ext": np.zeros((24, 32), np.float32)}}, "cameras/ext/depth"),
        ({"depth": {"wrist": np.zeros((24, 32), np.uint16)}}, "depth/wrist"),
    ],
)
def test_bad_step_is_refused_with_field_name(tmp_path, bad, field):
    w = EpisodeWriter(tmp_path / "e.h5", META, CAMS)
    state, action = _state(0), _action(0)
    state.update(bad.get("state", {}))
    action.update(bad.get("action", {}))
    for d in (state, action):
        for k in [k for k, v in d.items() if v is None]:
            del d[k]
    images = {"wrist": _img(0), "ext": _img(0), **bad.get("images", {})}
    with pytest.raises(EpisodeError, match=field):
        w.add_step(state, action, images=images, depth={"ext": np.zeros((24, 32), np.uint16), **bad.get("depth", {})})
    w.discard()


def test_meta_and_camera_validation(tmp_path):
    with pytest.raises(ValueError, match="action_space"):
        EpisodeMeta(action_space="torque")
    with pytest.raises(ValueError, match="intrinsics"):
        CameraSpec("c", 8, 8, intrinsics=[[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="encoding"):
        CameraSpec("c", 8, 8, encoding="webp")
    with pytest.raises(ValueError, match=".h5"):
        EpisodeWriter(tmp_path / "e.hdf5", META, CAMS)


def test_open_errors_are_clear(tmp_path):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(EpisodeError, match="junk.h5: file: not a readable HDF5"):
        Episode(bad)
    good = write(tmp_path / "ep.h5", steps=2)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(data[: len(data) // 3])
    with pytest.raises(EpisodeError, match="trunc.h5"):
        with Episode(trunc) as e:
            e.frames("wrist")
    with h5py.File(good, "r+") as f:
        f.attrs["schema_version"] = "9.9"
    with pytest.raises(EpisodeError, match="unknown schema version '9.9'"):
        Episode(good)


def test_episode_is_not_picklable(tmp_path):
    import pickle

    with Episode(write(tmp_path / "ep.h5", steps=2)) as e, pytest.raises(TypeError, match="path"):
        pickle.dumps(e)


def test_camera_registry_json_round_trip():
    cams = [CameraSpec("a", 4, 4, calibration={"method": "charuco", "residual_px": 0.3})]
    assert schema.cameras_from_json(schema.cameras_to_json(cams)) == cams
    assert json.loads(schema.cameras_to_json(cams))[0]["extrinsics_convention"].startswith("T_base_camera")


def test_migration_path():
    assert schema.migration_path(schema.SCHEMA_VERSION) == []
    with pytest.raises(ValueError, match="no migration"):
        schema.migration_path("0.1")


def test_undecodable_depth_frame_names_file_and_field(tmp_path):
    p = write(tmp_path / "ep.h5", steps=4)
    with h5py.File(p, "r+") as f:
        f["cameras/ext/depth/data"][:] = 0  # bytes present, but not a PNG any more
    with Episode(p) as e, pytest.raises(EpisodeError, match=r"ep\.h5: /cameras/ext/depth\[2\]"):
        e.depth("ext", 2)


def test_list_episodes_skips_quarantine_below_root_only(tmp_path):
    root = tmp_path / "_quarantine" / "ds"
    write(root / "a.h5", steps=2)
    write(root / "_quarantine" / "b.h5", steps=2)
    assert list_episodes(root) == [root / "a.h5"]


def test_language_index_out_of_range_is_refused(tmp_path):
    w = EpisodeWriter(tmp_path / "e.h5", META, CAMS)
    imgs, depth = {"wrist": _img(0), "ext": _img(0)}, {"ext": np.zeros((24, 32), np.uint16)}
    w.add_step(_state(0), _action(0), images=imgs, depth=depth, language_index=1)  # META has 2 instructions
    with pytest.raises(EpisodeError, match="language/active"):
        w.add_step(_state(1), _action(1), images=imgs, depth=depth, language_index=2)
    w.discard()


def test_camera_group_missing_from_registry_is_a_clear_error(tmp_path):
    p = write(tmp_path / "ep.h5", steps=3, drop=(0,))
    with h5py.File(p, "r+") as f:
        cams = json.loads(f.attrs["cameras"])
        f.attrs["cameras"] = json.dumps([c for c in cams if c["name"] != "wrist"])
    with Episode(p) as e, pytest.raises(EpisodeError, match="camera 'wrist' not in the registry"):
        e.frame("wrist", 0)  # dropped first frame: needs the registered size for the black frame
