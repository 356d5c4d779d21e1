"""export-video: an MP4 that PyAV can open, with the right frames, size and rate, showing the cameras."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from robolearn.data import video
from robolearn.data.errors import EpisodeError
from robolearn.data.reader import Episode
from robolearn.data.synthetic import SyntheticConfig, camera_specs, episode_steps, render
from robolearn.data.writer import EpisodeMeta, EpisodeWriter

EP0 = "episode_000000.h5"


def decode(path: Path) -> tuple[av.video.stream.VideoStream, list[np.ndarray], dict]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        props = {
            "rate": s.average_rate,
            "w": s.codec_context.width,
            "h": s.codec_context.height,
            "codec": s.codec_context.name,
            "pix_fmt": s.codec_context.pix_fmt,
        }
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return s, frames, props


def panel(frame: np.ndarray, x: int, side: int, size: int) -> np.ndarray:
    """The camera panel at column x, scaled back to the stored image size."""
    return cv2.resize(frame[:side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


def test_export_video_frames_size_rate_content(small_dataset, tmp_path):
    ep_path = small_dataset / EP0
    out = video.export_video(ep_path, tmp_path / "ep.mp4")
    assert out == tmp_path / "ep.mp4" and out.stat().st_size > 0
    _, frames, props = decode(out)
    # 2 cameras of 32 px scaled x5 to 160 px side by side; strip of 40 px text + 120 px plot underneath
    assert len(frames) == 20
    assert (props["w"], props["h"]) == (320, 320) and props["w"] % 2 == 0 and props["h"] % 2 == 0
    assert props["rate"] == 15 and props["codec"] == "h264" and props["pix_fmt"] == "yuv420p"
    with Episode(ep_path) as ep:
        for t in (0, 10, 19):
            for x, cam in ((0, "wrist"), (160, "exterior_1")):
                err = np.abs(panel(frames[t], x, 160, 32).astype(int) - ep.frame(cam, t).astype(int)).mean()
                assert err < 12, (t, cam, err)
    # the strip under the cameras changes with the step (cursor, step counter)
    assert not np.array_equal(frames[0][200:], frames[19][200:])
    assert not list(tmp_path.glob(".*"))  # no temp file left


def test_export_video_options(small_dataset, tmp_path):
    out = video.export_video(
        small_dataset / EP0,
        tmp_path / "one.mp4",
        cameras=["exterior_1"],
        fps=30,
        scale=2,
        plot_keys=("action", "observation/robot_state/gripper_position"),
    )
    _, frames, props = decode(out)
    assert len(frames) == 20 and props["rate"] == 30
    assert (props["w"], props["h"]) == (video.MIN_WIDTH, 64 + video.TEXT_H + video.PLOT_H)
    with Episode(small_dataset / EP0) as ep:
        err = np.abs(panel(frames[5], 0, 64, 32).astype(int) - ep.frame("exterior_1", 5).astype(int)).mean()
    assert err < 12
    with pytest.raises(EpisodeError, match="no such camera"):
        video.export_video(small_dataset / EP0, tmp_path / "x.mp4", cameras=["nope"])


def test_export_video_marks_dropped_frames(tmp_path):
    cfg = SyntheticConfig(steps=6, size=32, cameras=("wrist",))
    tr = episode_steps(cfg.steps, np.random.default_rng(0))
    path = tmp_path / "drop.h5"
    with EpisodeWriter(path, EpisodeMeta(task="t"), camera_specs(cfg)) as w:
        for t in range(cfg.steps):
            img = None if t == 3 else render(t, cfg.steps, 0, 32, np.array([90.0, 120, 150]))
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
                    "cartesian_position": np.r_[tr["pos"][t], 1, 0, 0, 0],
                    "joint_position": tr["q"][t],
                    "joint_velocity": tr["qd"][t],
                    "gripper_position": tr["grip"][t],
                },
                images={"wrist": img},
            )
    _, frames, _ = decode(video.export_video(path, tmp_path / "drop.mp4"))
    assert len(frames) == 6

    def red_border(f: np.ndarray) -> bool:
        edge = f[80, 0:2].astype(int)  # left border of the 160 px panel, half way down
        return bool((edge[:, 0] > 180).all() and (edge[:, 1] < 90).all())

    assert red_border(frames[3]) and not red_border(frames[2]) and not red_border(frames[4])


def test_export_video_cli(dataset_copy, capsys):
    from robolearn.cli import main

    assert main(["data", "export-video", str(dataset_copy / EP0), "--cameras", "wrist"]) == 0
    out = dataset_copy / "episode_000000.mp4"
    assert str(out) in capsys.readouterr().out
    _, frames, props = decode(out)
    assert len(frames) == 20 and props["w"] == video.MIN_WIDTH
    assert main(["data", "export-video", str(dataset_copy / "missing.h5")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_export_video_never_replaces_an_episode(dataset_copy, capsys):
    from robolearn.cli import main

    ep = sorted(dataset_copy.rglob("*.h5"))[0]
    before = ep.read_bytes()
    assert main(["data", "export-video", str(ep), "--out", str(ep)]) == 1
    assert "refusing" in capsys.readouterr().err
    assert ep.read_bytes() == before
    with Episode(ep) as e:
        assert e.num_steps > 0
