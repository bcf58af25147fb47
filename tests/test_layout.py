"""The house, read from the installed package's imports (an AST import graph, nothing run):
no import cycle among fitplan's modules, imports pointing one way between the packages, and the
tooling (oracle/, calibration/) imported by nothing in the product."""

from __future__ import annotations

import ast
from pathlib import Path

import fitplan

PACKAGE_ROOTS = {"fitplan": Path(fitplan.__file__).parent}
for _name in ("solver", "cli", "catalogs", "web"):
    _module = __import__(f"fitplan.{_name}", fromlist=["__file__"])
    PACKAGE_ROOTS[f"fitplan.{_name}"] = Path(_module.__file__).parent

TOOLING = ("fitplan.solver.oracle", "fitplan.solver.calibration")
# Which solver package may import which (the arrows of docs/architecture.md); every import not
# listed here points the wrong way.
MAY_IMPORT = {
    "specs": set(),
    "problem": {"specs"},
    "memory": {"problem", "specs"},
    "speed": {"memory", "problem", "specs"},
    "planner": {"memory", "speed", "problem", "specs"},
    "llamafactory": {"problem", "specs"},
    "oracle": {"memory", "problem", "specs"},
    "calibration": {"oracle", "memory", "speed", "problem", "specs"},
}
BASE_MODULES = {"fitplan.solver", "fitplan.solver.errors", "fitplan.solver.units"}


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGE_ROOTS.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if package == "fitplan" and len(parts) > 1:
                continue  # fitplan/ holds only the API module; the other packages map their own folders
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in known:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


MODULES = _modules()
GRAPH = {name: _imports(name, path, set(MODULES)) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (a package importing its own
    submodules from __init__ is not a cycle of the house)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def _solver_package(name: str) -> str | None:
    """`memory` for fitplan.solver.memory and its modules; None outside the solver's packages."""
    parts = name.split(".")
    if name in BASE_MODULES or len(parts) < 3 or parts[1] != "solver":
        return None
    return parts[2]


def test_the_graph_covers_every_package():
    assert {"fitplan.solver.planner.recommend", "fitplan.solver.memory.estimate", "fitplan.cli.main"} <= set(GRAPH)


def test_no_import_cycle_among_fitplans_modules():
    assert _cycles() == []


def test_nothing_in_the_product_imports_the_tooling():
    leaks = sorted(f"{name} -> {target}" for name, targets in GRAPH.items() for target in targets
                   if target.startswith(TOOLING) and not name.startswith(TOOLING)
                   and name != "fitplan.cli.trace")  # `fitplan trace` is the oracle's command
    assert leaks == []


def test_solver_packages_import_only_downwards():
    wrong = []
    for name, targets in GRAPH.items():
        here = _solver_package(name)
        if here is None:
            continue
        for target in targets:
            there = _solver_package(target)
            if there is None:
                if target not in BASE_MODULES:
                    wrong.append(f"{name} -> {target}")
            elif there != here and there not in MAY_IMPORT[here]:
                wrong.append(f"{name} -> {target}")
    assert wrong == []


def test_solver_keeps_only_a_handful_of_top_level_modules():
    top = sorted(p.name for p in PACKAGE_ROOTS["fitplan.solver"].glob("*.py") if p.name != "__init__.py")
    assert top == ["errors.py", "units.py"]


def test_every_package_says_its_one_job():
    for name, path in MODULES.items():
        if path.name == "__init__.py" and name.startswith("fitplan.solver."):
            assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no docstring"


def test_commands_are_registered_explicitly():
    source = MODULES["fitplan.cli.main"].read_text()
    assert "__import__" not in source and "import_module" not in source
