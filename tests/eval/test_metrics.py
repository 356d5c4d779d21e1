"""Eval summaries: success rates, Wilson intervals, seed/household/scene breakdowns, results files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from robolearn.eval.metrics import ResultsError, load_results, summarize, summarize_run, validate_episode, write_results


def episode(
    task="press-button", seed=0, i=0, success=False, household=0, scene=0, seen=True, steps=100, sts=None, video=None
):
    return {
        "task": task,
        "seed": seed,
        "episode": i,
        "household": household,
        "scene": scene,
        "seen": seen,
        "success": success,
        "steps": steps,
        "steps_to_success": sts if success else None,
        "return": 1.0 if success else 0.0,
        "video": video,
    }


def pattern(task, seed, successes, n=10, households=5):
    """n episodes, the first `successes` succeed; episode i in household i % 5, scene i % 4, seen when
    household < 2; successful episode i reaches success at step 20 + i."""
    return [
        episode(
            task,
            seed,
            i,
            i < successes,
            i % households,
            i % 4,
            i % households < 2,
            30 if i < successes else 100,
            20 + i,
        )
        for i in range(n)
    ]


def test_rate_and_wilson_bounds_by_hand():
    s = summarize(pattern("press-button", 0, 3))
    assert (s["episodes"], s["successes"], s["success_rate"]) == (10, 3, 0.3)
    # Wilson 95% for 3/10, by hand: p=.3, z=1.96, denom = 1 + z^2/n, centre = (p + z^2/2n)/denom,
    # half = z*sqrt(p(1-p)/n + z^2/4n^2)/denom
    z, n, p = 1.96, 10, 0.3
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    assert s["ci95"] == pytest.approx([centre - half, centre + half])
    assert s["ci95"] == pytest.approx([0.10779, 0.60322], abs=1e-5)
    # steps to success over the 3 successes: 20, 21, 22
    assert s["steps_to_success"] == {"mean": 21.0, "median": 21.0}


def test_all_or_nothing_intervals_stay_in_unit_range():
    s = summarize(pattern("t", 0, 0, n=5))
    assert s["success_rate"] == 0.0 and s["ci95"][0] == 0.0 and 0.0 < s["ci95"][1] < 0.6
    assert s["steps_to_success"] == {"mean": None, "median": None}
    s = summarize(pattern("t", 0, 5, n=5))
    assert s["success_rate"] == 1.0 and s["ci95"][1] == pytest.approx(1.0) and s["ci95"][0] > 0.4


def test_seed_mean_and_std():
    eps = pattern("t", 0, 2) + pattern("t", 1, 5) + pattern("t", 2, 8)
    s = summarize(eps)
    assert list(s["by_seed"]) == ["0", "1", "2"]
    assert [v["success_rate"] for v in s["by_seed"].values()] == [0.2, 0.5, 0.8]
    assert s["seed_mean"] == pytest.approx(0.5)
    assert s["seed_std"] == pytest.approx(math.sqrt((0.3**2 + 0 + 0.3**2) / 3))  # population std
    assert s["success_rate"] == 0.5 and s["episodes"] == 30


def test_seen_heldout_household_scene_split():
    s = summarize(pattern("t", 0, 4))  # successes: episodes 0-3 -> households 0,1 (seen), 2, 3 (held out)
    assert s["seen"]["episodes"] == 4 and s["seen"]["successes"] == 2  # households 0, 1: episodes 0, 1, 5, 6
    assert s["heldout"]["episodes"] == 6 and s["heldout"]["successes"] == 2
    assert s["seen"]["ci95"] and s["heldout"]["ci95"]
    assert list(s["by_household"]) == ["0", "1", "2", "3", "4"]
    assert s["by_household"]["0"] == {
        "episodes": 2,
        "successes": 1,
        "success_rate": 0.5,
        "ci95": s["by_household"]["0"]["ci95"],
    }
    # episode i -> scene key "i%5/i%4": 10 distinct (h, s) pairs here
    assert s["by_scene"]["0/0"]["seen"] is True and s["by_scene"]["2/2"]["seen"] is False
    assert sum(v["episodes"] for v in s["by_scene"].values()) == 10


def test_metaworld_records_have_no_scene_breakdown():
    eps = [episode("reach", 0, i, i % 2 == 0, None, None, None, sts=10) for i in range(6)]
    s = summarize(eps)
    assert s["seen"] is None and s["heldout"] is None
    assert s["by_household"] == {} and s["by_scene"] == {}
    assert s["success_rate"] == 0.5


def test_missing_or_bad_field_names_episode_and_field():
    eps = pattern("t", 0, 3)
    del eps[3]["success"]
    with pytest.raises(ValueError, match=r"episode 3: missing field 'success'"):
        summarize(eps)
    eps = pattern("t", 0, 3)
    eps[7]["steps"] = "many"
    with pytest.raises(ValueError, match=r"episode 7: field 'steps'"):
        summarize(eps)
    with pytest.raises(ValueError, match="episode 0"):
        summarize(["not a record"])
    with pytest.raises(ValueError):
        summarize([])
    # optional fields default to None; numpy scalars become plain Python values
    rec = validate_episode(
        {
            "task": "t",
            "seed": np.int64(1),
            "episode": 0,
            "success": np.bool_(True),
            "steps": np.int32(5),
            "return": np.float32(1.5),
        },
        0,
    )
    assert rec["household"] is None and rec["video"] is None and rec["seen"] is None
    assert type(rec["seed"]) is int and rec["success"] is True and type(rec["return"]) is float
    json.dumps(rec)


def test_summarize_run_and_write_results(tmp_path):
    eps = pattern("press-button", 0, 3) + pattern("open-drawer", 0, 6) + pattern("press-button", 1, 5)
    meta = {
        "suite": "household",
        "policy": {
            "path": "runs/bc",
            "name": "bc",
            "encoder": "v-cond",
            "head": "mlp",
            "train_data": "demos",
            "train_episodes": 25,
        },
        "seconds": 3.0,
    }
    res = summarize_run(eps, meta)
    assert list(res["tasks"]) == ["press-button", "open-drawer"]
    assert res["tasks"]["press-button"]["episodes"] == 20 and res["tasks"]["press-button"]["successes"] == 8
    assert res["overall"]["episodes"] == 30 and res["overall"]["successes"] == 14
    assert res["policy"]["encoder"] == "v-cond" and res["seconds"] == 3.0
    for k in ("robolearn_version", "mujoco_version", "created", "suite"):
        assert res[k]
    path = write_results(tmp_path / "run", res)
    assert path == tmp_path / "run" / "results.json"
    lines = (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == res["episodes"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["episodes.jsonl", "results.json"]  # no temp
    back = load_results(tmp_path / "run")
    assert back["tasks"] == res["tasks"] and back["overall"] == res["overall"]


def test_load_results_names_file_and_field(tmp_path):
    res = summarize_run(pattern("t", 0, 3), {"suite": "household", "policy": {"name": "x", "encoder": "e"}})
    write_results(tmp_path, res)
    data = json.loads((tmp_path / "results.json").read_text())
    del data["tasks"]["t"]["ci95"]
    (tmp_path / "results.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"results\.json: missing field 'tasks\.t\.ci95'"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ResultsError, match="results.json: not valid JSON"):
        load_results(tmp_path / "results.json")
    with pytest.raises(ResultsError, match="no such file"):
        load_results(tmp_path / "missing")
