"""Language-conditioned imitation: demos carry the right (training) instructions, evaluation episodes reset to
their stored state, the instructed sub-task's detector decides success, paraphrases never reach training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robolearn.envs import HouseholdEnv
from robolearn.envs.tasks.multi import PARAPHRASES, SUBTASKS, subtask_for
from robolearn.suite import register
from robolearn.suite.families.imitation import Imitation, imitation_metrics
from robolearn.suite.runner import SuiteConfig, run_suite

HELD = {t for s in PARAPHRASES.values() for t in s["heldout"]}


class ImitationTest(Imitation):
    """The family at a test size: one demo per sub-task, 6-step evaluation episodes."""

    name = "imitation-test"

    def data_config(self, size: str) -> dict:
        return {**super().data_config("tiny"), "demos": 1, "val": 0, "eval_max_steps": 6}


SCENARIO = register(ImitationTest())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("imi")
    return SCENARIO.generate(out / "a", SCENARIO.data_config("tiny"))


def test_generation_is_deterministic_and_labels_are_right(dataset, tmp_path):
    again = SCENARIO.generate(tmp_path / "b", SCENARIO.data_config("tiny"))
    assert again.hash == dataset.hash
    recs = dataset.records
    demos = [r for r in recs if r["kind"] == "demo"]
    assert {r["split"] for r in demos} == {"train"} and {r["subtask"] for r in demos} == set(SUBTASKS)
    for r in demos:  # the right instruction, a training paraphrase of its sub-task, and the expert succeeded
        assert r["instruction"] in PARAPHRASES[r["subtask"]]["train"] and r["expert_success"]
    assert not {r["instruction"] for r in recs if r["split"] in ("train", "val")} & HELD  # paraphrases held out
    tests = [r for r in recs if r["kind"] == "rollout"]
    assert {(r["split"], r["phrasing"]) for r in tests} == {
        (s, p) for s in ("test_seen", "test_heldout") for p in ("train", "heldout")
    }
    assert all(subtask_for(r["instruction"]) == r["subtask"] for r in tests)
    assert {(r["household"], r["scene"]) for r in tests if r["split"] == "test_heldout"} <= {(3, 2), (4, 3)}
    assert all(r["household"] < 3 for r in recs if r["split"] != "test_heldout")
    # the stored frames are the sim's: a demo's first frame and an evaluation episode's start re-render the same
    cfg = dataset.meta["config"]
    env = HouseholdEnv(task="multi-task", cameras=(cfg["camera"],), image_size=(cfg["image_size"],) * 2)
    for i in (recs.index(demos[0]), recs.index(tests[-1])):
        r = recs[i]
        obs, _ = env.reset(seed=r["seed"], options={k: r[k] for k in ("household", "scene", "instruction")})
        np.testing.assert_array_equal(obs["images"][cfg["camera"]], dataset.arrays["images"][i])
        np.testing.assert_allclose(obs["proprio"], dataset.arrays["proprio"][i])
        assert env.sim.task.active == r["subtask"]
    first = recs.index(demos[0])
    assert np.abs(dataset.arrays["actions"][first]).max() > 0.1  # the expert's action, not a placeholder


def test_metrics_on_hand_made_episodes():
    def rec(split, phrasing, sub, text):
        return {"split": split, "phrasing": phrasing, "subtask": sub, "instruction": text}

    recs = [
        rec("test_seen", "train", "press-button", "press the button"),
        rec("test_seen", "heldout", "open-drawer", "get the drawer open"),
        rec("test_heldout", "train", "put-in-bin", "put the block in the bin"),
        rec("test_heldout", "train", "press-button", "press the button"),
    ]
    ok = np.array([True, False, True, False])
    done = np.zeros((4, 3), bool)
    done[0, 0] = done[2, 2] = True
    done[1, 0] = True  # asked for the drawer, pressed the button
    metrics, intervals, breakdown = imitation_metrics(recs, ok, done)
    assert metrics == {"success": 2 / 3, "success_paraphrase": 0.0, "success_seen": 0.5, "success_heldout": 0.5}
    lo, hi = intervals["success"]
    assert 0.0 < lo < 2 / 3 < hi < 1.0
    assert breakdown["by_instruction"]["press the button"] == 0.5 and breakdown["by_subtask"]["put-in-bin"] == 1.0
    assert breakdown["by_scenes_phrasing"]["test_seen/heldout"] == 0.0
    assert breakdown["other_subtask_done"]["rate"] == 0.25


def test_whole_scenario_runs_for_both_encoders(dataset, tmp_path, lm_dir):
    cfg = SuiteConfig(
        scenarios=["imitation-test"],
        encoders=["v-cond-tiny", "scratch-cnn"],
        seeds=[0],
        steps=40,
        out=tmp_path / "run",
        progress=False,
        language_model=str(lm_dir),
        datasets=tmp_path / "ds",
    )
    run = run_suite(cfg)
    assert len(run.results) == 2
    by_enc = {r["encoder"]: r for r in run.results}
    assert by_enc["v-cond-tiny"]["extra"]["language_input"] == "encoder (multimodal)"
    assert by_enc["scratch-cnn"]["extra"]["language_input"] == "head (frozen LM embedding)"
    for r in run.results:
        assert set(r["metrics"]) == set(SCENARIO.metrics) and len(r["curves"]["train_loss"]) == 40
        assert r["instances"] == 12 and r["extra"]["encoder_identity"]["weights_sha256"]
        assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in r["intervals"].values())
    cell = next((cfg.out / "cells" / "imitation-test").glob("v-cond-tiny/seed-0"))
    pred = np.load(cell / "predictions.npz")
    np.testing.assert_array_equal(pred["asked"], pred["active"])  # the env scored the instructed sub-task
    np.testing.assert_array_equal(pred["success"], pred["detectors"][np.arange(len(pred["asked"])), pred["asked"]])
    assert all((cell / e).is_file() for e in by_enc["v-cond-tiny"]["examples"])
    ds = json.loads(next((tmp_path / "ds").glob("imitation-test-*/dataset.json")).read_text())
    assert ds["hash"] == dataset.hash  # the runner's dataset is the module fixture's (same config, same bytes)


def test_default_lm_tells_the_subtasks_apart():
    """With the real default LM, each held-out paraphrase is nearest (mean cosine) to its own sub-task's
    training phrases: the instruction embedding carries the meaning the head needs."""
    import torch

    from robolearn.suite.families.imitation import instruction_embeddings

    texts = [t for s in PARAPHRASES.values() for p in s.values() for t in p]
    emb = instruction_embeddings(None, texts)
    unit = {t: v / v.norm() for t, v in emb.items()}
    for sub, sets in PARAPHRASES.items():
        for text in sets["heldout"]:
            score = {
                o: float(torch.stack([unit[text] @ unit[t] for t in PARAPHRASES[o]["train"]]).mean())
                for o in PARAPHRASES
            }
            assert max(score, key=score.get) == sub, (text, score)
