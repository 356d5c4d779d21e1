"""The grasp affordance family: deterministic generation, labels that match the sim's geometry, the metrics on
hand-made cases, and the whole scenario through run_suite for v-cond-tiny and scratch-cnn at a test size."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robolearn.suite.families.affordance import (
    BACKGROUND,
    GRASPABLE,
    IGNORE,
    OBJECT,
    AffordanceRenderer,
    AffordanceScenario,
    affordance_metrics,
    build_affordance_scene,
    pool_labels,
)
from robolearn.suite.metrics import topk_precision
from robolearn.suite.runner import SuiteConfig, run_suite
from robolearn.suite.scenario import register


class _TestAffordance(AffordanceScenario):
    """The affordance scenario on a handful of images (the test size)."""

    name = "affordance-test"

    def data_config(self, size: str) -> dict:
        cfg = super().data_config("tiny")
        return {**cfg, "size": "test", "counts": {"train": 24, "val": 2, "test_seen": 6, "test_heldout": 6}}

    def budget(self, size: str):
        return type(self.default_budget)(steps=8, batch_size=8)


TEST = register(_TestAffordance())


def _small_config() -> dict:
    return {**TEST.data_config("tiny"), "counts": {"train": 3, "val": 0, "test_seen": 1, "test_heldout": 2}}


def test_generation_is_deterministic_and_split_by_household(tmp_path):
    cfg = _small_config()
    a = TEST.generate(tmp_path / "a", cfg)
    b = TEST.generate(tmp_path / "b", cfg, workers=2)  # workers change nothing
    assert a.hash == b.hash
    assert np.array_equal(np.asarray(a.arrays["images"]), np.asarray(b.arrays["images"]))
    assert a.arrays["images"].shape == (6, 64, 64, 3) and a.arrays["labels"].shape == (6, 32, 32)
    for r in a.records:
        held = r["household"] in cfg["heldout_households"]
        assert held == (r["split"] == "test_heldout")
        assert r["cells"]["graspable"] > 0  # every image shows some graspable part
    c = TEST.generate(tmp_path / "c", {**cfg, "seed": 1})
    assert c.hash != a.hash


def _project(scene, cam: mujoco.MjvCamera, points: np.ndarray, size: int) -> np.ndarray:
    """World points -> (row, col) pixels of the free camera, from MuJoCo's own camera frame."""
    m, d = scene.model, scene.data
    mv = mujoco.MjvScene(m, maxgeom=100)
    mujoco.mjv_updateScene(m, d, mujoco.MjvOption(), None, cam, mujoco.mjtCatBit.mjCAT_ALL, mv)
    gl = mv.camera[0]
    fwd, up = np.array(gl.forward), np.array(gl.up)
    right = np.cross(fwd, up)
    pos = (np.array(mv.camera[0].pos) + np.array(mv.camera[1].pos)) / 2  # mono rendering: between the two eyes
    f = 0.5 * size / np.tan(np.deg2rad(m.vis.global_.fovy) / 2)
    rel = points - pos
    z = rel @ fwd
    return np.stack([size / 2 - f * (rel @ up) / z, size / 2 + f * (rel @ right) / z], axis=1)


HANDLES = ("pan_handle", "mug0_handle1", "mug1_handle1", "drawer_handle", "cabinet_handle")


def test_labels_match_the_sim_geometry(tmp_path):
    """Project the centres of handle geoms into the image: the label cells there are graspable (or ignore at
    edges/occlusions), and the far corners of a top view are background; the drawer unit's side is object."""
    from robolearn.suite.families.affordance import apply_instance

    ds = TEST.generate(tmp_path / "d", _small_config())
    size, grid = 64, 32
    hits = checked = 0
    for i, r in enumerate(ds.records):
        sc = build_affordance_scene(r["household"], r["scene"], size)
        labels = np.asarray(ds.arrays["labels"][i])
        rend = AffordanceRenderer(sc, size)
        rgb, pix = rend.render(r)
        rend.close()
        assert np.array_equal(rgb, ds.arrays["images"][i])  # re-rendered from the record: the same image
        assert np.array_equal(pool_labels(pix, grid, 0.6), labels)
        cam = apply_instance(sc, r)
        names = {o["name"] for o in r["objects"]}
        stems = {n.split("_")[0] for n in names}
        handles = [g for g in HANDLES if g.split("_")[0] in stems]
        if not handles:
            continue
        pts = np.array([sc.data.geom_xpos[sc.model.geom(g).id] for g in handles])
        for row, col in _project(sc, cam, pts, size):
            if 0 <= row < size and 0 <= col < size:
                checked += 1
                hits += labels[int(row) // 2, int(col) // 2] in (GRASPABLE, IGNORE) or pix[int(row), int(col)] in (
                    OBJECT,
                )  # an object in front (occlusion) is the only other right answer
    assert checked >= 3 and hits / checked >= 0.8, (hits, checked)


def test_pool_labels_majority_and_ignore():
    pix = np.zeros((4, 4), np.uint8)
    pix[:2, :2] = GRASPABLE  # a pure cell
    pix[2:, 2:] = [[OBJECT, OBJECT], [OBJECT, BACKGROUND]]  # 3/4 object: majority
    pix[:2, 2:] = [[OBJECT, GRASPABLE], [BACKGROUND, BACKGROUND]]  # 1/2 at most: mixed
    pix[2:, :2] = IGNORE
    assert pool_labels(pix, 2, 0.6).tolist() == [[GRASPABLE, IGNORE], [IGNORE, OBJECT]]


def test_metrics_on_hand_made_cases():
    labels = np.array([[[BACKGROUND, OBJECT], [GRASPABLE, IGNORE]]] * 2)  # [2, 2, 2]
    perfect = np.zeros((2, 3, 2, 2))
    for k in range(3):
        perfect[:, k] = labels == k
    perfect[:, :, 1, 1] = 1 / 3
    m = affordance_metrics(perfect, labels)
    assert m["grasp_pr_auc"] == pytest.approx(1.0) and m["miou"] == pytest.approx(1.0)
    assert m["object_pr_auc"] == pytest.approx(1.0) and m["grasp_p99"] == pytest.approx(1.0)
    wrong = perfect[:, [2, 0, 1]]  # graspable scores sit on the object cell
    w = affordance_metrics(wrong, labels)
    # ranked: the 2 object cells, then (ties kept in order) bg, grasp, bg, grasp: AP = (1/4 + 2/6) / 2
    assert w["grasp_p99"] == 0.0 and w["grasp_pr_auc"] == pytest.approx((1 / 4 + 2 / 6) / 2)
    # top-1%: only the best cell per image counts; ignore cells are neither TP nor FP
    s = np.array([[0.9, 0.1, 0.2, 0.3], [0.2, 0.8, 0.1, 0.95]])
    pos = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], bool)
    lab = np.array([[1, 1, 1, 1], [1, 1, 1, 0]], bool)
    assert topk_precision(s, pos, lab, 0.99) == pytest.approx(1.0)  # image 2's top cell is unlabelled
    assert topk_precision(s, pos, np.ones_like(lab), 0.99) == pytest.approx(0.5)


def test_scenario_runs_for_vcond_and_scratch(tmp_path, lm_dir):
    cfg = SuiteConfig(scenarios=["affordance-test"], encoders=["v-cond-tiny", "scratch-cnn"], seeds=[0],
                      out=tmp_path / "run", progress=False, language_model=str(lm_dir))  # fmt: skip
    run = run_suite(cfg)
    assert len(run.results) == 2
    for r in run.results:
        assert set(r["metrics"]) == {"grasp_pr_auc", "grasp_p99", "miou"}
        assert 0.0 <= r["metrics"]["grasp_pr_auc"] <= 1.0
        lo, hi = r["intervals"]["grasp_pr_auc"]
        assert lo <= hi
        assert set(r["breakdown"]["by_split:grasp_pr_auc"]) == {"seen", "heldout"}
        assert len(r["examples"]) == 3 and len(r["curves"]["train_loss"]) == 8
    cells = cfg.out / "cells" / "affordance-test"
    vcond = json.loads((cells / "v-cond-tiny" / "seed-0" / "metrics.json").read_text())
    assert vcond["extra"]["language"] == "picking something up" and vcond["extra"]["mode"] == "multimodal"
    scratch = json.loads((cells / "scratch-cnn" / "seed-0" / "metrics.json").read_text())
    assert scratch["extra"]["mode"] == "visual" and scratch["extra"]["encoder_identity"]["baseline"]
    pred = np.load(cells / "scratch-cnn" / "seed-0" / "predictions.npz")
    assert pred["probs"].shape == (12, 3, 32, 32) and np.allclose(pred["probs"].astype(float).sum(1), 1, atol=1e-2)
    for rel in scratch["examples"]:
        assert Path(cells / "scratch-cnn" / "seed-0" / rel).stat().st_size > 0
