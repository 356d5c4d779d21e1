"""`robolearn demo` runs end to end at tiny scale and leaves its outputs and summary."""

import json

from robolearn.cli import main


def test_demo_tiny(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--episodes", "6", "--steps", "12", "--size", "32",
                 "--batches", "2", "--batch-size", "8", "--workers", "0", "--sim-episodes", "2",
                 "--sim-size", "32"]) == 0
    run = next(tmp_path.glob("run-*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["episodes"] == 6 and 0 < summary["train_episodes"] < 6  # scene_5 is held out
    assert summary["batch_shapes"]["images/wrist"] == [8, 2, 3, 32, 32]
    assert summary["batch_shapes"]["action"] == [8, 8, 7]
    assert (run / "episode_000000.mp4").stat().st_size > 0
    assert (run / "dataset" / "catalog.sqlite").exists() and (run / "dataset" / "stats.json").exists()
    assert (run / "demo.config.json").exists()
    assert summary["sim"]["successful"] == 2  # the expert's demos, recorded at the station in MuJoCo
    assert summary["sim"]["batch_shapes"]["images/wrist"] == [8, 1, 3, 32, 32]
    assert "demo finished" in capsys.readouterr().out
