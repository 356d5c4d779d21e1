"""The import graph of robolearn/, read from the source with `ast`: every `import` / `from ... import` of a
robolearn module (module level, function-local and TYPE_CHECKING ones alike), one node per module. It must
have no cycles (between packages or inside one), and imports between top-level packages must point down the
floors:

    utils, config, lineage (0) < data, envs, encoders (1) < hardware, policies, pretrain (2) < collection, eval (3)
    < workflows, cli (4)

A package may import a peer on its own floor only where ALLOWED_LATERAL lists it. Imports made by name at run
time (cli's STAGES, pretrain's lazy exports, `importlib.import_module` with a computed name) are not in the
graph; `importlib.import_module("robolearn.x")` with a literal name is.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "robolearn"

FLOORS = {
    "utils": 0,
    "config": 0,
    "lineage": 0,
    "data": 1,
    "envs": 1,
    "encoders": 1,
    "hardware": 2,
    "policies": 2,
    "pretrain": 2,
    "collection": 3,
    "eval": 3,
    "workflows": 4,
    "suite": 4,
    "cli": 4,
}
ROOT_FLOOR = 0  # robolearn/__init__.py: the version, nothing else
ENTRY_FLOOR = 4  # `__main__` modules (`python -m robolearn`, `python -m robolearn.pretrain`) are entry points

# (importer, imported) top-level packages on the same floor, and why.
ALLOWED_LATERAL = {
    ("config", "utils"): "save_config writes through utils' atomic writes",
    ("lineage", "utils"): "cards are written through utils' atomic writes",
    ("lineage", "config"): "a card saves its artifact's dataclass config; its CLI is a @command",
    ("eval", "collection"): "robot rollouts (eval.real) run on collection's station, robots, cameras and devices",
    ("workflows", "cli"): "the demo drives the stages through the CLI's main()",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """module -> the robolearn modules it imports (names resolved to the longest existing module)."""
    files = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}

    def resolve(name: str) -> str:
        while name not in files and "." in name:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        out: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                out |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == "robolearn"}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "robolearn":
                    continue
                for a in node.names:  # `from pkg import submodule` imports the submodule
                    out.add(f"{source}.{a.name}" if f"{source}.{a.name}" in files else resolve(source))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).split(".")[0] == "robolearn"
            ):
                out.add(resolve(str(node.args[0].value)))
        out.discard(mod)
        graph[mod] = out
    return graph


def _top(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def _floor(mod: str) -> int:
    if mod.split(".")[-1] == "__main__":
        return ENTRY_FLOOR
    return ROOT_FLOOR if mod == "robolearn" else FLOORS[_top(mod)]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_graph_is_read():
    graph = import_graph()
    assert "robolearn.cli" in graph and "robolearn.envs.household" in graph
    assert "robolearn.envs.tasks" in graph["robolearn.envs.household"]
    assert "robolearn.eval.real" in graph["robolearn.eval.commands"]  # `from robolearn.eval import real`


def test_every_top_level_package_has_a_floor():
    tops = {_top(m) for m in import_graph()} - {"", "__main__"}
    assert not tops - set(FLOORS), f"add these to FLOORS in {__file__}: {sorted(tops - set(FLOORS))}"


def test_root_package_imports_nothing_of_robolearn():
    assert import_graph()["robolearn"] == set()


def test_nothing_imports_an_entry_point():
    bad = [(m, t) for m, targets in import_graph().items() for t in targets if t.split(".")[-1] == "__main__"]
    assert not bad, bad


def test_imports_point_down_the_floors():
    bad = []
    for mod, targets in import_graph().items():
        for t in targets:
            a, b = _top(mod), _top(t)
            if a == b or t == "robolearn":
                continue
            fa, fb = _floor(mod), _floor(t)
            if fb > fa or (fb == fa and (a, b) not in ALLOWED_LATERAL and mod.split(".")[-1] != "__main__"):
                bad.append(f"{mod} (floor {fa}) imports {t} (floor {fb})")
    assert not bad, "\n".join(bad)


def test_allowed_lateral_imports_are_used():
    used = {(_top(m), _top(t)) for m, targets in import_graph().items() for t in targets}
    present = {_top(m) for m in import_graph()}
    stale = [k for k in ALLOWED_LATERAL if k not in used and set(k) <= present]
    assert not stale, f"no longer needed, remove from ALLOWED_LATERAL: {stale}"


def test_no_import_cycles_between_top_level_packages():
    graph: dict[str, set[str]] = {}
    for mod, targets in import_graph().items():
        graph.setdefault(_top(mod), set()).update(_top(t) for t in targets if _top(t) != _top(mod))
    assert not _cycles(graph), _cycles(graph)


def test_no_import_cycles_between_modules():
    """Also inside a package (e.g. envs.household -> envs.tasks -> envs.tasks.base -> envs.household)."""
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
