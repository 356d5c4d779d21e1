"""Lineage and transparency cards: every artifact (episode dataset, clip shards, encoder checkpoint, policy,
evaluation run, suite dataset and cell, leaderboard, demo run) writes `lineage.json` into its folder with
`write_card`; `build_graph` walks a card's inputs down to the raw data and `render` prints the graph as text,
JSON or an HTML page with an SVG picture (`robolearn lineage PATH`).

Floor 0: imports nothing of robolearn but utils and config, so every stage can write cards.
Modules: `card` (the card, ids, write/read), `graph` (walking, checks), `render` (text, JSON, HTML/SVG),
`commands` (the CLI).
"""

from robolearn.lineage.card import (
    CARD_NAME,
    FINGERPRINT,
    TRANSPARENCY,
    UNKNOWN,
    LineageError,
    file_digest,
    find_card,
    fingerprint,
    owner,
    read_card,
    transparency,
    versions,
    write_card,
)
from robolearn.lineage.graph import Edge, Graph, Node, build_graph
from robolearn.lineage.render import to_html, to_json, to_text, write_html

__all__ = [
    "CARD_NAME",
    "FINGERPRINT",
    "TRANSPARENCY",
    "UNKNOWN",
    "Edge",
    "Graph",
    "LineageError",
    "Node",
    "build_graph",
    "file_digest",
    "find_card",
    "fingerprint",
    "owner",
    "read_card",
    "to_html",
    "to_json",
    "to_text",
    "transparency",
    "versions",
    "write_card",
    "write_html",
]
