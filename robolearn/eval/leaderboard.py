"""The leaderboard: every eval run below a folder, encoders x tasks.

    robolearn eval leaderboard runs/protocol/runs --out runs/protocol

finds every results.json below RUNS_DIR (recursively), groups them by (encoder, task) and pools each group's
episodes: success rate with its Wilson 95% interval, episodes, seeds (mean ± std of the per-seed rates).
Writes leaderboard.json, leaderboard.md and leaderboard.html (to --out, default RUNS_DIR); every cell links
to its runs' folders (report.html, else results.json) so each number can be traced to its configs, logs and
videos. See docs/evaluation.md.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from robolearn.eval.metrics import EPISODES_FILE, RESULTS_FILE, ResultsError, load_results, wilson_interval
from robolearn.eval.report.document import Block, Link, Raw, h, para, rel_link, render_html, render_md, table

LEADERBOARD_NAMES = ("leaderboard.json", "leaderboard.md", "leaderboard.html")
GROUP_BY = ("encoder", "name")


def find_runs(runs_dir: str | Path) -> tuple[list[tuple[Path, dict[str, Any]]], list[dict[str, str]]]:
    """Every results.json below `runs_dir` (recursively, hidden folders skipped): ([(run folder, results)],
    [{"path", "error"} for results.json files that could not be read or lack a field])."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: no such folder")
    runs, skipped = [], []
    for path in sorted(runs_dir.rglob(RESULTS_FILE)):
        if any(p.startswith(".") for p in path.relative_to(runs_dir).parts[:-1]):
            continue
        try:
            runs.append((path.parent, load_results(path)))
        except ResultsError as e:
            skipped.append({"path": str(path), "error": str(e)})
    return runs, skipped


def _row_labels(runs: list[tuple[Path, dict[str, Any]]], by: str) -> list[tuple[str, str]]:
    """(row label, encoder) per run. by="encoder": the policy's encoder; an encoder whose runs were trained on
    different numbers of episodes gets one row per count ("enc · 25 demos") so they are never pooled.
    by="name": the policy's name (as given to `robolearn eval --name`)."""
    if by not in GROUP_BY:
        raise ValueError(f"by={by!r}: expected one of {', '.join(GROUP_BY)}")
    encs = [str(r["policy"].get("encoder") or r["policy"].get("name") or "?") for _, r in runs]
    if by == "name":
        return [(str(r["policy"].get("name") or e), e) for (_, r), e in zip(runs, encs)]
    counts: dict[str, set] = {}
    for (_, r), e in zip(runs, encs):
        counts.setdefault(e, set()).add(r["policy"].get("train_episodes"))
    out = []
    for (_, r), e in zip(runs, encs):
        n = r["policy"].get("train_episodes")
        out.append((f"{e} · {'?' if n is None else n} demos" if len(counts[e]) > 1 else e, e))
    return out


def _run_links(run: Path, base: Path) -> dict[str, str]:
    links = {}
    for key, name in (
        ("report", "report.html"),
        ("results", RESULTS_FILE),
        ("config", "config.json"),
        ("log", "log.txt"),
        ("episodes", EPISODES_FILE),
    ):
        if (run / name).is_file():
            links[key] = rel_link(run / name, base)
    if (run / "videos").is_dir():
        links["videos"] = rel_link(run / "videos", base) + "/"
    return links


def _pool(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    parts = [p for p in parts if p]
    if not parts:
        return None
    n, k = sum(p["episodes"] for p in parts), sum(p["successes"] for p in parts)
    return {"episodes": n, "successes": k, "success_rate": k / n if n else 0.0, "ci95": list(wilson_interval(k, n))}


def _seed_key(s: str) -> tuple[int, Any]:
    try:
        return 0, int(s)
    except ValueError:
        return 1, s


def leaderboard_data(runs_dir: str | Path, out: str | Path | None = None, by: str = "encoder") -> dict[str, Any]:
    """Everything leaderboard.json holds: tasks, rows (sorted), cells, runs and skipped files. Links are
    relative to `out` (the folder the leaderboard files go to; default `runs_dir`). No results.json found ->
    FileNotFoundError naming `runs_dir`."""
    runs_dir = Path(runs_dir)
    base = Path(out) if out is not None else runs_dir
    runs, skipped = find_runs(runs_dir)
    if not runs:
        extra = f" ({len(skipped)} unreadable: {skipped[0]['error']})" if skipped else ""
        raise FileNotFoundError(f"{runs_dir}: no results.json found below it{extra}")
    labels = _row_labels(runs, by)
    tasks: list[str] = []
    for _, r in runs:
        tasks += [t for t in r["tasks"] if t not in tasks]
    tasks.sort()

    run_entries = []
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for (run, r), (row, enc) in zip(runs, labels):
        seeds = sorted({str(e["seed"]) for e in r["episodes"]} | set(r["overall"].get("by_seed", {})), key=_seed_key)
        entry = {
            "dir": rel_link(run, runs_dir),
            "path": str(run),
            "row": row,
            "encoder": enc,
            "name": r["policy"].get("name") or "",
            "train_episodes": r["policy"].get("train_episodes"),
            "suite": r.get("suite"),
            "tasks": list(r["tasks"]),
            "seeds": seeds,
            "episodes": r["overall"]["episodes"],
            "successes": r["overall"]["successes"],
            "success_rate": r["overall"]["success_rate"],
            "created": r.get("created"),
            "links": _run_links(run, base),
        }
        run_entries.append(entry)
        for t, s in r["tasks"].items():
            groups.setdefault((row, t), []).append((entry, s))

    cells = []
    for (row, t), members in groups.items():
        sums = [s for _, s in members]
        pooled = _pool(sums)
        by_seed: dict[str, dict[str, int]] = {}
        for s in sums:
            for seed, v in s.get("by_seed", {}).items():
                acc = by_seed.setdefault(seed, {"episodes": 0, "successes": 0})
                acc["episodes"] += v["episodes"]
                acc["successes"] += v["successes"]
        rates = [v["successes"] / v["episodes"] for v in by_seed.values() if v["episodes"]]
        mean = sum(rates) / len(rates) if rates else pooled["success_rate"]
        std = math.sqrt(sum((x - mean) ** 2 for x in rates) / len(rates)) if rates else 0.0
        cell_runs = []
        for entry, s in sorted(members, key=lambda m: m[0]["dir"]):
            cell_runs.append(
                {
                    "dir": entry["dir"],
                    "name": entry["name"],
                    "seeds": sorted(s.get("by_seed", {}), key=_seed_key),
                    "episodes": s["episodes"],
                    "successes": s["successes"],
                    "success_rate": s["success_rate"],
                    "links": entry["links"],
                }
            )
        first = cell_runs[0]["links"]
        cells.append(
            {
                "row": row,
                "encoder": members[0][0]["encoder"],
                "task": t,
                **pooled,
                "seeds": sorted(by_seed, key=_seed_key),
                "seed_mean": mean,
                "seed_std": std,
                "seen": _pool([s.get("seen") for s in sums]),
                "heldout": _pool([s.get("heldout") for s in sums]),
                "link": first.get("report") or first["results"],
                "runs": cell_runs,
            }
        )

    rows: dict[str, dict[str, Any]] = {}
    for c in cells:
        r = rows.setdefault(c["row"], {"row": c["row"], "encoder": c["encoder"], "cells": {}})
        r["cells"][c["task"]] = c
    for r in rows.values():
        r["cells"] = {t: r["cells"][t] for t in tasks if t in r["cells"]}
        r["tasks_covered"] = len(r["cells"])
        r["mean"] = sum(c["success_rate"] for c in r["cells"].values()) / len(r["cells"])
    order = sorted(rows.values(), key=lambda r: (-r["tasks_covered"], -r["mean"], r["row"]))
    for rank, r in enumerate(order, 1):
        r["rank"] = rank
    cells.sort(key=lambda c: ([r["row"] for r in order].index(c["row"]), tasks.index(c["task"])))
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "runs_dir": str(runs_dir),
        "group_by": by,
        "tasks": tasks,
        "rows": [
            {k: v for k, v in r.items() if k != "cells"}
            | {"cells": {t: c["success_rate"] for t, c in r["cells"].items()}}
            for r in order
        ],
        "cells": cells,
        "runs": run_entries,
        "skipped": skipped,
    }


def build_leaderboard(runs_dir: str | Path, out: str | Path | None = None, by: str = "encoder") -> list[dict]:
    """One dict per (encoder, task) cell, best row first: pooled success rate, ci95 (Wilson), episodes,
    successes, seeds, seed_mean/std, seen/heldout, `link` (report.html else results.json of its first run,
    relative to `out`, default `runs_dir`) and `runs` (each run folder with its links: report, results,
    config, log, episodes, videos)."""
    return leaderboard_data(runs_dir, out, by)["cells"]


HOW_TO_READ = (
    "How to read this: each row is an encoder (the policy's visual encoder; runs trained on different numbers "
    "of demonstrations get separate rows), each column a task. A cell pools every evaluation episode of that "
    "encoder on that task over all its runs and seeds: the success rate (successes / episodes) with its Wilson "
    "95% interval in brackets, the number of episodes n and the seeds. Overlapping intervals mean the "
    "difference may be chance. *mean* is the unweighted mean of the row's task success rates; rows are sorted "
    "by it (rows evaluated on fewer tasks come after complete ones). Every cell links to its run folder's "
    "report (or results.json) and lists all run folders it pools, each with its config, results, log, episodes "
    "and videos, so every number can be checked."
)


def _cell_md(c: dict[str, Any]) -> str:
    lo, hi = c["ci95"]
    runs = ", ".join(f"[{i + 1}]({r['links'].get('report') or r['links']['results']})" for i, r in enumerate(c["runs"]))
    return (
        f"[{c['success_rate']:.2f}]({c['link']}) [{lo:.2f}, {hi:.2f}] n={c['episodes']} "
        f"seeds {','.join(c['seeds']) or '-'} · runs {runs}"
    )


def _cell_html(c: dict[str, Any]) -> str:
    import html

    lo, hi = c["ci95"]
    tip = (
        f"seeds {', '.join(c['seeds']) or '-'}; n={c['episodes']} episodes, {c['successes']} successes; "
        f"95% CI [{lo:.2f}, {hi:.2f}]; seed mean ± std {c['seed_mean']:.2f} ± {c['seed_std']:.2f}; "
        f"{len(c['runs'])} run(s)"
    )
    runs = "<br>".join(
        f'<a href="{html.escape(r["links"].get("report") or r["links"]["results"])}" '
        f'title="seeds {html.escape(", ".join(r["seeds"]))}; n={r["episodes"]}; '
        f'success {r["success_rate"]:.2f}">{html.escape(r["dir"])}</a>'
        for r in c["runs"]
    )
    return (
        f'<a href="{html.escape(c["link"])}" title="{html.escape(tip)}"><b>{c["success_rate"]:.2f}</b></a> '
        f'<span class="small">[{lo:.2f}, {hi:.2f}] n={c["episodes"]}</span><div class="runs">{runs}</div>'
    )


def _blocks(data: dict[str, Any]) -> list[Block]:
    tasks = data["tasks"]
    by_cell = {(c["row"], c["task"]): c for c in data["cells"]}
    blocks: list[Block] = [h(1, "Leaderboard")]
    blocks.append(
        para(
            f"{len(data['runs'])} eval runs below {data['runs_dir']}; {len(data['rows'])} "
            f"{'encoders' if data['group_by'] == 'encoder' else 'policies'} x {len(tasks)} tasks; "
            f"written {data['created']}."
        )
    )
    blocks.append(
        para(
            HOW_TO_READ
            if data["group_by"] == "encoder"
            else HOW_TO_READ.replace(
                "each row is an encoder (the policy's visual encoder; runs trained on different numbers of "
                "demonstrations "
                "get separate rows)",
                "each row is a policy name (as given to `robolearn eval --name`)",
            ).replace("of that encoder on that task", "of that policy on that task")
        )
    )
    rows = []
    for r in data["rows"]:
        row: list[Any] = [str(r["rank"]), r["row"]]
        for t in tasks:
            c = by_cell.get((r["row"], t))
            row.append(Raw(_cell_md(c), _cell_html(c)) if c else "-")
        row.append(
            f"{r['mean']:.2f}"
            + ("" if r["tasks_covered"] == len(tasks) else f" ({r['tasks_covered']}/{len(tasks)} tasks)")
        )
        rows.append(row)
    blocks.append(
        table(
            ["#", "encoder" if data["group_by"] == "encoder" else "policy", *tasks, "mean"],
            rows,
            numeric_from=len(tasks) + 2,
        )
    )

    blocks.append(h(2, "Runs"))
    run_rows = []
    for e in data["runs"]:
        links = [Link(k, v) for k, v in e["links"].items()]
        run_rows.append(
            [
                Link(e["dir"], e["links"].get("report") or e["links"]["results"]),
                e["row"],
                e["name"] or "-",
                ", ".join(e["tasks"]),
                ", ".join(e["seeds"]),
                e["episodes"],
                f"{e['success_rate']:.2f}",
                links,
            ]
        )
    blocks.append(
        table(
            ["run folder", "row", "policy name", "tasks", "seeds", "episodes", "success", "files"],
            run_rows,
            numeric_from=5,
        )
    )
    if data["skipped"]:
        blocks.append(h(2, "Skipped"))
        blocks.append(para("These results.json files could not be used:"))
        blocks.append(table(["file", "problem"], [[s["path"], s["error"]] for s in data["skipped"]], numeric_from=-1))
    return blocks


def write_leaderboard(
    runs_dir: str | Path, out: str | Path | None = None, by: str = "encoder", config: Any = None
) -> tuple[Path, Path, Path]:
    """Write leaderboard.json, leaderboard.md and leaderboard.html to `out` (default `runs_dir`), and its lineage
    card (inputs: the runs it read; figures: each run's success rate; `config`: what asked for it, default the
    arguments); returns the three paths. A missing `runs_dir` or one with no results.json -> FileNotFoundError
    naming it."""
    from robolearn.lineage import write_card

    base = Path(out) if out is not None else Path(runs_dir)
    data = leaderboard_data(runs_dir, base, by)
    base.mkdir(parents=True, exist_ok=True)
    paths = tuple(base / n for n in LEADERBOARD_NAMES)
    paths[0].write_text(json.dumps(data, indent=1, default=str) + "\n")
    blocks = _blocks(data)
    paths[1].write_text(render_md(blocks))
    paths[2].write_text(render_html(blocks, "Leaderboard"))
    for s in data["skipped"]:
        print(f"leaderboard: skipped {s['error']}", file=sys.stderr)
    figures = {r["dir"]: r["success_rate"] for r in data["runs"]}
    config = config if config is not None else {"runs_dir": str(runs_dir), "by": by}
    write_card(base, "leaderboard", [r["path"] for r in data["runs"]], config, figures, ["leaderboard.json"])
    return paths  # type: ignore[return-value]
