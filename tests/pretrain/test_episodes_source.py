"""Our robolearn episodes as a clip source: read at train time, or exported into shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robolearn.data.reader import Episode, list_episodes
from robolearn.data.synthetic import TASKS, SyntheticConfig, camera_specs, episode_steps, render
from robolearn.data.writer import EpisodeMeta, EpisodeWriter
from robolearn.pretrain.episodes_source import EpisodeSource, prepare_episodes
from robolearn.pretrain.shards import PrepareError, ShardSource
from robolearn.pretrain.ssv2 import scaled_center_crop


def test_clips_carry_the_episode_instruction(episodes_root, lm_dir):
    src = EpisodeSource(episodes_root, tokenizer=str(lm_dir))
    paths = list_episodes(episodes_root)
    assert len(src) == 4 and src.skipped == 0
    assert src.table.captions == [TASKS[i] for i in range(4)]
    assert src.table.n_frames.tolist() == [12] * 4
    assert {c.camera for c in src.clips} == {"wrist"}  # default: each episode's first camera
    with Episode(paths[2]) as ep:
        want = ep.frame("wrist", 7)
        uuid = ep.attrs["uuid"]
    assert np.array_equal(src.read_frames(2, [7])[0], want)  # square 40x40 frames come back unchanged
    assert src.clips[2].id == f"{uuid}/wrist/0"
    ids = src.table.input_ids[1]
    assert ids[0] == 101 and src.table.attention_mask[1].sum() == len("open the drawer".split()) + 2


def test_camera_choice_and_errors(episodes_root, lm_dir, tmp_path):
    both = EpisodeSource(episodes_root, camera=["wrist", "exterior_1"], tokenizer=str(lm_dir), size=16)
    assert len(both) == 8
    c = next(i for i, cl in enumerate(both.clips) if cl.camera == "exterior_1")
    assert both.read_frames(c, [0, 11])[0].shape == (16, 16, 3)
    with pytest.raises(PrepareError, match="no camera 'top'; this episode has \\['wrist', 'exterior_1'\\]"):
        EpisodeSource(episodes_root, camera="top", tokenizer=str(lm_dir))
    with pytest.raises(PrepareError, match="empty source: no episode files"):
        EpisodeSource(tmp_path, tokenizer=str(lm_dir))
    with pytest.raises(PrepareError, match="episodes folder does not exist"):
        EpisodeSource(tmp_path / "nope", tokenizer=str(lm_dir))


def test_instruction_runs_become_separate_clips(tmp_path, lm_dir):
    cfg = SyntheticConfig(steps=16, size=24, cameras=("wrist",))
    meta = EpisodeMeta(
        lab="lab_a",
        household="h",
        scene_id="s",
        operator="op",
        robot_type="sim",
        control_hz=15.0,
        action_space="cartesian_velocity",
        teleop_device="expert",
        task="tidy up",
        language=["open the drawer", "put the cup in the drawer", "wave"],
    )
    rng = np.random.default_rng(0)
    tr = episode_steps(16, rng)
    active = [0] * 7 + [1] * 6 + [2] * 3  # the last run (3 steps) is too short for a quintet
    with EpisodeWriter(tmp_path / "ep.h5", meta, camera_specs(cfg)) as w:
        for t in range(16):
            w.add_step(
                state={
                    "joint_positions": tr["q"][t],
                    "joint_velocities": tr["qd"][t],
                    "ee_position": tr["pos"][t],
                    "ee_quaternion": tr["quat"][t],
                    "gripper_position": tr["grip"][t],
                },
                action={
                    "cartesian_velocity": tr["vel"][t],
                    "cartesian_position": np.r_[tr["pos"][t], tr["quat"][t]],
                    "joint_position": tr["q"][t],
                    "joint_velocity": tr["qd"][t],
                    "gripper_position": tr["grip"][t],
                },
                images={"wrist": render(t, 16, 0, 24, np.array([90.0, 120, 150]))},
                language_index=active[t],
            )
    src = EpisodeSource(tmp_path, tokenizer=str(lm_dir))
    assert src.table.captions == ["open the drawer", "put the cup in the drawer"]
    assert [(c.start, c.stop) for c in src.clips] == [(0, 7), (7, 13)] and src.skipped == 1
    with Episode(tmp_path / "ep.h5") as ep:
        assert np.array_equal(src.read_frames(1, [0])[0], ep.frame("wrist", 7))
    long_only = EpisodeSource(tmp_path, tokenizer=str(lm_dir), min_frames=7)
    assert long_only.table.captions == ["open the drawer"] and long_only.skipped == 2
    with pytest.raises(PrepareError, match="empty source: no clip of >= 5 frames"):
        EpisodeSource(tmp_path, tokenizer=str(lm_dir), frame_stride=2)  # runs of 7 and 6 steps -> 4 and 3 frames


def test_filters_and_validation_split(episodes_root, lm_dir):
    drawer = EpisodeSource(episodes_root, tokenizer=str(lm_dir), where=["task~drawer"])
    assert drawer.table.captions == ["open the drawer"]
    a = EpisodeSource(episodes_root, tokenizer=str(lm_dir), camera=["wrist", "exterior_1"], val_fraction=0.5)
    b = EpisodeSource(episodes_root, tokenizer=str(lm_dir), camera=["wrist", "exterior_1"], val_fraction=0.5)
    assert a.table.split.tolist() == b.table.split.tolist()  # deterministic (by episode uuid)
    by_episode: dict[str, set[int]] = {}
    for c, s in zip(a.clips, a.table.split):
        by_episode.setdefault(c.path, set()).add(int(s))
    assert all(len(s) == 1 for s in by_episode.values())  # both cameras of an episode on the same side


def test_copied_episode_is_a_clear_error(episodes_root, lm_dir, tmp_path):
    import shutil

    shutil.copytree(episodes_root, tmp_path / "ds")
    first = list_episodes(tmp_path / "ds")[0]
    shutil.copy(first, tmp_path / "ds" / "copy_of_first.h5")
    with pytest.raises(PrepareError, match="attrs/uuid: the same uuid as .*(episode_000000|copy_of_first)"):
        EpisodeSource(tmp_path / "ds", tokenizer=str(lm_dir))


def test_export_episodes_into_shards(episodes_root, lm_dir, tmp_path):
    out = tmp_path / "exported"
    rep = prepare_episodes(episodes_root, out, camera="exterior_1", tokenizer=str(lm_dir), size=32, frames_per_shard=20)
    assert rep["clips_in_index"] == 4 and rep["failed"] == [] and len(rep["this_run"]["new_shards"]) == 2
    src = ShardSource(out)
    assert src.table.name == "episodes" and src.table.captions == [TASKS[i] for i in range(4)]
    frame = src.read_frames(0, [5])[0]
    with Episode(list_episodes(episodes_root)[0]) as ep:
        want = scaled_center_crop(ep.frame("exterior_1", 5), 32)  # 40x40 scaled to 32x32
    assert frame.shape == (32, 32, 3)
    assert np.abs(frame.astype(int) - want.astype(int)).mean() < 6  # JPEG error only
    assert (
        prepare_episodes(episodes_root, out, camera="exterior_1", tokenizer=str(lm_dir), size=32, frames_per_shard=20)[
            "this_run"
        ]["to_do"]
        == 0
    )  # resumable like SSv2


def test_cli_prepare_episodes(episodes_root, lm_dir, tmp_path):
    import robolearn.pretrain.commands  # noqa: F401
    from robolearn.cli import main

    out = tmp_path / "cli"
    assert (
        main(
            [
                "pretrain",
                "prepare",
                "--source",
                "episodes",
                "--episodes",
                str(episodes_root),
                "--camera",
                "wrist",
                "--out",
                str(out),
                "--tokenizer",
                str(lm_dir),
                "--size",
                "32",
            ]
        )
        == 0
    )
    assert len(ShardSource(Path(out))) == 4
    assert main(["pretrain", "prepare", "--source", "episodes", "--out", str(out)]) == 2


def test_packaged_lm_alias_is_a_tokenizer_name(episodes_root, tmp_path, monkeypatch):
    """`--tokenizer all-minilm-l6-v2` (the packaged real LM) works wherever a tokenizer is named."""
    monkeypatch.setenv("ROBOLEARN_CACHE", str(tmp_path / "cache"))
    src = EpisodeSource(episodes_root, tokenizer="all-minilm-l6-v2")
    ids = src.table.input_ids[1]  # "open the drawer": [CLS] open the drawer [SEP] in BERT's uncased vocab
    assert ids[0] == 101 and src.table.attention_mask[1].sum() == len("open the drawer".split()) + 2
    assert src.table.input_ids.max() > 1000  # real word pieces, not the tiny test LM's 1000-entry vocab
