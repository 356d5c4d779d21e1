"""Eval reports: `write_report(RUN)` -> RUN/report.md + RUN/report.html (+ RUN/plots/*.png) from an eval run
folder's results.json (and config.json), and `compare_report(RUNS, OUT, title)` putting several runs side by
side. HTML is self-contained: inline CSS, no scripts, no network; plots are PNG files next to it, referenced
relatively; videos are `<video src="videos/...mp4">` of the run folder.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

from robolearn.eval.metrics import RESULTS_FILE, ResultsError, load_results

PLOTS_DIR = "plots"

# ----------------------------------------------------------------------------------------------- documents
# A tiny document model rendered both as Markdown and as HTML, so the two files always say the same.


@dataclass
class Link:
    text: str
    href: str
    title: str = ""


@dataclass
class Raw:
    """Content given verbatim: `md` for the Markdown file, `html` for the HTML file."""

    md: str
    html: str


Cell = Union[str, Link, Raw, list]


@dataclass
class Block:
    kind: str  # h1 h2 h3 p table img details raw
    args: tuple


def h(level: int, text: str) -> Block:
    return Block(f"h{level}", (text,))


def para(*parts: Cell) -> Block:
    return Block("p", (list(parts),))


def table(header: Sequence[str], rows: Sequence[Sequence[Cell]], numeric_from: int = 1) -> Block:
    return Block("table", (list(header), [list(r) for r in rows], numeric_from))


def image(src: str, alt: str, caption: str = "") -> Block:
    return Block("img", (src, alt, caption))


def details(summary: str, text: str, lang: str = "") -> Block:
    return Block("details", (summary, text, lang))


def raw(md: str, html_: str) -> Block:
    return Block("raw", (md, html_))


def _cell_md(c: Cell) -> str:
    if isinstance(c, list):
        return " ".join(_cell_md(x) for x in c)
    if isinstance(c, Link):
        return f"[{c.text.replace('|', '/')}]({c.href.replace(' ', '%20')})"
    if isinstance(c, Raw):
        return c.md
    return str(c).replace("|", "\\|").replace("\n", " ")


def _cell_html(c: Cell) -> str:
    if isinstance(c, list):
        return " ".join(_cell_html(x) for x in c)
    if isinstance(c, Link):
        t = f' title="{html.escape(c.title)}"' if c.title else ""
        return f'<a href="{html.escape(c.href)}"{t}>{html.escape(c.text)}</a>'
    if isinstance(c, Raw):
        return c.html
    return html.escape(str(c))


def render_md(blocks: Iterable[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind.startswith("h"):
            out.append(f"{'#' * int(b.kind[1])} {b.args[0]}")
        elif b.kind == "p":
            out.append(_cell_md(b.args[0]))
        elif b.kind == "table":
            header, rows, _ = b.args
            lines = ["| " + " | ".join(_cell_md(x) for x in header) + " |",
                     "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(_cell_md(x) for x in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif b.kind == "img":
            src, alt, cap = b.args
            out.append(f"![{alt}]({src.replace(' ', '%20')})" + (f"\n\n*{cap}*" if cap else ""))
        elif b.kind == "details":
            summary, text, lang = b.args
            out.append(f"<details><summary>{html.escape(summary)}</summary>\n\n```{lang}\n{text.rstrip()}\n```\n\n"
                       "</details>")
        elif b.kind == "raw":
            out.append(b.args[0])
    return "\n\n".join(out).rstrip() + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;padding:0 1em;
color:#1d2330;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #dde1e8;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #d5d9e0;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f2f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfc}
img.plot{max-width:100%;border:1px solid #e3e6eb;margin:.5em 0}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figcaption{font-size:.85em;color:#555;max-width:340px}
.gallery figure video{width:320px;background:#000}
.ok{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
pre{background:#f5f6f8;padding:.8em;overflow:auto;font-size:.85em;max-height:40em}
details{margin:.6em 0}summary{cursor:pointer;font-weight:600}
.small{font-size:.8em;color:#555}.runs{font-size:.78em;color:#555;margin-top:.2em}
code{background:#f2f4f8;padding:0 .2em}
"""


def render_html(blocks: Iterable[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]
    for b in blocks:
        if b.kind.startswith("h"):
            level = int(b.kind[1])
            anchor = re.sub(r"[^a-z0-9]+", "-", str(b.args[0]).lower()).strip("-")
            out.append(f'<h{level} id="{anchor}">{html.escape(str(b.args[0]))}</h{level}>')
        elif b.kind == "p":
            out.append(f"<p>{_cell_html(b.args[0])}</p>")
        elif b.kind == "table":
            header, rows, numeric_from = b.args
            t = ["<table><thead><tr>" + "".join(f"<th>{_cell_html(x)}</th>" for x in header) + "</tr></thead><tbody>"]
            for r in rows:
                t.append("<tr>" + "".join(
                    f'<td{" class=num" if i >= numeric_from and numeric_from >= 0 else ""}>{_cell_html(x)}</td>'
                    for i, x in enumerate(r)) + "</tr>")
            t.append("</tbody></table>")
            out.append("\n".join(t))
        elif b.kind == "img":
            src, alt, cap = b.args
            fig = f'<figure><img class="plot" src="{html.escape(src)}" alt="{html.escape(alt)}">'
            out.append(fig + (f"<figcaption>{html.escape(cap)}</figcaption>" if cap else "") + "</figure>")
        elif b.kind == "details":
            summary, text, _ = b.args
            out.append(f"<details><summary>{html.escape(summary)}</summary><pre>{html.escape(text)}</pre></details>")
        elif b.kind == "raw":
            out.append(b.args[1])
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def markdown_to_html(text: str) -> str:
    """A small Markdown subset -> HTML for free-form report sections: headings, paragraphs, `-` lists, fenced
    code, pipe tables, images, links, `code`, **bold**, *italic*. Text that starts with `<` is taken as HTML."""
    if text.lstrip().startswith("<"):
        return text

    def inline(s: str) -> str:
        s = html.escape(s, quote=False)
        s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
        s = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", r'<img class="plot" src="\2" alt="\1">', s)
        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', s)
        s = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", s)
        return re.sub(r"(?<![*\w])\*([^*\s][^*]*)\*(?!\w)", r"<em>\1</em>", s)

    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
        elif m := re.match(r"(#{1,6})\s+(.*)", line):
            n = min(len(m.group(1)) + 2, 6)  # nested below the section's own heading
            out.append(f"<h{n}>{inline(m.group(2))}</h{n}>")
            i += 1
        elif re.match(r"\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"\s*[-*]\s+", lines[i]):
                item = re.sub(r"^\s*[-*]\s+", "", lines[i])
                items.append(f"<li>{inline(item)}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{2,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            if rows:
                head = "".join(f"<th>{inline(c)}</th>" for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
                out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        else:
            para_lines = []
            while i < len(lines) and lines[i].strip() and not re.match(r"(#{1,6}\s|```|\s*[-*]\s|\s*\|)", lines[i]):
                para_lines.append(lines[i])
                i += 1
            out.append(f"<p>{inline(' '.join(para_lines))}</p>")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- formatting


def fmt_rate(s: dict[str, Any] | None) -> str:
    """`0.65 [0.43, 0.82]`: success rate and its Wilson 95% interval; `-` for no data."""
    if not s:
        return "-"
    lo, hi = s["ci95"]
    return f"{s['success_rate']:.2f} [{lo:.2f}, {hi:.2f}]"


def fmt_steps(s: dict[str, Any]) -> str:
    st = s.get("steps_to_success") or {}
    if st.get("mean") is None:
        return "-"
    return f"{st['mean']:.1f} / {st['median']:.1f}"


def fmt_seeds(s: dict[str, Any]) -> str:
    if "seed_mean" not in s:
        return "-"
    n = len(s.get("by_seed", {}))
    return f"{s['seed_mean']:.2f} ± {s['seed_std']:.2f} ({n} seed{'s' if n != 1 else ''})"


def _rel(target: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


# ----------------------------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _yerr(summaries: list[dict[str, Any] | None]) -> list[list[float]]:
    lo = [max(0.0, s["success_rate"] - s["ci95"][0]) if s else 0.0 for s in summaries]
    hi = [max(0.0, s["ci95"][1] - s["success_rate"]) if s else 0.0 for s in summaries]
    return [lo, hi]


def plot_success_rates(results: dict[str, Any], path: Path) -> Path:
    """Bar per task (and overall when there are several tasks) with Wilson 95% error bars."""
    plt = _plt()
    names = list(results["tasks"])
    sums = [results["tasks"][t] for t in names]
    if len(names) > 1:
        names.append("overall")
        sums.append(results["overall"])
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(names) + 2), 3.6), dpi=100)
    x = range(len(names))
    ax.bar(x, [s["success_rate"] for s in sums], yerr=_yerr(sums), capsize=4,
           color=["#4c72b0"] * len(results["tasks"]) + (["#55a868"] if len(names) > len(results["tasks"]) else []))
    ax.set_xticks(list(x), names, rotation=20 if len(names) > 3 else 0, ha="right" if len(names) > 3 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (95% Wilson CI)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def grouped_bars(groups: list[str], series: list[tuple[str, list[dict[str, Any] | None]]], path: Path,
                 ylabel: str = "success rate (95% Wilson CI)") -> Path:
    """Grouped bar plot: one group per `groups` entry, one bar per series (label, summary per group; None:
    no bar), error bars from each summary's ci95."""
    plt = _plt()
    n = max(1, len(series))
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(5.0, len(groups) * (0.5 + 0.35 * n) + 2.5), 3.8), dpi=100)
    for j, (label, sums) in enumerate(series):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(len(groups))]
        keep = [(x, s) for x, s in zip(xs, sums) if s]
        if not keep:
            ax.bar([], [], label=label)
            continue
        ax.bar([x for x, _ in keep], [s["success_rate"] for _, s in keep], width * 0.95,
               yerr=_yerr([s for _, s in keep]), capsize=3, label=label)
    ax.set_xticks(range(len(groups)), groups, rotation=20 if len(groups) > 3 else 0,
                  ha="right" if len(groups) > 3 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_steps_histogram(results: dict[str, Any], path: Path) -> Path | None:
    """Histogram of steps to success over successful episodes, one series per task; None if none succeeded."""
    per_task: dict[str, list[int]] = {}
    for e in results["episodes"]:
        if e["success"] and e.get("steps_to_success") is not None:
            per_task.setdefault(e["task"], []).append(int(e["steps_to_success"]))
    if not per_task:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=100)
    allv = [v for vs in per_task.values() for v in vs]
    bins = min(20, max(5, len(set(allv))))
    ax.hist(list(per_task.values()), bins=bins, range=(min(allv) - 0.5, max(allv) + 0.5),
            label=list(per_task), stacked=True)
    ax.set_xlabel("steps to success")
    ax.set_ylabel("successful episodes")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    if len(per_task) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------- run report


def _seen_word(flag: Any) -> str:
    return "seen" if flag is True else "held-out" if flag is False else "-"


def _breakdown_blocks(name: str, s: dict[str, Any]) -> list[Block]:
    blocks = [h(3, name), para(f"Success {fmt_rate(s)} over {s['episodes']} episodes; seed mean ± std "
                               f"{fmt_seeds(s)}; steps to success (mean / median) {fmt_steps(s)}.")]
    blocks.append(table(["seed", "episodes", "successes", "success rate"],
                        [[k, v["episodes"], v["successes"], f"{v['success_rate']:.2f}"]
                         for k, v in s.get("by_seed", {}).items()]))
    if s.get("by_household"):
        blocks.append(table(["household", "episodes", "successes", "success rate [95% CI]"],
                            [[k, v["episodes"], v["successes"], fmt_rate(v)] for k, v in s["by_household"].items()]))
    if s.get("by_scene"):
        blocks.append(table(["scene (household/scene)", "in training", "episodes", "successes",
                             "success rate [95% CI]"],
                            [[k, _seen_word(v.get("seen")), v["episodes"], v["successes"], fmt_rate(v)]
                             for k, v in s["by_scene"].items()], numeric_from=2))
    return blocks


def _video_gallery(run_dir: Path, episodes: list[dict[str, Any]]) -> list[Block]:
    vids = [e for e in episodes if e.get("video")]
    if not vids:
        return [para("No videos were recorded for this run.")]
    figs_html, md_lines = [], []
    for e in vids:
        src = str(e["video"])
        scene = f"{e['household']}/{e['scene']}" if e.get("household") is not None else "-"
        where = "no scene" if scene == "-" else f"scene {scene}" + (
            "" if e.get("seen") is None else f" ({_seen_word(e.get('seen'))})")
        result = f"success in {e['steps_to_success']} steps" if e["success"] else f"failure ({e['steps']} steps)"
        label = f"{e['task']} · seed {e['seed']} · episode {e['episode']} · {where} · {result}"
        exists = (run_dir / src).is_file()
        cls = "ok" if e["success"] else "fail"
        vid = (f'<video controls preload="metadata" src="{html.escape(src)}"></video>' if exists
               else '<p class="small">(video file missing)</p>')
        figs_html.append(f'<figure>{vid}<figcaption><span class="{cls}">{"✓" if e["success"] else "✗"}</span> '
                         f"{html.escape(label)}</figcaption></figure>")
        md_lines.append(f"- [{label}]({src.replace(' ', '%20')})" + ("" if exists else " (missing)"))
    return [raw("\n".join(md_lines), '<div class="gallery">' + "\n".join(figs_html) + "</div>")]


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """RUN/report.md and RUN/report.html (+ RUN/plots/*.png) from RUN/results.json and RUN/config.json.
    A missing or malformed results.json -> ResultsError (ValueError) naming the file and the field."""
    run_dir = Path(run_dir)
    results = load_results(run_dir / RESULTS_FILE)
    plots = run_dir / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    pol = results["policy"]
    name = pol.get("name") or pol.get("encoder") or run_dir.name
    title = f"Evaluation: {name}"
    ov = results["overall"]

    blocks: list[Block] = [h(1, title)]
    trained = pol.get("train_data") or "-"
    if pol.get("train_episodes") is not None:
        trained += f" ({pol['train_episodes']} episodes)"
    blocks.append(table(["", "value"], [
        ["policy", pol.get("path") or "-"], ["encoder", pol.get("encoder") or "-"], ["head", pol.get("head") or "-"],
        ["trained on", trained], ["suite", results.get("suite", "-")],
        ["robolearn / MuJoCo", f"{results.get('robolearn_version', '?')} / {results.get('mujoco_version', '?')}"],
        ["created", results.get("created", "-")],
        ["overall success [95% CI]", f"{fmt_rate(ov)} over {ov['episodes']} episodes"],
        ["seed mean ± std", fmt_seeds(ov)],
        ["seen / held-out scenes", f"{fmt_rate(ov.get('seen'))} / {fmt_rate(ov.get('heldout'))}"],
    ], numeric_from=-1))

    blocks.append(h(2, "Success by task"))
    blocks.append(para("Success rate with its Wilson 95% interval; seed mean ± std of the per-seed success rates; "
                       "steps to success over successful episodes; seen = scenes the policy was trained in, "
                       "held-out = scenes it never saw (see docs/evaluation.md)."))
    rows = []
    items = list(results["tasks"].items()) + ([("overall", ov)] if len(results["tasks"]) > 1 else [])
    for t, s in items:
        rows.append([t, s["episodes"], s["successes"], fmt_rate(s), fmt_seeds(s), fmt_steps(s),
                     fmt_rate(s.get("seen")), fmt_rate(s.get("heldout"))])
    blocks.append(table(["task", "episodes", "successes", "success rate [95% CI]", "seed mean ± std",
                         "steps to success (mean / median)", "seen scenes", "held-out scenes"], rows))

    plot_success_rates(results, plots / "success_rate.png")
    blocks.append(image(f"{PLOTS_DIR}/success_rate.png", "success rate per task",
                        "Success rate per task with Wilson 95% error bars."))
    if any(s.get("seen") or s.get("heldout") for s in results["tasks"].values()):
        groups = list(results["tasks"])
        grouped_bars(groups, [("seen scenes", [results["tasks"][t].get("seen") for t in groups]),
                              ("held-out scenes", [results["tasks"][t].get("heldout") for t in groups])],
                     plots / "seen_heldout.png")
        blocks.append(image(f"{PLOTS_DIR}/seen_heldout.png", "seen vs held-out scenes",
                            "Seen (training) vs held-out scenes, per task, with Wilson 95% error bars."))
    if plot_steps_histogram(results, plots / "steps_to_success.png"):
        blocks.append(image(f"{PLOTS_DIR}/steps_to_success.png", "steps to success",
                            "Steps to success over successful episodes."))
    else:
        blocks.append(para("No episode succeeded: no steps-to-success histogram."))

    blocks.append(h(2, "Breakdown per task"))
    for t, s in results["tasks"].items():
        blocks += _breakdown_blocks(t, s)

    blocks.append(h(2, "Videos"))
    blocks += _video_gallery(run_dir, results["episodes"])

    blocks.append(h(2, "Configuration and files"))
    files = [Link(f, f) for f in ("results.json", "episodes.jsonl", "config.json", "log.txt")
             if (run_dir / f).is_file()]
    if (run_dir / "videos").is_dir():
        files.append(Link("videos/", "videos/"))
    parts: list[Cell] = ["Files:"]
    for i, f in enumerate(files):
        parts += [f] if i == 0 else ["·", f]
    blocks.append(para(*parts) if files else para("Files: -"))
    cfg_path = run_dir / "config.json"
    if cfg_path.is_file():
        try:
            cfg_text = json.dumps(json.loads(cfg_path.read_text()), indent=2)
        except (json.JSONDecodeError, OSError) as e:
            cfg_text = f"(config.json could not be read: {e})"
        blocks.append(details("config.json", cfg_text, "json"))
    extra = {k: v for k, v in results.items()
             if k not in ("tasks", "overall", "episodes", "policy", "suite", "created", "robolearn_version",
                          "mujoco_version")}
    if extra:
        blocks.append(details("other run metadata", json.dumps(extra, indent=2, default=str), "json"))

    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(render_md(blocks))
    html_path.write_text(render_html(blocks, title))
    return md_path, html_path


# ----------------------------------------------------------------------------------------------- comparison


ImageSpec = Union[str, Path, tuple]


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
    return _rel(dest, out_dir), caption or path.stem.replace("_", " ")


def compare_report(run_dirs: Sequence[str | Path], out_dir: str | Path, title: str = "Comparison",
                   labels: Sequence[str] | None = None, sections: Sequence[tuple[str, str]] = (),
                   images: Sequence[ImageSpec] = ()) -> tuple[Path, Path]:
    """Several eval runs side by side: OUT/compare.md + OUT/compare.html + OUT/plots/compare.png.

    `labels`: one name per run (default: the policy's name). `sections`: extra (title, body) sections, body in
    Markdown (a small subset, see `markdown_to_html`) or HTML (starting with `<`). `images`: image paths (or
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
    names = list(labels) if labels else [r["policy"].get("name") or r["policy"].get("encoder") or d.name
                                         for d, r in runs]
    if not labels and len(set(names)) < len(names):
        names = [f"{n} ({d.name})" for n, (d, _) in zip(names, runs)]
    tasks: list[str] = []
    for _, r in runs:
        tasks += [t for t in r["tasks"] if t not in tasks]

    blocks: list[Block] = [h(1, title)]
    blocks.append(para(f"{len(runs)} evaluation runs on {len(tasks)} task{'s' if len(tasks) != 1 else ''}. "
                       "Cells: success rate [Wilson 95% interval] (episodes). Seen = scenes the policy was "
                       "trained in; held-out = scenes it never saw."))
    blocks.append(h(2, "Runs"))
    rows = []
    for n, (d, r) in zip(names, runs):
        rep = d / "report.html"
        p = r["policy"]
        rows.append([Link(n, _rel(rep if rep.is_file() else d / RESULTS_FILE, out_dir)), p.get("encoder") or "-",
                     p.get("head") or "-", p.get("train_data") or "-",
                     "-" if p.get("train_episodes") is None else p["train_episodes"], r.get("suite", "-"),
                     r["overall"]["episodes"]])
    blocks.append(table(["run", "encoder", "head", "trained on", "train episodes", "suite", "eval episodes"], rows,
                        numeric_from=4))

    blocks.append(h(2, "Success rate by task"))
    any_split = any(r["overall"].get("seen") or r["overall"].get("heldout") for _, r in runs)
    header = ["run", *tasks] + (["overall"] if len(tasks) > 1 else []) + (
        ["seen scenes", "held-out scenes"] if any_split else [])
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
    groups = list(tasks) + (["overall"] if len(tasks) > 1 else []) + (["seen scenes", "held-out scenes"]
                                                                        if any_split else [])
    series = []
    for n, (_, r) in zip(names, runs):
        sums = [r["tasks"].get(t) for t in tasks]
        if len(tasks) > 1:
            sums.append(r["overall"])
        if any_split:
            sums += [r["overall"].get("seen"), r["overall"].get("heldout")]
        series.append((n, sums))
    grouped_bars(groups, series, out_dir / PLOTS_DIR / "compare.png")
    blocks.append(image(f"{PLOTS_DIR}/compare.png", "success rate per run and task",
                        "Success rate per task (and seen vs held-out scenes) per run, Wilson 95% error bars."))

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
    return md_path, html_path


__all__ = ["write_report", "compare_report", "fmt_rate", "markdown_to_html", "ResultsError", "Link", "Raw"]
