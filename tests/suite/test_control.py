"""Single-task visuomotor control: demos recorded through the station into the dataset, checked by content
digest; the BC protocol's train + evaluate in seen and held-out scenes as one suite cell."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from robolearn.data.reader import Episode
from robolearn.envs.tasks import get_task
from robolearn.suite import SuiteDataError, register
from robolearn.suite.families.control import Control, check_episodes, control_metrics
from robolearn.suite.runner import SuiteConfig, run_suite


class ControlTest(Control):
    """The family at a test size: one demo in each of two scenes, two evaluation episodes."""

    name = "control-test"

    def data_config(self, size: str) -> dict:
        return {
            **super().data_config("tiny"),
            "train_scenes": [[0, 0], [1, 0]],
            "demos_per_scene": 1,
            "eval_seen": [[0, 0]],
            "eval_heldout": [[3, 2]],
            "episodes": 2,
        }


SCENARIO = register(ControlTest())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return SCENARIO.generate(tmp_path_factory.mktemp("ctl") / "a", SCENARIO.data_config("tiny"))


def test_generation_is_deterministic_and_records_match_the_episodes(dataset, tmp_path):
    assert SCENARIO.generate(tmp_path / "b", SCENARIO.data_config("tiny")).hash == dataset.hash
    demos = [r for r in dataset.records if r["kind"] == "demo"]
    assert len(demos) == 2 and {(r["household"], r["scene"]) for r in demos} == {(0, 0), (1, 0)}
    for r in demos:  # the record's facts are the recorded episode's (the sim's ground truth at collection)
        with Episode(dataset.folder / r["path"]) as ep:
            assert (ep.attrs["env"]["household"], ep.attrs["env"]["scene"]) == (r["household"], r["scene"])
            assert ep.attrs["task"] == "press-button" and bool(ep.attrs["success"]) and r["success"]
            assert ep.num_steps == r["steps"] and ep.instructions()[0] in get_task("press-button").instructions
            assert set(ep.camera_names) == {"exterior_1", "wrist"}
    tests = {(r["split"], r["household"], r["scene"]) for r in dataset.records if r["kind"] == "eval-scene"}
    assert tests == {("test_seen", 0, 0), ("test_heldout", 3, 2)}
    assert len(check_episodes(dataset)) == 2


def test_an_edited_episode_is_refused(dataset, tmp_path, copy_tree):
    from robolearn.suite.dataset import load_dataset

    folder = copy_tree(dataset.folder, "edited")
    path = folder / next(r["path"] for r in dataset.records if r["kind"] == "demo")
    with h5py.File(path, "r+") as f:
        f["action/cartesian_velocity"][0, 0] += 0.5
    with pytest.raises(SuiteDataError, match=r"ep_000000\.h5: content digest .* edited"):
        check_episodes(load_dataset(folder))
    path.unlink()
    with pytest.raises(SuiteDataError, match="missing"):
        check_episodes(load_dataset(folder))


def test_metrics_on_hand_made_episodes():
    ok = np.array([True, False, True, True, False])
    held = np.array([False, False, True, True, True])
    metrics, intervals, breakdown = control_metrics(ok, held, ["0/0", "0/0", "3/2", "3/2", "4/3"])
    assert metrics == {"success": 0.6, "success_seen": 0.5, "success_heldout": 2 / 3}
    assert intervals["success"][0] < 0.6 < intervals["success"][1]
    assert breakdown["by_scene"] == {"0/0": 0.5, "3/2": 1.0, "4/3": 0.0}


def test_whole_scenario_runs_for_both_encoders(dataset, tmp_path, lm_dir):
    cfg = SuiteConfig(
        scenarios=["control-test"],
        encoders=["v-cond-tiny", "scratch-cnn"],
        seeds=[0],
        steps=20,
        out=tmp_path / "run",
        progress=False,
        language_model=str(lm_dir),
    )
    run = run_suite(cfg)
    assert len(run.results) == 2
    for r in run.results:
        assert set(r["metrics"]) == set(SCENARIO.metrics) and r["instances"] == 2
        assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in r["intervals"].values())
        assert r["curves"]["train_loss"] and r["extra"]["encoder_identity"]["weights_sha256"]
        assert r["extra"]["demos"] == 2
    cell = cfg.out / "cells" / "control-test" / "v-cond-tiny" / "seed-0"
    pred = np.load(cell / "predictions.npz")
    assert pred["heldout"].tolist() == [False, True]  # one episode in the seen scene, one in the held-out one
    assert (cell / "train" / "policy").is_dir() and (cell / "eval" / "results.json").is_file()
    assert all((cell / e).is_file() for e in run.results[0]["examples"])
