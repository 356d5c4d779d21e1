"""EpisodeDataset: sample layout, edge padding, equality with the reader, normalisation, DataLoader workers,
bounded caches, and the handling of bad episodes."""

from __future__ import annotations

import os
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch

from robolearn.data.errors import EpisodeError
from robolearn.data.loader import EpisodeDataset, LoaderConfig
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.stats import compute_stats
from robolearn.data.synthetic import SyntheticConfig, camera_specs, render
from robolearn.data.writer import EpisodeMeta, EpisodeWriter

STATE_KEYS = ("joint_positions", "joint_velocities", "ee_position", "ee_quaternion", "gripper_position")


def _ds(root, **kw) -> EpisodeDataset:
    return EpisodeDataset(list_episodes(root), LoaderConfig(**kw))


def _hwc(img: torch.Tensor) -> np.ndarray:
    return img.permute(1, 2, 0).numpy()


def _reader_arrays(path) -> tuple[np.ndarray, np.ndarray, Episode]:
    ep = Episode(path)
    proprio = np.concatenate([ep.state(k).reshape(ep.num_steps, -1) for k in STATE_KEYS], 1)
    action = np.concatenate([ep.action(), ep.action("gripper_position")[:, None]], 1)
    return proprio, action, ep


def test_shapes_and_dtypes(small_dataset):
    ds = _ds(small_dataset, history=2, chunk=4)
    assert len(ds) == 6 * 20 and ds.cameras == ["wrist", "exterior_1"]
    assert ds.meta["proprio_dim"] == 22 and ds.meta["action_dim"] == 7
    b = ds.__getitems__([0, 7, 119])
    for cam in ds.cameras:
        assert b[f"images/{cam}"].shape == (3, 2, 3, 32, 32) and b[f"images/{cam}"].dtype == torch.uint8
    assert b["proprio"].shape == (3, 2, 22) and b["proprio"].dtype == torch.float32
    assert b["action"].shape == (3, 4, 7) and b["action"].dtype == torch.float32
    assert b["obs_pad"].shape == (3, 2) and b["obs_pad"].dtype == torch.bool
    assert b["action_pad"].shape == (3, 4) and b["action_pad"].dtype == torch.bool
    assert b["episode"].tolist() == [0, 0, 5] and b["step"].tolist() == [0, 7, 19]
    instr = []
    for e in (0, 0, 5):
        with Episode(ds.episodes[e].path) as ep:
            instr.append(ep.instructions()[0])
    assert b["language"] == instr
    one = ds[7]
    assert one["images/wrist"].shape == (2, 3, 32, 32) and one["action"].shape == (4, 7)
    assert torch.equal(one["images/wrist"], b["images/wrist"][1]) and torch.equal(one["action"], b["action"][1])


def test_padding_masks_and_edge_values(small_dataset):
    ds = _ds(small_dataset, history=3, chunk=4)
    proprio, action, ep = _reader_arrays(ds.episodes[0].path)
    with ep:
        b = ds.__getitems__([0, 1, 2, 16, 17, 19])
        assert b["obs_pad"].tolist() == [
            [True, True, False],
            [True, False, False],
            [False, False, False],
            [False, False, False],
            [False, False, False],
            [False, False, False],
        ]
        assert b["action_pad"].tolist() == [
            [False] * 4,
            [False] * 4,
            [False] * 4,
            [False] * 4,
            [False, False, False, True],
            [False, True, True, True],
        ]
        # padded slots repeat the edge value
        np.testing.assert_allclose(b["proprio"][0].numpy(), proprio[[0, 0, 0]].astype(np.float32))
        np.testing.assert_allclose(b["action"][5].numpy(), action[[19, 19, 19, 19]].astype(np.float32))
        frame0 = ep.frame("wrist", 0)
        for j in range(3):
            assert np.array_equal(_hwc(b["images/wrist"][0, j]), frame0)


def test_action_chunk_and_proprio_equal_reader_arrays(small_dataset):
    ds = _ds(small_dataset, history=2, chunk=5)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ds), 24, replace=False).tolist()
    b = ds.__getitems__(idx)
    cache = {}
    for n, _ in enumerate(idx):
        e, t = int(b["episode"][n]), int(b["step"][n])
        if e not in cache:
            p, a, ep = _reader_arrays(ds.episodes[e].path)
            ep.close()
            cache[e] = (p, a)
        p, a = cache[e]
        T = len(a)
        acts = np.minimum(np.arange(t, t + 5), T - 1)
        hist = np.maximum(np.arange(t - 1, t + 1), 0)
        np.testing.assert_array_equal(b["action"][n].numpy(), a[acts].astype(np.float32))
        np.testing.assert_array_equal(b["proprio"][n].numpy(), p[hist].astype(np.float32))


def test_history_frames_equal_episode_frames(small_dataset):
    ds = _ds(small_dataset, history=3, chunk=1)
    idx = [3, 20 + 10, 5 * 20 + 19]
    b = ds.__getitems__(idx)
    for n, _ in enumerate(idx):
        e, t = int(b["episode"][n]), int(b["step"][n])
        with Episode(ds.episodes[e].path) as ep:
            for cam in ds.cameras:
                for j, s in enumerate(range(t - 2, t + 1)):
                    assert np.array_equal(_hwc(b[f"images/{cam}"][n, j]), ep.frame(cam, max(s, 0)))
    assert b["images/wrist"].contiguous().is_contiguous()


def test_dropped_frames_repeat_last_present(tmp_path):
    cfg = SyntheticConfig(cameras=("wrist",), size=16, steps=8)
    path = tmp_path / "dropped.h5"
    zeros7 = np.zeros(7)
    with EpisodeWriter(path, EpisodeMeta(task="t", language=["t"]), camera_specs(cfg)) as w:
        for t in range(8):
            img = None if t in (0, 3, 4) else render(t, 8, 0, 16, np.array([90.0, 120, 150]))
            w.add_step(
                state={
                    "joint_positions": zeros7,
                    "joint_velocities": zeros7,
                    "ee_position": np.zeros(3),
                    "ee_quaternion": [1, 0, 0, 0],
                    "gripper_position": 0.0,
                },
                action={
                    "cartesian_velocity": np.full(6, t / 10),
                    "cartesian_position": np.zeros(7),
                    "joint_position": zeros7,
                    "joint_velocity": zeros7,
                    "gripper_position": 0.0,
                },
                images={"wrist": img},
            )
    ds = EpisodeDataset([path], LoaderConfig(history=3))
    b = ds.__getitems__(list(range(8)))
    with Episode(path) as ep:
        assert not ep.frame("wrist", 0).any()
        for t in range(8):
            for j in range(3):
                assert np.array_equal(_hwc(b["images/wrist"][t, j]), ep.frame("wrist", max(t - 2 + j, 0)))
        assert np.array_equal(_hwc(b["images/wrist"][4, 2]), ep.frame("wrist", 2))


def test_no_padding_index_and_config_errors(small_dataset):
    ds = _ds(small_dataset, history=3, chunk=4, pad=False)
    assert len(ds) == 6 * (20 - 3 - 4 + 2)
    b = ds.__getitems__(list(range(len(ds))))
    assert not b["obs_pad"].any() and not b["action_pad"].any()
    with pytest.raises(ValueError, match="history"):
        LoaderConfig(history=0)
    with pytest.raises(ValueError, match="normalize_action"):
        LoaderConfig(normalize_action="zscore")
    with pytest.raises(ValueError, match="unknown action key"):
        _ds(small_dataset, action_keys=["teleport"])
    with pytest.raises(ValueError, match="needs statistics"):
        _ds(small_dataset, normalize_action="mean_std")


def test_action_and_proprio_keys(small_dataset):
    ds = _ds(small_dataset, action_keys=["joint_position", "action/gripper_position"], proprio_keys=["ee_position"])
    assert ds.action_keys == ["action/joint_position", "action/gripper_position"] and ds.meta["action_dim"] == 8
    _, _, ep = _reader_arrays(ds.episodes[0].path)
    with ep:
        b = ds.__getitems__([4])
        np.testing.assert_array_equal(
            b["action"][0, 0].numpy(),
            np.concatenate([ep.action("joint_position")[4], [ep.action("gripper_position")[4]]]).astype(np.float32),
        )
        np.testing.assert_array_equal(b["proprio"][0, 0].numpy(), ep.state("ee_position")[4].astype(np.float32))


@pytest.mark.parametrize("mode", ["mean_std", "min_max"])
def test_normalisation_round_trip(small_dataset, mode):
    paths = list_episodes(small_dataset)
    stats = compute_stats(paths, bins=64)
    raw = EpisodeDataset(paths, LoaderConfig(chunk=3))
    ds = EpisodeDataset(paths, LoaderConfig(chunk=3, normalize_action=mode, normalize_proprio=mode), stats=stats)
    idx = list(range(0, len(ds), 7))
    r, b = raw.__getitems__(idx), ds.__getitems__(idx)
    if mode == "min_max":
        assert b["action"].min() >= -1 - 1e-5 and b["action"].max() <= 1 + 1e-5
    else:
        assert abs(float(b["action"].mean())) < 1.0
    np.testing.assert_allclose(ds.unnormalize_action(b["action"]).numpy(), r["action"].numpy(), atol=1e-5)
    np.testing.assert_allclose(ds.unnormalize_proprio(b["proprio"].numpy()), r["proprio"].numpy(), atol=1e-5)
    # constant dimensions (e.g. the quaternion here) map to 0 and still invert exactly
    assert torch.all(b["proprio"][..., 17:21] == 0)


def _all_batches(loader) -> list[dict]:
    return [dict(b) for b in loader]


def _assert_same(b1: dict, b2: dict) -> None:
    assert b1.keys() == b2.keys()
    for k in b1:
        if isinstance(b1[k], torch.Tensor):
            assert torch.equal(b1[k], b2[k]), k
        else:
            assert b1[k] == b2[k], k


def test_dataloader_workers_match_in_process_and_pickle(small_dataset):
    ds = _ds(small_dataset, history=2, chunk=3)
    ds.__getitems__([0, 1])  # open files in this process first: workers must not inherit them
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._state is None and len(clone) == len(ds)
    ref = _all_batches(ds.dataloader(batch_size=8, num_workers=0))
    # buffer_pool=2 while every batch is held: the pool runs out and falls back, nothing is overwritten
    ds2 = _ds(small_dataset, history=2, chunk=3, buffer_pool=2)
    got = _all_batches(ds2.dataloader(batch_size=8, num_workers=2))
    assert len(got) == len(ref) == 15
    for b1, b2 in zip(ref, got):
        _assert_same(b1, b2)
    # single samples through workers (no batched fetch) also work
    singles = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2, sampler=[3, 50]))
    assert torch.equal(singles[1]["images/exterior_1"], ref[50 // 8]["images/exterior_1"][50 % 8])


class _Probe(EpisodeDataset):
    def __getitems__(self, indices):
        b = super().__getitems__(indices)
        b["buffers"] = torch.tensor(self.cache_info()["buffers"])
        return b


def test_worker_buffers_are_reused_once_released(small_dataset):
    ds = _Probe(list_episodes(small_dataset), LoaderConfig(history=2, chunk=3, buffer_pool=6))
    ref = _all_batches(ds.dataloader(batch_size=4, num_workers=0))
    counts = []
    for b, r in zip(ds.dataloader(batch_size=4, num_workers=1, prefetch_factor=2), ref):
        _assert_same({k: v for k, v in b.items() if k != "buffers"}, {k: v for k, v in r.items() if k != "buffers"})
        counts.append(int(b["buffers"]))
        del b
    assert len(counts) == 30 and max(counts) <= 5  # in flight + the one held + one not yet seen as released


def test_caches_and_open_files_stay_bounded(small_dataset):
    ds = _ds(small_dataset, history=2, max_open_files=2, lowdim_cache=3, frame_cache=5)
    fds_before = len(os.listdir("/proc/self/fd"))
    rng = np.random.default_rng(1)
    for _ in range(6):
        ds.__getitems__(rng.choice(len(ds), 16, replace=False).tolist())
        info = ds.cache_info()
        assert info["episodes"] <= 3 and info["open"] <= 2 and info["frames"] <= 5
        assert len(os.listdir("/proc/self/fd")) - fds_before <= 2 * (1 + 2)  # per episode: its own + 1 per camera
    b = ds.__getitems__([3, 3])  # frame-cache hits give identical frames
    assert torch.equal(b["images/wrist"][0], b["images/wrist"][1])
    ds.close()
    assert len(os.listdir("/proc/self/fd")) <= fds_before


# ---- bad episodes ------------------------------------------------------------------------------------------
def _corrupt(root, kind: str):
    good = list_episodes(root)
    bad = root / "bad_episode.h5"
    if kind == "truncated":
        data = good[0].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "not_hdf5":
        bad.write_bytes(b"this is not an HDF5 file\n" * 50)
    else:
        shutil.copy(good[0], bad)
        with h5py.File(bad, "r+") as f:
            if kind == "schema_version":
                f.attrs["schema_version"] = "9.9"
            elif kind == "nan_action":
                f["action/cartesian_velocity"][5, 2] = np.nan
    return good, bad


@pytest.mark.parametrize(
    "kind,field",
    [
        ("truncated", "file"),
        ("not_hdf5", "file"),
        ("schema_version", "attrs/schema_version"),
        ("nan_action", "action/cartesian_velocity"),
    ],
)
def test_bad_episodes_raise_or_skip(dataset_copy, kind, field):
    good, bad = _corrupt(dataset_copy, kind)
    paths = good + [bad]
    check = kind == "nan_action"
    with pytest.raises(EpisodeError) as ei:
        EpisodeDataset(paths, LoaderConfig(check_finite=check))
    assert "bad_episode.h5" in str(ei.value) and ei.value.field == field and "skip_bad" in str(ei.value)
    ds = EpisodeDataset(paths, LoaderConfig(check_finite=check, skip_bad=True))
    assert [(os.path.basename(p.path), p.field) for p in ds.skipped] == [("bad_episode.h5", field)]
    assert len(ds.episodes) == len(good) and len(ds) == 20 * len(good)
    assert ds.__getitems__([0, len(ds) - 1])["action"].isfinite().all()


def test_nan_action_passes_without_check_finite(dataset_copy):
    good, bad = _corrupt(dataset_copy, "nan_action")
    ds = EpisodeDataset([bad], LoaderConfig())
    assert torch.isnan(ds.__getitems__([5])["action"][0, 0, 2])


def test_missing_camera_and_size_mismatch(dataset_copy, tmp_path):
    good = list_episodes(dataset_copy)
    with pytest.raises(EpisodeError, match="camera missing"):
        EpisodeDataset(good, LoaderConfig(cameras=["wrist", "top"]))
    ds = EpisodeDataset(good, LoaderConfig(cameras=["wrist"], image_size=(32, 32)))
    assert [k for k in ds.__getitems__([0]) if k.startswith("images/")] == ["images/wrist"]
    with pytest.raises(EpisodeError, match="image size"):
        EpisodeDataset(good, LoaderConfig(image_size=(64, 64)))


def test_from_root_with_catalog_filters(dataset_copy):
    from robolearn.data import catalog

    if not hasattr(catalog, "select_paths"):
        pytest.skip("catalog.select_paths not available")
    ds = EpisodeDataset.from_root(dataset_copy, ["household=house_1"])
    assert 0 < len(ds.episodes) < 6
    with h5py.File(ds.episodes[0].path, "r") as f:
        assert f.attrs["household"] == "house_1"
    assert len(EpisodeDataset.from_root(dataset_copy).episodes) == 6


def test_main_process_forgets_buffers_of_exited_workers(small_dataset):
    from robolearn.data.loader import pool

    ds = _ds(small_dataset)
    batches = list(ds.dataloader(batch_size=16, num_workers=2))  # workers exit at the end of the epoch
    assert len(batches) == 8
    ours = [k for k in pool._POOLS]
    assert ours
    with pool._LEASE_LOCK:
        pool._forget_exited_pools()
    assert not set(ours) & set(pool._POOLS)
    assert batches[3]["images/wrist"].shape == (16, 1, 3, 32, 32)  # batches still held stay valid
    assert torch.equal(batches[3]["images/wrist"], ds.__getitems__(list(range(48, 64)))["images/wrist"])


def test_mixed_action_spaces_need_explicit_keys(dataset_copy):
    paths = list_episodes(dataset_copy)
    with h5py.File(paths[4], "r+") as f:
        f.attrs["action_space"] = "joint_velocity"
    with pytest.raises(EpisodeError, match="action_keys") as ei:
        EpisodeDataset(paths, LoaderConfig())
    assert ei.value.field == "attrs/action_space" and paths[4].name in str(ei.value)
    assert len(EpisodeDataset(paths, LoaderConfig(skip_bad=True)).episodes) == 5
    ds = EpisodeDataset(paths, LoaderConfig(action_keys=["joint_velocity"]))
    assert len(ds.episodes) == 6 and ds.meta["action_dim"] == 7


def test_zero_step_episode_contributes_no_samples(small_dataset, tmp_path):
    """An empty recording (validate warns about it) is not an error for the loader: it adds no samples."""
    from robolearn.data.reader import Episode, list_episodes
    from robolearn.data.writer import EpisodeMeta, EpisodeWriter

    paths = list_episodes(small_dataset)
    with Episode(paths[0]) as ep:
        cams = ep.cameras
    empty = EpisodeWriter(tmp_path / "empty.h5", EpisodeMeta(task="t"), cams).close()
    with_empty = EpisodeDataset(paths + [empty], LoaderConfig(history=2, chunk=3, check_finite=True))
    assert len(with_empty) == len(EpisodeDataset(paths, LoaderConfig(history=2, chunk=3)))
    assert with_empty.skipped == []
