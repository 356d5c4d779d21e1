"""Draw robolearn's package import structure: docs/images/imports.png (and print the edges).

    .venv/bin/python docs/import_graph.py

Reads every module of robolearn/ with `ast` (module-level, function-local and TYPE_CHECKING imports alike),
folds the edges to top-level packages, and draws them floor by floor: a package sits on the floor given in
FLOORS, every arrow points from the importer to what it imports, and its label is the number of importing
modules. tests/test_imports.py asserts the same floors; this script only draws them.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "robolearn"
OUT = ROOT / "docs" / "images" / "imports.png"

# floor -> packages, bottom up; keep in step with tests/test_imports.py and docs/architecture.md
FLOORS: list[list[str]] = [
    ["utils", "config"],
    ["data", "envs", "encoders"],
    ["hardware", "policies", "pretrain"],
    ["collection", "eval"],
    ["workflows", "suite", "cli"],
]


def top_package(module: str) -> str | None:
    """`robolearn.data.writer` -> "data"; entry points (`robolearn.__main__`, `robolearn.pretrain.__main__`)
    count as the command line, which they are."""
    parts = module.split(".")
    if parts[0] != "robolearn" or len(parts) < 2:
        return None
    return "cli" if parts[-1] == "__main__" else parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every robolearn module `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = module_name(path).split(".")
    package = me if path.name == "__init__.py" else me[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("robolearn"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("robolearn"):
                found.add(base)
    return found


def package_edges() -> Counter[tuple[str, str]]:
    """(importer package, imported package) -> number of importing modules."""
    edges: Counter[tuple[str, str]] = Counter()
    for path in sorted(PKG.rglob("*.py")):
        src = top_package(module_name(path))
        for target in {top_package(m) for m in imported_modules(path)}:
            if src and target and target != src:
                edges[(src, target)] += 1
    for stage in cli_stages():  # imported by name at start-up (importlib), invisible to the walk above
        edges[("cli", stage)] += 1
    return edges


def cli_stages() -> list[str]:
    """The STAGES tuple of robolearn/cli.py, read without importing it."""
    for node in ast.walk(ast.parse((PKG / "cli.py").read_text())):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "STAGES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return []


def draw(edges: Counter[tuple[str, str]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos: dict[str, tuple[float, float]] = {}
    for y, floor in enumerate(FLOORS):
        for i, name in enumerate(floor):
            pos[name] = ((i + 0.5) * 6.0 / len(floor), y * 1.6)
    fig, ax = plt.subplots(figsize=(9, 7))
    for (a, b), n in sorted(edges.items()):
        if a not in pos or b not in pos:
            continue
        (x0, y0), (x1, y1) = pos[a], pos[b]
        lateral, ground = y0 == y1, y1 == 0
        color = "red" if y1 > y0 else "#2b6cb0" if lateral else "0.55"
        start = (x0 + (0.45 if x1 > x0 else -0.45), y0) if lateral else (x0, y0 - 0.22)
        end = (x1 - (0.45 if x1 > x0 else -0.45), y1) if lateral else (x1, y1 + 0.22)
        ax.annotate(
            "",
            xy=end,
            xytext=start,
            arrowprops=dict(
                arrowstyle="->",
                color=color,
                alpha=0.3 if ground else 0.9,
                lw=0.6 + 0.25 * min(n, 8),
                shrinkA=0,
                shrinkB=0,
                connectionstyle=f"arc3,rad={0.35 if lateral else 0.08}",
            ),
        )
        if not ground:
            ax.text(
                start[0] + 0.35 * (end[0] - start[0]),
                start[1] + 0.35 * (end[1] - start[1]),
                str(n),
                fontsize=7,
                color="0.3",
            )
    for name, (x, y) in pos.items():
        ax.text(
            x,
            y,
            name,
            ha="center",
            va="center",
            fontsize=11,
            bbox=dict(boxstyle="round,pad=0.4", fc="#e8f0fb", ec="#35587a"),
        )
    for y in range(len(FLOORS)):
        ax.text(-0.35, y * 1.6, f"floor {y}", ha="right", va="center", fontsize=9, color="0.35")
    ax.set_xlim(-1.3, 6.2)
    ax.set_ylim(-0.6, (len(FLOORS) - 1) * 1.6 + 0.6)
    ax.axis("off")
    ax.set_title(
        "robolearn: package imports (arrow: imports; number: importing modules; blue: same floor;\n"
        "faint: into floor 0, which every package may use; red would be an upward import)",
        fontsize=9,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    edges = package_edges()
    floor_of = {p: y for y, ps in enumerate(FLOORS) for p in ps}
    for (a, b), n in sorted(edges.items(), key=lambda e: (-floor_of.get(e[0][0], 9), e[0])):
        mark = "" if floor_of.get(b, -1) < floor_of.get(a, -1) else "   <- not downward"
        print(f"{a:>11} -> {b:<10} {n:3d}{mark}")
    draw(edges, OUT)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
