"""The import rule: a module imports only from below (no cycle, an acyclic core)."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.nodb

PACKAGE = Path(__file__).resolve().parent.parent / "cabinet"


def _module_name(path):
    """Name the module a file of the package defines (a package by its __init__)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name):
    """Return the module of ours a dotted name is, or the nearest one holding it."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module, path):
    """Every module of ours `module` imports, at the top or inside a function."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            # `from . import payments` names a module; `from .db import db` a name
            # of the module `base`.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("cabinet") else None
            if target and target != module:
                found.add(target)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _reachable(start):
    """Every module `start` imports, directly or through others."""
    seen, stack = set(), [start]
    while stack:
        for target in GRAPH[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _cycle():
    """Return one import cycle as a list of modules, or None."""
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[module] = "done"
        path.pop()
        return None

    for module in sorted(GRAPH):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_graph_sees_function_level_and_relative_imports():
    """The walker is not blind: it finds what payments and jobs really import."""
    assert "cabinet.payments.status" in GRAPH["cabinet.payments"]
    assert "cabinet.db" in GRAPH["cabinet.payments.status"]
    # cabinet.jobs builds the app inside a function, on first use.
    assert "cabinet" in GRAPH["cabinet.jobs"]


def test_no_module_of_the_package_imports_in_a_circle():
    """Following imports from any module never leads back to it."""
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "above",
    [
        "cabinet.autopay",
        "cabinet.billing",
        "cabinet.fiscal",
        "cabinet.status_check",
        "cabinet.refunds",
        "cabinet.reconcile",
        "cabinet.jobs",
        "cabinet.queueing",
        "cabinet.tasks",
        "cabinet.cron",
        "cabinet.console",
        "cabinet.subscriber",
        "cabinet.gateway",
        "cabinet.api",
        "cabinet.auth",
        "cabinet.ops",
        "cabinet.cli",
        "cabinet",
    ],
)
def test_the_payments_core_imports_nothing_above_it(above):
    """payments reaches none of the layers that build on it, even indirectly."""
    reached = {
        module
        for start in MODULES
        if start == "cabinet.payments" or start.startswith("cabinet.payments.")
        for module in _reachable(start) | {start}
    }
    inside = {m for m in reached if m == above or m.startswith(above + ".")}
    assert not (inside if above != "cabinet" else {"cabinet"} & reached)
