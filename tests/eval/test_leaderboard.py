"""The leaderboard over eval run folders: cells, pooling, sorting, links and the CLI command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from robolearn.eval.leaderboard import build_leaderboard, write_leaderboard
from robolearn.eval.metrics import summarize_run, wilson_interval, write_results
from robolearn.eval.report import write_report


def make_run(
    path: Path,
    encoder: str,
    seed: int,
    counts: dict[str, int],
    n: int = 10,
    train_episodes: int = 25,
    report: bool = False,
) -> Path:
    """One eval run folder: per task, `counts[task]` of `n` episodes succeed (the first ones)."""
    eps = []
    for task, k in counts.items():
        for i in range(n):
            video = f"videos/{task}_seed{seed}_ep{i:03d}.mp4" if i == 0 else None
            eps.append(
                {
                    "task": task,
                    "seed": seed,
                    "episode": i,
                    "household": i % 5,
                    "scene": i % 4,
                    "seen": i % 5 < 2,
                    "success": i < k,
                    "steps": 50,
                    "steps_to_success": 30 if i < k else None,
                    "return": float(i < k),
                    "video": video,
                }
            )
    path.mkdir(parents=True)
    (path / "videos").mkdir()
    for e in eps:
        if e["video"]:
            (path / e["video"]).write_bytes(b"mp4")
    (path / "config.json").write_text(json.dumps({"eval": {"seeds": [seed]}, "policy": None}))
    (path / "log.txt").write_text("log\n")
    write_results(
        path,
        summarize_run(
            eps,
            {
                "suite": "household",
                "policy": {
                    "path": f"runs/{encoder}",
                    "name": f"{encoder} + mlp",
                    "encoder": encoder,
                    "head": "mlp",
                    "train_data": "demos",
                    "train_episodes": train_episodes,
                },
            },
        ),
    )
    if report:
        write_report(path)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    make_run(root / "v-cond" / "seed0", "v-cond", 0, {"press-button": 8, "open-drawer": 6}, report=True)
    make_run(root / "v-cond" / "seed1", "v-cond", 1, {"press-button": 6, "open-drawer": 4})
    make_run(root / "scratch" / "seed0", "scratch-cnn", 0, {"press-button": 3, "open-drawer": 5})
    return root


def test_cells_pool_runs_and_seeds(runs):
    cells = build_leaderboard(runs)
    by = {(c["row"], c["task"]): c for c in cells}
    assert set(by) == {(e, t) for e in ("v-cond", "scratch-cnn") for t in ("press-button", "open-drawer")}
    c = by["v-cond", "press-button"]  # 8/10 + 6/10 pooled
    assert (c["episodes"], c["successes"], c["success_rate"]) == (20, 14, 0.7)
    assert c["ci95"] == pytest.approx(list(wilson_interval(14, 20)))
    assert c["seeds"] == ["0", "1"] and c["seed_mean"] == pytest.approx(0.7) and c["seed_std"] == pytest.approx(0.1)
    assert [r["dir"] for r in c["runs"]] == ["v-cond/seed0", "v-cond/seed1"]
    assert c["seen"]["episodes"] + c["heldout"]["episodes"] == 20
    d = by["scratch-cnn", "open-drawer"]
    assert (d["episodes"], d["successes"], d["seeds"]) == (10, 5, ["0"])
    # best row first: v-cond mean (0.7 + 0.5) / 2 = 0.6 > scratch (0.3 + 0.5) / 2 = 0.4; tasks alphabetical
    assert [(c["row"], c["task"]) for c in cells] == [
        ("v-cond", "open-drawer"),
        ("v-cond", "press-button"),
        ("scratch-cnn", "open-drawer"),
        ("scratch-cnn", "press-button"),
    ]


def test_links_resolve_from_leaderboard_folder(runs, tmp_path):
    out = tmp_path / "board"
    out.mkdir()
    for base in (runs, out):
        cells = build_leaderboard(runs, base)
        by = {(c["row"], c["task"]): c for c in cells}
        assert by["v-cond", "press-button"]["link"].endswith("v-cond/seed0/report.html")  # has a report
        assert by["scratch-cnn", "press-button"]["link"].endswith("scratch/seed0/results.json")  # has none
        for c in cells:
            assert (base / c["link"]).is_file()
            for r in c["runs"]:
                assert set(r["links"]) >= {"results", "config", "log", "episodes", "videos"}
                for link in r["links"].values():
                    assert (base / link).exists(), link


def test_write_leaderboard_files(runs, tmp_path):
    out = tmp_path / "board"
    paths = write_leaderboard(runs, out)
    assert [p.name for p in paths] == ["leaderboard.json", "leaderboard.md", "leaderboard.html"]
    data = json.loads(paths[0].read_text())
    assert [(r["row"], r["rank"], round(r["mean"], 6)) for r in data["rows"]] == [
        ("v-cond", 1, 0.6),
        ("scratch-cnn", 2, 0.4),
    ]
    assert data["tasks"] == ["open-drawer", "press-button"] and len(data["runs"]) == 3 and data["skipped"] == []
    md, page = paths[1].read_text(), paths[2].read_text()
    assert md.index("| 1 | v-cond |") < md.index("| 2 | scratch-cnn |")
    assert "| 0.60 |" in md and "| 0.40 |" in md
    assert "[0.70](../runs/v-cond/seed0/report.html) [0.48, 0.85] n=20 seeds 0,1" in md
    assert "How to read this" in md and "How to read this" in page
    # tooltips with seeds / n, every cell lists its run folders, every link resolves
    assert 'title="seeds 0, 1; n=20 episodes, 14 successes' in page
    assert page.count(">v-cond/seed1</a>") >= 2
    links = re.findall(r'href="([^"]+)"', page)
    assert links and all((out / link).exists() for link in links)
    assert "http" not in page


def test_demo_counts_split_rows_and_bad_runs_skipped(tmp_path, capsys):
    root = tmp_path / "runs"
    make_run(root / "a10", "v-cond", 0, {"t": 4}, train_episodes=10)
    make_run(root / "a25", "v-cond", 0, {"t": 9}, train_episodes=25)
    bad = make_run(root / "bad", "x", 0, {"t": 1})
    data = json.loads((bad / "results.json").read_text())
    del data["overall"]
    (bad / "results.json").write_text(json.dumps(data))
    cells = build_leaderboard(root)
    assert [(c["row"], c["success_rate"]) for c in cells] == [("v-cond · 25 demos", 0.9), ("v-cond · 10 demos", 0.4)]
    assert [c["row"] for c in build_leaderboard(root, by="name")] == ["v-cond + mlp"]
    paths = write_leaderboard(root)
    assert "missing field 'overall'" in capsys.readouterr().err
    assert json.loads(paths[0].read_text())["skipped"][0]["path"].endswith("bad/results.json")
    assert "## Skipped" in paths[1].read_text()


def test_cli(runs, tmp_path, capsys):
    import robolearn.eval.leaderboard  # noqa: F401 (registers `robolearn eval leaderboard`)
    from robolearn.cli import main
    from robolearn.lineage import build_graph, read_card, write_card

    carded = runs / "v-cond" / "seed0"  # one run with its card (as `robolearn eval` writes), two without
    write_card(carded, "eval-run", [], {"policy": "x"}, {"success_rate": 0.7}, ["results.json"])
    assert main(["eval", "leaderboard", str(runs)]) == 0
    assert (runs / "leaderboard.html").is_file() and (runs / "leaderboard.json").is_file()
    card, board = read_card(runs), json.loads((runs / "leaderboard.json").read_text())
    assert card["kind"] == "leaderboard" and card["figures"] == {r["dir"]: r["success_rate"] for r in board["runs"]}
    ids = {Path(i["path"]).relative_to(runs.resolve()).as_posix(): i["id"] for i in card["inputs"]}
    assert ids == {"v-cond/seed0": read_card(carded)["id"], "v-cond/seed1": "unknown", "scratch/seed0": "unknown"}
    g = build_graph(runs)
    assert not g.problems and sorted(e.status for e in g.edges) == ["no card", "no card", "ok"]
    assert main(["eval", "leaderboard", str(runs), "--out", str(tmp_path / "lb")]) == 0
    assert (tmp_path / "lb" / "leaderboard.md").is_file()
    capsys.readouterr()
    assert main(["eval", "leaderboard", str(tmp_path / "missing")]) == 2
    assert str(tmp_path / "missing") in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "leaderboard", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "empty") in err and "no results.json" in err
