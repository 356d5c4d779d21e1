"""The run report: `write_report(RUN)` -> RUN/report.md + RUN/report.html (+ RUN/plots/*.png) from an eval run
folder's results.json (and config.json): overview, success by task, plots, per-task breakdowns, the video
gallery (`<video src="videos/...mp4">` of the run folder) and the run's configuration and files.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from robolearn.eval.metrics import RESULTS_FILE, load_results
from robolearn.eval.report.document import (
    Block,
    Cell,
    Link,
    details,
    fmt_rate,
    fmt_seeds,
    fmt_steps,
    h,
    image,
    para,
    raw,
    render_html,
    render_md,
    table,
)
from robolearn.eval.report.plots import PLOTS_DIR, grouped_bars, plot_steps_histogram, plot_success_rates


def _seen_word(flag: Any) -> str:
    return "seen" if flag is True else "held-out" if flag is False else "-"


def _breakdown_blocks(name: str, s: dict[str, Any]) -> list[Block]:
    blocks = [
        h(3, name),
        para(
            f"Success {fmt_rate(s)} over {s['episodes']} episodes; seed mean ± std "
            f"{fmt_seeds(s)}; steps to success (mean / median) {fmt_steps(s)}."
        ),
    ]
    blocks.append(
        table(
            ["seed", "episodes", "successes", "success rate"],
            [[k, v["episodes"], v["successes"], f"{v['success_rate']:.2f}"] for k, v in s.get("by_seed", {}).items()],
        )
    )
    if s.get("by_household"):
        blocks.append(
            table(
                ["household", "episodes", "successes", "success rate [95% CI]"],
                [[k, v["episodes"], v["successes"], fmt_rate(v)] for k, v in s["by_household"].items()],
            )
        )
    if s.get("by_scene"):
        blocks.append(
            table(
                ["scene (household/scene)", "in training", "episodes", "successes", "success rate [95% CI]"],
                [
                    [k, _seen_word(v.get("seen")), v["episodes"], v["successes"], fmt_rate(v)]
                    for k, v in s["by_scene"].items()
                ],
                numeric_from=2,
            )
        )
    return blocks


def _video_gallery(run_dir: Path, episodes: list[dict[str, Any]]) -> list[Block]:
    vids = [e for e in episodes if e.get("video")]
    if not vids:
        return [para("No videos were recorded for this run.")]
    figs_html, md_lines = [], []
    for e in vids:
        src = str(e["video"])
        scene = f"{e['household']}/{e['scene']}" if e.get("household") is not None else "-"
        where = (
            "no scene"
            if scene == "-"
            else f"scene {scene}" + ("" if e.get("seen") is None else f" ({_seen_word(e.get('seen'))})")
        )
        result = f"success in {e['steps_to_success']} steps" if e["success"] else f"failure ({e['steps']} steps)"
        label = f"{e['task']} · seed {e['seed']} · episode {e['episode']} · {where} · {result}"
        exists = (run_dir / src).is_file()
        cls = "ok" if e["success"] else "fail"
        vid = (
            f'<video controls preload="metadata" src="{html.escape(src)}"></video>'
            if exists
            else '<p class="small">(video file missing)</p>'
        )
        figs_html.append(
            f'<figure>{vid}<figcaption><span class="{cls}">{"✓" if e["success"] else "✗"}</span> '
            f"{html.escape(label)}</figcaption></figure>"
        )
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
    blocks.append(
        table(
            ["", "value"],
            [
                ["policy", pol.get("path") or "-"],
                ["encoder", pol.get("encoder") or "-"],
                ["head", pol.get("head") or "-"],
                ["trained on", trained],
                ["suite", results.get("suite", "-")],
                [
                    "robolearn / MuJoCo",
                    f"{results.get('robolearn_version', '?')} / {results.get('mujoco_version', '?')}",
                ],
                ["created", results.get("created", "-")],
                ["overall success [95% CI]", f"{fmt_rate(ov)} over {ov['episodes']} episodes"],
                ["seed mean ± std", fmt_seeds(ov)],
                ["seen / held-out scenes", f"{fmt_rate(ov.get('seen'))} / {fmt_rate(ov.get('heldout'))}"],
            ],
            numeric_from=-1,
        )
    )

    blocks.append(h(2, "Success by task"))
    blocks.append(
        para(
            "Success rate with its Wilson 95% interval; seed mean ± std of the per-seed success rates; "
            "steps to success over successful episodes; seen = scenes the policy was trained in, "
            "held-out = scenes it never saw (see docs/evaluation.md)."
        )
    )
    rows = []
    items = list(results["tasks"].items()) + ([("overall", ov)] if len(results["tasks"]) > 1 else [])
    for t, s in items:
        rows.append(
            [
                t,
                s["episodes"],
                s["successes"],
                fmt_rate(s),
                fmt_seeds(s),
                fmt_steps(s),
                fmt_rate(s.get("seen")),
                fmt_rate(s.get("heldout")),
            ]
        )
    blocks.append(
        table(
            [
                "task",
                "episodes",
                "successes",
                "success rate [95% CI]",
                "seed mean ± std",
                "steps to success (mean / median)",
                "seen scenes",
                "held-out scenes",
            ],
            rows,
        )
    )

    plot_success_rates(results, plots / "success_rate.png")
    blocks.append(
        image(
            f"{PLOTS_DIR}/success_rate.png",
            "success rate per task",
            "Success rate per task with Wilson 95% error bars.",
        )
    )
    if any(s.get("seen") or s.get("heldout") for s in results["tasks"].values()):
        groups = list(results["tasks"])
        grouped_bars(
            groups,
            [
                ("seen scenes", [results["tasks"][t].get("seen") for t in groups]),
                ("held-out scenes", [results["tasks"][t].get("heldout") for t in groups]),
            ],
            plots / "seen_heldout.png",
        )
        blocks.append(
            image(
                f"{PLOTS_DIR}/seen_heldout.png",
                "seen vs held-out scenes",
                "Seen (training) vs held-out scenes, per task, with Wilson 95% error bars.",
            )
        )
    if plot_steps_histogram(results, plots / "steps_to_success.png"):
        blocks.append(
            image(f"{PLOTS_DIR}/steps_to_success.png", "steps to success", "Steps to success over successful episodes.")
        )
    else:
        blocks.append(para("No episode succeeded: no steps-to-success histogram."))

    blocks.append(h(2, "Breakdown per task"))
    for t, s in results["tasks"].items():
        blocks += _breakdown_blocks(t, s)

    blocks.append(h(2, "Videos"))
    blocks += _video_gallery(run_dir, results["episodes"])

    blocks.append(h(2, "Configuration and files"))
    files = [
        Link(f, f) for f in ("results.json", "episodes.jsonl", "config.json", "log.txt") if (run_dir / f).is_file()
    ]
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
    extra = {
        k: v
        for k, v in results.items()
        if k
        not in ("tasks", "overall", "episodes", "policy", "suite", "created", "robolearn_version", "mujoco_version")
    }
    if extra:
        blocks.append(details("other run metadata", json.dumps(extra, indent=2, default=str), "json"))

    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(render_md(blocks))
    html_path.write_text(render_html(blocks, title))
    return md_path, html_path
