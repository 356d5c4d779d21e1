"""`robolearn eval` (household and Meta-World), held-out scenes, parallel envs, the random floor, the
R3M-style protocol command and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robolearn.cli import main
from robolearn.policies import MapMlpHeadConfig, PolicyConfig, build_policy, save_policy


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    cfg = PolicyConfig(
        encoder="scratch-cnn",
        image_size=32,
        head=MapMlpHeadConfig(hidden=32),
        train_tasks=["press-button"],
        train_scenes=["household_0/scene_0", "household_1/scene_1"],
        train_image_size=[32, 32],
    )
    return save_policy(build_policy(cfg), tmp_path_factory.mktemp("policy") / "p")


def test_eval_writes_results_report_and_videos_with_parallel_envs(tiny_policy, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(
        [
            "eval",
            "--policy",
            str(tiny_policy),
            "--episodes",
            "4",
            "--scenes",
            "seen",
            "heldout",
            "--num-envs",
            "2",
            "--videos",
            "1",
            "--max-steps",
            "8",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    eps = res["episodes"]
    assert len(eps) == 4 and {e["steps"] for e in eps} == {8}  # random weights never press the button
    assert res["tasks"]["press-button"]["episodes"] == 4 and res["suite"] == "household"
    assert res["mujoco_version"] and res["policy"]["encoder"] == "scratch-cnn"
    seen = {(e["household"], e["scene"]) for e in eps if e["seen"]}
    assert seen and seen <= {(0, 0), (1, 1)}
    assert any(e["seen"] is False for e in eps)
    assert (out / eps[0]["video"]).stat().st_size > 0 and (out / "report.html").exists()
    assert len((out / "episodes.jsonl").read_text().splitlines()) == 4
    assert "press-button: success 0.00" in capsys.readouterr().out


def test_same_config_gives_the_same_initial_states(tiny_policy, tmp_path):
    args = [
        "eval",
        "--policy",
        str(tiny_policy),
        "--episodes",
        "2",
        "--max-steps",
        "3",
        "--videos",
        "0",
        "--no-progress",
    ]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--num-envs", "2"]) == 0
    a, b = (json.loads((tmp_path / x / "results.json").read_text())["episodes"] for x in "ab")
    assert [(e["household"], e["scene"]) for e in a] == [(e["household"], e["scene"]) for e in b]
    # batched forwards (2 envs) differ from single ones by float rounding only
    assert [e["return"] for e in a] == pytest.approx([e["return"] for e in b], rel=1e-6)


def test_random_floor_and_bad_input(tiny_policy, tmp_path, capsys):
    assert (
        main(
            [
                "eval",
                "--policy",
                "random",
                "--tasks",
                "press-button",
                "--episodes",
                "2",
                "--max-steps",
                "5",
                "--videos",
                "0",
                "--out",
                str(tmp_path / "r"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert main(["eval", "--policy", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "no such policy checkpoint folder" in capsys.readouterr().err
    assert main(["eval", "--policy", str(tiny_policy), "--scenes", "1-2", "--out", str(tmp_path / "y")]) == 2
    assert "expected H/S" in capsys.readouterr().err
    assert main(["eval", "--policy", str(tiny_policy), "--suite", "metaworld", "--out", str(tmp_path / "z")]) == 2
    assert "trained on household episodes" in capsys.readouterr().err


def test_metaworld_train_and_eval(tmp_path, capsys):
    from robolearn.collection.expert_demos import record_metaworld_demos
    from robolearn.envs.suites import metaworld_action

    np.testing.assert_allclose(
        metaworld_action(np.array([0.1, 0.2, 0.3, 9, 9, 9, 1.0])), [0.1, 0.2, 0.3, 1.0], rtol=1e-6
    )
    demos = tmp_path / "mw"
    paths = record_metaworld_demos(demos, "reach-v3", 2, size=32)
    assert len(paths) == 2
    assert main(["data", "validate", str(demos)]) == 0
    assert (
        main(
            [
                "train",
                "--data",
                str(demos),
                "--out",
                str(tmp_path / "bc"),
                "--policy.encoder",
                "scratch-cnn",
                "--policy.image-size",
                "32",
                "--steps",
                "5",
                "--no-progress",
            ]
        )
        == 0
    )
    policy = json.loads((tmp_path / "bc" / "policy" / "config.json").read_text())["policy"]
    assert policy["train_suite"] == "metaworld" and policy["proprio_dim"] == 4 and policy["cameras"] == ["corner"]
    assert (
        main(
            [
                "eval",
                "--policy",
                str(tmp_path / "bc"),
                "--episodes",
                "1",
                "--max-steps",
                "5",
                "--videos",
                "0",
                "--out",
                str(tmp_path / "ev"),
                "--no-progress",
            ]
        )
        == 0
    )
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["suite"] == "metaworld" and res["episodes"][0]["steps"] == 5 and res["episodes"][0]["seen"] is None
    # lineage: Meta-World episodes -> policy -> eval run, each input recorded by its card's id
    from robolearn.lineage import build_graph, read_card

    data = read_card(demos)
    assert data["kind"] == "episodes" and data["figures"]["episodes"] == 2 and data["id_method"]["count"] == 2
    assert data["figures"]["tries"] >= 2 and data["config"]["task"] == "reach-v3"
    policy_card = read_card(tmp_path / "bc" / "policy")
    assert [i["id"] for i in policy_card["inputs"] if i["kind"] == "episodes"] == [data["id"]]
    run = read_card(tmp_path / "ev")
    assert [i["id"] for i in run["inputs"]] == [policy_card["id"]] and run["figures"]["episodes"] == 1
    g = build_graph(tmp_path / "ev")
    assert not g.problems and [n.kind for n in g.nodes.values()] == ["eval-run", "policy", "episodes"]


def test_protocol_runs_the_grid_and_writes_a_leaderboard(tmp_path, lm_dir):
    out = tmp_path / "protocol"
    rc = main(
        [
            "eval",
            "protocol",
            "--encoders",
            "v-cond-tiny",
            "scratch-cnn",
            "--tasks",
            "press-button",
            "--demos",
            "2",
            "3",
            "--seeds",
            "0",
            "--episodes",
            "1",
            "--steps",
            "3",
            "--train-scenes",
            "0/0",
            "1/1",
            "--eval-scenes",
            "0/0",
            "--size",
            "32",
            "--language-model",
            str(lm_dir),
            "--encoder-image-size",
            "32",
            "--videos",
            "0",
            "--no-progress",
        ]
        + ["--out", str(out)]
    )
    assert rc == 0
    runs = sorted(out.glob("runs/press-button/*/demos*/seed0/eval/results.json"))
    assert len(runs) == 4
    board = json.loads((out / "leaderboard.json").read_text())
    assert len(board["rows"]) == 4  # encoder x demo count
    assert (out / "leaderboard.html").exists()
    from robolearn.lineage import build_graph, read_card

    card = read_card(out)  # the protocol's board traces to its 4 eval runs, their policies and the demos
    assert card["config"]["tasks"] == ["press-button"] and {i["kind"] for i in card["inputs"]} == {"eval-run"}
    assert sorted(i["path"] for i in card["inputs"]) == sorted(str(r.parent.resolve()) for r in runs)
    g = build_graph(out)
    kinds = {n.kind for n in g.nodes.values()}
    assert not g.problems and {"leaderboard", "eval-run", "policy", "episodes", "demos"} <= kinds
