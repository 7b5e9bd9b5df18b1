"""Layers run one way: the core (``dgp``) imports no plugin, the plugins (``defenses``,
``attacks``) build on the core, federated training (``dgp.fl``) and the jobs (``dgp.jobs``)
sit above both, and the report reads CSVs and the registries' metadata. Every import
counts, including those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO

CORE, FL, JOBS = "dgp", "dgp.fl", "dgp.jobs"
# The layers each layer may import (first-party modules only).
ALLOWED = {
    "core": {"core"},
    "defenses": {"core", "defenses"},
    "attacks": {"core", "attacks", "defenses.base"},  # the protocol a defense declares
    "fl": {"core", "fl", "defenses"},
    "jobs": {"core", "fl", "jobs", "defenses", "attacks"},
    "report": {"core", "report", "defenses", "attacks"},  # registries' names and metadata
}
FIRST_PARTY = ("dgp", "defenses", "attacks", "report")


def layer(module: str) -> str:
    for package, name in ((FL, "fl"), (JOBS, "jobs")):
        if module == package or module.startswith(package + "."):
            return name
    if module == "defenses.base":
        return "defenses.base"
    top = module.split(".")[0]
    return "core" if top == CORE else top


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
    importer_layer, imported_layer = layer(importer), layer(imported)
    if importer_layer == "defenses.base":
        importer_layer = "defenses"
    allowed = ALLOWED[importer_layer]
    return imported_layer in allowed or (imported_layer == "defenses.base"
                                         and "defenses" in allowed)


MODULES = sorted(p for package in FIRST_PARTY for p in (REPO / package).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_upward(path):
    importer = _module_name(path)
    upward = sorted(m for m in first_party_imports(path) if not _allowed(importer, m))
    assert not upward, f"{importer} ({layer(importer)}) imports {upward}"


def test_the_rule_catches_an_upward_import(tmp_path):
    # the check itself: the core importing a defense, or a plugin importing a job, fails
    assert not _allowed("dgp.models", "defenses.base")
    assert not _allowed("dgp.communication", "dgp.jobs.privacy")
    assert not _allowed("attacks.dlg", "dgp.jobs.config")
    assert not _allowed("defenses.topk", "attacks.base")
    assert not _allowed("report.render", "dgp.jobs.aggregate")
    assert _allowed("dgp.jobs.privacy", "attacks")
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from defenses import DEFENSES\n")
    assert first_party_imports(source) == {"defenses"}
