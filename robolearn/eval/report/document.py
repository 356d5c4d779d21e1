"""The report document model: a list of Blocks (headings, paragraphs, tables, images, details, raw) rendered both
as Markdown (`render_md`) and as self-contained HTML (`render_html`: inline CSS, no scripts, no network), so
the two files always say the same; `markdown_to_html` for free-form sections; number formatting and relative
links shared by the run report, the comparison and the leaderboard.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


Cell = str | Link | Raw | list


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
            lines = ["| " + " | ".join(_cell_md(x) for x in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
            lines += ["| " + " | ".join(_cell_md(x) for x in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif b.kind == "img":
            src, alt, cap = b.args
            out.append(f"![{alt}]({src.replace(' ', '%20')})" + (f"\n\n*{cap}*" if cap else ""))
        elif b.kind == "details":
            summary, text, lang = b.args
            out.append(
                f"<details><summary>{html.escape(summary)}</summary>\n\n```{lang}\n{text.rstrip()}\n```\n\n</details>"
            )
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
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
    ]
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
                t.append(
                    "<tr>"
                    + "".join(
                        f"<td{' class=num' if i >= numeric_from and numeric_from >= 0 else ''}>{_cell_html(x)}</td>"
                        for i, x in enumerate(r)
                    )
                    + "</tr>"
                )
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
    """Markdown -> HTML for free-form report sections, with markdown-it-py (CommonMark + pipe tables). Raw HTML
    inside the Markdown is escaped, not passed through, and links with unsafe schemes (javascript: and the like)
    are not made links. Headings sit two levels below the section's own (`#` -> h3, capped at h6), images get
    the report's `plot` class, code blocks are a plain `<pre>`. A body that starts with `<` is the caller's
    HTML and is returned as it is (sections come from the program that builds the report, not from readers)."""
    if text.lstrip().startswith("<"):
        return text
    from markdown_it import MarkdownIt
    from markdown_it.common.utils import escapeHtml

    md = MarkdownIt("commonmark", {"html": False, "xhtmlOut": False}).enable("table")

    def pre(_renderer, tokens, idx, _options, _env) -> str:
        code = tokens[idx].content.rstrip("\n")
        return f"<pre>{escapeHtml(code)}</pre>\n"

    md.add_render_rule("fence", pre)
    md.add_render_rule("code_block", pre)
    tokens = md.parse(text)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(int(t.tag[1]) + 2, 6)}"  # nested below the section's own heading
        for child in t.children or ():
            if child.type == "image":
                child.attrSet("class", "plot")
    return md.renderer.render(tokens, md.options, {}).rstrip("\n")


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


def rel_link(target: Path, start: Path) -> str:
    """`target` relative to the folder `start`, as a POSIX path for an href (both resolved first)."""
    return Path(os.path.relpath(Path(target).resolve(), Path(start).resolve())).as_posix()
