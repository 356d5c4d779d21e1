"""The suite's machinery on a toy scenario: hashed datasets, cached frozen tokens, equal budgets, resumable
cells, refusal of changed configs and edited datasets, and the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.suite import (
    Adapter,
    Budget,
    CellResult,
    EncoderSpec,
    Scenario,
    SuiteDataError,
    TokenSource,
    fit,
    load_dataset,
    predict,
    register,
    write_dataset,
)
from robolearn.suite.encoders import backbone_identity
from robolearn.suite.leaderboard import build
from robolearn.suite.metrics import (
    average_precision,
    box_iou,
    mean_iou,
    mean_win_rates,
    paired_permutation_p,
    seed_mean_ci,
)
from robolearn.suite.runner import SuiteConfig, run_suite


class ToyColour(Scenario):
    """Which quadrant holds the bright square: needs spatial features, learnable from pixels."""

    name, family, version = "toy-quadrant", "affordance", 1
    description = "toy: which quadrant holds the bright square"
    metrics = {"accuracy": True, "loss": False}
    default_budget = Budget(steps=40, batch_size=16, lr=3e-3)

    def data_config(self, size: str) -> dict:
        return {"size": size, "n": 96, "side": 32}

    def generate(self, out: Path, config: dict, workers: int = 1, progress: bool = False):
        rng = np.random.default_rng(0)
        n, side = config["n"], config["side"]
        images = rng.integers(0, 60, (n, side, side, 3), dtype=np.uint8)
        labels = rng.integers(0, 4, n)
        for i, q in enumerate(labels):
            y, x = (q // 2) * side // 2, (q % 2) * side // 2
            images[i, y + 4 : y + 12, x + 4 : x + 12] = 250
        splits = ["train"] * 64 + ["val"] * 8 + ["test_seen"] * 12 + ["test_heldout"] * 12
        records = [{"split": s, "quadrant": int(q)} for s, q in zip(splits, labels)]
        return write_dataset(out, self.name, self.version, config, {"images": images, "labels": labels}, records)

    def run_cell(self, dataset, encoder: EncoderSpec, ctx) -> CellResult:
        backbone = encoder.build("visual")
        src = TokenSource(encoder, backbone, dataset.arrays["images"], None, ctx.cache_dir,
                          {"dataset": dataset.hash, "spec": encoder.spec})  # fmt: skip
        adapter = Adapter(src.embed_dim, src.n_heads, 1, nn.Linear(src.embed_dim, 4))
        y = torch.as_tensor(np.asarray(dataset.arrays["labels"]))
        losses = fit(adapter, src, {"y": y}, lambda o, b: F.cross_entropy(o, b["y"]), dataset.split("train"),
                     ctx.budget, ctx.seed)  # fmt: skip
        test = dataset.split("test_seen", "test_heldout")
        acc = float((predict(adapter, src, test).argmax(-1) == y[test]).float().mean())
        return CellResult({"accuracy": acc, "loss": losses[-1]}, instances=len(test), curves={"loss": losses},
                          extra={"encoder_identity": backbone_identity(encoder, backbone)})  # fmt: skip


register(ToyColour())


def _cfg(tmp_path: Path, **kw) -> SuiteConfig:
    base = dict(scenarios=["toy-quadrant"], encoders=["v-cond-tiny", "scratch-cnn"], seeds=[0, 1],
                out=tmp_path / "run", progress=False, image_size=32)  # fmt: skip
    return SuiteConfig(**{**base, **kw})


def test_run_resume_and_leaderboard(tmp_path, lm_dir):
    cfg = _cfg(tmp_path, language_model=str(lm_dir))
    run = run_suite(cfg)
    assert len(run.results) == 4
    out = cfg.out
    cells = sorted(out.glob("cells/toy-quadrant/*/seed-*/cell.json"))
    assert len(cells) == 4
    cell = json.loads(cells[0].read_text())
    assert cell["status"] == "done" and cell["config"]["dataset"]["hash"] and cell["versions"]["mujoco"]
    assert cell["config"]["budget"]["steps"] == 40  # the same budget for every encoder
    assert list((out / "cache").glob("tokens-*.safetensors"))  # the frozen encoder's tokens were cached once
    board = build(out)
    assert {r["encoder"] for r in board["rows"]} == {"v-cond-tiny", "scratch-cnn"}
    acc = board["rows"][0]["columns"]["toy-quadrant:accuracy"]
    assert acc["seeds"] == [0, 1] and acc["ci95"][0] <= acc["mean"] <= acc["ci95"][1]
    html = (out / "leaderboard.html").read_text()
    assert "mean win rate" in html and "toy-quadrant:accuracy" in html
    _check_suite_lineage(out, board, lm_dir)
    # resumed: finished cells are not recomputed (their metrics files stay byte-identical)
    before = {p: p.read_bytes() for p in out.glob("cells/**/metrics.json")}
    mtimes = {p: p.stat().st_mtime_ns for p in before}
    run_suite(cfg)
    assert {p: p.stat().st_mtime_ns for p in before} == mtimes
    # a changed config for an existing cell is refused, not silently overwritten
    with pytest.raises(ValueError, match="another config"):
        run_suite(_cfg(tmp_path, language_model=str(lm_dir), steps=5))


def _check_suite_lineage(out: Path, board: dict, lm_dir: Path) -> None:
    """Every cell's card: its figures are its metrics, its inputs the dataset (by id), the encoder and the LM;
    the leaderboard's card lists the cells it read and their mean win rates; the graph reaches the dataset."""
    from robolearn.lineage import build_graph, read_card

    cell_dirs = sorted(p.parent for p in out.glob("cells/toy-quadrant/*/seed-*/metrics.json"))
    dataset = read_card(next((out / "datasets").iterdir()))
    for d in cell_dirs:
        card = read_card(d)
        metrics = json.loads((d / "metrics.json").read_text())["metrics"]
        assert card["kind"] == "suite-cell" and card["figures"] == metrics
        kinds = {i["kind"]: i for i in card["inputs"]}
        assert kinds["suite-dataset"]["id"] == dataset["id"] and kinds["lm"]["path"] == str(lm_dir.resolve())
        assert ("encoder" in kinds) == ("v-cond-tiny" in d.parent.name)  # a baseline has no encoder input
    board_card = read_card(out)
    assert board_card["kind"] == "leaderboard" and sorted(i["id"] for i in board_card["inputs"]) == sorted(
        read_card(d)["id"] for d in cell_dirs
    )
    assert board_card["figures"] == {r["encoder"]: r["mean_win_rate"] for r in board["rows"]}
    g = build_graph(out)
    assert not g.problems and {"leaderboard", "suite-cell", "suite-dataset", "lm"} <= {n.kind for n in g.nodes.values()}


def test_edited_dataset_and_bad_names_are_clear_errors(tmp_path, lm_dir):
    cfg = _cfg(tmp_path, encoders=["scratch-cnn"], seeds=[0], language_model=str(lm_dir))
    run_suite(cfg)
    folder = next((cfg.out / "datasets").iterdir())
    labels = folder / "labels.npy"
    data = bytearray(labels.read_bytes())
    data[-1] ^= 1
    labels.write_bytes(bytes(data))
    with pytest.raises(SuiteDataError, match=r"labels\.npy: sha256 .* truncated or edited"):
        run_suite(_cfg(tmp_path, encoders=["scratch-cnn"], seeds=[1], language_model=str(lm_dir)))
    with pytest.raises(ValueError, match="unknown scenario 'toy-quadrnt'.*Did you mean toy-quadrant"):
        run_suite(_cfg(tmp_path, scenarios=["toy-quadrnt"]))
    with pytest.raises(ValueError, match="no-such-encoder"):
        run_suite(_cfg(tmp_path, encoders=["no-such-encoder"], language_model=str(lm_dir)))
    with pytest.raises(FileExistsError):
        write_dataset(folder, "toy-quadrant", 1, {}, {}, [])
    with pytest.raises(SuiteDataError, match="version 1, this robolearn generates version 2"):
        load_dataset(folder, version=2, verify=False)


def test_metrics():
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 0, 1])) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(np.array([0.1, 0.9]), np.array([1, 0])) == pytest.approx(0.5)
    miou, per = mean_iou(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert per == pytest.approx([1.0, 0.5, 0.5]) and miou == pytest.approx(2 / 3)
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]]))[0] == pytest.approx(1 / 7)
    m, lo, hi = seed_mean_ci([0.5, 0.6, 0.7])
    assert m == pytest.approx(0.6) and lo < 0.6 < hi and hi - lo == pytest.approx(2 * 4.303 * 0.1 / 3**0.5)
    assert paired_permutation_p([1, 2, 3], [0, 1, 2]) == pytest.approx(0.25)  # all differences +1: 2 of 8 flips
    wins = mean_win_rates({"a": {"x": 1.0, "y": 0.1}, "b": {"x": 0.5, "y": 0.2}}, {"x": True, "y": False})
    assert wins == {"a": 1.0, "b": 0.0}


def test_every_tiny_arch_and_a_checkpoint_run_a_scenario(tmp_path, lm_dir):
    """The roster of Voltron's evaluation (V-Cond, V-Dual, V-Gen, R-MVP, R-R3M; random init and a named checkpoint)
    goes through a cell; a checkpoint is a different encoder (its weights hash) from the same id's random init."""
    from robolearn.encoders import save

    backbone = EncoderSpec("v-gen-tiny", language_model=str(lm_dir)).build("visual")
    with torch.no_grad():
        for p in backbone.encoder.parameters():
            p.add_(0.01)  # "pretrained": any weights other than the seeded init
    ckpt = save(backbone.encoder, tmp_path / "v-gen-ckpt")
    roster = ["v-cond-tiny", "v-dual-tiny", "v-gen-tiny", "r-mvp-tiny", "r-r3m-vit-tiny", f"v-gen-tiny:{ckpt}"]
    cfg = _cfg(tmp_path, encoders=roster, seeds=[0], steps=5, language_model=str(lm_dir))
    run = run_suite(cfg)
    assert [r["encoder"] for r in run.results] == roster
    assert all(0.0 <= r["metrics"]["accuracy"] <= 1.0 for r in run.results)
    idents = {
        json.loads(p.read_text())["identity"]["spec"]: json.loads(p.read_text())["identity"]["weights_sha256"]
        for p in cfg.out.glob("cells/toy-quadrant/*/seed-0/cell.json")
    }
    assert idents.keys() == set(roster)
    assert idents["v-gen-tiny"] != idents[f"v-gen-tiny:{ckpt}"]
    assert len(build(cfg.out)["rows"]) == len(roster)


def test_all_expands_to_every_scenario():
    from robolearn.suite.runner import expand_scenarios
    from robolearn.suite.scenario import scenarios

    names = expand_scenarios(["refer", "all"])
    assert names[0] == "refer" and set(names) == set(scenarios()) and len(names) == len(set(names))
    assert {"affordance", "refer", "control", "imitation", "intent"} <= set(names)


def test_leaderboard_labels_name_checkpoints_shortly():
    from robolearn.suite.leaderboard import label

    assert label("v-cond-tiny") == "v-cond-tiny"
    assert label("v-cond-tiny:/runs/pre/vc/checkpoints/step-00000250") == "v-cond-tiny:vc/step-00000250"
    assert label("/runs/pre/vc/checkpoints/step-00000250") == "vc/step-00000250"
    assert label("v-gen-tiny:/tmp/my-ckpt") == "v-gen-tiny:my-ckpt"
