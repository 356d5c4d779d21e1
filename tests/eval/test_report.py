"""Eval run reports (Markdown + self-contained HTML, plots, video gallery) and side-by-side comparisons."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from robolearn.eval.metrics import ResultsError, summarize_run, write_results
from robolearn.eval.report import compare_report, markdown_to_html, write_report


def fake_episodes(task: str, seed: int, successes: int, n: int = 10, video_every: int = 5) -> list[dict]:
    """Deterministic: the first `successes` episodes succeed (at step 20 + i); households i % 5 (seen when < 2),
    scenes i % 4; a video for every `video_every`-th episode."""
    out = []
    for i in range(n):
        ok = i < successes
        out.append(
            {
                "task": task,
                "seed": seed,
                "episode": i,
                "household": i % 5,
                "scene": i % 4,
                "seen": i % 5 < 2,
                "success": ok,
                "steps": 20 + i if ok else 100,
                "steps_to_success": 20 + i if ok else None,
                "return": float(ok),
                "video": f"videos/{task}_seed{seed}_ep{i:03d}.mp4" if i % video_every == 0 else None,
            }
        )
    return out


def make_run(path: Path, name: str, encoder: str, counts: dict[tuple[str, int], int], log: bool = True) -> Path:
    eps = [e for (task, seed), k in counts.items() for e in fake_episodes(task, seed, k)]
    path.mkdir(parents=True)
    for e in eps:
        if e["video"]:
            (path / e["video"]).parent.mkdir(exist_ok=True)
            (path / e["video"]).write_bytes(b"\x00\x00\x00\x18ftypmp42")  # stands in for an mp4
    (path / "config.json").write_text(json.dumps({"eval": {"episodes": 10, "seeds": [0]}, "policy": {"x": 1}}))
    if log:
        (path / "log.txt").write_text("eval log\n")
    res = summarize_run(
        eps,
        {
            "suite": "household",
            "policy": {
                "path": f"runs/{name}",
                "name": name,
                "encoder": encoder,
                "head": "map-mlp",
                "train_data": "demos/press",
                "train_episodes": 25,
            },
        },
    )
    write_results(path, res)
    return path


def refs(html_text: str, tag: str) -> list[str]:
    return re.findall(rf'<{tag}\b[^>]*\bsrc="([^"]+)"', html_text)


def test_report_files_tables_plots_videos(tmp_path):
    run = make_run(
        tmp_path / "run",
        "v-cond + map-mlp",
        "v-cond",
        {("press-button", 0): 3, ("press-button", 1): 5, ("open-drawer", 0): 7},
    )
    md_path, html_path = write_report(run)
    assert md_path == run / "report.md" and html_path == run / "report.html"
    md, page = md_path.read_text(), html_path.read_text()
    # per-task table rows: press-button 8/20, open-drawer 7/10, overall 15/30
    assert "| press-button | 20 | 8 | 0.40 [0.22, 0.61] |" in md
    assert "| open-drawer | 10 | 7 | 0.70 [0.40, 0.89] |" in md
    assert "| overall | 30 | 15 | 0.50 [0.33, 0.67] |" in md
    assert "0.40 ± 0.10 (2 seeds)" in md  # press-button seeds 0.3 and 0.5
    assert "<td>press-button</td>" in page and "0.40 [0.22, 0.61]" in page
    # breakdowns
    assert "| household | episodes | successes |" in md and "| 2/2 | held-out |" in md and "| 0/0 | seen |" in md
    # plots exist and are referenced relatively
    imgs = refs(page, "img")
    assert set(imgs) == {"plots/success_rate.png", "plots/seen_heldout.png", "plots/steps_to_success.png"}
    for src in imgs:
        assert (run / src).stat().st_size > 1000 and f"]({src})" in md
    # one <video controls> per recorded video, each file exists
    vids = refs(page, "video")
    assert len(vids) == 6 and all((run / v).is_file() for v in vids)
    assert page.count("<video controls") == 6
    assert "press-button · seed 1 · episode 5 · scene 0/1 (seen) · failure (100 steps)" in page
    # config block, file links; self-contained (no external resources)
    assert "<details><summary>config.json</summary>" in page and "&quot;x&quot;: 1" in page
    assert 'href="log.txt"' in page and 'href="results.json"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_report_without_successes_or_scenes(tmp_path):
    run = tmp_path / "mw"
    eps = [
        {
            "task": "reach",
            "seed": 0,
            "episode": i,
            "household": None,
            "scene": None,
            "seen": None,
            "success": False,
            "steps": 50,
            "steps_to_success": None,
            "return": 0.0,
            "video": None,
        }
        for i in range(4)
    ]
    write_results(run, summarize_run(eps, {"suite": "metaworld", "policy": {"name": "p", "encoder": "e"}}))
    _, html_path = write_report(run)
    page = html_path.read_text()
    assert refs(page, "img") == ["plots/success_rate.png"]
    assert "No episode succeeded" in page and "No videos were recorded" in page
    assert not (run / "plots" / "seen_heldout.png").exists()


@pytest.mark.parametrize(
    "corrupt, field",
    [
        (lambda d: d.pop("tasks"), "'tasks'"),
        (lambda d: d["overall"].pop("success_rate"), "'overall.success_rate'"),
        (lambda d: d["tasks"]["press-button"].update(ci95="wide"), "'tasks.press-button.ci95'"),
        (lambda d: d["policy"].pop("encoder"), "'policy.encoder'"),
        (lambda d: d["episodes"][2].pop("steps"), "episode 2: missing field 'steps'"),
    ],
)
def test_corrupted_results_refused_naming_field(tmp_path, corrupt, field):
    run = make_run(tmp_path / "run", "p", "e", {("press-button", 0): 3})
    data = json.loads((run / "results.json").read_text())
    corrupt(data)
    (run / "results.json").write_text(json.dumps(data))
    with pytest.raises(ResultsError) as err:
        write_report(run)
    assert str(run / "results.json") in str(err.value) and field in str(err.value)
    assert not (run / "report.html").exists()


def test_missing_results_refused(tmp_path):
    with pytest.raises(ValueError, match=r"results\.json: no such file"):
        write_report(tmp_path)


def test_compare_report(tmp_path):
    a = make_run(tmp_path / "runs" / "pre", "pretrained", "v-cond", {("press-button", 0): 8, ("open-drawer", 0): 6})
    b = make_run(tmp_path / "runs" / "scratch", "scratch", "scratch-cnn", {("press-button", 0): 2})
    write_report(a)  # b has no report: its link goes to results.json
    loss = tmp_path / "loss.png"
    import shutil

    shutil.copyfile(a / "plots" / "success_rate.png", loss)
    out = tmp_path / "demo"
    md_path, html_path = compare_report(
        [a, b],
        out,
        "Pretrained vs scratch",
        sections=[("Pretraining", "Loss **fell**.\n\n- step 1\n- step 2"), ("Raw", "<p id='raw'>html kept</p>")],
        images=[(loss, "pretraining loss")],
    )
    md, page = md_path.read_text(), html_path.read_text()
    assert "| pretrained | 0.80 [0.49, 0.94] (10) | 0.60 [0.31, 0.83] (10) | 0.70 [0.48, 0.85] (20) |" in md
    assert "| scratch | 0.20 [0.06, 0.51] (10) | - | 0.20 [0.06, 0.51] (10) |" in md
    assert "seen scenes" in md and "held-out scenes" in md
    assert "<strong>fell</strong>" in page and "<li>step 2</li>" in page and "<p id='raw'>html kept</p>" in page
    imgs = refs(page, "img")
    assert "plots/compare.png" in imgs and "images/loss.png" in imgs
    assert all((out / s).is_file() for s in imgs)
    links = re.findall(r'href="([^"]+)"', page)
    assert "../runs/pre/report.html" in links and "../runs/scratch/results.json" in links
    assert all((out / link).exists() for link in links)
    from robolearn.lineage import read_card

    card = read_card(out)  # the report's card: its runs as inputs, each run's overall success as a figure
    assert card["kind"] == "report" and card["figures"] == {"pretrained": 0.7, "scratch": 0.2}
    assert [i["path"] for i in card["inputs"]] == [str(a.resolve()), str(b.resolve())]
    assert card["config"]["title"] == "Pretrained vs scratch" and card["id_method"]["files"] == ["compare.md"]
    with pytest.raises(ValueError, match="results.json"):
        compare_report([a, tmp_path / "nowhere"], out, "x")


def test_markdown_subset():
    out = markdown_to_html(
        "# Head\ntext with `code` and [a link](x.html)\n\n| a | b |\n|---|---|\n| 1 | 2 |\n```\n<raw>\n```"
    )
    assert "<h3>Head</h3>" in out and "<code>code</code>" in out and '<a href="x.html">a link</a>' in out
    assert "<td>1</td>" in out and "<pre>&lt;raw&gt;</pre>" in out


def test_markdown_escapes_html_and_unsafe_links():
    out = markdown_to_html("a <script>alert(1)</script> b\n\n<b>x</b> [bad](javascript:alert(1)) ![p](p.png)")
    assert "<script" not in out and "&lt;script&gt;" in out and "&lt;b&gt;x&lt;/b&gt;" in out
    assert 'href="javascript' not in out and '<img src="p.png" alt="p" class="plot">' in out
