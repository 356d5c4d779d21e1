"""The lineage graph of an artifact: its card, its inputs' cards, theirs, ... down to data nobody carded.

`build_graph(path)` walks the inputs recursively (each artifact once, however many use it), refuses cycles,
and checks every edge: an input whose card now has another id than the one its consumer recorded "changed
since" the consumer was made; with `verify`, every artifact's key files are hashed again and compared with
its own card's id ("modified after its card"). Nothing is invented: an input without a card is a node with
unknown id, and the kind its consumer recorded (an LM folder: `lm`) or unknown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robolearn.lineage.card import (
    CARD_NAME,
    FINGERPRINT,
    UNKNOWN,
    LineageError,
    artifact_folder,
    find_card,
    fingerprint,
    read_card,
    resolve_input,
    transparency,
)


@dataclass
class Node:
    key: str  # the artifact's folder (resolved), or the recorded path of an input that is gone
    kind: str = UNKNOWN
    id: str = UNKNOWN
    card: dict[str, Any] | None = None
    exists: bool = True
    problems: list[str] = field(default_factory=list)
    known: dict[str, bool] = field(default_factory=dict)  # transparency fields

    @property
    def unknowns(self) -> list[str]:
        if self.card is None:
            return ["no lineage card: what made it, how and from what are unknown"]
        return list(self.card.get("unknowns") or [])


@dataclass
class Edge:
    consumer: str  # node key
    input: str  # node key
    recorded_id: str
    status: str  # ok | changed | missing | no card | unknown (not recorded) | by name (not a file)
    note: str = ""


@dataclass
class Graph:
    root: str
    nodes: dict[str, Node]
    edges: list[Edge]

    @property
    def problems(self) -> list[str]:
        out = [f"{k}: {p}" for k, n in self.nodes.items() for p in n.problems]
        return out + [f"{e.input}: {e.note}" for e in self.edges if e.status in ("changed", "missing")]

    def inputs_of(self, key: str) -> list[Edge]:
        return [e for e in self.edges if e.consumer == key]

    def to_dict(self) -> dict[str, Any]:
        nodes = {k: {**asdict(n), "unknowns": n.unknowns} for k, n in self.nodes.items()}
        return {"root": self.root, "nodes": nodes, "edges": [asdict(e) for e in self.edges], "problems": self.problems}


def _node(folder: Path, verify: bool) -> Node:
    key = str(folder.resolve())
    card_file = find_card(folder)
    if card_file is None:
        return Node(key, known=transparency(None))
    card = read_card(card_file)
    node = Node(key, kind=card["kind"], id=card["id"], card=card, known=transparency(card))
    method = card.get("id_method") or {}
    if verify and method.get("method") == FINGERPRINT:
        now, _ = fingerprint(folder, method.get("files") or ["**/*"])
        if now != card["id"]:
            node.problems.append(
                f"modified after its card was written: card id {card['id'][:12]}, its key files now hash to "
                f"{now[:12]} ({method.get('files')})"
            )
    elif verify:
        node.problems.append(f"id method {method.get('method')!r} unknown to this robolearn: not verified")
    return node


def build_graph(path: str | Path, verify: bool = True, max_depth: int = 64) -> Graph:
    """The graph from the artifact at `path` (a folder with lineage.json, or its card file) down its inputs.
    Raises LineageError when `path` has no card, a card is unreadable, or the inputs make a cycle."""
    start = Path(path)
    if start.name == CARD_NAME:
        start = start.parent
    if not start.exists():
        raise LineageError(f"{start}: does not exist")
    if find_card(start) is None:
        raise LineageError(f"{start}: no {CARD_NAME} here (the artifact has no lineage card)")
    root = artifact_folder(start)
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    drawn: set[tuple[str, str, str]] = set()  # (consumer, input, recorded id) of the edges in `edges`

    def visit(folder: Path, trail: list[str]) -> str:
        key = str(folder.resolve())
        if key in trail:
            raise LineageError(f"{folder / CARD_NAME}: its inputs make a cycle ({' -> '.join([*trail, key])})")
        if key in nodes:
            return key
        if len(trail) >= max_depth:
            raise LineageError(f"{folder}: lineage deeper than {max_depth} artifacts (a cycle through copies?)")
        node = nodes[key] = _node(folder, verify)
        for entry in (node.card or {}).get("inputs", []):
            target = resolve_input(folder, entry)
            if target is None:
                missing = nodes.setdefault(entry["path"], Node(entry["path"], kind=entry["kind"], exists=False))
                missing.known = transparency(None)
                if entry.get("exists", True):
                    edges.append(Edge(key, missing.key, entry["id"], "missing", "missing: the input is not on disk"))
                else:
                    edges.append(Edge(key, missing.key, entry["id"], "by name", "not a file when it was used"))
                continue
            child = visit(artifact_folder(target), [*trail, key])
            if nodes[child].card is None and nodes[child].kind == UNKNOWN:
                nodes[child].kind = entry["kind"]  # what its consumer recorded it as (an LM folder, say)
            if (key, child, entry["id"]) not in drawn:  # a corpus's videos/ and labels/: one artifact, one edge
                drawn.add((key, child, entry["id"]))
                edges.append(_edge(key, nodes[child], entry))
        return key

    visit(root, [])
    return Graph(str(root.resolve()), nodes, edges)


def _edge(consumer: str, node: Node, entry: dict[str, Any]) -> Edge:
    rec = entry["id"]
    if node.card is None:
        status = "no card" if rec == UNKNOWN else "changed"
        note = "" if rec == UNKNOWN else f"changed since it was used: recorded id {rec[:12]}, now it has no card"
        return Edge(consumer, node.key, rec, status, note)
    if rec == UNKNOWN:
        return Edge(consumer, node.key, rec, "unknown", "its card was written after it was used: id not recorded")
    if rec != node.id:
        note = f"changed since {Path(consumer).name} was made: recorded id {rec[:12]}, its card now says {node.id[:12]}"
        return Edge(consumer, node.key, rec, "changed", note)
    return Edge(consumer, node.key, rec, "ok")
