"""Eval reports: `write_report(RUN)` -> RUN/report.md + RUN/report.html (+ RUN/plots/*.png) from an eval run
folder's results.json (and config.json), and `compare_report(RUNS, OUT, title)` putting several runs side by
side. HTML is self-contained: inline CSS, no scripts, no network; plots are PNG files next to it, referenced
relatively; videos are `<video src="videos/...mp4">` of the run folder.

Modules: `document` (the block model rendered as Markdown and HTML, formatting, relative links), `plots`,
`run` (the run report), `compare` (the comparison report).
"""

from __future__ import annotations

from robolearn.eval.metrics import ResultsError
from robolearn.eval.report.compare import compare_report
from robolearn.eval.report.document import (
    Block,
    Cell,
    Link,
    Raw,
    details,
    fmt_rate,
    fmt_seeds,
    fmt_steps,
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
from robolearn.eval.report.plots import PLOTS_DIR, grouped_bars, plot_steps_histogram, plot_success_rates
from robolearn.eval.report.run import write_report

__all__ = [
    "write_report",
    "compare_report",
    "fmt_rate",
    "fmt_seeds",
    "fmt_steps",
    "markdown_to_html",
    "ResultsError",
    "Block",
    "Cell",
    "Link",
    "Raw",
    "h",
    "para",
    "table",
    "image",
    "details",
    "raw",
    "render_md",
    "render_html",
    "rel_link",
    "PLOTS_DIR",
    "plot_success_rates",
    "grouped_bars",
    "plot_steps_histogram",
]
