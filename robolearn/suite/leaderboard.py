"""The suite leaderboard: one row per encoder, a column per (scenario, metric) with the mean over seeds and its
95% interval, and HELM's mean win rate over all columns. Written as leaderboard.json, .md and .html (a single
self-contained page: it opens offline), rebuilt from the cell folders alone:

    robolearn suite leaderboard runs/suite
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import robolearn.suite.families  # noqa: F401  (registers the built-in scenarios)
from robolearn.eval.report import Link, h, para, render_html, render_md, table
from robolearn.eval.report.document import rel_link
from robolearn.suite.metrics import mean_win_rates, paired_permutation_p, seed_mean_ci
from robolearn.suite.scenario import scenarios
from robolearn.utils import write_text_atomic

LEADERBOARD = "leaderboard"


def collect(out: Path) -> list[dict[str, Any]]:
    """Every finished cell's metrics.json under out/cells (unreadable ones are an error naming the file)."""
    found = []
    for path in sorted((out / "cells").glob("*/*/seed-*/metrics.json")):
        try:
            found.append({**json.loads(path.read_text()), "_path": path})
        except ValueError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from e
    return found


def _fmt(m: float, lo: float, hi: float) -> str:
    if math.isnan(m):
        return "-"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]" if hi > lo else f"{m:.3f}"


def build(out: Path) -> dict[str, Any]:
    cells = collect(out)
    known = scenarios()
    columns: dict[str, bool] = {}  # "scenario:metric" -> higher is better
    per: dict[str, dict[str, list[tuple[int, float]]]] = {}  # encoder -> column -> [(seed, value)]
    links: dict[str, dict[str, Path]] = {}
    for c in cells:
        sc = known.get(c["scenario"])
        if sc is None:
            continue
        for metric, up in sc.metrics.items():
            col = f"{c['scenario']}:{metric}"
            columns.setdefault(col, up)
            v = c["metrics"].get(metric)
            if v is not None:
                per.setdefault(c["encoder"], {}).setdefault(col, []).append((c["seed"], float(v)))
        links.setdefault(c["encoder"], {}).setdefault(c["scenario"], c["_path"].parent)
    means = {e: {col: seed_mean_ci([v for _, v in vals])[0] for col, vals in cols.items()} for e, cols in per.items()}
    wins = mean_win_rates(means, columns)
    rows = []
    for enc in sorted(per, key=lambda e: -wins.get(e, 0.0) if not math.isnan(wins.get(e, math.nan)) else 1):
        row = {"encoder": enc, "mean_win_rate": wins.get(enc), "columns": {}}
        for col in columns:
            vals = sorted(per[enc].get(col, []))
            m, lo, hi = seed_mean_ci([v for _, v in vals])
            row["columns"][col] = {"mean": m, "ci95": [lo, hi], "seeds": [s for s, _ in vals],
                                   "values": [v for _, v in vals]}  # fmt: skip
        rows.append(row)
    best: dict[str, str] = {}
    best_value: dict[str, float] = {}
    for col, up in columns.items():  # paired test of each encoder against the column's best, over shared seeds
        scored = [(r["columns"][col]["mean"], r["encoder"]) for r in rows if not math.isnan(r["columns"][col]["mean"])]
        if not scored:
            continue
        top = (max if up else min)(scored)[1]
        best[col] = top
        best_value[col] = (max if up else min)(scored)[0]
        top_vals = dict(per[top][col])
        for r in rows:
            mine = dict(per[r["encoder"]].get(col, []))
            shared = sorted(set(mine) & set(top_vals))
            p = paired_permutation_p([mine[s] for s in shared], [top_vals[s] for s in shared]) if shared else None
            r["columns"][col]["p_vs_best"] = p if r["encoder"] != top else None
    folders = {e: {sc: str(d.parent.relative_to(out)) for sc, d in f.items()} for e, f in links.items()}
    return {
        "columns": columns,
        "rows": rows,
        "best": best,
        "best_value": best_value,
        "cells": len(cells),
        "folders": folders,
    }


def label(spec: str) -> str:
    """A short row name: `id:/runs/pre/v-cond-tiny/checkpoints/step-00000250` -> `id:v-cond-tiny/step-00000250`
    (the run folder and the checkpoint); the full spec stays in leaderboard.json and every cell.json."""
    arch, sep, path = spec.partition(":")
    if not sep:
        if "/" not in spec:
            return spec
        arch, path = "", spec
    p = Path(path)
    name = f"{p.parent.parent.name}/{p.name}" if p.parent.name == "checkpoints" else p.name
    return f"{arch}:{name}" if arch else name


def write_leaderboard(out: str | Path) -> tuple[Path, Path, Path]:
    """Write out/leaderboard.{json,md,html} from the cell folders; returns the three paths."""
    out = Path(out)
    board = build(out)
    cols = list(board["columns"])
    header = ["encoder", "mean win rate", *[f"{c} {'↑' if board['columns'][c] else '↓'}" for c in cols]]
    primary = [c for i, c in enumerate(cols) if i == 0 or c.split(":")[0] != cols[i - 1].split(":")[0]]
    rows, compact = [], []
    for r in board["rows"]:
        cells = []
        for col in cols:
            c = r["columns"][col]
            text = _fmt(c["mean"], *c["ci95"])
            if col in board["best_value"] and c["mean"] == board["best_value"][col]:  # ties: all bold
                text = f"**{text}**" if text != "-" else text
            cells.append(text)
        wr = r["mean_win_rate"]
        wr_text = "-" if wr is None or math.isnan(wr) else f"{wr:.2f}"
        rows.append([label(r["encoder"]), wr_text, *cells])
        compact.append([label(r["encoder"]), wr_text, *[cells[cols.index(c)] for c in primary]])
    blocks = [
        h(1, "robolearn suite leaderboard"),
        para(
            f"{board['cells']} cells. Each value is the mean over seeds with its 95% t-interval (one seed: the "
            "value alone); bold marks the best value of a column (every tied one); the mean win rate is the "
            "fraction of other encoders an encoder beats, averaged over columns (HELM)."
        ),
        h(2, "Primary metric of each scenario"),
        table(["encoder", "mean win rate", *[f"{c} {'↑' if board['columns'][c] else '↓'}" for c in primary]], compact),
        h(2, "Every metric"),
        table(header, rows),
        h(2, "Cells"),
    ]
    for r in board["rows"]:
        parts: list[Any] = [f"{label(r['encoder'])}: "]
        for scen, folder in sorted(board["folders"].get(r["encoder"], {}).items()):
            parts += [Link(scen, rel_link(out / folder, out)), " "]
        blocks.append(para(*parts))
    paths = (out / f"{LEADERBOARD}.json", out / f"{LEADERBOARD}.md", out / f"{LEADERBOARD}.html")
    write_text_atomic(paths[0], json.dumps(board, indent=1, default=str))
    write_text_atomic(paths[1], render_md(blocks))
    write_text_atomic(paths[2], render_html(blocks, "robolearn suite leaderboard"))
    return paths
