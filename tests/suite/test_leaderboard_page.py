"""The suite leaderboard page opens offline in headless Chromium: the table, the win rates, working cell links."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robolearn.suite import Scenario, register
from robolearn.suite.leaderboard import write_leaderboard


class _Board(Scenario):
    """Only metadata: the leaderboard reads cells from disk, it never runs a scenario."""

    name, family, description = "board-only", "refer", "leaderboard test scenario"
    metrics = {"acc": True, "err": False}

    def generate(self, out, config, workers=1, progress=False):
        raise NotImplementedError

    def run_cell(self, dataset, encoder, ctx):
        raise NotImplementedError


register(_Board())
VALUES = {"enc-a": [(0.8, 0.1), (0.7, 0.2), (0.9, 0.1)], "enc-b": [(0.5, 0.3), (0.6, 0.3), (0.4, 0.4)]}


def _cells(out: Path) -> None:
    for enc, per_seed in VALUES.items():
        for seed, (acc, err) in enumerate(per_seed):
            d = out / "cells" / "board-only" / enc / f"seed-{seed}"
            d.mkdir(parents=True)
            doc = {"scenario": "board-only", "encoder": enc, "seed": seed, "metrics": {"acc": acc, "err": err}}
            (d / "metrics.json").write_text(json.dumps(doc))


def test_leaderboard_numbers(tmp_path):
    _cells(tmp_path)
    board = json.loads(write_leaderboard(tmp_path)[0].read_text())
    rows = {r["encoder"]: r for r in board["rows"]}
    assert [r["encoder"] for r in board["rows"]] == ["enc-a", "enc-b"]  # sorted by mean win rate
    assert rows["enc-a"]["mean_win_rate"] == 1.0 and rows["enc-b"]["mean_win_rate"] == 0.0
    acc = rows["enc-a"]["columns"]["board-only:acc"]
    assert acc["mean"] == pytest.approx(0.8) and acc["ci95"][0] < 0.8 < acc["ci95"][1]
    assert acc["p_vs_best"] is None and rows["enc-b"]["columns"]["board-only:acc"]["p_vs_best"] == pytest.approx(0.25)
    assert board["best"] == {"board-only:acc": "enc-a", "board-only:err": "enc-a"}


@pytest.mark.timeout(1200)  # the first run on a fresh machine installs Chromium
def test_leaderboard_page_in_headless_chromium(chromium, tmp_path):
    from browser_driver import Browser

    _cells(tmp_path)
    html = write_leaderboard(tmp_path)[2]
    with Browser(*chromium) as b:
        b.get(html.resolve().as_uri())
        b.watch_errors()
        # two tables (primary metrics, every metric), one row per encoder in each
        b.wait_for("return document.querySelectorAll('table').length === 2", what="2 tables")
        for t in (0, 1):
            cells = b.execute(f"return [...document.querySelectorAll('table')[{t}].querySelectorAll('tbody tr')]"
                              ".map(r => r.innerText)")  # fmt: skip
            assert len(cells) == 2 and cells[0].startswith("enc-a") and "1.00" in cells[0] and "0.800 [" in cells[0]
        links = b.execute("return [...document.querySelectorAll('a')].map(a => a.href)")
        assert links and all(Path(Path(h.removeprefix("file://"))).is_dir() for h in links)
        assert b.console_errors() == []
