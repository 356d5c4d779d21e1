"""A lineage graph as text (an indented tree), JSON, or one offline HTML page with an inline SVG picture
(sources on the left, the artifact asked about on the right) and a transparency table (which fields each
artifact's card knows)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from robolearn.lineage.card import TRANSPARENCY, UNKNOWN
from robolearn.lineage.graph import Graph, Node
from robolearn.utils import write_text_atomic

MAX_FIGURES = 8


def _short(ident: str) -> str:
    return ident if ident == UNKNOWN else ident[:12]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) <= 4:
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, (dict, list)):
        return f"({len(v)} values)"
    return str(v)


def figures_line(figures: dict[str, Any]) -> str:
    items = [f"{k}={_fmt(v)}" for k, v in list(figures.items())[:MAX_FIGURES]]
    more = len(figures) - MAX_FIGURES
    return " ".join(items) + (f" (+{more} more)" if more > 0 else "")


def command_line(card: dict[str, Any]) -> str:
    argv = list(card.get("command") or [])
    if argv and Path(argv[0]).name in ("cli.py", "__main__.py", "robolearn", "-c", "-m"):
        argv = ["robolearn", *argv[1:]]
    return " ".join(argv)


def known_line(node: Node) -> str:
    return " ".join(f"{k} {'yes' if v else 'NO'}," for k, v in node.known.items()).rstrip(",")


def to_text(g: Graph) -> str:
    """The graph as a tree from the asked artifact down to its sources; an artifact used twice is shown once."""
    lines: list[str] = []
    shown: set[str] = set()

    def emit(key: str, prefix: str, branch: str, note: str) -> None:
        n = g.nodes[key]
        lines.append(f"{prefix}{branch}{n.kind} {_short(n.id)}  {key}{note}")
        child_prefix = "" if not branch else prefix + ("    " if branch == "└── " else "│   ")
        if key in shown:
            lines[-1] += "  (shown above)"
            return
        shown.add(key)
        card = n.card or {}
        detail = []
        if n.card is not None:
            detail.append(f"command: {command_line(card) or '(unknown)'}")
            if card.get("figures"):
                detail.append(f"figures: {figures_line(card['figures'])}")
            detail.append(f"created: {card.get('created', UNKNOWN)}")
        detail.append(f"known: {known_line(n)}")
        detail += [f"unknown: {u}" for u in n.unknowns]
        detail += [f"PROBLEM: {p}" for p in n.problems]
        edges = g.inputs_of(key)
        bar = "│ " if edges else "  "
        lines.extend(f"{child_prefix}{bar} {d}" for d in detail)
        for i, e in enumerate(edges):
            last = i == len(edges) - 1
            mark = {
                "changed": f"  [CHANGED SINCE: {e.note}]",
                "missing": "  [MISSING: not on disk]",
                "by name": "  (a name, not a file)",
            }.get(e.status, "")
            emit(e.input, child_prefix, "└── " if last else "├── ", mark)

    emit(g.root, "", "", "")
    problems = g.problems
    lines.append("")
    lines.append(f"{len(g.nodes)} artifacts, {len(g.edges)} links, {len(problems)} problems")
    lines += [f"  problem: {p}" for p in problems]
    return "\n".join(lines)


def to_json(g: Graph) -> str:
    return json.dumps(g.to_dict(), indent=1, default=str)


# ---- HTML ----------------------------------------------------------------------------------------------
COLORS = {
    "episodes": "#cfe8cf",
    "shards": "#d8e4f5",
    "encoder": "#f5e0c8",
    "policy": "#f2d0d8",
    "eval-run": "#e4d6f2",
    "report": "#eeeeee",
    "suite-dataset": "#cfe8cf",
    "suite-cell": "#e4d6f2",
    "leaderboard": "#fff2b3",
    "demo": "#fff2b3",
}
BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 210, 58, 70, 22, 16


def _layout(g: Graph) -> dict[str, tuple[int, int]]:
    """(column, row) per node: column = how far from the sources (longest path), so the asked artifact is the
    rightmost and raw data the leftmost."""
    depth: dict[str, int] = {g.root: 0}
    order = [g.root]
    for key in order:  # breadth first, then relax to the longest path (the graph is acyclic)
        for e in g.inputs_of(key):
            if e.input not in depth:
                order.append(e.input)
            depth[e.input] = max(depth.get(e.input, 0), depth[key] + 1)
    for _ in range(len(g.nodes)):
        changed = False
        for e in g.edges:
            if depth[e.input] < depth[e.consumer] + 1:
                depth[e.input], changed = depth[e.consumer] + 1, True
        if not changed:
            break
    top = max(depth.values())
    rows: dict[int, int] = {}
    pos = {}
    for key in order:
        col = top - depth[key]
        pos[key] = (col, rows.get(col, 0))
        rows[col] = rows.get(col, 0) + 1
    return pos


def to_svg(g: Graph, anchors: dict[str, str]) -> str:
    pos = _layout(g)
    width = PAD * 2 + (max(c for c, _ in pos.values()) + 1) * (BOX_W + GAP_X) - GAP_X
    height = PAD * 2 + (max(r for _, r in pos.values()) + 1) * (BOX_H + GAP_Y) - GAP_Y

    def xy(key: str) -> tuple[int, int]:
        c, r = pos[key]
        return PAD + c * (BOX_W + GAP_X), PAD + r * (BOX_H + GAP_Y)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for e in g.edges:
        (x0, y0), (x1, y1) = xy(e.input), xy(e.consumer)
        bad = e.status in ("changed", "missing")
        style = 'stroke="#c0392b" stroke-width="2" stroke-dasharray="6 3"' if bad else 'stroke="#555"'
        sx, sy, ex, ey = x0 + BOX_W, y0 + BOX_H // 2, x1, y1 + BOX_H // 2
        mid = (sx + ex) // 2
        title = html.escape(f"{e.status}: {e.note}" if e.note else e.status)
        parts.append(
            f'<path d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}" fill="none" {style} '
            f'marker-end="url(#arrow)"><title>{title}</title></path>'
        )
    for key, n in g.nodes.items():
        x, y = xy(key)
        fill = COLORS.get(n.kind, "#f4f4f4") if n.card is not None else "#ffffff"
        dash = "" if n.card is not None else ' stroke-dasharray="4 3"'
        stroke = "#c0392b" if n.problems or not n.exists else "#333"
        known = sum(n.known.values())
        label = Path(key).name or key
        parts.append(
            f'<a href="#{anchors[key]}"><g><title>{html.escape(key)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" stroke="{stroke}"{dash}/>'
            f'<text x="{x + 8}" y="{y + 17}" font-weight="bold">{html.escape(n.kind)}</text>'
            f'<text x="{x + BOX_W - 8}" y="{y + 17}" text-anchor="end" fill="#555">{known}/{len(n.known)} known'
            f"</text>"
            f'<text x="{x + 8}" y="{y + 34}">{html.escape(label[:30])}</text>'
            f'<text x="{x + 8}" y="{y + 50}" fill="#555" font-family="monospace">{html.escape(_short(n.id))}'
            f"{'' if n.exists else ' (not on disk)'}</text></g></a>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(g: Graph, title: str = "") -> str:
    anchors = {k: f"a{i}" for i, k in enumerate(g.nodes)}
    e = html.escape
    title = title or f"Lineage of {Path(g.root).name}"
    head = "".join(f"<th>{e(f)}</th>" for f in TRANSPARENCY)
    rows = []
    for key, n in g.nodes.items():
        cells = "".join(f'<td class="{"y" if v else "n"}">{"yes" if v else "no"}</td>' for v in n.known.values())
        rows.append(
            f'<tr><td><a href="#{anchors[key]}">{e(n.kind)}</a></td><td><code>{e(_short(n.id))}</code></td>'
            f"<td>{e(key)}</td>{cells}<td>{sum(n.known.values())}/{len(n.known)}</td></tr>"
        )
    details = []
    for key, n in g.nodes.items():
        card = n.card or {}
        items = [f"<li>path: <code>{e(key)}</code>{'' if n.exists else ' <b>(not on disk)</b>'}</li>"]
        items.append(f"<li>id: <code>{e(n.id)}</code></li>")
        if n.card is not None:
            items.append(f"<li>command: <code>{e(command_line(card))}</code></li>")
            items.append(f"<li>created: {e(str(card.get('created')))}</li>")
            items.append(f"<li>versions: {e(', '.join(f'{k} {v}' for k, v in card.get('versions', {}).items()))}</li>")
        for edge in g.inputs_of(key):
            flag = f" <b class='bad'>{e(edge.note)}</b>" if edge.status in ("changed", "missing") else ""
            items.append(
                f'<li>input: <a href="#{anchors[edge.input]}">{e(g.nodes[edge.input].kind)} '
                f"{e(Path(edge.input).name)}</a> ({e(edge.status)}){flag}</li>"
            )
        items += [f"<li class='bad'>problem: {e(p)}</li>" for p in n.problems]
        items += [f"<li>unknown: {e(u)}</li>" for u in n.unknowns]
        figs = ""
        if card.get("figures"):
            figs = "<table>" + "".join(
                f"<tr><td>{e(str(k))}</td><td><code>{e(_fmt(v))}</code></td></tr>" for k, v in card["figures"].items()
            )
            figs += "</table>"
        cfg = ""
        if card.get("config") is not None:
            cfg = f"<details><summary>config</summary><pre>{e(json.dumps(card['config'], indent=1))}</pre></details>"
        details.append(
            f'<section id="{anchors[key]}"><h3>{e(n.kind)} {e(Path(key).name)}</h3><ul>{"".join(items)}</ul>'
            f"{figs}{cfg}</section>"
        )
    problems = "".join(f"<li class='bad'>{e(p)}</li>" for p in g.problems) or "<li>none</li>"
    style = (
        "body{font-family:sans-serif;margin:24px;max-width:1400px}table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}td.y{background:#dff0d8}"
        "td.n{background:#f8d7da}.bad{color:#c0392b}section{border-top:1px solid #ddd;margin-top:12px}"
        "pre{background:#f6f6f6;padding:8px;overflow:auto;max-height:320px}.pic{overflow:auto}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{style}</style>"
        f"</head><body><h1>{e(title)}</h1><p>{len(g.nodes)} artifacts, {len(g.edges)} links. Arrows go from "
        "what was used to what it made; dashed boxes have no lineage card (unknown), red marks an input that "
        "changed since it was used, is missing, or was modified after its card.</p>"
        f"<div class='pic'>{to_svg(g, anchors)}</div><h2>Problems</h2><ul>{problems}</ul>"
        f"<h2>Transparency: what each card knows</h2><table><tr><th>kind</th><th>id</th><th>path</th>{head}"
        f"<th>known</th></tr>{''.join(rows)}</table><h2>Artifacts</h2>{''.join(details)}</body></html>\n"
    )


def write_html(g: Graph, out: str | Path, title: str = "") -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(out, to_html(g, title))
