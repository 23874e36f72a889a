"""The package's shape: the declared stack of bench's parts (`bench.LAYERS`: every import points down),
no import cycle among bench's modules, no lazy imports of bench modules, and the entry points every
README command uses."""

from __future__ import annotations

import ast
import importlib

import pytest

import bench
from bench import LAYERS, PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "bench"
ENTRY_POINTS = ("sweep", "run", "evaluate", "check", "predict", "plot", "report", "answer", "verdict", "timecheck")
DYNAMIC_CALLS = {"import_module", "__import__"}  # importlib.import_module("bench.x") is an import all the same
# The registry imports the strategy modules it discovers by name: the one deliberate import in a function.
DYNAMIC = {"bench.strategies.registry"}


def module_name(path) -> str:
    parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def dynamic_target(node) -> str | None:
    """The module a call `importlib.import_module("bench.x")` / `import_module(...)` / `__import__(...)` names
    with a string literal; None for any other node (a name computed at run time cannot be read here)."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
    name = node.args[0].value
    return name if called in DYNAMIC_CALLS and isinstance(name, str) else None


def bench_imports(path, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(bench module, line, nested) of every import in a file: nested is inside a function (or any block),
    relative imports are resolved, and `from bench.x import y` names bench.x and, where y is a module, bench.x.y.
    A dynamic import of a literal name (`importlib.import_module("bench.run")`) counts as a nested import."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        elif (target := dynamic_target(node)) is not None:
            found += [(target, node.lineno, True)] if target == "bench" or target.startswith("bench.") else []
            continue
        else:
            continue
        found += [(t, node.lineno, node.col_offset != 0) for t in targets if t == "bench" or t.startswith("bench.")]
    return found


def modules() -> dict[str, object]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def dynamic_imports(path) -> set[str]:
    """The bench modules a file imports by a literal name at run time (`importlib.import_module("bench.run")`)."""
    return {t for node in ast.walk(ast.parse(path.read_text())) if (t := dynamic_target(node)) and t.startswith("bench")}


def graph() -> dict[str, set[str]]:
    """Module-level imports and dynamic imports of a literal name: a dependency whatever the syntax."""
    paths = modules()
    return {name: {t for t, _, nested in bench_imports(path, set(paths)) if not nested and t in paths and t != name}
            | {t for t in dynamic_imports(path) if t in paths and t != name} for name, path in paths.items()}  # fmt: skip


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
    paths = modules()
    for name, path in paths.items():
        nested = sorted({t for t, _, inside in bench_imports(path, set(paths)) if inside})
        if nested and name not in DYNAMIC:
            lazy[name] = nested
    assert not lazy, f"imports inside functions hide a dependency (or a cycle): {lazy}"


def test_entry_points_are_thin_modules_with_a_main():
    for name in ENTRY_POINTS:
        module = importlib.import_module(f"bench.{name}")
        assert callable(module.main), name
        assert len((PACKAGE / f"{name}.py").read_text().splitlines()) < 330, f"bench/{name}.py is no longer thin"


# ---------------------------------------------------------------- the stack of parts (bench.LAYERS)


def part_of(module: str) -> str:
    """The top-level part a module belongs to: `bench.data.collate` -> `data`; the package root is `bench`."""
    return module.split(".")[1] if "." in module else module


def part_imports() -> dict[tuple[str, str], list[str]]:
    """{(importing part, imported part): ["bench.x.y:LINE -> bench.z", ...]} across parts."""
    paths = modules()
    edges: dict[tuple[str, str], list[str]] = {}
    for name, path in sorted(paths.items()):
        for target, line, _ in bench_imports(path, set(paths)):
            if part_of(target) != part_of(name):
                sites = edges.setdefault((part_of(name), part_of(target)), [])
                if (site := f"{name}:{line} -> {target}") not in sites:
                    sites.append(site)
    return edges


def layer_of() -> dict[str, int]:
    """Each declared part's line in the stack, counted from the top."""
    return {part: i for i, layer in enumerate(LAYERS) for part in layer}


def test_every_part_of_bench_has_one_line_in_the_stack():
    declared = [part for layer in LAYERS for part in layer]
    assert len(declared) == len(set(declared)), f"a part is on two lines of bench.LAYERS: {declared}"
    present = {part_of(name) for name in modules()}
    missing, stale = sorted(present - set(declared)), sorted(set(declared) - present)
    assert not missing, f"bench.LAYERS has no line for {missing}: add each where its imports allow (bench/__init__.py)"
    assert not stale, f"bench.LAYERS names parts bench/ no longer has: {stale}"


def test_imports_point_down_the_stack():
    layers = layer_of()
    wrong = [f"{importer} ({'up' if layers[imported] < layers[importer] else 'sideways'} to {imported}): {', '.join(sites)}"
             for (importer, imported), sites in sorted(part_imports().items())
             if importer in layers and imported in layers and layers[imported] <= layers[importer]]  # fmt: skip
    assert not wrong, "imports against bench.LAYERS (a part imports only parts on lines below it):\n" + "\n".join(wrong)


def test_no_two_parts_depend_on_each_other():
    """Directly or through other parts: the graph of parts has no cycle, declared in the stack or not."""
    edges: dict[str, set[str]] = {}
    for importer, imported in part_imports():
        edges.setdefault(importer, set()).add(imported)

    def reaches(start: str, goal: str) -> list[str] | None:
        trail, seen = {start: [start]}, {start}
        frontier = [start]
        while frontier:
            node = frontier.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == goal:
                    return trail[node] + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    trail[nxt] = trail[node] + [nxt]
                    frontier.append(nxt)
        return None

    cycles = set()
    for a in sorted(edges):
        for b in sorted(edges[a]):
            if path := reaches(b, a):  # a -> b -> ... -> a
                loop = [a] + path[:-1]
                start = loop.index(min(loop))
                cycles.add(" -> ".join(loop[start:] + loop[:start] + [min(loop)]))
    assert not cycles, "parts of bench that depend on each other:\n" + "\n".join(sorted(cycles))


def test_the_package_docstring_draws_the_declared_stack():
    lines = [line.strip() for line in bench.__doc__.splitlines()]
    drawn = [next((i for i, line in enumerate(lines) if line.startswith(", ".join(layer) + " ")), None) for layer in LAYERS]
    assert None not in drawn and drawn == sorted(drawn), "bench/__init__.py's diagram must draw LAYERS, one line each, top first"
