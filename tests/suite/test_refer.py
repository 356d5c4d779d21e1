"""The referring-expression family: the grammar refers to exactly one object, generation is deterministic and
its boxes match the simulator, the metrics are right on hand-made boxes, the data needs the language, and the
whole scenario runs for a frozen encoder and a baseline through run_suite."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from robolearn.envs.scenes import scene_params
from robolearn.suite.families.refer import (
    SHAPES,
    ReferScenario,
    SceneModel,
    _box,
    evaluate,
    footprint,
    grounding_metrics,
    parse_expression,
    phrase,
    text_embeddings,
)
from robolearn.suite.runner import SuiteConfig, run_suite
from robolearn.suite.scenario import register


class SmallRefer(ReferScenario):
    """The family at a test size: two households (one held out), one scene each, small images."""

    name = "refer-test"

    def data_config(self, size: str) -> dict:
        cfg = super().data_config(size)
        cfg.update(
            scenes={"train": 14, "val": 2, "test_seen": 4, "test_heldout": 4},
            image_size=48,
            households=2,
            scenes_per_household=1,
            heldout_households=[1],
        )
        return cfg


register(SmallRefer())


def _fact(shape, colour, size, cx, depth, box=(0, 0, 0.1, 0.1)):
    return {"shape": shape, "colour": colour, "size": size, "cx": cx, "depth": depth, "box": list(box)}


def test_grammar_refers_to_exactly_one_object():
    facts = [
        _fact("cube", "red", "small", -0.2, 1.0),  # 0: left, near
        _fact("cube", "red", "large", 0.15, 1.2),  # 1: right, far
        _fact("bowl", "blue", "large", 0.0, 1.1),  # 2: the landmark
        _fact("cube", "green", "small", 0.01, 1.15),  # 3: barely right of the bowl
    ]
    e = parse_expression("the cube left of the bowl")
    assert e == {"desc": (None, None, "cube"), "rel": "left of", "landmark": (None, None, "bowl")}
    assert evaluate(e, facts) == ([0], True)
    # cube 3 is right of the bowl by less than the margin: "the cube right of the bowl" is ambiguous
    picks, clear = evaluate(parse_expression("the cube right of the bowl"), facts)
    assert sorted(picks) == [1, 3] and not clear
    assert evaluate(parse_expression("the large red cube right of the bowl"), facts) == ([1], True)
    assert evaluate(parse_expression("the cube nearest the camera"), facts) == ([0], True)
    assert evaluate(parse_expression("the object farthest from the camera"), facts) == ([1], True)
    assert evaluate(parse_expression("the small red cube"), facts) == ([0], True)
    assert evaluate(parse_expression("the red cube"), facts)[0] == [0, 1]  # two match: not an expression we emit
    assert evaluate(parse_expression("the cube behind the red object"), facts) == ([], False)  # landmark not unique
    for text in ("the small red mug left of the bowl", "the ball behind the can", "the object nearest the camera"):
        assert phrase(parse_expression(text)) == text
    for bad in ("the cube above the bowl", "a red cube", "the red small cube", "the teapot"):
        with pytest.raises(ValueError):
            parse_expression(bad)
    with pytest.raises(ValueError, match="unknown size"):
        ReferScenario().data_config("huge")


def test_metrics_on_hand_made_boxes():
    true = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1]], dtype=float)
    pred = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 2, 1], [2, 2, 3, 3]], dtype=float)
    m, iou = grounding_metrics(pred, true)
    assert iou == pytest.approx([1.0, 1 / 7, 0.5, 0.0])
    assert m["acc_iou50"] == pytest.approx(0.5)  # IoU exactly 0.5 counts as a hit
    assert m["acc_iou25"] == pytest.approx(0.5)
    assert m["mean_iou"] == pytest.approx((1 + 1 / 7 + 0.5) / 4)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    sc = SmallRefer()
    return sc.generate(tmp_path_factory.mktemp("refer") / "ds", sc.data_config("tiny"))


def _project(view: dict, point: np.ndarray, size: int) -> tuple[float, float]:
    """Pinhole projection (MuJoCo's vertical fovy, square image) to normalised image coordinates."""
    pos, look = np.array(view["pos"]), np.array(view["lookat"])
    fwd = (look - pos) / np.linalg.norm(look - pos)
    right = np.cross(fwd, [0, 0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    v = point - pos
    f = 0.5 / math.tan(math.radians(view["fovy"]) / 2)
    return 0.5 + f * (v @ right) / (v @ fwd), 0.5 - f * (v @ up) / (v @ fwd)


def test_generation_is_deterministic_and_labels_match_the_sim(dataset, tmp_path):
    sc = SmallRefer()
    again = sc.generate(tmp_path / "again", sc.data_config("tiny"))
    assert again.hash == dataset.hash and len(dataset) >= 2 * 24
    recs = dataset.records
    assert {r["split"] for r in recs} == {"train", "val", "test_seen", "test_heldout"}
    assert {r["household"] for r in recs if r["split"] == "test_heldout"} == {1}
    assert {r["household"] for r in recs if r["split"] != "test_heldout"} == {0}
    assert {r["expression_type"] for r in recs} == {"attribute", "relation", "both"}
    boxes = np.asarray(dataset.arrays["boxes"])
    for i, r in enumerate(recs):
        assert 3 <= r["n_objects"] <= 8 and r["clutter"] in ("3-4", "5-6", "7-8")
        # re-parsed from its text, the expression picks exactly its target among the scene's objects
        assert evaluate(parse_expression(r["expression"]), r["objects"]) == ([r["target"]], True)
        assert boxes[i] == pytest.approx(r["objects"][r["target"]]["box"])
        # the box lies inside the projection of the object's bounding cylinder, and its centre is near it
        o = r["objects"][r["target"]]
        rad, top = footprint(o["shape"], o["size"]), 0.08 * (1.55 if o["size"] == "large" else 1.0)
        z = scene_params(r["household"], r["scene"]).table_z
        pts = np.array(
            [
                _project(r["view"], np.array([o["x"] + rad * math.cos(a), o["y"] + rad * math.sin(a), z + hz]), 48)
                for a in np.linspace(0, 2 * math.pi, 16)
                for hz in (0.0, top)
            ]
        )
        lo, hi = pts.min(0) - 1.5 / 48, pts.max(0) + 1.5 / 48
        assert lo[0] <= boxes[i][0] and boxes[i][2] <= hi[0] and lo[1] <= boxes[i][1] and boxes[i][3] <= hi[1]
    # the boxes are tight: re-rendering the first scene's layout gives the same segmentation boxes
    r = recs[0]
    model = SceneModel(r["household"], r["scene"], 48)
    try:
        objs = [{k: o[k] for k in ("shape", "colour", "size", "x", "y", "yaw")} for o in r["objects"]]
        v = r["view"]
        bodies = model.place(objs, np.array(v["pos"]), np.array(v["lookat"]), v["fovy"])
        masks = model.body_masks(bodies)
        assert np.array([_box(mk) for mk in masks]) == pytest.approx(np.array([o["box"] for o in r["objects"]]))
    finally:
        model.close()
    assert set(SHAPES) >= {o["shape"] for r in recs for o in r["objects"]}


def test_the_data_needs_the_language(dataset):
    """With the real default LM: expressions of one image name different boxes and embed differently, and
    predicting the mean training box (a prior that ignores the expression) scores low."""
    recs, boxes = dataset.records, np.asarray(dataset.arrays["boxes"])
    scenes: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        scenes.setdefault(r["scene_id"], []).append(i)
    multi = [ix for ix in scenes.values() if len(ix) >= 2]
    assert len(multi) == len(scenes)  # every scene has several expressions
    for ix in multi:
        assert len({recs[i]["target"] for i in ix}) == len(ix)  # naming different objects
        assert len({tuple(boxes[i]) for i in ix}) == len(ix)  # with different boxes
        assert np.array_equal(dataset.arrays["images"][ix[0]], dataset.arrays["images"][ix[1]])  # in one image
    texts = [recs[i]["expression"] for ix in multi[:6] for i in ix[:2]]
    emb = text_embeddings("all-minilm-l6-v2", texts).numpy()
    assert emb.shape == (len(texts), 384)
    a, b = emb[0::2], emb[1::2]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.max() < 0.99
    train, test = dataset.split("train"), dataset.split("test_seen", "test_heldout")
    prior = np.repeat(boxes[train].mean(0, keepdims=True), len(test), 0)
    m, _ = grounding_metrics(prior, boxes[test])
    assert m["acc_iou50"] <= 0.15


def test_scenario_runs_for_an_encoder_and_a_baseline(tmp_path, lm_dir):
    cfg = SuiteConfig(
        scenarios=["refer-test"],
        encoders=["v-cond-tiny", "scratch-cnn"],
        seeds=[0],
        out=tmp_path / "run",
        progress=False,
        language_model=str(lm_dir),
        steps=30,
        image_size=32,
    )
    run = run_suite(cfg)
    assert len(run.results) == 2
    for res in run.results:
        assert set(res["metrics"]) == {"acc_iou50", "acc_iou25", "mean_iou"}
        assert all(0.0 <= v <= 1.0 for v in res["metrics"].values())
        lo, hi = res["intervals"]["acc_iou50"]
        assert lo <= res["metrics"]["acc_iou50"] <= hi
        assert set(res["breakdown"]["acc_iou50_by_split"]) == {"test_seen", "test_heldout"}
        assert set(res["breakdown"]["acc_iou50_by_type"]) <= {"attribute", "relation", "both"}
        assert len(res["curves"]["train_loss"]) == 30 and res["instances"] > 0
        assert res["extra"]["encoder_identity"]["spec"] == res["encoder"]
        cell = cfg.out / "cells" / "refer-test" / res["encoder"] / "seed-0"
        assert len(res["examples"]) == 3 and all((cell / e).is_file() for e in res["examples"])
        pred = np.load(cell / "predictions.npz")
        assert pred["pred"].shape == pred["true"].shape == (res["instances"], 4)
    by_enc = {r["encoder"]: r for r in run.results}
    assert by_enc["v-cond-tiny"]["extra"]["language_in_backbone"] is True
    assert by_enc["scratch-cnn"]["extra"]["language_in_backbone"] is False
    assert json.loads((cfg.out / "leaderboard.json").read_text())["rows"]
    assert Path(cfg.out / "cache").is_dir()
