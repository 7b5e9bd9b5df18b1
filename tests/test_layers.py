"""Layers run one way, one folder each: the core (``dgp``: data, models, metrics, federated
training and the plugin contracts) imports no plugin, the plugins (``defenses``,
``attacks``) build on the core, the jobs (``jobs``) wire plugins together, and the report
reads CSVs and the registries' metadata. Every import counts, including those inside
functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

# The folders each folder may import (first-party modules only).
ALLOWED = {
    "dgp": {"dgp"},
    "defenses": {"dgp", "defenses"},
    "attacks": {"dgp", "attacks"},
    "jobs": {"dgp", "defenses", "attacks", "jobs"},
    "report": {"dgp", "defenses", "attacks", "report"},  # registries' names and metadata
}
FIRST_PARTY = tuple(ALLOWED)


def layer(module: str) -> str:
    return module.split(".")[0]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module)
    return {name for name in imported if name.split(".")[0] in FIRST_PARTY}


def _allowed(importer: str, imported: str) -> bool:
    return layer(imported) in ALLOWED[layer(importer)]


MODULES = sorted(p for package in FIRST_PARTY for p in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_upward(path):
    importer = _module_name(path)
    upward = sorted(m for m in first_party_imports(path) if not _allowed(importer, m))
    assert not upward, f"{importer} ({layer(importer)}) imports {upward}"


def test_the_rule_catches_an_upward_import(tmp_path):
    # the check itself: the core importing a defense, or a plugin importing a job, fails
    assert not _allowed("dgp.models", "defenses.topk")
    assert not _allowed("dgp.fl.federated", "defenses")
    assert not _allowed("dgp.communication", "jobs.privacy")
    assert not _allowed("attacks.dlg", "jobs.config")
    assert not _allowed("defenses.topk", "attacks.dlg")
    assert _allowed("attacks.dlg", "dgp.defense")
    assert not _allowed("report.render", "jobs.aggregate")
    assert _allowed("jobs.privacy", "attacks")
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from defenses import DEFENSES\n")
    assert first_party_imports(source) == {"defenses"}


def _import_graph() -> dict[str, set[str]]:
    """Module -> the first-party modules it imports (a package stands for its __init__)."""
    modules = {_module_name(path): path for path in MODULES}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in first_party_imports(path):
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = "done"
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_no_import_cycle():
    # function-level imports count: a cycle hidden inside a function is still a cycle
    assert _cycle(_import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) == []
