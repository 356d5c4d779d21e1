"""The comparison report: `compare_report(RUNS, OUT, title)` puts several eval runs side by side in
OUT/compare.md + OUT/compare.html (+ OUT/plots/compare.png): the runs, success rate by task with Wilson 95%
intervals, a grouped bar plot, extra free-form sections and figures (copied into OUT/images/).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from robolearn.eval.metrics import RESULTS_FILE, load_results
from robolearn.eval.report.document import (
    Block,
    Cell,
    Link,
    fmt_rate,
    h,
    image,
    markdown_to_html,
    para,
    raw,
    rel_link,
    render_html,
    render_md,
    table,
)
from robolearn.eval.report.plots import PLOTS_DIR, grouped_bars
from robolearn.lineage import write_card

ImageSpec = str | Path | tuple


def _place_image(src: ImageSpec, out_dir: Path) -> tuple[str, str]:
    """Copy an image into OUT/images/ unless it already lies below OUT; (relative src, caption)."""
    path, caption = (Path(src[0]), str(src[1])) if isinstance(src, tuple) else (Path(src), "")
    if not path.is_file():
        raise FileNotFoundError(f"compare_report: image {path} does not exist")
    try:
        path.resolve().relative_to(out_dir.resolve())
        dest = path
    except ValueError:
        dest = out_dir / "images" / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.resolve() != path.resolve():
            shutil.copyfile(path, dest)
    return rel_link(dest, out_dir), caption or path.stem.replace("_", " ")


def compare_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    title: str = "Comparison",
    labels: Sequence[str] | None = None,
    sections: Sequence[tuple[str, str]] = (),
    images: Sequence[ImageSpec] = (),
) -> tuple[Path, Path]:
    """Several eval runs side by side: OUT/compare.md + OUT/compare.html + OUT/plots/compare.png.

    `labels`: one name per run (default: the policy's name). `sections`: extra (title, body) sections, body in
    Markdown (CommonMark + pipe tables, see `markdown_to_html`) or HTML (starting with `<`). `images`: image paths (or
    (path, caption) pairs) shown in a "Figures" section; copied into OUT/images/ unless already below OUT.
    A run without a valid results.json -> ResultsError naming the file and the field."""
    out_dir = Path(out_dir)
    if not run_dirs:
        raise ValueError("compare_report: no run folders given")
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"compare_report: {len(labels)} labels for {len(run_dirs)} runs")
    runs = [(Path(d), load_results(Path(d) / RESULTS_FILE)) for d in run_dirs]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PLOTS_DIR).mkdir(exist_ok=True)
    names = (
        list(labels) if labels else [r["policy"].get("name") or r["policy"].get("encoder") or d.name for d, r in runs]
    )
    if not labels and len(set(names)) < len(names):
        names = [f"{n} ({d.name})" for n, (d, _) in zip(names, runs)]
    tasks: list[str] = []
    for _, r in runs:
        tasks += [t for t in r["tasks"] if t not in tasks]

    blocks: list[Block] = [h(1, title)]
    blocks.append(
        para(
            f"{len(runs)} evaluation runs on {len(tasks)} task{'s' if len(tasks) != 1 else ''}. "
            "Cells: success rate [Wilson 95% interval] (episodes). Seen = scenes the policy was "
            "trained in; held-out = scenes it never saw."
        )
    )
    blocks.append(h(2, "Runs"))
    rows = []
    for n, (d, r) in zip(names, runs):
        rep = d / "report.html"
        p = r["policy"]
        rows.append(
            [
                Link(n, rel_link(rep if rep.is_file() else d / RESULTS_FILE, out_dir)),
                p.get("encoder") or "-",
                p.get("head") or "-",
                p.get("train_data") or "-",
                "-" if p.get("train_episodes") is None else p["train_episodes"],
                r.get("suite", "-"),
                r["overall"]["episodes"],
            ]
        )
    blocks.append(
        table(
            ["run", "encoder", "head", "trained on", "train episodes", "suite", "eval episodes"], rows, numeric_from=4
        )
    )

    blocks.append(h(2, "Success rate by task"))
    any_split = any(r["overall"].get("seen") or r["overall"].get("heldout") for _, r in runs)
    header = (
        ["run", *tasks]
        + (["overall"] if len(tasks) > 1 else [])
        + (["seen scenes", "held-out scenes"] if any_split else [])
    )
    rows = []
    for n, (_, r) in zip(names, runs):
        row: list[Cell] = [n]
        for t in tasks:
            s = r["tasks"].get(t)
            row.append(f"{fmt_rate(s)} ({s['episodes']})" if s else "-")
        if len(tasks) > 1:
            row.append(f"{fmt_rate(r['overall'])} ({r['overall']['episodes']})")
        if any_split:
            for k in ("seen", "heldout"):
                s = r["overall"].get(k)
                row.append(f"{fmt_rate(s)} ({s['episodes']})" if s else "-")
        rows.append(row)
    blocks.append(table(header, rows))
    groups = (
        list(tasks)
        + (["overall"] if len(tasks) > 1 else [])
        + (["seen scenes", "held-out scenes"] if any_split else [])
    )
    series = []
    for n, (_, r) in zip(names, runs):
        sums = [r["tasks"].get(t) for t in tasks]
        if len(tasks) > 1:
            sums.append(r["overall"])
        if any_split:
            sums += [r["overall"].get("seen"), r["overall"].get("heldout")]
        series.append((n, sums))
    grouped_bars(groups, series, out_dir / PLOTS_DIR / "compare.png")
    blocks.append(
        image(
            f"{PLOTS_DIR}/compare.png",
            "success rate per run and task",
            "Success rate per task (and seen vs held-out scenes) per run, Wilson 95% error bars.",
        )
    )

    for sec_title, body in sections:
        blocks.append(h(2, sec_title))
        blocks.append(raw(body.strip(), markdown_to_html(body)))
    if images:
        blocks.append(h(2, "Figures"))
        for img in images:
            src, cap = _place_image(img, out_dir)
            blocks.append(image(src, cap, cap))

    md_path, html_path = out_dir / "compare.md", out_dir / "compare.html"
    md_path.write_text(render_md(blocks))
    html_path.write_text(render_html(blocks, title))
    figures = {n: r["overall"]["success_rate"] for n, (_, r) in zip(names, runs)}
    write_card(out_dir, "report", [d for d, _ in runs], {"title": title, "labels": names}, figures, ["compare.md"])
    return md_path, html_path
