"""`robolearn lineage PATH`: the lineage graph of an artifact as text (default), JSON (--json) or an offline
HTML page with an SVG picture (--html OUT)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from robolearn.config import command, opt, positional
from robolearn.lineage.card import LineageError
from robolearn.lineage.graph import build_graph
from robolearn.lineage.render import to_json, to_text, write_html
from robolearn.utils import one_line


@dataclass
class LineageCommand:
    path: Path = positional(help="an artifact's folder (or its lineage.json)")
    html: Path | None = opt(None, help="also write an offline HTML page with the graph as SVG here")
    json: bool = opt(False, help="print the graph as JSON instead of a text tree")
    verify: bool = opt(True, help="hash every artifact's key files again and compare with its card's id")
    strict: bool = opt(False, help="exit 1 when an input changed, is missing or was modified after its card")


@command("lineage", "")
def lineage_cmd(cfg: LineageCommand) -> int:
    """Trace an artifact back to the data that made it: inputs, ids, commands, figures and what is unknown."""
    try:
        g = build_graph(cfg.path, verify=cfg.verify)
    except LineageError as e:
        print(f"robolearn lineage: {one_line(e)}", file=sys.stderr)
        return 2
    print(to_json(g) if cfg.json else to_text(g))
    if cfg.html is not None:
        out = write_html(g, cfg.html)
        print(f"wrote {out}", file=sys.stderr)
    return 1 if cfg.strict and g.problems else 0
