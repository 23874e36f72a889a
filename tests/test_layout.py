"""The package's shape: no import cycle among bench's modules, no lazy imports of bench modules, and the
entry points every README command uses."""

from __future__ import annotations

import ast
import importlib

import pytest

from bench import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "bench"
ENTRY_POINTS = ("sweep", "run", "evaluate", "check", "predict", "plot", "report")
# The registry imports the strategy modules it discovers by name: the one deliberate import in a function.
DYNAMIC = {"bench.strategies.registry"}


def module_name(path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def bench_imports(tree: ast.AST, module: str) -> tuple[set[str], set[str]]:
    """(modules imported at module level, modules imported inside functions), bench modules only."""
    top, nested = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module] if node.level == 0 else []
            if node.module and names[0] and names[0].startswith("bench"):
                names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found = {n for n in names if n and n.startswith("bench")}
        (top if node.col_offset == 0 else nested).update(found)
    return top, nested


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        top, _ = bench_imports(ast.parse(path.read_text()), name)
        edges[name] = {m for m in top if m in modules and m != name}
    return edges


def test_no_import_cycle_in_bench():
    edges = graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def test_no_lazy_imports_of_bench_modules():
    lazy = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        _, nested = bench_imports(ast.parse(path.read_text()), name)
        if nested and name not in DYNAMIC:
            lazy[name] = sorted(nested)
    assert not lazy, f"imports inside functions hide a dependency (or a cycle): {lazy}"


def test_entry_points_are_thin_modules_with_a_main():
    for name in ENTRY_POINTS:
        module = importlib.import_module(f"bench.{name}")
        assert callable(module.main), name
        assert len((PACKAGE / f"{name}.py").read_text().splitlines()) < 330, f"bench/{name}.py is no longer thin"
