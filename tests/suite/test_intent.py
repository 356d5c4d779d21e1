"""The intent scoring family: deterministic generation in the shared scene, labels that match what the sim did,
the metric on hand-made scores, and the whole scenario (probe for every encoder, V-Gen zero-shot) through
run_suite at a test size."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.envs.tasks import TASKS
from robolearn.envs.tasks.drawer import CLOSED, OPENED
from robolearn.suite import register
from robolearn.suite.families.intent import (
    FRACTIONS,
    TASK_NAMES,
    IntentScenario,
    _assign_splits,
    _episodes,
    intent_metrics,
    lm_embeddings,
    task_embeddings,
)
from robolearn.suite.runner import SuiteConfig, dataset_for, run_suite


class IntentTest(IntentScenario):
    """The intent scenario on one seen scene (2 rounds: train + test_seen) and one held-out scene."""

    name = "intent-test"

    def data_config(self, size: str) -> dict:
        return {**super().data_config(size), "households": [0], "scenes": [0], "episodes": 2,
                "heldout_scenes": [0], "heldout_episodes": 1}  # fmt: skip


SCENARIO = register(IntentTest())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return dataset_for(SCENARIO, "tiny", tmp_path_factory.mktemp("intent"), workers=2)


def test_generation_is_deterministic_and_labels_match_the_sim(dataset, tmp_path):
    again = dataset_for(SCENARIO, "tiny", tmp_path, workers=1)  # in-process, where the fixture used 2 workers
    assert again.hash == dataset.hash
    n_eps = 7 * 2 + 7
    assert len(dataset) == n_eps * len(FRACTIONS) and dataset.meta["splits"]["test_heldout"] == 7 * len(FRACTIONS)
    assert dataset.arrays["initial"].shape[1:] == (64, 64, 3) and dataset.arrays["initial"].dtype == np.uint8
    by_ep: dict[int, list[dict]] = {}
    for i, r in enumerate(dataset.records):
        by_ep.setdefault(r["episode"], []).append({**r, "i": i})
    for rows in by_ep.values():
        r = rows[0]
        # one episode: one split, one task, frames at every fraction, the initial frame shared
        assert {x["split"] for x in rows} == {r["split"]} and [x["fraction"] for x in rows] == list(FRACTIONS)
        assert r["label"] == TASK_NAMES.index(r["task"]) and r["instruction"] in TASKS[r["task"]].instructions
        assert all(np.array_equal(dataset.arrays["initial"][x["i"]], dataset.arrays["initial"][r["i"]]) for x in rows)
        assert np.array_equal(dataset.arrays["current"][r["i"]], dataset.arrays["initial"][r["i"]])  # fraction 0
        assert rows[-1]["step"] == r["episode_steps"]
        assert not np.array_equal(dataset.arrays["current"][rows[-1]["i"]], dataset.arrays["initial"][r["i"]])
    # the sim's ground truth: the object states at the start and the end of each episode
    eps = [rows[0] for rows in by_ep.values()]
    assert sum(e["success"] for e in eps) >= len(eps) - 2
    for e in eps:
        s0, s1 = np.array(e["state_start"]), np.array(e["state_end"])
        if e["task"] in ("open-drawer", "close-drawer"):
            assert 0.04 < s0[-1] < 0.1  # the drawer starts half open for both drawer tasks
        if e["success"] and e["task"] == "open-drawer":
            assert s1[-1] >= OPENED > s0[-1]
        if e["success"] and e["task"] == "close-drawer":
            assert s1[-1] <= CLOSED < s0[-1]
        if e["success"] and e["task"] == "put-in-bin":  # cube xy inside the bin
            assert np.all(np.abs(s1[:2] - s1[7:9]) < TASKS["put-in-bin"].BIN[:2])
    # the episodes of a round start from the same frame: only the motion tells the tasks apart
    firsts: dict[tuple, list[np.ndarray]] = {}
    for rows in by_ep.values():
        key = (rows[0]["household"], rows[0]["scene"], rows[0]["round"], rows[0]["split"])
        firsts.setdefault(key, []).append(dataset.arrays["initial"][rows[0]["i"]])
    assert all(len(v) == 7 and all(np.array_equal(v[0], x) for x in v) for v in firsts.values())
    # seen scenes: every task has the same number of training episodes per scene (rounds go whole to a split)
    train = [e for e in eps if e["split"] == "train"]
    assert sorted(e["task"] for e in train) == sorted(TASK_NAMES)
    assert {e["split"] for e in eps} == {"train", "test_seen", "test_heldout"}


def test_splits_need_two_rounds():
    cfg = {**SCENARIO.data_config("tiny"), "episodes": 1}
    with pytest.raises(ValueError, match="at least 2 episodes per task"):
        _assign_splits(_episodes(cfg), 0)


def test_metric_on_hand_made_scores():
    labels = np.array([0, 1, 2, 3])
    scores = np.eye(7)[[0, 1, 5, 5]]  # right, right, wrong, wrong
    fractions = np.array([0.0, 1.0, 0.0, 1.0])
    heldout = np.array([False, False, True, True])
    m = intent_metrics(scores, labels, fractions, heldout)
    assert m["metrics"] == {"top1": 0.5, "top1_seen": 1.0, "top1_heldout": 0.0}
    assert m["breakdown"]["by_fraction"] == {"0": 0.5, "1": 0.5}
    assert m["curves"]["top1_vs_progress_heldout"] == [0.0, 0.0]
    lo, hi = m["intervals"]["top1"]
    assert lo < 0.5 < hi and 0 < lo  # Wilson on 2 of 4


def test_task_embeddings_carry_meaning_with_the_default_lm():
    """With the real LM, a paraphrase lies nearest its own task's (leave-one-out) prototype."""
    cands = [list(TASKS[t].instructions) for t in TASK_NAMES]
    emb = lm_embeddings([p for c in cands for p in c], "all-minilm-l6-v2").reshape(7, 5, -1)
    hits = 0
    for k in range(7):
        for j in range(5):
            protos = torch.stack([emb[q][[i for i in range(5) if (q, i) != (k, j)]].mean(0) for q in range(7)])
            hits += int((torch.nn.functional.normalize(protos, dim=-1) @ emb[k, j]).argmax() == k)
    assert hits >= 30
    assert task_embeddings(cands, "all-minilm-l6-v2").shape == (7, 384)


def test_scenario_runs_for_every_kind_of_encoder(dataset, tmp_path, lm_dir, monkeypatch):
    cfg = SuiteConfig(scenarios=["intent-test"], encoders=["v-cond-tiny", "scratch-cnn", "v-gen-tiny"], seeds=[0],
                      out=tmp_path / "run", progress=False, steps=15, language_model=str(lm_dir),
                      datasets=dataset.folder.parent)  # fmt: skip
    run = run_suite(cfg)
    assert len(run.results) == 3
    for res in run.results:
        assert set(res["metrics"]) == {"top1", "top1_seen", "top1_heldout"}
        assert res["instances"] == 14 * len(FRACTIONS) and len(res["curves"]["train_loss"]) == 15
        assert res["extra"]["chance"] == pytest.approx(1 / 7) and res["extra"]["encoder_identity"]["spec"]
        assert list(res["breakdown"]["by_fraction"]) == ["0", "0.25", "0.5", "0.75", "1"]
        assert len(res["curves"]["top1_vs_progress_seen"]) == len(FRACTIONS)
        lo, hi = res["intervals"]["top1"]
        assert lo <= res["metrics"]["top1"] <= hi
        cell = cfg.out / "cells" / "intent-test" / res["encoder"] / "seed-0"
        assert all((cell / f).is_file() for f in res["examples"]) and "examples/top1_vs_progress.png" in res["examples"]
        pred = np.load(cell / "predictions.npz")
        assert pred["scores"].shape == (14 * len(FRACTIONS), 7)
    by = {r["encoder"]: r for r in run.results}
    assert by["scratch-cnn"]["extra"]["probe"] == "per-frame MAP, concatenated"
    assert by["v-gen-tiny"]["extra"]["probe"] == "dual-frame MAP"
    zs = by["v-gen-tiny"]["extra"]["zero_shot"]
    assert "no trained head" in zs["method"] and 0.0 <= zs["top1"] <= 1.0
    assert len(by["v-gen-tiny"]["curves"]["zero_shot_vs_progress"]) == len(FRACTIONS)
    assert "zero_shot" not in by["v-cond-tiny"]["extra"]
    board = json.loads((cfg.out / "leaderboard.json").read_text())
    assert "intent-test:top1" in json.dumps(board)
    # the zero-shot scores have no trained part: a rerun of the cell with the same weights (here: another adapter
    # budget) reads them from the cache, never rescores (a random-init encoder's weights differ per seed)
    assert len(list((cfg.out / "cache").glob("zero-shot-*.npy"))) == 1
    import robolearn.suite.families.intent as intent_mod

    first = np.load(cfg.out / "cells/intent-test/v-gen-tiny/seed-0/predictions.npz")["zero_shot_scores"]

    def rescored(*a, **k):
        raise AssertionError("zero-shot scores were recomputed for the same weights")

    monkeypatch.setattr(intent_mod, "vgen_zero_shot", rescored)
    again = run_suite(dataclasses.replace(cfg, encoders=["v-gen-tiny"], steps=5, overwrite=True))
    second = np.load(cfg.out / "cells/intent-test/v-gen-tiny/seed-0/predictions.npz")["zero_shot_scores"]
    assert np.array_equal(first, second) and len(again.results[0]["curves"]["train_loss"]) == 5
    assert again.results[0]["extra"]["zero_shot"]["top1"] == zs["top1"]


def test_a_wrong_version_dataset_is_refused(dataset):
    from robolearn.suite import SuiteDataError, load_dataset

    with pytest.raises(SuiteDataError, match="regenerate"):
        load_dataset(dataset.folder, scenario="intent-test", version=SCENARIO.version + 1, verify=False)
    assert Path(dataset.folder).name.startswith("intent-test-v1-tiny-")
