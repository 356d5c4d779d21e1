"""Preference fine-tuning (DPO): pair mining, the objective, `robolearn train --objective dpo` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.data.writer import EpisodeMeta, EpisodeWriter
from robolearn.policies.preference import PairMiningError, dpo_loss, mine_pairs, segment_log_ratio


def _episode(
    path: Path,
    success: bool | None,
    steps: int = 10,
    scene: str = "scene_0",
    text: str = "press the button",
    takeover=(),
) -> Path:
    """A camera-less episode with a success label and `intervention` on the steps in `takeover`."""
    meta = EpisodeMeta(household="household_0", scene_id=scene, task="press-button", language=[text])
    z = np.zeros
    state = dict(joint_positions=z(7), joint_velocities=z(7), ee_position=z(3), ee_quaternion=[1, 0, 0, 0])
    action = dict(cartesian_velocity=z(6), cartesian_position=[0, 0, 0, 1, 0, 0, 0], joint_position=z(7))
    with EpisodeWriter(path, meta, []) as w:
        for t in range(steps):
            w.add_step(
                state={**state, "gripper_position": 0.0},
                action={**action, "joint_velocity": z(7), "gripper_position": 0.0},
                intervention=t in takeover,
            )
        w.set_outcome(success, "detector" if success is not None else "unknown")
    return path


def test_outcome_pairs_share_scene_and_instruction(tmp_path):
    win = _episode(tmp_path / "win.h5", True, steps=12)
    lose = _episode(tmp_path / "lose.h5", False, steps=20)
    _episode(tmp_path / "other_scene.h5", False, scene="scene_1")  # no success there: no pair
    _episode(tmp_path / "other_text.h5", False, text="hit the button")  # other instruction: no pair
    _episode(tmp_path / "unknown.h5", None)  # unlabelled: ignored
    paths = sorted(tmp_path.glob("*.h5"))
    pairs, rep = mine_pairs(paths, segment=8, stride=4)
    assert (rep.successes, rep.failures, rep.unknown, rep.groups, rep.groups_with_both) == (1, 3, 1, 3, 1)
    assert rep.outcome_pairs == len(pairs) == 4  # the failure's windows start at 0, 4, 8, 12
    for p in pairs:
        assert (p.preferred.path, p.rejected.path, p.kind) == (win, lose, "outcome")
        assert p.group == ("household_0", "scene_0", "press the button")
        assert p.preferred.length == p.rejected.length == 8
    # aligned by progress (start / length): 4/20 is nearer 4/12 than 0/12
    assert [(p.rejected.start, p.preferred.start) for p in pairs] == [(0, 0), (4, 4), (8, 4), (12, 4)]
    # match="task" pools the instructions: the "hit the button" failure pairs too
    pairs_task, _ = mine_pairs(paths, segment=8, stride=4, match="task")
    assert len(pairs_task) == 4 + 1 and len(mine_pairs(paths, 8, 4, max_pairs=2)[0]) == 2


def test_correction_pairs_from_takeovers(tmp_path):
    # policy acts 0..5, the operator takes over 6..9, policy 10..11, operator again 12..15
    ep = _episode(tmp_path / "takeover.h5", None, steps=16, takeover=set(range(6, 10)) | set(range(12, 16)))
    pairs, rep = mine_pairs([ep], segment=8)
    assert rep.with_interventions == 1 and rep.correction_pairs == 2
    a, b = sorted(pairs, key=lambda p: p.preferred.start)
    assert (a.preferred.start, a.preferred.length, a.rejected.start, a.rejected.length) == (6, 4, 2, 4)
    # the second takeover's "before" holds only the policy's own 2 steps, not the first takeover's
    assert (b.preferred.start, b.preferred.length, b.rejected.start, b.rejected.length) == (12, 2, 10, 2)
    assert {a.kind, b.kind} == {"correction"}


def test_no_pairs_is_a_clear_error(tmp_path):
    paths = [_episode(tmp_path / f"ok{i}.h5", True) for i in range(2)]
    with pytest.raises(PairMiningError, match=r"no preference pairs in 2 episode\(s\).*2 successful, 0 failed"):
        mine_pairs(paths)
    with pytest.raises(ValueError, match="segment and stride must be >= 1"):
        mine_pairs(paths, segment=0)


def test_dpo_objective_matches_the_formula():
    torch.manual_seed(0)
    action, ref = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    keep = torch.ones(2, 3, 4)
    keep[1, 2] = 0  # a padded segment step
    assert torch.allclose(segment_log_ratio(ref, ref, action, keep, 0.5), torch.zeros(2))  # pi == ref
    mu = ref + 0.1 * torch.randn_like(ref)
    want = (((action - ref) ** 2 - (action - mu) ** 2).sum(-1) * keep).sum((1, 2)) / (2 * 0.5**2)
    assert torch.allclose(segment_log_ratio(mu, ref, action, keep, 0.5), want)
    loss, stats = dpo_loss(torch.zeros(3), torch.zeros(3), beta=0.1)
    assert math.isclose(float(loss), math.log(2), rel_tol=1e-6) and stats["reward_accuracy"] == 0.0
    # moving towards the preferred action lowers the loss
    mu_w = ref.clone().requires_grad_(True)
    lw = segment_log_ratio(mu_w, ref, action, keep, 1.0)
    loss, _ = dpo_loss(lw, torch.zeros(2), beta=0.1)
    loss.backward()
    step = ref - 0.1 * mu_w.grad
    assert float(((action - step) ** 2).sum()) < float(((action - ref) ** 2).sum())


def test_train_dpo_from_recorded_failures(demos, lm_dir, tmp_path):
    """BC -> `robolearn eval --save-episodes` (failures recorded) -> `robolearn train --objective dpo`."""
    from robolearn.cli import main
    from robolearn.data.reader import Episode
    from robolearn.policies import load_policy

    cache = str(tmp_path / "cache")
    common = ["--feature-cache", cache, "--no-progress", "--batch-size", "16", "--log-every", "5"]
    bc = tmp_path / "bc"
    rc = main(
        ["train", "--data", str(demos), "--out", str(bc), "--steps", "10", "--val-fraction", "0"]
        + ["--policy.encoder", "v-cond-tiny", "--policy.language-model", str(lm_dir), "--policy.head.hidden", "32"]
        + common
    )
    assert rc == 0
    ev = tmp_path / "eval"
    rc = main(
        ["eval", "--policy", str(bc), "--episodes", "2", "--scenes", "0/0", "--max-steps", "6", "--videos", "0"]
        + ["--save-episodes", "--out", str(ev), "--no-progress"]
    )
    assert rc == 0
    files = sorted((ev / "rollouts" / "episodes").glob("*.h5"))
    records = [json.loads(x) for x in (ev / "episodes.jsonl").read_text().splitlines()]
    assert len(files) == 2 and sorted(Path(r["episode_file"]).name for r in records) == [f.name for f in files]
    with Episode(files[0]) as e:  # a 6-step failure, labelled by the detector, recorded like a demo
        assert (e.num_steps, e.attrs["success"], e.attrs["label_source"]) == (6, 0, "detector")
        assert e.attrs["teleop_device"] == "policy" and e.attrs["scene_id"] == "scene_0"
        assert e.frame("exterior_1", 0).shape == (32, 32, 3) and e.state("joint_positions").shape == (6, 7)
    out = tmp_path / "dpo"
    args = ["train", "--objective", "dpo", "--data", str(demos), str(ev / "rollouts"), "--out", str(out)]
    args += ["--steps", "12", "--lr", "3e-3", "--dpo.match", "task", "--dpo.segment", "4"] + common
    assert main(args) == 2  # no --reference
    assert main(args + ["--reference", str(bc)]) == 0
    hist = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert hist[0]["step"] == 5 and hist[-1]["step"] == 12
    assert hist[-1]["margin"] > 0 and hist[-1]["dpo_loss"] < math.log(2)  # the implicit reward separates pairs
    doc = json.loads((out / "policy" / "config.json").read_text())
    assert doc["meta"]["objective"] == "dpo" and doc["meta"]["pairs"]["failures"] == 2
    assert doc["meta"]["pairs"]["outcome_pairs"] > 0
    ref, tuned = load_policy(bc), load_policy(out)
    assert torch.equal(ref.action_shift, tuned.action_shift)  # the reference's normalisation is kept
    assert not torch.equal(ref.head.mlp[-1].weight, tuned.head.mlp[-1].weight)
    _check_lineage(demos, bc, ev, out, lm_dir, hist)
    # demos only (no failure, no takeover): a clear error, exit 2
    assert main(["train", "--objective", "dpo", "--data", str(demos), "--out", str(tmp_path / "none")]
                + ["--reference", str(bc)] + common) == 2  # fmt: skip


def _check_lineage(demos: Path, bc: Path, ev: Path, dpo: Path, lm_dir: Path, hist: list[dict]) -> None:
    """The cards of the chain demos -> BC policy -> eval run, and demos + rollouts + BC -> DPO policy."""
    from robolearn.lineage import build_graph, read_card

    ids = {k: read_card(p)["id"] for k, p in {"demos": demos, "bc": bc / "policy"}.items()}
    bc_card = read_card(bc / "policy")
    by_path = {i["path"]: i for i in bc_card["inputs"]}
    assert by_path[str(demos.resolve())]["id"] == ids["demos"]
    assert by_path[str(lm_dir.resolve())]["kind"] == "lm" and bc_card["figures"]["steps"] == 10
    bc_hist = [json.loads(x) for x in (bc / "metrics.jsonl").read_text().splitlines()]
    assert bc_card["figures"]["final_loss"] == bc_hist[-1]["loss"] and bc_card["config"]["steps"] == 10
    run = read_card(ev)
    results = json.loads((ev / "results.json").read_text())["overall"]
    assert run["kind"] == "eval-run" and [i["id"] for i in run["inputs"]] == [ids["bc"]]
    assert run["figures"]["success_rate"] == results["success_rate"] and run["figures"]["episodes"] == 2
    card = read_card(dpo / "policy")
    assert card["kind"] == "policy" and card["config"]["objective"] == "dpo"
    by_path = {i["path"]: i for i in card["inputs"]}
    reference = by_path[str((bc / "policy").resolve())]
    assert reference["kind"] == "policy" and reference["id"] == ids["bc"]
    assert by_path[str(demos.resolve())]["id"] == ids["demos"]
    assert (
        card["figures"]["final_loss"] == hist[-1]["loss"]
        and card["figures"]["reward_accuracy"] == hist[-1]["reward_accuracy"]
    )
    g = build_graph(dpo / "policy")
    assert not g.problems and {"policy", "demos", "episodes"} <= {n.kind for n in g.nodes.values()}
    assert [
        e.status for e in g.inputs_of(str((dpo / "policy").resolve())) if e.input == str((bc / "policy").resolve())
    ] == ["ok"]
