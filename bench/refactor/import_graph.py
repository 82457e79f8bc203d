"""The import graph between originscan's packages: which layer imports which, and where that runs upwards.

    .venv/bin/python bench/refactor/import_graph.py [ROOT]     (ROOT: a checkout; default this one)

Every `import` in scanner/ counts, wherever it stands: at the top, inside a function, under TYPE_CHECKING. A node is
a subpackage (scanner.sources, scanner.evidence, ...) or a top-level module (scanner.findings, scanner.cli, ...).
LAYERS orders them from the bottom up; an edge from a node to one in a higher layer is upward, and a cycle is any
strongly connected group of nodes. Prints the edges (with how many imports make each), the upward ones and the
cycles; `python -m` or a test can call `graph(root)` for the same data.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

# Bottom to top; nodes in one layer may import each other as long as that makes no cycle.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "atomic", "interrupt", "shards", "user_cache", "parsed_cache"),  # leaf helpers
    ("findings",),  # the finding: what checks produce and every report renders
    ("knowledge",),  # rules/*.yaml, loaded
    ("file_formats",),  # one table of weight and archive formats
    ("sources",),  # snapshots of a repo and its bytes
    ("policy",),  # the user's .originscan.yml
    ("provenance",),  # weights: fingerprints, comparison, the index, verdicts
    ("evidence",),  # facts read from a snapshot
    ("checks",),  # facts -> findings
    ("results", "watch_report"),  # what a scan of one target produced (findings and facts); what a watch found
    ("pipeline",),  # snapshot -> results
    ("attribution",),  # the NOTICE text a derivative must ship
    ("report",),  # results -> text, json, html, ...
    ("demo", "watch", "watch_probe", "ci"),  # consumers of the core
    ("cli", "cli_params"),  # the command line; its option values coerced without pydantic
)


@dataclass(frozen=True)
class Graph:
    edges: dict[tuple[str, str], int]  # (importer, imported) -> number of files of the importer that import it
    nodes: frozenset[str]
    private: tuple[tuple[str, str], ...] = ()  # (importing module, module._name): a private name borrowed

    def layer(self, node: str) -> int | None:
        return next((i for i, names in enumerate(LAYERS) if node in names), None)

    def upward(self) -> list[tuple[str, str]]:
        out = []
        for a, b in sorted(self.edges):
            la, lb = self.layer(a), self.layer(b)
            if la is not None and lb is not None and lb > la:
                out.append((a, b))
        return out

    def unlayered(self) -> list[str]:
        return sorted(n for n in self.nodes if self.layer(n) is None)

    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one node (Tarjan)."""
        succ: dict[str, list[str]] = defaultdict(list)
        for a, b in self.edges:
            succ[a].append(b)
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in sorted(succ[v]):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

        for v in sorted(self.nodes):
            if v not in index:
                visit(v)
        return sorted(found)


def node_of(module: str) -> str | None:
    """scanner.report.html_view -> report; scanner.findings -> findings; anything outside scanner -> None."""
    parts = module.split(".")
    if parts[0] != "scanner" or len(parts) < 2:
        return None
    return parts[1]


def imports_of(path: Path, module: str) -> list[str]:
    """Every module `path` imports (absolute names; relative imports resolved against `module`). A name imported
    from a module is listed as module.name too (`from scanner import watch` imports scanner.watch)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")[: -node.level] if not path.name == "__init__.py" else module.split(".")
                if path.name == "__init__.py" and node.level > 1:
                    package = module.split(".")[: -(node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names]  # `from scanner import watch` imports scanner.watch
    return out


def graph(root: Path) -> Graph:
    pkg = root / "scanner"
    packages = {p.name for p in pkg.iterdir() if p.is_dir() and any(p.glob("*.py"))}  # namespace packages too
    nodes = packages | {p.stem for p in pkg.glob("*.py") if p.stem != "__init__"}
    edges: dict[tuple[str, str], int] = defaultdict(int)
    private = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        module = ".".join(rel.parts)
        src = node_of(module)
        if src is None or src == "__init__":
            continue
        seen = set()
        for imported in imports_of(path, module):
            owner, _, name = imported.rpartition(".")
            if name.startswith("_") and not name.startswith("__") and owner.startswith("scanner") and owner != module:
                private.append((module, imported))
            dst = node_of(imported)
            if dst is None or dst == src or dst not in nodes:
                continue
            seen.add(dst)
        for dst in seen:
            edges[(src, dst)] += 1  # files of `src` that import `dst`
    return Graph(dict(edges), frozenset(nodes), tuple(sorted(set(private))))


def main() -> int:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    g = graph(root)
    print(f"import graph of {root}/scanner: {len(g.nodes)} nodes, {len(g.edges)} edges (importer -> imported: files)")
    by_src: dict[str, list[str]] = defaultdict(list)
    for (a, b), n in sorted(g.edges.items()):
        by_src[a].append(f"{b} ({n})")
    for layer in LAYERS:
        for a in layer:
            if a in g.nodes:
                print(f"  {a:13} -> {', '.join(by_src[a]) or '-'}")
    for a in g.unlayered():
        print(f"  {a:13} -> {', '.join(by_src[a]) or '-'}   [not in LAYERS]")
    up = g.upward()
    print(f"upward edges: {len(up)}")
    for a, b in up:
        print(f"  {a} -> {b} ({g.edges[(a, b)]} files)")
    cycles = g.cycles()
    print(f"cycles: {len(cycles)}")
    for c in cycles:
        print("  " + " <-> ".join(c))
    print(f"private names imported from another module: {len(g.private)}")
    for module, name in g.private:
        print(f"  {module} imports {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
