"""`robolearn demo` runs the whole pipeline end to end at tiny scale and leaves a report and a summary."""

import importlib.util
import json

from robolearn.cli import main


def test_demo_tiny(tmp_path, capsys):
    assert (
        main(
            [
                "demo",
                "--out",
                str(tmp_path),
                "--households",
                "1",
                "--scenes-per-household",
                "2",
                "--demos-per-scene",
                "2",
                "--size",
                "32",
                "--corpus-clips",
                "12",
                "--pretrain-steps",
                "4",
                "--train-steps",
                "10",
                "--baseline-steps",
                "4",
                "--eval-episodes",
                "2",
                "--num-envs",
                "1",
            ]
        )
        == 0
    )
    run = next(tmp_path.glob("run-*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["demos"] >= 3  # the expert's demos, recorded at the station
    assert set(summary["results"]) == {"pretrained", "random-init", "scratch-cnn", "random"}
    for name, row in summary["results"].items():
        assert row["episodes"] == 2 and 0.0 <= row["success"] <= 1.0
        if name != "random":  # policies know their training scenes: one seen, one held-out episode
            assert row["seen"] is not None and row["heldout"] is not None
    assert (
        "offline" in summary["language_model"]
        or "given" in summary["language_model"]
        or "cache" in summary["language_model"]
    )
    # the pretrained policy against random weights and from scratch, in plain words (2 episodes: never significant)
    comp = summary["comparison"]
    assert set(comp["tests"]) == {"random-init", "scratch-cnn"} and not comp["significant"]
    assert all(0 <= t["p"] <= 1 for t in comp["tests"].values())
    assert "not significant" in comp["plain"] and "docs/research.md" in comp["plain"]
    if importlib.util.find_spec("robolearn.pretrain.corpus") is not None:  # clips + demos were pretrained on
        assert (run / "corpus-prepared" / "index.h5").is_file() and "12 generated" in summary["pretraining_data"]
    else:
        assert "not installed" in summary["pretraining_data"]
    assert (run / "demos" / "catalog.sqlite").exists() and (run / "demos" / "stats.json").exists()
    assert any((run / "pretrain" / "checkpoints").iterdir())
    html = (run / "report" / "compare.html").read_text()
    assert "<video" in html and "scenes.png" in html and "Does pretraining help here?" in html
    _check_demo_lineage(run, summary)
    out = capsys.readouterr().out
    assert "demo finished" in out and f"report: {run / 'report' / 'compare.html'}" in out


def _check_demo_lineage(run, summary: dict) -> None:
    """The demo's card holds the summary's success rates, and its graph traces each one to the raw demos and
    the LM: demo -> eval run -> policy -> pretrained encoder -> demos (and the prepared clip corpus)."""
    from robolearn.lineage import build_graph, read_card

    card = read_card(run)
    assert card["figures"] == {f"{k} success": v["success"] for k, v in summary["results"].items()}
    g = build_graph(run)
    assert not g.problems, g.problems
    kinds = {n.kind for n in g.nodes.values()}
    assert {"demo", "report", "eval-run", "policy", "encoder", "episodes", "demos", "lm"} <= kinds, kinds
    if (run / "corpus-prepared").is_dir():
        assert {"shards", "clip-corpus"} <= kinds
    policy = read_card(run / "train" / "pretrained" / "policy")
    encoder = next(i for i in policy["inputs"] if i["kind"] == "encoder")
    assert encoder["id"] == read_card(encoder["path"])["id"] and "pretrain" in encoder["path"]
    demos_id = read_card(run / "demos")["id"]
    assert demos_id in {i["id"] for i in read_card(encoder["path"])["inputs"]}
    assert len(g.edges) == len({(e.consumer, e.input) for e in g.edges})  # one edge per artifact pair


def test_fisher_exact_p():
    from robolearn.workflows.demo import fisher_exact_p

    assert fisher_exact_p(5, 10, 5, 10) == 1.0
    assert abs(fisher_exact_p(10, 10, 0, 10) - 1.0825e-5) < 1e-8  # 2 / C(20, 10)
    assert abs(fisher_exact_p(7, 10, 2, 10) - 0.0698) < 1e-3  # scipy.stats.fisher_exact
