"""Against lerobot 0.6.1 itself (the oracle venv, `make oracle-lerobot`): our export loads in its
LeRobotDataset with the same frames, actions and tasks, and a dataset lerobot wrote imports into robolearn.
Skips when the venv is missing; `make test-oracles` builds it and runs these."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from robolearn.data.errors import EpisodeError
from robolearn.data.interop.lerobot import ImportConfig, export_lerobot, import_lerobot
from robolearn.data.reader import Episode, list_episodes
from robolearn.data.synthetic import SyntheticConfig, make_dataset
from robolearn.data.validate import validate_dataset

REPO = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).with_name("lerobot_oracle.py")
PYTHON = Path(os.environ.get("ROBOLEARN_LEROBOT_PYTHON", REPO / ".venv-lerobot/bin/python"))

pytestmark = pytest.mark.skipif(
    not PYTHON.exists(), reason=f"LeRobot oracle venv missing ({PYTHON}): run `make oracle-lerobot`"
)


def oracle(*args: str, cwd: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(cwd / "hf"))
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(PYTHON), str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout


def test_export_loads_in_lerobot(tmp_path):
    src = tmp_path / "src"
    make_dataset(src, SyntheticConfig(num_episodes=2, steps=8, size=32))
    export_lerobot(list_episodes(src), tmp_path / "lr")
    oracle("load", str(tmp_path / "lr"), str(tmp_path / "got.npz"), cwd=tmp_path)
    got = np.load(tmp_path / "got.npz")
    meta = json.loads(str(got["_meta"]))
    assert (meta["num_episodes"], meta["num_frames"], meta["fps"]) == (2, 16, 15)
    assert sorted(meta["camera_keys"]) == ["observation.images.exterior_1", "observation.images.wrist"]
    offset = 0
    for p in list_episodes(src):
        with Episode(p) as ep:
            rows = slice(offset, offset + ep.num_steps)
            want = np.concatenate([ep.action(), ep.action("gripper_position")[:, None]], 1)
            np.testing.assert_allclose(got["action"][rows], want, atol=1e-6)
            q = got["observation.state.joint_positions"][rows]
            np.testing.assert_allclose(q, ep.state("joint_positions"), atol=1e-6)
            assert list(got["task"][rows]) == [ep.instructions()[i] for i in ep.array("language/active")]
            np.testing.assert_array_equal(got["frame_index"][rows], np.arange(ep.num_steps))
            for cam in ep.camera_names:
                theirs = got[f"observation.images.{cam}"][rows].transpose(0, 2, 3, 1) * 255  # CHW float in [0, 1]
                assert np.abs(theirs - ep.frames(cam)).mean() < 8, cam
            offset += ep.num_steps


def test_import_dataset_written_by_lerobot(tmp_path):
    made = tmp_path / "made"
    oracle("make", str(made), "--episodes", "2", "--steps", "10", cwd=tmp_path)
    oracle("load", str(made), str(tmp_path / "ref.npz"), cwd=tmp_path)
    ref = np.load(tmp_path / "ref.npz")
    maps = ["observation.state=joint_positions,gripper_position", "action=cartesian_velocity,gripper_position"]
    cfg = ImportConfig(map=maps)
    rep = import_lerobot(made, tmp_path / "rl", cfg)
    assert rep.imported == [0, 1] and rep.skipped == []
    assert [str(p) for p in validate_dataset(tmp_path / "rl").problems if p.severity == "error"] == []
    offset = 0
    for p in list_episodes(tmp_path / "rl"):
        with Episode(p) as ep:
            rows = slice(offset, offset + ep.num_steps)
            assert ep.num_steps == 10 and ep.attrs["control_hz"] == 10.0 and ep.attrs["robot_type"] == "toy"
            np.testing.assert_allclose(ep.action("cartesian_velocity"), ref["action"][rows, :6], atol=1e-6)
            np.testing.assert_allclose(ep.action("gripper_position"), ref["action"][rows, 6], atol=1e-6)
            np.testing.assert_allclose(ep.state("joint_positions"), ref["observation.state"][rows, :7], atol=1e-6)
            assert ep.instructions() == [str(ref["task"][offset])]
            theirs = ref["observation.images.front"][rows].transpose(0, 2, 3, 1) * 255
            assert np.abs(theirs - ep.frames("front")).mean() < 4  # their decode vs ours + our JPEG
            assert "action/joint_velocity" in ep.absent and "observation/robot_state/ee_position" in ep.absent
            with pytest.raises(EpisodeError, match="ee_position"):
                ep.state("ee_position")  # absent, never zero-filled
            offset += ep.num_steps
